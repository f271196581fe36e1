use std::path::{Path, PathBuf};

use nsm_domain::vwire::{VWire, VWireId};
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, OpenOptions, Position, SqliteStore,
};
use rusqlite::Connection;

use super::testlog::{TestLog, sample};
use super::*;
use crate::fold::state_at;

fn export_args(db: &Path, out: &Path) -> ExportArgs {
    ExportArgs {
        log: LogArgs {
            db: db.to_owned(),
            json: false,
        },
        out: out.to_owned(),
        force: false,
        vwire: None,
        since: None,
        until: None,
    }
}

/// Rows of `table` in one file and not the other, both ways, compared by SQL.
fn rows_differing(a: &Path, b: &Path, table: &str) -> i64 {
    let conn = Connection::open(a).unwrap();
    conn.execute("ATTACH DATABASE ?1 AS other", [b.to_str().unwrap()])
        .unwrap();
    conn.query_row(
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM main.{table} EXCEPT SELECT * FROM other.{table}))
                  + (SELECT count(*) FROM (SELECT * FROM other.{table} EXCEPT SELECT * FROM main.{table}))"
        ),
        [],
        |row| row.get(0),
    )
    .unwrap()
}

fn scalar<T: rusqlite::types::FromSql>(path: &Path, sql: &str) -> T {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

fn bundle_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn states(path: &Path, position: u64) -> std::collections::HashMap<VWireId, VWire> {
    let log = LogFile::open(path).await.unwrap();
    let folded = state_at(&log, Position(position)).unwrap();
    assert!(folded.problems.is_empty(), "{:?}", folded.problems);
    folded
        .vwires
        .into_iter()
        .map(|(id, vwire)| (id, *vwire))
        .collect()
}

fn live(
    vwires: std::collections::HashMap<VWireId, VWire>,
) -> std::collections::HashMap<VWireId, VWire> {
    vwires
        .into_iter()
        .filter(|(_, v)| !v.status.is_terminal())
        .collect()
}

#[tokio::test]
async fn export_then_import_gives_back_every_column_of_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    let bundle = dir.path().join("incident.jsonl");
    let report = write_export(&export_args(&source, &bundle)).await.unwrap();
    assert!(report.whole);
    assert!(!tmp_path(&bundle).exists(), "no temporary file is left");
    let imported = dir.path().join("imported.db");
    let loaded = load_bundle(&bundle, &imported).await.unwrap();

    let events: i64 = scalar(&source, "SELECT count(*) FROM events");
    assert_eq!(loaded.events as i64, events);
    for table in ["events", "live_vwires", "live_registry"] {
        assert_eq!(rows_differing(&source, &imported, table), 0, "{table}");
    }
    let head: i64 = scalar(&source, "SELECT max(position) FROM events");
    let sequence: i64 = scalar(
        &imported,
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
    );
    assert_eq!(sequence, head);
    let whole: String = scalar(&imported, "SELECT value FROM log_meta WHERE key = 'whole'");
    assert_eq!(whole, "true");
    let nodes: String = scalar(&imported, "SELECT value FROM log_meta WHERE key = 'nodes'");
    assert_eq!(nodes, r#"["node-1"]"#);

    // A node opening the import appends after the last position.
    let store = SqliteStore::open(&imported, OpenOptions::default())
        .await
        .unwrap();
    let event =
        nsm_domain::dataplane::DataplaneEvent::Reconciled(nsm_domain::dataplane::Reconciled {
            at: Utc::now(),
            dataplane: "dry-run".into(),
            checked: 0,
            whole: 0,
            healed: 0,
            failed: 0,
            orphans_removed: 0,
            took_ms: 0,
        });
    let request = AppendRequest::new(
        nsm_domain::dataplane::stream("node-2").unwrap(),
        ExpectedVersion::NoStream,
        vec![event.to_new_event(Causation::default()).unwrap()],
    );
    let appended = store.append(request).await.unwrap();
    assert_eq!(appended.positions, vec![Position(head as u64 + 1)]);
    store.close().await;
}

#[tokio::test]
async fn the_vwires_at_any_position_are_the_same_on_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    let bundle = dir.path().join("incident.jsonl");
    write_export(&export_args(&source, &bundle)).await.unwrap();
    let imported = dir.path().join("imported.db");
    load_bundle(&bundle, &imported).await.unwrap();
    let head: i64 = scalar(&source, "SELECT max(position) FROM events");
    for position in [1, 3, head as u64 / 2, head as u64 - 1, head as u64] {
        assert_eq!(
            states(&source, position).await,
            states(&imported, position).await,
            "at position {position}"
        );
    }
}

#[tokio::test]
async fn a_vwire_cut_holds_that_vwire_stream_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::create(&dir.path().join("source.db")).await;
    let a = log.connect().await;
    let b = log.connect().await;
    log.refresh(a).await;
    log.refresh(b).await;
    log.close(a).await;
    let source = log.finish().await;
    let bundle = dir.path().join("a.jsonl");
    let mut args = export_args(&source, &bundle);
    // The first characters of the id, as people copy them from a table.
    args.vwire = Some(a.to_string()[..13].to_owned());
    let report = write_export(&args).await.unwrap();
    assert!(!report.whole);
    let lines = bundle_lines(&bundle);
    let stream = a.stream().to_string();
    let events: Vec<RawEvent> = lines[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e.stream == stream), "{events:?}");
    let in_source: i64 = scalar(
        &source,
        &format!("SELECT count(*) FROM events WHERE stream = '{stream}'"),
    );
    assert_eq!(events.len() as i64, in_source);
    let header: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(header["meta"]["filter"]["stream"], Value::String(stream));
    assert_eq!(header["meta"]["whole"], Value::Bool(false));
}

#[tokio::test]
async fn a_time_cut_keeps_the_requested_of_a_vwire_from_before_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::create(&dir.path().join("source.db")).await;
    let early = log.connect().await;
    let ended = log.connect().await;
    let quiet = log.connect().await;
    log.close(ended).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let window_starts = log.refresh(early).await;
    let late = log.connect().await;
    log.refresh(early).await;
    let source = log.finish().await;

    let since: String = scalar(
        &source,
        &format!(
            "SELECT recorded_at FROM events WHERE position = {}",
            window_starts.0
        ),
    );
    let bundle = dir.path().join("window.jsonl");
    let mut args = export_args(&source, &bundle);
    args.since = Some(parse_timestamp(&since).unwrap());
    write_export(&args).await.unwrap();
    let events: Vec<RawEvent> = bundle_lines(&bundle)[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |id: VWireId, kind: &str| {
        let stream = id.stream().to_string();
        events
            .iter()
            .any(|e| e.stream == stream && e.event_type == kind)
    };
    assert!(has(early, "Requested"), "the earlier Requested is kept");
    assert!(
        has(quiet, "Established"),
        "a vWire open when the window began is kept"
    );
    assert!(has(late, "Requested"));
    assert!(
        !has(ended, "Requested"),
        "a vWire that ended before the window is left out"
    );

    let imported = dir.path().join("imported.db");
    load_bundle(&bundle, &imported).await.unwrap();
    let head: i64 = scalar(&source, "SELECT max(position) FROM events");
    for position in window_starts.0..=head as u64 {
        assert_eq!(
            live(states(&source, position).await),
            live(states(&imported, position).await),
            "at position {position}"
        );
    }
    let whole: String = scalar(&imported, "SELECT value FROM log_meta WHERE key = 'whole'");
    assert_eq!(whole, "false");
}

#[tokio::test]
async fn import_refuses_a_log_that_holds_events() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    let bundle = dir.path().join("incident.jsonl");
    write_export(&export_args(&source, &bundle)).await.unwrap();
    let before: i64 = scalar(&source, "SELECT count(*) FROM events");
    let error = load_bundle(&bundle, &source).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("import only into an empty log"),
        "{error:#}"
    );
    assert_eq!(
        scalar::<i64>(&source, "SELECT count(*) FROM events"),
        before
    );
}

#[tokio::test]
async fn a_corrupted_bundle_line_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    let bundle = dir.path().join("incident.jsonl");
    write_export(&export_args(&source, &bundle)).await.unwrap();
    let lines = bundle_lines(&bundle);
    let imported: PathBuf = dir.path().join("imported.db");

    let mut broken = lines.clone();
    broken[3] = broken[3].replacen("\"payload\":\"{", "\"payload\":\"{oops", 1);
    std::fs::write(&bundle, broken.join("\n") + "\n").unwrap();
    let error = load_bundle(&bundle, &imported).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("line 4") && message.contains("payload"),
        "{message}"
    );
    assert!(!imported.exists(), "no file is left");

    // A bundle cut short (the copy stopped early) is refused as well.
    std::fs::write(&bundle, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let error = load_bundle(&bundle, &imported).await.unwrap_err();
    assert!(format!("{error:#}").contains("cut short"), "{error:#}");
    assert!(!imported.exists());

    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    std::fs::write(&bundle, swapped.join("\n") + "\n").unwrap();
    let error = load_bundle(&bundle, &imported).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("line 4: position"),
        "{error:#}"
    );
    assert!(!imported.exists());
}

#[tokio::test]
async fn export_refuses_to_replace_a_file_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    let bundle = dir.path().join("incident.jsonl");
    std::fs::write(&bundle, "precious").unwrap();
    let mut args = export_args(&source, &bundle);
    let error = write_export(&args).await.unwrap_err();
    assert!(error.to_string().contains("--force"), "{error}");
    assert_eq!(std::fs::read_to_string(&bundle).unwrap(), "precious");
    args.force = true;
    write_export(&args).await.unwrap();
    assert!(bundle_lines(&bundle)[0].starts_with("{\"nsm_bundle\":1,"));
}

#[tokio::test]
async fn a_log_that_does_not_fold_is_imported_as_it_is_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    super::testlog::tamper(
        &source,
        "UPDATE events SET schema_version = 7 WHERE event_type = 'Established'",
    );
    let bundle = dir.path().join("incident.jsonl");
    write_export(&export_args(&source, &bundle)).await.unwrap();
    let imported = dir.path().join("imported.db");
    let report = load_bundle(&bundle, &imported).await.unwrap();
    assert_eq!(rows_differing(&source, &imported, "events"), 0);
    assert_eq!(report.live_vwires, 0);
    assert!(
        report.warnings[0].contains("live_vwires left empty"),
        "{:?}",
        report.warnings
    );
    assert!(
        report.warnings.len() == 1,
        "the registry still folds: {:?}",
        report.warnings
    );
}
