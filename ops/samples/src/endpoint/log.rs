//! The endpoint's IPAM log: one append-only SQLite table in its own file (`--db`).
//!
//! ```sql
//! CREATE TABLE ipam_log (
//!     position      INTEGER PRIMARY KEY AUTOINCREMENT,
//!     recorded_at   TEXT NOT NULL,   -- RFC 3339, UTC
//!     kind          TEXT NOT NULL CHECK (kind IN ('allocated', 'released')),
//!     connection_id TEXT NOT NULL,   -- the endpoint's own path-segment id
//!     client_addr   TEXT,            -- bare address, e.g. 169.254.0.2
//!     endpoint_addr TEXT,            -- bare address, e.g. 169.254.0.1
//!     cause         TEXT,            -- on 'released': 'close' or 'expired'
//!     expires_at    TEXT             -- on 'allocated': the client's lifetime end, RFC 3339
//! );
//! ```
//!
//! * An `allocated` row gives a connection its pair; a later `allocated` row for the same id
//!   (a refresh that moved `expires_at`) replaces it. A `released` row ends it.
//! * The current allocations are the fold of the table in `position` order. Rows are never
//!   updated or deleted, so other tools (and tests) may read the table with plain SQL.
//! * Every append is its own transaction on a WAL database with `synchronous=FULL`: when
//!   [`IpamLog::append`] returns, the row survives a power cut. The endpoint appends before
//!   it replies, so an address a client was told about is always in the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, Row as _, SqliteConnection};

use super::ipam::Allocation;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS ipam_log (
    position      INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at   TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('allocated', 'released')),
    connection_id TEXT NOT NULL,
    client_addr   TEXT,
    endpoint_addr TEXT,
    cause         TEXT,
    expires_at    TEXT
)";

/// One row to append.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Record<'a> {
    Allocated(&'a Allocation),
    Released {
        allocation: &'a Allocation,
        cause: Cause,
    },
}

/// Why a connection's addresses went back to the pool (the `cause` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The client (or the node on its behalf) called Close.
    Close,
    /// Nobody refreshed the connection within its lifetime plus the grace period.
    Expired,
}

impl Cause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Expired => "expired",
        }
    }
}

/// The single writer connection to the log.
#[derive(Debug)]
pub(crate) struct IpamLog {
    path: PathBuf,
    connection: SqliteConnection,
}

impl IpamLog {
    /// Opens the log, creating the file and the table if missing.
    pub(crate) async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is fsynced at each commit, so an acknowledged row survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let mut connection = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the IPAM log {}", path.display()))?;
        sqlx::query(SCHEMA)
            .execute(&mut connection)
            .await
            .with_context(|| format!("cannot create ipam_log in {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            connection,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The current allocations: the fold of every row in order.
    pub(crate) async fn load(&mut self) -> anyhow::Result<HashMap<String, Allocation>> {
        let rows = sqlx::query(
            "SELECT position, kind, connection_id, client_addr, endpoint_addr, expires_at
             FROM ipam_log ORDER BY position",
        )
        .fetch_all(&mut self.connection)
        .await
        .with_context(|| format!("cannot read ipam_log in {}", self.path.display()))?;
        let mut current = HashMap::new();
        for row in rows {
            let position: i64 = row.get("position");
            let kind: String = row.get("kind");
            let id: String = row.get("connection_id");
            if kind == "released" {
                current.remove(&id);
                continue;
            }
            let allocation = allocation_of(&row)
                .with_context(|| format!("ipam_log row {position} is not an allocation"))?;
            current.insert(id, allocation);
        }
        Ok(current)
    }

    /// Appends one row and waits until it is durable.
    pub(crate) async fn append(
        &mut self,
        connection_id: &str,
        record: Record<'_>,
    ) -> Result<(), sqlx::Error> {
        let (kind, allocation, cause) = match record {
            Record::Allocated(a) => ("allocated", a, None),
            Record::Released { allocation, cause } => {
                ("released", allocation, Some(cause.as_str()))
            }
        };
        let expires_at = match record {
            Record::Allocated(a) => a.expires_at.map(rfc3339),
            Record::Released { .. } => None,
        };
        sqlx::query(
            "INSERT INTO ipam_log
               (recorded_at, kind, connection_id, client_addr, endpoint_addr, cause, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(rfc3339(Utc::now()))
        .bind(kind)
        .bind(connection_id)
        .bind(allocation.client.to_string())
        .bind(allocation.endpoint.to_string())
        .bind(cause)
        .bind(expires_at)
        .execute(&mut self.connection)
        .await?;
        Ok(())
    }
}

fn allocation_of(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Allocation> {
    let addr = |column: &str| -> anyhow::Result<IpAddr> {
        let text: Option<String> = row.try_get(column)?;
        let text = text.with_context(|| format!("{column} is NULL"))?;
        text.parse()
            .with_context(|| format!("{column} {text:?} is not an address"))
    };
    let expires_at: Option<String> = row.try_get("expires_at")?;
    let expires_at = expires_at
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("expires_at {text:?} is not RFC 3339"))
        })
        .transpose()?;
    Ok(Allocation {
        endpoint: addr("endpoint_addr")?,
        client: addr("client_addr")?,
        expires_at,
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(endpoint: &str, client: &str, expires: i64) -> Allocation {
        Allocation {
            endpoint: endpoint.parse().unwrap(),
            client: client.parse().unwrap(),
            expires_at: DateTime::from_timestamp(expires, 0),
        }
    }

    #[tokio::test]
    async fn reopening_folds_allocations_refreshes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.db");
        let (a, b) = (
            pair("10.0.0.1", "10.0.0.2", 100),
            pair("10.0.0.3", "10.0.0.4", 100),
        );
        {
            let mut log = IpamLog::open(&path).await.unwrap();
            log.append("a", Record::Allocated(&a)).await.unwrap();
            log.append("b", Record::Allocated(&b)).await.unwrap();
            let refreshed = pair("10.0.0.1", "10.0.0.2", 200);
            log.append("a", Record::Allocated(&refreshed))
                .await
                .unwrap();
            let released = Record::Released {
                allocation: &b,
                cause: Cause::Close,
            };
            log.append("b", released).await.unwrap();
        }
        let mut log = IpamLog::open(&path).await.unwrap();
        let current = log.load().await.unwrap();
        assert_eq!(current.len(), 1);
        assert_eq!(current["a"], pair("10.0.0.1", "10.0.0.2", 200));
    }

    #[tokio::test]
    async fn releases_are_readable_with_plain_sql() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.db");
        let mut log = IpamLog::open(&path).await.unwrap();
        let a = pair("fd00::1", "fd00::2", 100);
        log.append("a", Record::Allocated(&a)).await.unwrap();
        let expired = Record::Released {
            allocation: &a,
            cause: Cause::Expired,
        };
        log.append("a", expired).await.unwrap();
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT connection_id, cause FROM ipam_log WHERE kind = 'released'")
                .fetch_all(&mut log.connection)
                .await
                .unwrap();
        assert_eq!(rows, vec![("a".to_owned(), Some("expired".to_owned()))]);
        assert!(log.load().await.unwrap().is_empty());
    }
}
