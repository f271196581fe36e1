# prev_token_signed (server side): the token of the segment before this hop's own
# (path.index - 1) was signed by the caller: it verifies against the public key of the
# certificate the caller presented in TLS. The signature is checked in Rust by the caller of
# nsm-policy; this policy reads the outcome, token.signed_by_caller.
package nsm.prev_token_signed

deny contains msg if {
	not input.path.segments[input.path.index - 1].token.signed_by_caller == true
	msg := problem(input.path.index - 1)
}

problem(previous) := sprintf("path index %v leaves no previous segment to check against the caller", [input.path.index]) if {
	previous < 0
} else := sprintf("the path has no segment %d before this hop's", [previous]) if {
	not input.path.segments[previous]
} else := sprintf("the token of segment %d (%v) is not signed by the caller %v", [previous, input.path.segments[previous].name, input.caller])
