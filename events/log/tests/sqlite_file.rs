//! The SQLite store as a file on disk: reopening, bad files, bad directories, the WAL bound,
//! reading payloads stored by older schema versions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nsm_domain::vwire::{FailureCode, FailureStage, VWireEvent};
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, NewEvent, OpenOptions, Position,
    SqliteStore, StreamId,
};
use nsm_log::{OpenProblem, StoreError};

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "Tested",
        1,
        &serde_json::json!({ "n": n, "pad": "x".repeat(200) }),
        Causation::default(),
    )
    .unwrap()
}

/// A temporary directory and the path of a log in it (not created yet).
fn new_log() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    (dir, path)
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, OpenOptions::default())
        .await
        .unwrap()
}

/// A closed log holding `count` events in one stream.
async fn filled_log(count: u64) -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = new_log();
    let store = open(&path).await;
    fill(&store, "s", count).await;
    store.close().await;
    (dir, path)
}

async fn fill(store: &SqliteStore, stream: &str, count: u64) {
    let stream = StreamId::new(stream).unwrap();
    for n in 0..count {
        store
            .append(AppendRequest::new(
                stream.clone(),
                ExpectedVersion::Any,
                vec![event(n)],
            ))
            .await
            .unwrap();
    }
}

fn open_problem(result: Result<SqliteStore, StoreError>, path: &Path) -> OpenProblem {
    match result {
        Err(StoreError::Open {
            path: named,
            problem,
        }) => {
            assert_eq!(named, path, "the error names the file");
            problem
        }
        Err(other) => panic!("expected an open error, got {other}"),
        Ok(_) => panic!("opening {} should have failed", path.display()),
    }
}

#[tokio::test]
async fn reopening_keeps_every_event_and_continues_positions() {
    let (_dir, path) = new_log();
    let store = open(&path).await;
    fill(&store, "s", 25).await;
    store.close().await;
    let store = open(&path).await;
    assert_eq!(store.head(), Position(25));
    let done = store
        .append(AppendRequest::new(
            StreamId::new("s").unwrap(),
            ExpectedVersion::Exact(25),
            vec![event(99)],
        ))
        .await
        .unwrap();
    assert_eq!(done.positions, vec![Position(26)]);
    let earlier = store.read_all(Position(24), 10).await.unwrap();
    assert!(earlier[0].recorded_at <= earlier[1].recorded_at);
}

#[tokio::test]
async fn a_second_writer_on_the_same_log_is_refused_until_the_first_is_gone() {
    let (_dir, path) = new_log();
    let first = open(&path).await;
    fill(&first, "s", 3).await;
    let second = SqliteStore::open(&path, OpenOptions::default()).await;
    assert!(matches!(open_problem(second, &path), OpenProblem::InUse));
    // Readers are never refused: operator tools read a running node's log.
    let reader = SqliteStore::open_read_only(&path, OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(reader.head(), Position(3));
    first.close().await;
    let again = open(&path).await;
    assert_eq!(again.head(), Position(3));
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_by_name() {
    let (_dir, path) = new_log();
    std::fs::write(
        &path,
        b"this is a text file, certainly not a database\n".repeat(100),
    )
    .unwrap();
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(matches!(problem, OpenProblem::NotADatabase(_)), "{problem}");
    // Nothing was written over it.
    assert!(
        std::fs::read(&path)
            .unwrap()
            .starts_with(b"this is a text file")
    );
}

#[tokio::test]
async fn a_truncated_log_is_reported_as_damaged() {
    let (_dir, path) = filled_log(400).await;
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(matches!(problem, OpenProblem::Corrupt(_)), "{problem}");
}

#[tokio::test]
async fn a_log_with_overwritten_pages_is_reported_as_damaged() {
    let (_dir, path) = filled_log(400).await;
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    for b in &mut bytes[3 * page..6 * page] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(
        matches!(
            problem,
            OpenProblem::Corrupt(_) | OpenProblem::NotADatabase(_)
        ),
        "{problem}"
    );
}

#[tokio::test]
async fn a_log_from_a_newer_schema_is_refused() {
    let (_dir, path) = new_log();
    open(&path).await.close().await;
    run_raw_sql(&path, "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (9999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",).await;
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(
        matches!(problem, OpenProblem::NewerSchema { found: 9999, .. }),
        "{problem}"
    );
    assert!(problem.to_string().contains("upgrade nsm"));
}

#[tokio::test]
async fn another_programs_database_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    run_raw_sql(
        &path,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
    )
    .await;
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(
        matches!(&problem, OpenProblem::NotAnEventLog(tables) if tables.contains("customers")),
        "{problem}"
    );
}

#[tokio::test]
async fn a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/events.db");
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(
        matches!(problem, OpenProblem::DirectoryMissing),
        "{problem}"
    );
    let missing = dir.path().join("absent.db");
    let problem = open_problem(
        SqliteStore::open_read_only(&missing, OpenOptions::default()).await,
        &missing,
    );
    assert!(matches!(problem, OpenProblem::FileMissing), "{problem}");
}

/// A directory nobody may write to: chmod for ordinary users, a read-only tmpfs for root
/// (who ignores permission bits). Dropping it undoes the mount.
struct ReadOnlyDir {
    path: PathBuf,
    mounted: bool,
    _parent: tempfile::TempDir,
}

impl ReadOnlyDir {
    fn new() -> Option<Self> {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("ro");
        std::fs::create_dir(&path).unwrap();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout == b"0\n")
            .unwrap_or(false);
        if !root {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555)).unwrap();
            return Some(Self {
                path,
                mounted: false,
                _parent: parent,
            });
        }
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "nsm-test-ro"])
            .arg(&path)
            .status();
        match status {
            Ok(s) if s.success() => Some(Self {
                path,
                mounted: true,
                _parent: parent,
            }),
            _ if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI runs as root and must be able to mount a read-only tmpfs")
            }
            _ => {
                eprintln!("skipping: cannot mount a read-only tmpfs here (not permitted)");
                None
            }
        }
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(&self.path)
                .status();
        }
    }
}

#[tokio::test]
async fn a_read_only_directory_is_named() {
    let Some(dir) = ReadOnlyDir::new() else {
        return;
    };
    let path = dir.path.join("events.db");
    let problem = open_problem(
        SqliteStore::open(&path, OpenOptions::default()).await,
        &path,
    );
    assert!(matches!(problem, OpenProblem::NotWritable(_)), "{problem}");
}

#[tokio::test]
async fn a_read_only_store_reads_and_refuses_appends() {
    let (_dir, path) = new_log();
    let writer = open(&path).await;
    fill(&writer, "s", 5).await;
    let reader = SqliteStore::open_read_only(&path, OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(reader.head(), Position(5));
    assert_eq!(
        reader.read_all(Position::START, 100).await.unwrap().len(),
        5
    );
    let refused = reader
        .append(AppendRequest::new(
            StreamId::new("s").unwrap(),
            ExpectedVersion::Any,
            vec![event(1)],
        ))
        .await;
    assert!(
        matches!(refused, Err(StoreError::ReadOnly { .. })),
        "{refused:?}"
    );
    // The writer is not slowed or blocked by the reader.
    fill(&writer, "s", 5).await;
    assert_eq!(writer.head(), Position(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_readers_cannot_make_the_wal_grow_without_bound() {
    let (dir, path) = new_log();
    let limit = 512 * 1024;
    let options = OpenOptions {
        wal_limit_bytes: limit,
        ..OpenOptions::default()
    };
    let store = SqliteStore::open(&path, options).await.unwrap();
    // Readers that always overlap: at every moment at least one of them is mid-read.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = store.read_all(Position::START, 2000).await.unwrap();
                }
            })
        })
        .collect();
    let mut largest_wal = 0;
    let wal = dir.path().join("events.db-wal");
    for round in 0..40u64 {
        let batch = (0..50).map(|n| event(round * 100 + n)).collect();
        store
            .append(AppendRequest::new(
                StreamId::new(format!("s-{round}")).unwrap(),
                ExpectedVersion::NoStream,
                batch,
            ))
            .await
            .unwrap();
        largest_wal = largest_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    // 2000 events of ~260 bytes would be far past the limit without checkpoints.
    assert!(
        largest_wal < 4 * limit,
        "WAL reached {largest_wal} bytes, limit {limit}"
    );
}

#[tokio::test]
async fn a_stored_v1_failed_payload_is_upcast_on_read() {
    let (_dir, path) = new_log();
    open(&path).await.close().await;
    // A row exactly as a v1 writer left it: Failed had only a time and a reason.
    run_raw_sql(&path, "INSERT INTO events (event_id, stream, version, event_type, schema_version, recorded_at, payload) \
         VALUES ('0191e0a4-0000-7000-8000-000000000001', 'vwire-5b1e4a6c-43c9-4e8e-9a51-0c6e3f6d2c11', 1, \
                 'Failed', 1, '2026-01-01T00:00:00.000000Z', \
                 '{\"at\":\"2026-01-01T00:00:00Z\",\"reason\":\"endpoint refused\"}')",).await;
    let store = open(&path).await;
    let stored = store.read_all(Position::START, 1).await.unwrap().remove(0);
    assert_eq!(stored.schema_version, 1);
    match VWireEvent::decode(&stored).unwrap() {
        VWireEvent::Failed(failed) => {
            assert_eq!(failed.reason, "endpoint refused");
            assert_eq!(failed.stage, FailureStage::Unknown);
            assert_eq!(failed.code, FailureCode::Unknown);
        }
        other => panic!("decoded as {other:?}"),
    }
    // The stored row is untouched.
    let again = store.read_all(Position::START, 1).await.unwrap().remove(0);
    assert_eq!(again.payload, stored.payload);
    assert_eq!(again.schema_version, 1);
}

/// Runs one statement on the file behind the store's back, as another program would.
async fn run_raw_sql(path: &Path, sql: &str) {
    let raw = raw_connection(path).await;
    sqlx::query(sql).execute(&raw).await.unwrap();
    raw.close().await;
}

async fn raw_connection(path: &Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}
