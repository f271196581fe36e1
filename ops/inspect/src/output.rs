//! Printing results: aligned `name value` lines for people, JSON for programs.

use std::io::Write;

use serde::Serialize;

/// Prints `report` as pretty JSON, or as one aligned line per field.
pub fn print_report<T: Serialize>(report: &T, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let value = serde_json::to_value(report)?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let Some(fields) = value.as_object() else {
        writeln!(out, "{value}")?;
        return Ok(());
    };
    let width = fields.keys().map(String::len).max().unwrap_or(0);
    for (name, value) in fields {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        writeln!(out, "{name:<width$}  {text}")?;
    }
    Ok(())
}

/// Prints `value` as one line of JSON (a stream of them is JSON lines); a closed pipe is
/// not an error.
pub(crate) fn print_json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let line = serde_json::to_string(value)?;
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A line for the person at the terminal, on stderr (so stdout stays the table or JSON).
pub(crate) fn note(text: &str) {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("{text}");
    }
}
