# tokens_chained: for each neighbouring pair of checked segments i and i+1, the token of
# segment i is addressed to the hop of segment i+1 (its aud contains that token's sub).
# Server side this includes the pair (path.index - 1, path.index): a caller's token addressed
# to anyone but this hop (a wrong audience, or a token replayed from another hop) is refused
# here. Checked segments are the same as in tokens_valid.
package nsm.tokens_chained

deny contains msg if {
	last := {"server": input.path.index, "client": count(input.path.segments) - 1}[input.side]
	some i, segment in input.path.segments
	i < last
	following := input.path.segments[i + 1]
	# A missing sub (null) is in no audience list.
	not following.token.sub in segment.token.aud
	msg := sprintf("the token of segment %d (%v) is not addressed to the hop of segment %d (%v)", [i, segment.name, i + 1, following.name])
}
