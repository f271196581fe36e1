//! The operator tools' access to a log: [`LogReader`] reads what the store wrote, by range,
//! stream, trace and stream name, as decoded events or as stored rows; [`Import`] loads
//! stored rows into a new log all or nothing; the checks of `nsm verify` find damage.

use std::path::{Path, PathBuf};

use nsm_log::ImportError;
use nsm_log::import::Import;
use nsm_log::read::{LogReader, StreamAt};
use nsm_log::row::EventRow;
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, NewEvent, OpenOptions, Position,
    SqliteStore, StreamId,
};

fn event(kind: &str, n: u64) -> NewEvent {
    let mut causation = Causation::default();
    if n.is_multiple_of(2) {
        causation.correlation_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    }
    NewEvent::new(kind, 1, &serde_json::json!({ "n": n }), causation).unwrap()
}

/// A log of four streams, their events interleaved: positions 1..=7.
async fn sample(dir: &Path) -> PathBuf {
    let path = dir.join("events.db");
    let store = SqliteStore::open(&path, OpenOptions::default())
        .await
        .unwrap();
    let appends = [
        ("vwire-a", "Requested"),
        ("dataplane-node-1", "Reconciled"),
        ("vwire-b", "Requested"),
        ("vwire-a", "Closed"),
        ("nse-a-long-endpoint-name", "EndpointRegistered"),
        ("vwire-b", "Established"),
        ("dataplane-node-1", "Reconciled"),
    ];
    for (n, (stream, kind)) in appends.into_iter().enumerate() {
        let stream = StreamId::new(stream).unwrap();
        let request = AppendRequest::new(stream, ExpectedVersion::Any, vec![event(kind, n as u64)]);
        store.append(request).await.unwrap();
    }
    store.close().await;
    path
}

fn rows(log: &LogReader) -> Vec<EventRow> {
    let mut rows = Vec::new();
    log.for_each_row::<nsm_log::ReadError>(Position::START, log.head().unwrap(), |row| {
        rows.push(row);
        Ok(())
    })
    .unwrap();
    rows
}

#[tokio::test]
async fn a_reader_sees_what_the_store_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path()).await;
    let log = LogReader::open(&path).await.unwrap();
    assert_eq!(
        (log.first().unwrap(), log.head().unwrap()),
        (Position(1), Position(7))
    );
    assert_eq!(log.count_until(Position(5)).unwrap(), 5);

    let store = SqliteStore::open_read_only(&path, OpenOptions::default())
        .await
        .unwrap();
    let stored = store.read_all(Position::START, 100).await.unwrap();
    assert_eq!(
        log.read_range(Position::START, Position(7), 100).unwrap(),
        stored
    );
    let decoded: Vec<_> = rows(&log)
        .into_iter()
        .map(|r| r.decode().unwrap())
        .collect();
    assert_eq!(
        decoded, stored,
        "one decoder for rows, whichever way they come"
    );
    let a = StreamId::new("vwire-a").unwrap();
    assert_eq!(
        log.read_stream(&a, Position(7)).unwrap(),
        store.read_stream(&a, 0).await.unwrap()
    );
    store.close().await;

    let traced = log.read_trace("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let positions: Vec<u64> = traced.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, [1, 3, 5, 7]);
    let at = log.read_range(Position(3), Position(4), 1).unwrap()[0].recorded_at;
    assert_eq!(log.position_at(at).unwrap(), Position(4));

    assert_eq!(
        log.streams_with_prefix("vwire-", 10).unwrap(),
        ["vwire-a", "vwire-b"]
    );
    assert_eq!(
        log.streams_outside("vwire-").unwrap(),
        ["dataplane-node-1", "nse-a-long-endpoint-name"]
    );
    let mut window = log.streams_in(Position(4), Position(6)).unwrap();
    window.sort();
    assert_eq!(window, ["nse-a-long-endpoint-name", "vwire-b"]);
    let mut at_four = log.streams_at(Position(4), &["Closed"]).unwrap();
    at_four.sort_by(|x, y| x.stream.cmp(&y.stream));
    assert_eq!(
        at_four[1],
        StreamAt {
            stream: "vwire-a".into(),
            last_event_type: "Closed".into(),
            of_types: 1
        }
    );
    assert_eq!(
        log.meta("whole").unwrap(),
        None,
        "a node's own log has no meta"
    );
}

#[tokio::test]
async fn an_import_gives_back_every_row_and_a_node_appends_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(dir.path()).await;
    let source_rows = rows(&LogReader::open(&source).await.unwrap());
    let copy = dir.path().join("copy.db");
    let mut import = Import::begin(&copy).await.unwrap();
    // A cut: the first row is left out.
    for row in &source_rows[1..] {
        import.insert(row).unwrap();
    }
    let meta = [
        ("whole".to_owned(), serde_json::Value::Bool(false)),
        (
            "source_host".to_owned(),
            serde_json::Value::String("n1".into()),
        ),
    ];
    let imported = import.commit(meta).await.unwrap();
    // The endpoint's payload is not a registration: the rows go in as they are, its
    // projection is left empty. (`vwire-a` is no vWire id: the vWire fold skips it.)
    assert!(imported.live_registry.is_err(), "{imported:?}");
    assert_eq!(imported.live_vwires.unwrap(), 0);

    let log = LogReader::open(&copy).await.unwrap();
    assert_eq!(rows(&log), source_rows[1..]);
    assert_eq!(log.first().unwrap(), Position(2));
    assert_eq!(log.meta("whole").unwrap().as_deref(), Some("false"));
    assert_eq!(log.meta("source_host").unwrap().as_deref(), Some("n1"));

    let store = SqliteStore::open(&copy, OpenOptions::default())
        .await
        .unwrap();
    let stream = StreamId::new("dataplane-node-2").unwrap();
    let request = AppendRequest::new(stream, ExpectedVersion::NoStream, vec![event("X", 1)]);
    assert_eq!(
        store.append(request).await.unwrap().positions,
        [Position(8)]
    );
    store.close().await;
}

#[tokio::test]
async fn an_import_not_committed_leaves_nothing_and_a_log_with_events_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = sample(dir.path()).await;
    let source_rows = rows(&LogReader::open(&source).await.unwrap());
    let copy = dir.path().join("copy.db");
    let mut import = Import::begin(&copy).await.unwrap();
    import.insert(&source_rows[0]).unwrap();
    let error = import.insert(&source_rows[0]).unwrap_err();
    assert!(error.to_string().starts_with("position 1: "), "{error}");
    drop(import);
    assert!(!copy.exists(), "the file the import created is gone");

    let error = Import::begin(&source).await.unwrap_err();
    assert!(
        matches!(
            error,
            ImportError::NotEmpty {
                head: Position(7),
                ..
            }
        ),
        "{error}"
    );
    assert!(source.exists());
}

#[tokio::test]
async fn the_checks_find_a_version_out_of_place_and_a_sound_file_passes_quick_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path()).await;
    let log = LogReader::open(&path).await.unwrap();
    assert_eq!(log.quick_check(10).unwrap(), ["ok"]);
    let mut found = Vec::new();
    log.misplaced_versions(|m| found.push(m)).unwrap();
    assert!(found.is_empty(), "{found:?}");

    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE events SET version = 5 WHERE position = 7")
        .unwrap();
    log.misplaced_versions(|m| found.push(m)).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].position, found[0].version, found[0].previous),
        (7, 5, 1)
    );
    let mut duplicates = 0;
    log.duplicate_ids(|_| duplicates += 1).unwrap();
    assert_eq!(duplicates, 0);
}
