//! The operator commands run beside a node writing its log at full speed, and the writer
//! never waits for them: every append succeeds (no `database is locked`), and no append
//! takes anywhere near the writer's 5 s busy timeout while the commands read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use nsm_domain::vwire::{
    Command, Mechanism, MechanismClass, Path, ServiceName, SpiffeId, VWire, VWireId, VWireRequest,
    decide,
};
use nsm_log::projection::vwire::change_for;
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, OpenOptions, SqliteStore,
};
use nsm_tests::mesh::nsm_binary;
use tokio::time::Instant;

/// One new vWire's `Requested`, with its projection row, as the node appends it.
fn request_append() -> AppendRequest {
    let id = VWireId::new_random();
    let request = VWireRequest {
        service: ServiceName::new("icmp").unwrap(),
        labels: Default::default(),
        client: SpiffeId::new("spiffe://example.org/ns/default/sa/load").unwrap(),
        mechanism_preferences: vec![Mechanism::new(MechanismClass::Local, "KERNEL")],
        path: Path::default(),
        lifetime: Duration::from_secs(600),
    };
    let events = decide(None, &Command::Request(request), Utc::now()).unwrap();
    let state = VWire::fold(id, &events).unwrap().unwrap();
    let new_events = events
        .iter()
        .map(|e| e.to_new_event(Causation::default()).unwrap())
        .collect();
    AppendRequest::new(id.stream(), ExpectedVersion::NoStream, new_events)
        .with_projection(change_for(&state).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_read_while_a_node_appends_and_never_hold_up_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let store = SqliteStore::open(&db, OpenOptions::default())
        .await
        .unwrap();
    // A log worth reading before the commands start.
    for _ in 0..2_000 {
        store.append(request_append()).await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..32 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut appends, mut slowest) = (0u64, Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                if let Err(e) = store.append(request_append()).await {
                    panic!("an append failed beside the readers: {e}");
                }
                slowest = slowest.max(began.elapsed());
                appends += 1;
            }
            (appends, slowest)
        }));
    }
    let db_text = db.display().to_string();
    let out = dir.path().join("bundle.jsonl").display().to_string();
    let timeline = dir.path().join("t.html").display().to_string();
    let commands: Vec<Vec<String>> = [
        vec!["events", "--json"],
        vec!["events", "--kind", "Requested", "--since", "1m"],
        vec!["vwires", "--json"],
        vec!["vwires", "--live"],
        vec!["verify", "--no-integrity"],
        vec!["replay", "--simulate"],
        vec!["export", "--force", "--out", &out],
        vec!["timeline", "--force", "--out", &timeline],
    ]
    .into_iter()
    .map(|words| {
        let mut command: Vec<String> = words.into_iter().map(str::to_owned).collect();
        command.extend(["--db".to_owned(), db_text.clone()]);
        command
    })
    .collect();
    let binary = nsm_binary();
    for round in 0..2 {
        for command in &commands {
            let output = tokio::process::Command::new(&binary)
                .args(command)
                .stdout(std::process::Stdio::null())
                .output()
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success(),
                "round {round}: nsm {command:?} failed: {stderr}"
            );
            assert!(!stderr.contains("locked"), "nsm {command:?}: {stderr}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut appends, mut slowest) = (0, Duration::ZERO);
    for writer in writers {
        let (n, s) = writer.await.unwrap();
        appends += n;
        slowest = slowest.max(s);
    }
    eprintln!("{appends} appends beside the commands; slowest {slowest:?}");
    assert!(
        appends > 1_000,
        "the writer kept writing: {appends} appends"
    );
    // A writer held up by a reader's lock would wait for its busy timeout (5 s) or fail.
    assert!(
        slowest < Duration::from_secs(3),
        "an append took {slowest:?}"
    );
    store.close().await;
}
