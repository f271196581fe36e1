//! A child process for the crash tests: appends to an event log under concurrent load and
//! prints `ACK <event id> <position>` for every event whose append was acknowledged, until
//! it is killed.
//!
//! Usage: `nsm-crash-writer <db> <run> <writers>`

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, NewEvent, OpenOptions, SqliteStore,
    StreamId,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, run, writers] = args.as_slice() else {
        anyhow::bail!("usage: nsm-crash-writer <db> <run> <writers>");
    };
    let writers: u64 = writers.parse().context("writers")?;
    let store = SqliteStore::open(db, OpenOptions::default()).await?;
    let store: Arc<dyn EventStore> = Arc::new(store);
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let tasks = (0..writers).map(|w| {
        let (store, out, run) = (store.clone(), out.clone(), run.clone());
        tokio::spawn(async move { write_forever(store.as_ref(), &out, &run, w).await })
    });
    for task in futures::future::join_all(tasks).await {
        task??;
    }
    Ok(())
}

async fn write_forever(
    store: &dyn EventStore,
    out: &std::sync::Mutex<std::io::Stdout>,
    run: &str,
    writer: u64,
) -> anyhow::Result<()> {
    let stream = StreamId::new(format!("crash-{run}-{writer}"))?;
    let shared = StreamId::new(format!("crash-{run}-shared"))?;
    let mut version = 0;
    for n in 0u64.. {
        // Mostly version-checked appends to our own stream, of 1 to 3 events; sometimes an
        // unchecked one to a stream every writer shares.
        let (target, expected, count) = if n % 5 == 4 {
            (shared.clone(), ExpectedVersion::Any, 1)
        } else {
            (
                stream.clone(),
                ExpectedVersion::from_version(version),
                1 + n % 3,
            )
        };
        let events = (0..count)
            .map(|i| {
                let body =
                    serde_json::json!({ "writer": writer, "n": n, "i": i, "pad": "p".repeat(120) });
                NewEvent::new("CrashTested", 1, &body, Causation::default())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let appended = store
            .append(AppendRequest::new(target.clone(), expected, events.clone()))
            .await?;
        if target == stream {
            version = appended.stream_version;
        }
        let mut lines = String::new();
        for (event, position) in events.iter().zip(&appended.positions) {
            lines.push_str(&format!("ACK {} {}\n", event.id, position));
        }
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(lines.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}
