//! Aligned text tables for people, with a header row; the last column is never padded.

use std::io::Write;

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub(crate) fn print(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    write(&mut out, header, rows)?;
    Ok(())
}

pub(crate) fn write(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut all = Vec::with_capacity(rows.len() + 1);
    all.push(header.iter().map(|h| (*h).to_owned()).collect());
    all.extend_from_slice(rows);
    write_rows(out, &all)
}

/// Rows without a header (a block of `name: value` facts).
pub(crate) fn write_rows(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}
