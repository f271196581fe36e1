//! Nothing acknowledged is lost: a child process appends under concurrent load and is killed
//! with SIGKILL at random moments; after each kill the log is reopened and audited.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use nsm_log::store::{OpenOptions, Position, SqliteStore};
use nsm_tests::audit_log;
use rand::Rng;
use uuid::Uuid;

const KILLS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigkill_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let mut rng = rand::rng();
    let mut acknowledged: Vec<(Uuid, Position)> = Vec::new();
    let mut killed_mid_load = 0;
    for run in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nsm-crash-writer"))
            .arg(&db)
            .arg(run.to_string())
            .arg("16")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            // A line cut by the kill has no newline and is not an acknowledgement.
            let mut acks = Vec::new();
            for line in std::io::BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                acks.push(String::from_utf8(line).unwrap());
            }
            acks
        });
        let wait = rng.random_range(40..400);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "the writer was killed, not exited: {status}"
        );
        let lines = reader.join().unwrap();
        if !lines.is_empty() {
            killed_mid_load += 1;
        }
        for line in lines {
            let mut parts = line.split(' ');
            assert_eq!(parts.next(), Some("ACK"), "unexpected output {line:?}");
            let id = Uuid::parse_str(parts.next().unwrap()).unwrap();
            let position = Position(parts.next().unwrap().parse().unwrap());
            acknowledged.push((id, position));
        }

        let store = SqliteStore::open(&db, OpenOptions::default())
            .await
            .expect("the log reopens after SIGKILL");
        let audit = audit_log(&store).await;
        for (id, position) in &acknowledged {
            assert_eq!(
                audit.by_id.get(id),
                Some(position),
                "acknowledged event {id} at {position} is missing after kill {run}"
            );
        }
        store.close().await;
    }
    assert!(
        killed_mid_load >= KILLS / 2,
        "most kills must land while appends are acknowledged"
    );
    assert!(
        acknowledged.len() > 1000,
        "only {} acknowledged appends",
        acknowledged.len()
    );
    eprintln!(
        "{KILLS} kills, {} acknowledged events, all present",
        acknowledged.len()
    );
}
