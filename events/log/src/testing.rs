//! Test support for crates that test their own commands against real log files (feature
//! `test-support`; never in a release build): damage a log on purpose, and read what no
//! command reads. Everything else a test needs is the public read API.

use std::path::Path;

/// Runs `sql` on the file with a connection of its own, to damage a log on purpose (tests of
/// corruption detection: the SQL is the damage). Panics if SQLite refuses it.
pub fn tamper(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).expect("open the log to tamper with it");
    conn.execute_batch(sql).expect("tamper with the log");
}

/// The last position AUTOINCREMENT has given (`sqlite_sequence`): where the next append goes
/// after, which an import sets to its last position. 0 when none was ever given.
pub fn sequence(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open the log");
    conn.query_row(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
        [],
        |row| row.get(0),
    )
    .expect("read sqlite_sequence")
}
