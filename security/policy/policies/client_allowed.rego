# client_allowed (registry Register and Unregister): a registration is new, or the caller is
# the identity that first registered it. Only the original registrant may change or remove a
# Network Service Endpoint or a Network Service. The message does not name the registrant: the
# refused caller learns that the name is taken, not by whom.
package nsm.client_allowed

kind_names := {"nse": "network service endpoint", "ns": "network service"}

deny contains msg if {
	not is_object(input.resource)
	msg := "the call names no registry resource to authorize"
}

deny contains msg if {
	not is_string(input.caller)
	msg := "the caller has no identity"
}

deny contains msg if {
	resource := input.resource
	is_string(resource.registered_by)
	resource.registered_by != input.caller
	kind := object.get(kind_names, resource.kind, "resource")
	msg := sprintf("%v %q belongs to the identity that first registered it; only that identity may change or remove it", [kind, resource.name])
}
