# tokens_valid: every path segment this hop can vouch for carries a token, and that token is a
# well-formed JWT. Checked segments: server side 0..=path.index (the hops this call came
# through, and this hop's own token, which it signs before it authorizes); client side, every
# segment of the reply path. Also refuses a server-side path index outside the path.
#
# Written fail-closed ("not <good fact>") and with one rule per check: regorus evaluates every
# rule of a package, and each costs microseconds. Messages are built by functions, which run
# only for a segment that is refused.
package nsm.tokens_valid

deny contains msg if {
	input.side == "server"
	not input.path.segments[input.path.index]
	msg := sprintf("path index %v is outside the path of %d segments", [input.path.index, count(input.path.segments)])
}

deny contains msg if {
	last := {"server": input.path.index, "client": count(input.path.segments) - 1}[input.side]
	some i, segment in input.path.segments
	i <= last
	# Both facts must be true; a missing one makes the set differ, so the segment is refused.
	not {segment.token.present, segment.token.decoded} == {true}
	msg := token_problem(i, segment)
}

token_problem(i, segment) := sprintf("segment %d (%v) carries no token", [i, segment.name]) if {
	not segment.token.present == true
} else := sprintf("the token of segment %d (%v) is not a well-formed JWT", [i, segment.name])
