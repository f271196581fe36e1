# tokens_expired: no token of the checked segments has expired: a token is good while
# now < exp (RFC 7519), and a token without an expiry counts as expired. Checked segments are
# the same as in tokens_valid. Server side, segments after this hop's are not checked: the
# hops downstream rewrite them on this very call, and a stale copy from the previous refresh
# must not refuse the refresh.
package nsm.tokens_expired

deny contains msg if {
	last := {"server": input.path.index, "client": count(input.path.segments) - 1}[input.side]
	some i, segment in input.path.segments
	i <= last
	# null (no expiry) orders before every number in Rego, so it is refused here too.
	not segment.token.exp > input.now
	msg := expiry_problem(i, segment)
}

expiry_problem(i, segment) := sprintf("the token of segment %d (%v) has no expiry", [i, segment.name]) if {
	not is_number(segment.token.exp)
} else := sprintf("the token of segment %d (%v) expired at %v (now %v)", [i, segment.name, segment.token.exp, input.now])
