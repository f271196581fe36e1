# service_connection (MonitorConnections): the caller owns at least one of the connections
# its monitor scope selects. A scope that selects nothing, or only other callers' connections,
# is refused, as in NSM.
package nsm.service_connection

owns_one if {
	some connection in input.monitor.connections
	connection.owned_by_caller == true
}

default selected := 0

selected := count(input.monitor.connections) if is_array(input.monitor.connections)

deny contains msg if {
	not owns_one
	msg := sprintf("%v owns none of the %d connections its monitor scope selects", [input.caller, selected])
}
