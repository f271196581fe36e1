use std::path::{Path, PathBuf};

use nsm_domain::vwire::{VWire, VWireId};
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, LiveRow, OpenOptions, Position,
    RegistrationRow, SqliteStore,
};

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

async fn reader(path: &Path) -> LogReader {
    LogReader::open(path).await.unwrap()
}

/// Every `events` row of a log, every column as stored.
async fn event_rows(path: &Path) -> Vec<EventRow> {
    let log = reader(path).await;
    let mut rows = Vec::new();
    log.for_each_row::<nsm_log::ReadError>(Position::START, log.head().unwrap(), |row| {
        rows.push(row);
        Ok(())
    })
    .unwrap();
    rows
}

/// The rows of `live_vwires` and `live_registry`.
async fn projection_rows(path: &Path) -> (Vec<LiveRow>, Vec<RegistrationRow>) {
    let options = OpenOptions {
        integrity_check: false,
        ..OpenOptions::default()
    };
    let store = SqliteStore::open_read_only(path, options).await.unwrap();
    let rows = (
        store.live_rows().await.unwrap(),
        store.registration_rows().await.unwrap(),
    );
    store.close().await;
    rows
}

async fn events_in(path: &Path) -> u64 {
    let log = reader(path).await;
    log.count_until(log.head().unwrap()).unwrap()
}

async fn head(path: &Path) -> u64 {
    reader(path).await.head().unwrap().0
}

async fn meta(path: &Path, key: &str) -> Option<String> {
    reader(path).await.meta(key).unwrap()
}

fn bundle_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn states(path: &Path, position: u64) -> std::collections::HashMap<VWireId, VWire> {
    let log = LogReader::open(path).await.unwrap();
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

    assert_eq!(loaded.events, events_in(&source).await);
    assert_eq!(event_rows(&source).await, event_rows(&imported).await);
    assert_eq!(
        projection_rows(&source).await,
        projection_rows(&imported).await
    );
    let head = head(&source).await;
    assert_eq!(nsm_log::testing::sequence(&imported), head as i64);
    assert_eq!(meta(&imported, "whole").await.as_deref(), Some("true"));
    assert_eq!(
        meta(&imported, "nodes").await.as_deref(),
        Some(r#"["node-1"]"#)
    );

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
    assert_eq!(appended.positions, vec![Position(head + 1)]);
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
    let head = head(&source).await;
    for position in [1, 3, head / 2, head - 1, head] {
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
    let events: Vec<EventRow> = lines[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e.stream == stream), "{events:?}");
    let log = reader(&source).await;
    let in_source = log.read_stream(&a.stream(), log.head().unwrap()).unwrap();
    assert_eq!(events.len(), in_source.len());
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

    let since = reader(&source)
        .await
        .read_range(Position(window_starts.0 - 1), window_starts, 1)
        .unwrap()[0]
        .recorded_at;
    let bundle = dir.path().join("window.jsonl");
    let mut args = export_args(&source, &bundle);
    args.since = Some(since);
    write_export(&args).await.unwrap();
    let events: Vec<EventRow> = bundle_lines(&bundle)[1..]
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
    for position in window_starts.0..=head(&source).await {
        assert_eq!(
            live(states(&source, position).await),
            live(states(&imported, position).await),
            "at position {position}"
        );
    }
    assert_eq!(meta(&imported, "whole").await.as_deref(), Some("false"));
}

#[tokio::test]
async fn import_refuses_a_log_that_holds_events() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(&dir.path().join("source.db")).await;
    let bundle = dir.path().join("incident.jsonl");
    write_export(&export_args(&source, &bundle)).await.unwrap();
    let before = event_rows(&source).await;
    let error = load_bundle(&bundle, &source).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("import only into an empty log"),
        "{error:#}"
    );
    assert_eq!(event_rows(&source).await, before);
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
    nsm_log::testing::tamper(
        &source,
        "UPDATE events SET schema_version = 7 WHERE event_type = 'Established'",
    );
    let bundle = dir.path().join("incident.jsonl");
    write_export(&export_args(&source, &bundle)).await.unwrap();
    let imported = dir.path().join("imported.db");
    let report = load_bundle(&bundle, &imported).await.unwrap();
    assert_eq!(event_rows(&source).await, event_rows(&imported).await);
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
