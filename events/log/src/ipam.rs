//! The sample endpoint's IPAM log: which connection holds which pair of addresses, in a
//! SQLite file of its own (`nsm endpoint --db`), so that a restarted endpoint hands every
//! client the addresses it had.
//!
//! The table, `ipam_log`, is in `migrations/endpoint/` beside the event log's schema, and
//! this module is the only code that reads or writes it:
//!
//! * an `allocated` row gives a connection its pair; a later `allocated` row for the same id
//!   (a refresh that moved `expires_at`) replaces it; a `released` row ends it;
//! * the current allocations are the fold of the table in `position` order ([`IpamLog::load`]);
//!   rows are never updated or deleted, so other tools may read the table with plain SQL;
//! * every append is its own transaction on a WAL database with `synchronous=FULL`: when
//!   [`IpamLog::append`] returns, the row survives a power cut. The endpoint appends before
//!   it replies, so an address a client was told about is always in the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use nsm_domain::envelope::{format_timestamp, parse_timestamp};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection as _, Row as _, SqliteConnection};

/// The endpoint file's schema: `migrations/endpoint/`, never the event log's.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/endpoint");

/// One connection's pair of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub endpoint: IpAddr,
    pub client: IpAddr,
    /// When the connection ends unless refreshed (the previous path segment's `expires`, or
    /// the endpoint's own).
    pub expires_at: Option<DateTime<Utc>>,
}

/// One row to append.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Allocated(&'a Allocation),
    Released {
        allocation: &'a Allocation,
        cause: Cause,
    },
}

/// Why a connection's addresses went back to the pool (the `cause` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The client (or the node on its behalf) called Close.
    Close,
    /// Nobody refreshed the connection within its lifetime plus the grace period.
    Expired,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Expired => "expired",
        }
    }
}

/// Why the IPAM log could not be opened, read or written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum IpamLogError {
    /// The file cannot be opened or created: check the path and its permissions.
    #[error("cannot open the IPAM log {}: {cause}", .path.display())]
    Open { path: PathBuf, cause: sqlx::Error },
    /// The file's schema cannot be brought up to date (another program's database?).
    #[error("cannot create ipam_log in {}: {cause}", .path.display())]
    Migrate {
        path: PathBuf,
        cause: sqlx::migrate::MigrateError,
    },
    /// The table cannot be read.
    #[error("cannot read ipam_log in {}: {cause}", .path.display())]
    Read { path: PathBuf, cause: sqlx::Error },
    /// A row does not make an allocation: the file was changed by hand, or is damaged.
    #[error("ipam_log row {position} is not an allocation: {problem}")]
    Corrupt { position: i64, problem: String },
    /// A row could not be appended; nothing was written.
    #[error("{0}")]
    Write(sqlx::Error),
}

/// The single writer connection to an endpoint's IPAM log.
#[derive(Debug)]
pub struct IpamLog {
    path: PathBuf,
    connection: SqliteConnection,
}

impl IpamLog {
    /// Opens the log, creating the file and the table if missing.
    pub async fn open(path: &Path) -> Result<Self, IpamLogError> {
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
            .map_err(|cause| IpamLogError::Open {
                path: path.to_owned(),
                cause,
            })?;
        MIGRATOR
            .run(&mut connection)
            .await
            .map_err(|cause| IpamLogError::Migrate {
                path: path.to_owned(),
                cause,
            })?;
        Ok(Self {
            path: path.to_owned(),
            connection,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current allocations by connection id: the fold of every row in order.
    pub async fn load(&mut self) -> Result<HashMap<String, Allocation>, IpamLogError> {
        let rows = sqlx::query(
            "SELECT position, kind, connection_id, client_addr, endpoint_addr, expires_at
             FROM ipam_log ORDER BY position",
        )
        .fetch_all(&mut self.connection)
        .await
        .map_err(|cause| IpamLogError::Read {
            path: self.path.clone(),
            cause,
        })?;
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
                .map_err(|problem| IpamLogError::Corrupt { position, problem })?;
            current.insert(id, allocation);
        }
        Ok(current)
    }

    /// Appends one row and waits until it is durable.
    pub async fn append(
        &mut self,
        connection_id: &str,
        record: Record<'_>,
    ) -> Result<(), IpamLogError> {
        let (kind, allocation, cause, expires_at) = match record {
            Record::Allocated(a) => ("allocated", a, None, a.expires_at.map(format_timestamp)),
            Record::Released { allocation, cause } => {
                ("released", allocation, Some(cause.as_str()), None)
            }
        };
        sqlx::query(
            "INSERT INTO ipam_log
               (recorded_at, kind, connection_id, client_addr, endpoint_addr, cause, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(format_timestamp(Utc::now()))
        .bind(kind)
        .bind(connection_id)
        .bind(allocation.client.to_string())
        .bind(allocation.endpoint.to_string())
        .bind(cause)
        .bind(expires_at)
        .execute(&mut self.connection)
        .await
        .map_err(IpamLogError::Write)?;
        Ok(())
    }
}

fn allocation_of(row: &sqlx::sqlite::SqliteRow) -> Result<Allocation, String> {
    let text = |column: &str| -> Result<Option<String>, String> {
        row.try_get(column).map_err(|e| format!("{column}: {e}"))
    };
    let addr = |column: &str| -> Result<IpAddr, String> {
        let text = text(column)?.ok_or_else(|| format!("{column} is NULL"))?;
        text.parse()
            .map_err(|e| format!("{column} {text:?} is not an address: {e}"))
    };
    let expires_at = text("expires_at")?
        .map(|text| {
            parse_timestamp(&text).map_err(|e| format!("expires_at {text:?} is not RFC 3339: {e}"))
        })
        .transpose()?;
    Ok(Allocation {
        endpoint: addr("endpoint_addr")?,
        client: addr("client_addr")?,
        expires_at,
    })
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

    #[tokio::test]
    async fn a_file_written_before_the_migration_existed_opens_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ipam.db");
        {
            // What the endpoint wrote before its table moved to migrations/endpoint/.
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let mut old = SqliteConnection::connect_with(&options).await.unwrap();
            let schema = include_str!("../../../migrations/endpoint/0001_ipam_log.sql");
            sqlx::raw_sql(schema).execute(&mut old).await.unwrap();
            sqlx::query(
                "INSERT INTO ipam_log (recorded_at, kind, connection_id, client_addr, endpoint_addr, expires_at)
                 VALUES ('2026-12-01T00:00:00.000000Z', 'allocated', 'a', '10.0.0.2', '10.0.0.1', NULL)",
            )
            .execute(&mut old)
            .await
            .unwrap();
        }
        let mut log = IpamLog::open(&path).await.unwrap();
        let current = log.load().await.unwrap();
        assert_eq!(current["a"].client, "10.0.0.2".parse::<IpAddr>().unwrap());
    }
}
