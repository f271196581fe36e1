//! The event store conformance suite: every store implementation must pass every case.
//! (In the spirit of Akka's journal TCK.) Each case is written once, against
//! `&dyn EventStore`, and instantiated for the SQLite store and the in-memory store.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use nsm_log::StoreError;
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, LiveRowData, MemoryStore, NewEvent,
    OpenOptions, Position, ProjectionChange, RecordedEvent, SqliteStore, StreamId,
};

/// A store under test, and whatever must live as long as it (a temporary directory).
struct Subject {
    store: Arc<dyn EventStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Subject {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("events.db"), OpenOptions::default())
        .await
        .expect("open store");
    Subject {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

async fn memory() -> Subject {
    Subject {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
    }
}

fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream id")
}

fn event(n: u64) -> NewEvent {
    NewEvent::new(
        "Tested",
        1,
        &serde_json::json!({ "n": n }),
        Causation {
            correlation_id: Some(format!("trace-{n}")),
            causation_id: None,
        },
    )
    .expect("encode")
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

async fn append(
    store: &dyn EventStore,
    name: &str,
    expected: ExpectedVersion,
    batch: Vec<NewEvent>,
) -> Result<nsm_log::store::Appended, StoreError> {
    store
        .append(AppendRequest::new(stream(name), expected, batch))
        .await
}

async fn read_everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store
        .read_all(Position::START, usize::MAX)
        .await
        .expect("read all")
}

// ---- cases --------------------------------------------------------------------------------

async fn append_to_a_new_stream_returns_positions_and_version(store: &dyn EventStore) {
    let done = append(store, "s-1", ExpectedVersion::NoStream, events(0..3))
        .await
        .unwrap();
    assert_eq!(done.positions, vec![Position(1), Position(2), Position(3)]);
    assert_eq!(done.stream_version, 3);
    assert!(!done.deduplicated);
    assert_eq!(store.head(), Position(3));
    let read = store.read_stream(&stream("s-1"), 1).await.unwrap();
    let versions: Vec<u64> = read.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert_eq!(read[0].correlation_id.as_deref(), Some("trace-0"));
    assert_eq!(read[2].payload, r#"{"n":2}"#);
    assert_eq!(read[1].event_type, "Tested");
}

async fn a_wrong_expected_version_is_refused_and_writes_nothing(store: &dyn EventStore) {
    append(store, "s", ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    let refused = append(store, "s", ExpectedVersion::Exact(1), events(2..3)).await;
    match refused {
        Err(StoreError::WrongExpectedVersion {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), (1, 2));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let refused = append(store, "s", ExpectedVersion::NoStream, events(3..4)).await;
    assert!(matches!(
        refused,
        Err(StoreError::WrongExpectedVersion {
            expected: 0,
            actual: 2,
            ..
        })
    ));
    let refused = append(store, "other", ExpectedVersion::Exact(5), events(4..5)).await;
    assert!(matches!(
        refused,
        Err(StoreError::WrongExpectedVersion {
            expected: 5,
            actual: 0,
            ..
        })
    ));
    assert_eq!(read_everything(store).await.len(), 2);
    assert_eq!(store.head(), Position(2));
}

async fn any_version_appends_after_whatever_is_there(store: &dyn EventStore) {
    append(store, "s", ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let done = append(store, "s", ExpectedVersion::Any, events(1..3))
        .await
        .unwrap();
    assert_eq!(done.stream_version, 3);
    let done = append(store, "s", ExpectedVersion::Exact(3), events(3..4))
        .await
        .unwrap();
    assert_eq!(done.positions, vec![Position(4)]);
}

async fn a_retried_append_returns_the_original_positions_forever(store: &dyn EventStore) {
    let batch = events(0..2);
    let first = append(store, "s", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // Many other appends later, with any expected version, the retry still deduplicates.
    for n in 0..300 {
        append(
            store,
            &format!("other-{n}"),
            ExpectedVersion::NoStream,
            events(10 + n..11 + n),
        )
        .await
        .unwrap();
    }
    append(store, "s", ExpectedVersion::Exact(2), events(1000..1001))
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Any,
        ExpectedVersion::Exact(3),
    ] {
        let again = append(store, "s", expected, batch.clone()).await.unwrap();
        assert!(again.deduplicated);
        assert_eq!(again.positions, first.positions);
        assert_eq!(again.stream_version, 2);
    }
    assert_eq!(read_everything(store).await.len(), 303);
    // Refused retries consumed no position.
    let next = append(store, "s", ExpectedVersion::Exact(3), events(2000..2001))
        .await
        .unwrap();
    assert_eq!(next.positions, vec![Position(304)]);
}

async fn reusing_some_ids_of_another_append_is_refused_and_writes_nothing(store: &dyn EventStore) {
    let batch = events(0..2);
    append(store, "s", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // A new event followed by an old one: the new one must not stay written.
    let mixed = vec![event(7), batch[1].clone()];
    let refused = append(store, "s", ExpectedVersion::Exact(2), mixed).await;
    assert!(
        matches!(refused, Err(StoreError::IdempotencyMismatch { .. })),
        "{refused:?}"
    );
    // The same id in another stream.
    let refused = append(
        store,
        "t",
        ExpectedVersion::NoStream,
        vec![batch[0].clone()],
    )
    .await;
    assert!(
        matches!(refused, Err(StoreError::IdempotencyMismatch { .. })),
        "{refused:?}"
    );
    assert_eq!(read_everything(store).await.len(), 2);
    assert_eq!(store.head(), Position(2));
    // The stream goes on normally afterwards.
    let done = append(store, "s", ExpectedVersion::Exact(2), vec![event(7)])
        .await
        .unwrap();
    assert_eq!(done.positions, vec![Position(3)]);
}

async fn a_partly_duplicate_append_fails_alone_among_concurrent_ones(store: &dyn EventStore) {
    let old = events(0..2);
    append(store, "old", ExpectedVersion::NoStream, old.clone())
        .await
        .unwrap();
    // Twenty good multi-event appends race with one that reuses an old id as its 2nd event.
    let bad = append(
        store,
        "bad",
        ExpectedVersion::NoStream,
        vec![event(50), old[1].clone()],
    );
    let good = (0..20u64).map(|n| async move {
        let name = format!("good-{n}");
        append(
            store,
            &name,
            ExpectedVersion::NoStream,
            events(100 + 3 * n..103 + 3 * n),
        )
        .await
    });
    let (bad, good) = tokio::join!(bad, futures::future::join_all(good));
    assert!(
        matches!(bad, Err(StoreError::IdempotencyMismatch { .. })),
        "{bad:?}"
    );
    assert!(
        good.iter()
            .all(|r| r.as_ref().is_ok_and(|a| a.stream_version == 3)),
        "{good:?}"
    );
    let all = read_everything(store).await;
    assert_eq!(all.len(), 62);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.position == Position(i as u64 + 1))
    );
    assert!(
        store
            .read_stream(&stream("bad"), 1)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn invalid_appends_are_refused_before_anything_is_written(store: &dyn EventStore) {
    let empty = append(store, "s", ExpectedVersion::Any, vec![]).await;
    assert!(matches!(empty, Err(StoreError::InvalidInput(_))));
    let mut bad_json = event(1);
    bad_json.payload = "{not json".into();
    let bad = append(store, "s", ExpectedVersion::Any, vec![event(0), bad_json]).await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))));
    let twice = event(2);
    let repeated = append(store, "s", ExpectedVersion::Any, vec![twice.clone(), twice]).await;
    assert!(matches!(repeated, Err(StoreError::InvalidInput(_))));
    let zero = append(store, "s", ExpectedVersion::Exact(0), events(3..4)).await;
    assert!(matches!(zero, Err(StoreError::InvalidInput(_))));
    assert!(read_everything(store).await.is_empty());
    assert!(StreamId::new("").is_err());
    assert!(StreamId::new("has space").is_err());
    assert!(StreamId::new("x".repeat(256)).is_err());
}

async fn reads_return_exact_ranges(store: &dyn EventStore) {
    for n in 0..10u64 {
        let name = if n % 2 == 0 { "even" } else { "odd" };
        append(store, name, ExpectedVersion::Any, events(n..n + 1))
            .await
            .unwrap();
    }
    let page = store.read_all(Position(3), 4).await.unwrap();
    let positions: Vec<u64> = page.iter().map(|e| e.position.0).collect();
    assert_eq!(positions, vec![4, 5, 6, 7]);
    assert!(store.read_all(Position(10), 5).await.unwrap().is_empty());
    assert!(store.read_all(Position(3), 0).await.unwrap().is_empty());
    let odd = store.read_stream(&stream("odd"), 3).await.unwrap();
    let versions: Vec<u64> = odd.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![3, 4, 5]);
    assert!(odd.iter().all(|e| e.stream.as_str() == "odd"));
    assert!(
        store
            .read_stream(&stream("none"), 1)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_appends_keep_positions_gap_free_and_conflicts_isolated(store: &dyn EventStore) {
    // 40 writers: each owns a stream and appends 10 times; every writer also sends one
    // append with a stale expected version, which must fail alone.
    let writers = (0..40u64).map(|w| async move {
        let name = format!("w-{w}");
        let mut conflicts = 0;
        for n in 0..10u64 {
            let expected = ExpectedVersion::from_version(n);
            append(store, &name, expected, events(w * 100 + n..w * 100 + n + 1))
                .await
                .unwrap();
            if n == 5 {
                let stale = append(
                    store,
                    &name,
                    ExpectedVersion::Exact(1),
                    events(9000 + w..9001 + w),
                )
                .await;
                assert!(matches!(
                    stale,
                    Err(StoreError::WrongExpectedVersion { .. })
                ));
                conflicts += 1;
            }
        }
        conflicts
    });
    let conflicts: usize = futures::future::join_all(writers).await.into_iter().sum();
    assert_eq!(conflicts, 40);
    let all = read_everything(store).await;
    assert_eq!(all.len(), 400);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, Position(i as u64 + 1), "positions have no gap");
    }
    let ids: HashSet<_> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 400, "no id twice");
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in &all {
        versions
            .entry(e.stream.as_str())
            .or_default()
            .push(e.version);
    }
    for (name, v) in versions {
        assert_eq!(
            v,
            (1..=10).collect::<Vec<_>>(),
            "versions of {name} are contiguous"
        );
    }
    assert!(
        all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at),
        "time never goes back"
    );
}

async fn racing_appends_to_one_stream_serialise_and_exactly_one_creator_wins(
    store: &dyn EventStore,
) {
    // Unchecked appends to one stream, all at once: every one lands, versions 1..=50.
    let unchecked =
        (0..50u64).map(|n| append(store, "shared", ExpectedVersion::Any, events(n..n + 1)));
    for done in futures::future::join_all(unchecked).await {
        done.unwrap();
    }
    let versions: Vec<u64> = store
        .read_stream(&stream("shared"), 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, (1..=50).collect::<Vec<_>>());
    // Fifty writers race to create one stream: exactly one wins, the rest conflict.
    let creators = (0..50u64).map(|n| {
        append(
            store,
            "created",
            ExpectedVersion::NoStream,
            events(100 + 2 * n..102 + 2 * n),
        )
    });
    let results = futures::future::join_all(creators).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StoreError::WrongExpectedVersion { .. }))
    );
    assert_eq!(
        store
            .read_stream(&stream("created"), 1)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(read_everything(store).await.len(), 52);
}

async fn a_subscription_catches_up_then_follows_without_skipping(store: &dyn EventStore) {
    for n in 0..5 {
        append(store, "s", ExpectedVersion::Any, events(n..n + 1))
            .await
            .unwrap();
    }
    let mut from_two = store.subscribe(Position(2));
    let mut from_start = store.subscribe(Position::START);
    let writers = (0..20u64).map(|w| async move {
        for n in 0..10 {
            append(
                store,
                &format!("live-{w}"),
                ExpectedVersion::Any,
                events(100 * w + n..100 * w + n + 1),
            )
            .await
            .unwrap();
        }
    });
    let write_all = futures::future::join_all(writers);
    let read_all = async {
        let mut seen = Vec::new();
        while seen.len() < 203 {
            let e = from_two
                .next()
                .await
                .expect("stream open")
                .expect("no error");
            seen.push(e.position.0);
        }
        seen
    };
    let (_, seen) = tokio::join!(write_all, read_all);
    assert_eq!(seen, (3..=205).collect::<Vec<_>>());
    let mut count = 0;
    while count < 205 {
        let e = from_start.next().await.unwrap().unwrap();
        count += 1;
        assert_eq!(e.position, Position(count));
    }
    assert_eq!(store.head(), Position(205));
}

async fn the_projection_changes_with_its_events(store: &dyn EventStore) {
    let row = |status: &str| LiveRowData {
        status: status.into(),
        expires_at: chrono::DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
        state: format!(r#"{{"status":"{status}"}}"#),
    };
    let request = AppendRequest::new(stream("p"), ExpectedVersion::NoStream, events(0..2))
        .with_projection(ProjectionChange::UpsertVWire(row("requested")));
    store.append(request).await.unwrap();
    let rows = store.live_rows().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].version, rows[0].data.clone()),
        (2, row("requested"))
    );
    // A refused append leaves the projection alone.
    let refused = AppendRequest::new(stream("p"), ExpectedVersion::Exact(1), events(2..3))
        .with_projection(ProjectionChange::RemoveVWire);
    assert!(store.append(refused).await.is_err());
    assert_eq!(store.live_rows().await.unwrap().len(), 1);
    let update = AppendRequest::new(stream("p"), ExpectedVersion::Exact(2), events(3..4))
        .with_projection(ProjectionChange::UpsertVWire(row("established")));
    store.append(update).await.unwrap();
    assert_eq!(
        store.live_rows().await.unwrap()[0].data.status,
        "established"
    );
    assert_eq!(store.live_rows().await.unwrap()[0].version, 3);
    let end = AppendRequest::new(stream("p"), ExpectedVersion::Exact(3), events(4..5))
        .with_projection(ProjectionChange::RemoveVWire);
    store.append(end).await.unwrap();
    assert!(store.live_rows().await.unwrap().is_empty());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let subject = super::sqlite().await;
                    super::$case(subject.store.as_ref()).await;
                }
            )*
        }
        mod memory_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let subject = super::memory().await;
                    super::$case(subject.store.as_ref()).await;
                }
            )*
        }
    };
}

conformance!(
    append_to_a_new_stream_returns_positions_and_version,
    a_wrong_expected_version_is_refused_and_writes_nothing,
    any_version_appends_after_whatever_is_there,
    a_retried_append_returns_the_original_positions_forever,
    reusing_some_ids_of_another_append_is_refused_and_writes_nothing,
    invalid_appends_are_refused_before_anything_is_written,
    a_partly_duplicate_append_fails_alone_among_concurrent_ones,
    reads_return_exact_ranges,
    concurrent_appends_keep_positions_gap_free_and_conflicts_isolated,
    a_subscription_catches_up_then_follows_without_skipping,
    racing_appends_to_one_stream_serialise_and_exactly_one_creator_wins,
    the_projection_changes_with_its_events,
);
