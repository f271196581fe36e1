# service_allow_list (networkservice.Request, server side): the caller may attach to the
# Network Service only if an entry of data.services matches both: a key that glob-matches the
# service name, listing a pattern that glob-matches the caller's SPIFFE ID.
#
#   { "services": { "secure-intranet": ["spiffe://k8s.nsm/ns/blue/*"], "*": ["spiffe://k8s.nsm/ns/ops/*"] } }
#
# `*` matches any run of characters, `/` included, so end a namespace pattern at a `/`
# (`.../ns/blue/*`, not `.../ns/blue*`, which also matches `ns/blue-team`). Without a
# data.services document this policy allows everything; with an empty one it refuses all.
package nsm.service_allow_list

deny contains msg if {
	data.services
	not allowed
	msg := problem
}

allowed if {
	is_string(input.service)
	is_string(input.caller)
	some service_pattern, identity_patterns in data.services
	glob.match(service_pattern, null, input.service)
	some identity_pattern in identity_patterns
	glob.match(identity_pattern, null, input.caller)
}

problem := "the request names no network service" if {
	not is_string(input.service)
} else := sprintf("%v may not attach to network service %q: no entry of the allow list matches", [input.caller, input.service])
