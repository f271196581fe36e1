//! Reading regorus's error text. regorus reports parse, compile and evaluation errors as one
//! string shaped like a compiler diagnostic:
//!
//! ```text
//! --> policies/tokens_valid.rego:6:1
//!   |
//! 6 | }
//!   | ^
//! error: expecting expression
//! ```
//!
//! We lift the file, line, column and the one-line message out of it, so a start-up error and
//! a refusal both name where the problem is without a multi-line dump. Text of another shape
//! is kept whole, on one line.

use std::fmt;

/// Where in a policy file a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file as it was given to the engine (a path, or `builtin:<name>.rego`).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {} column {}", self.file, self.line, self.column)
    }
}

/// One regorus error, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    pub(crate) location: Option<SourceLocation>,
    pub(crate) message: String,
}

impl Diagnostic {
    pub(crate) fn parse(text: &str) -> Self {
        let location = text
            .lines()
            .find_map(|line| line.trim_start().strip_prefix("--> "))
            .and_then(parse_location);
        let message = text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .map(str::to_owned)
            .unwrap_or_else(|| one_line(text));
        Diagnostic { location, message }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{location}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// `file:line:column`, where the file itself may contain colons.
fn parse_location(text: &str) -> Option<SourceLocation> {
    let mut parts = text.trim_end().rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_owned();
    Some(SourceLocation { file, line, column })
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regorus_diagnostic_gives_file_line_column_and_message() {
        let text =
            "\n--> /etc/nsm/policies/a:b.rego:6:12\n  |\n6 | }\n  | ^\nerror: expecting expression";
        let diagnostic = Diagnostic::parse(text);
        assert_eq!(
            diagnostic.location,
            Some(SourceLocation {
                file: "/etc/nsm/policies/a:b.rego".into(),
                line: 6,
                column: 12
            })
        );
        assert_eq!(diagnostic.message, "expecting expression");
        assert_eq!(
            diagnostic.to_string(),
            "/etc/nsm/policies/a:b.rego line 6 column 12: expecting expression"
        );
    }

    #[test]
    fn text_without_a_location_is_kept_on_one_line() {
        let diagnostic = Diagnostic::parse("not a valid\n  rule path");
        assert_eq!(diagnostic.location, None);
        assert_eq!(diagnostic.message, "not a valid rule path");
    }
}
