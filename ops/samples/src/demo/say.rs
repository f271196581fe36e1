//! What `nsm demo` prints, and only that: numbered steps and indented detail lines on
//! stdout, each flushed at once so that a newcomer watching the terminal (or a test reading
//! the pipe) sees every step as it happens.
//!
//! A line that cannot be written (stdout closed, a broken pipe) is dropped: the demo still
//! has to close its vWires and delete its namespaces, so printing never fails it.

use std::fmt::Display;
use std::io::Write as _;

/// One line, as given.
pub(super) fn line(text: impl Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// An empty line, between steps.
pub(super) fn blank() {
    line("");
}

/// Numbered step headings, each after an empty line: `3. An endpoint ...`.
#[derive(Debug, Default)]
pub(super) struct Steps {
    done: u32,
}

impl Steps {
    /// The heading of the next step.
    pub(super) fn next(&mut self, title: impl Display) {
        self.done += 1;
        blank();
        line(format_args!("{}. {title}", self.done));
    }
}

/// A detail line under a step, indented by `depth` levels of three spaces.
pub(super) fn detail(depth: usize, text: impl Display) {
    line(format_args!("{:width$}{text}", "", width = 3 * depth));
}

/// A paragraph: its words wrapped at `WIDTH` columns, indented by `depth` levels.
pub(super) fn paragraph(depth: usize, text: &str) {
    for wrapped in wrap(text, WIDTH - 3 * depth) {
        detail(depth, wrapped);
    }
}

/// A command line as a user would type it (`$ nsm serve ...`), `dir` shown as `$DIR`,
/// wrapped with shell continuations between options, never inside one.
pub(super) fn command(depth: usize, args: &[String], dir: &std::path::Path) {
    let dir = dir.display().to_string();
    let mut units = vec!["$ nsm".to_owned()];
    for arg in args.iter().map(|a| a.replace(&dir, "$DIR")) {
        match units.last_mut() {
            Some(flag)
                if flag.starts_with("--") && !flag.contains(' ') && !arg.starts_with("--") =>
            {
                flag.push(' ');
                flag.push_str(&arg);
            }
            _ => units.push(arg),
        }
    }
    let lines = wrap_units(units, WIDTH - 3 * depth - 8);
    let last = lines.len().saturating_sub(1);
    for (i, text) in lines.iter().enumerate() {
        let pad = if i == 0 { "" } else { "      " };
        let end = if i == last { "" } else { " \\" };
        detail(depth, format_args!("{pad}{text}{end}"));
    }
}

/// A list item: `- text`, wrapped, its continuation lines under its first word.
pub(super) fn bullet(depth: usize, text: &str) {
    for (i, wrapped) in wrap(text, WIDTH - 3 * depth - 2).iter().enumerate() {
        let mark = if i == 0 { "- " } else { "  " };
        detail(depth, format_args!("{mark}{wrapped}"));
    }
}

/// The width paragraphs are wrapped at: that of a small terminal.
const WIDTH: usize = 88;

/// `text`'s words in lines of at most `width` characters (a longer word has its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    wrap_units(text.split_whitespace().map(str::to_owned), width)
}

/// `units` joined by spaces in lines of at most `width` characters, never split.
fn wrap_units(units: impl IntoIterator<Item = String>, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for unit in units {
        if !current.is_empty() && current.len() + 1 + unit.len() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&unit);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn paragraphs_wrap_between_words_and_keep_long_words_whole() {
        assert_eq!(wrap("one two three", 7), ["one two", "three"]);
        assert_eq!(
            wrap("a /a/very/long/path b", 5),
            ["a", "/a/very/long/path", "b"]
        );
        assert!(wrap("  ", 10).is_empty());
    }
}
