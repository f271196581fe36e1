# next_token_signed (client side): the token of the segment after this hop's own
# (path.index + 1) in the reply was signed by the server this hop called: it verifies against
# the public key of the certificate the server presented in TLS. The signature is checked in
# Rust by the caller of nsm-policy; this policy reads the outcome, token.signed_by_server. A
# reply path that ends at this hop (segments dropped in flight) is refused too.
package nsm.next_token_signed

deny contains msg if {
	not input.path.segments[input.path.index + 1].token.signed_by_server == true
	msg := problem(input.path.index + 1)
}

problem(following) := sprintf("the reply path has no segment %d after this hop's (it has %d segments)", [following, count(input.path.segments)]) if {
	not input.path.segments[following]
} else := sprintf("the token of segment %d (%v) is not signed by the server %v", [following, input.path.segments[following].name, input.server])
