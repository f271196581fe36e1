//! How error messages quote the input they refuse. The domain, the wire conversions
//! (`nsm-proto`) and the gRPC servers (`nsm-serve`) all quote caller input and must bound it
//! the same way: a gRPC status message travels in HTTP/2 headers, which peers limit (tonic's
//! client to 16 KiB), so a refusal that repeated a 100 KB name whole would never reach the
//! caller.

use std::borrow::Cow;

/// Characters of refused input an error message quotes.
pub const QUOTED_CHARS: usize = 64;

/// `input` as `{:?}` shows it, cut after its first [`QUOTED_CHARS`] characters (on a
/// character boundary) with an ellipsis and its length in bytes: `"aaaa…" (100000 bytes)`.
/// Input no longer than that is quoted whole, as `{:?}` quotes it.
pub fn quote(input: &str) -> String {
    let Some(prefix) = prefix(input, QUOTED_CHARS) else {
        return format!("{input:?}");
    };
    let quoted = format!("{prefix:?}");
    let open = quoted.strip_suffix('"').unwrap_or(&quoted);
    format!("{open}…\" ({} bytes)", input.len())
}

/// `input` unquoted if it has at most `max_chars` characters; otherwise its first
/// `max_chars` characters, an ellipsis and its length in bytes (`aaaa… (100000 bytes)`).
/// For input a message shows unquoted (a map key in a field path) and for whole messages
/// that may carry someone else's text.
pub fn shorten(input: &str, max_chars: usize) -> Cow<'_, str> {
    match prefix(input, max_chars) {
        None => Cow::Borrowed(input),
        Some(prefix) => Cow::Owned(format!("{prefix}… ({} bytes)", input.len())),
    }
}

/// The first `max_chars` characters of `input`, or `None` if that is all of it.
fn prefix(input: &str, max_chars: usize) -> Option<&str> {
    let (end, _) = input.char_indices().nth(max_chars)?;
    Some(&input[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_quoted_whole_as_debug_quotes_it() {
        for input in ["", "icmp", "a\"b\n", &"x".repeat(QUOTED_CHARS)] {
            assert_eq!(quote(input), format!("{input:?}"));
            assert_eq!(shorten(input, 64), input);
        }
    }

    #[test]
    fn long_input_is_cut_to_its_first_characters_with_an_ellipsis_and_its_length() {
        let huge = "a".repeat(100_000);
        let expected = format!("\"{}…\" (100000 bytes)", "a".repeat(64));
        assert_eq!(quote(&huge), expected);
        assert_eq!(
            shorten(&huge, 3),
            "aaa… (100000 bytes)",
            "shorten does not quote"
        );
        let one_more = "x".repeat(QUOTED_CHARS + 1);
        assert!(quote(&one_more).ends_with("…\" (65 bytes)"));
    }

    #[test]
    fn multibyte_input_is_cut_on_a_character_boundary_and_counted_in_bytes() {
        // 2-, 3- and 4-byte characters: 64 of them, never a split one.
        for (c, width) in [('é', 2), ('€', 3), ('🦀', 4)] {
            let input: String = std::iter::repeat_n(c, 1000).collect();
            let prefix: String = std::iter::repeat_n(c, 64).collect();
            let expected = format!("\"{prefix}…\" ({} bytes)", 1000 * width);
            assert_eq!(quote(&input), expected);
        }
        // Mixed widths: the cut falls after the 64th character, whatever its width.
        let mixed = format!("{}🦀{}", "a".repeat(63), "b".repeat(10));
        let quoted = quote(&mixed);
        assert!(
            quoted.starts_with(&format!("\"{}🦀…\"", "a".repeat(63))),
            "{quoted}"
        );
    }

    #[test]
    fn escapes_stay_escaped_and_the_quote_stays_bounded() {
        let controls = "\u{0}".repeat(10_000);
        let quoted = quote(&controls);
        assert!(quoted.starts_with("\"\\0\\0"), "{quoted}");
        assert!(quoted.ends_with("…\" (10000 bytes)"), "{quoted}");
        // The worst escape (`\u{10ffff}`) is 10 bytes a character.
        let worst = "\u{10ffff}".repeat(10_000);
        assert!(quote(&worst).len() < 64 * 10 + 32);
    }
}
