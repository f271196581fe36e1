use std::path::Path;

use super::*;
use nsm_log::testing::tamper;

use crate::bundle::testlog::{TestLog, export, import, sample};

fn outcome<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}"))
}

fn failed(checks: &[Check]) -> Vec<&'static str> {
    checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
}

async fn checks_of(path: &Path) -> Vec<Check> {
    verify(path, true).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_good_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(&dir.path().join("events.db")).await;
    let checks = checks_of(&path).await;
    let names: Vec<_> = checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "rows",
            "positions",
            "versions",
            "event_ids",
            "schemas",
            "payloads",
            "recorded_at",
            "integrity",
            "live_vwires",
            "live_registry"
        ]
    );
    assert!(
        checks.iter().all(|c| c.result == Outcome::Ok),
        "{checks:#?}"
    );
    let run = run(VerifyArgs {
        log: LogArgs {
            db: path,
            json: true,
        },
        no_integrity: true,
    });
    run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_gap_fails_the_versions_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(&dir.path().join("events.db")).await;
    tamper(
        &path,
        "UPDATE events SET version = version + 1 WHERE position = (SELECT max(position) FROM events)",
    );
    let checks = checks_of(&path).await;
    let versions = outcome(&checks, "versions");
    assert_eq!(
        (versions.result, versions.count),
        (Outcome::Failed, 1),
        "{versions:#?}"
    );
    let head = LogReader::open(&path).await.unwrap().head().unwrap();
    assert_eq!(versions.problems[0].position, Some(head.0));
    assert!(
        versions.problems[0].message.contains("follows version"),
        "{versions:#?}"
    );
    let error = run(VerifyArgs {
        log: LogArgs {
            db: path,
            json: false,
        },
        no_integrity: false,
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("checks failed") && error.to_string().contains("versions"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_schema_version_fails_the_schemas_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(&dir.path().join("events.db")).await;
    tamper(
        &path,
        "UPDATE events SET schema_version = 7 WHERE event_type = 'Established'",
    );
    let checks = checks_of(&path).await;
    let schemas = outcome(&checks, "schemas");
    assert_eq!(schemas.result, Outcome::Failed);
    assert!(
        schemas.problems[0].message.contains("Established v7"),
        "{schemas:#?}"
    );
    assert_eq!(
        outcome(&checks, "payloads").result,
        Outcome::Ok,
        "counted once, as a schema"
    );
    assert!(
        failed(&checks).contains(&"live_vwires"),
        "the log no longer folds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_live_vwires_row_fails_the_projection_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(&dir.path().join("events.db")).await;
    tamper(
        &path,
        "UPDATE live_vwires SET expires_at = '2001-01-01T00:00:00.000000Z'
          WHERE stream = (SELECT min(stream) FROM live_vwires)",
    );
    let checks = checks_of(&path).await;
    assert_eq!(failed(&checks), ["live_vwires"]);
    let live = outcome(&checks, "live_vwires");
    assert!(live.problems[0].message.contains("2001-01-01"), "{live:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_does_not_decode_and_time_going_back_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(&dir.path().join("events.db")).await;
    tamper(
        &path,
        "UPDATE events SET payload = '{\"at\": 3}' WHERE position = 2;
         UPDATE events SET recorded_at = '2001-01-01T00:00:00.000000Z' WHERE position = 4;",
    );
    let checks = checks_of(&path).await;
    let payloads = outcome(&checks, "payloads");
    assert_eq!(
        (payloads.count, payloads.problems[0].position),
        (1, Some(2))
    );
    let times = outcome(&checks, "recorded_at");
    assert_eq!((times.count, times.problems[0].position), (1, Some(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holes_fail_on_a_node_log_and_are_information_on_a_cut_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::create(&dir.path().join("source.db")).await;
    let ended = log.connect().await;
    log.close(ended).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let window = log.connect().await;
    log.refresh(window).await;
    let source = log.finish().await;

    let copy = dir.path().join("holed.db");
    std::fs::copy(&source, &copy).unwrap();
    tamper(&copy, "DELETE FROM events WHERE position IN (2, 3)");
    let checks = checks_of(&copy).await;
    let positions = outcome(&checks, "positions");
    assert_eq!(positions.result, Outcome::Failed);
    assert_eq!(
        positions.problems[0].message,
        "positions 2..3 are missing (2)"
    );

    let log = LogReader::open(&source).await.unwrap();
    let history = log
        .read_stream(&window.stream(), log.head().unwrap())
        .unwrap();
    let since = format_timestamp(history[0].recorded_at);
    let bundle = dir.path().join("window.jsonl");
    let imported = dir.path().join("imported.db");
    export(&source, &bundle, Some(&since)).await;
    import(&bundle, &imported).await;
    let checks = checks_of(&imported).await;
    assert!(failed(&checks).is_empty(), "{checks:#?}");
    assert_eq!(outcome(&checks, "positions").result, Outcome::Info);
}

/// Times `nsm verify` on a big log: `NSM_BIG_LOG=/tmp/big.db cargo test --release -p nsm-inspect
/// --bin nsm inspect::verify::tests::time_verify_on_a_big_log -- --ignored --nocapture`.
/// Writes the log first (NSM_BIG_VWIRES vWires of 10 events, default 100 000: a million
/// events) unless the file exists; it is left for the next run.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes and reads a million events; run by hand with --release"]
async fn time_verify_on_a_big_log() {
    let path = std::path::PathBuf::from(
        std::env::var("NSM_BIG_LOG").unwrap_or_else(|_| "/tmp/nsm-big.db".into()),
    );
    if !path.exists() {
        let vwires = std::env::var("NSM_BIG_VWIRES").map_or(100_000, |n| n.parse().unwrap());
        let began = tokio::time::Instant::now();
        crate::bundle::testlog::write_big(&path, vwires).await;
        eprintln!("wrote {} in {:?}", path.display(), began.elapsed());
    }
    for integrity in [false, true] {
        let began = tokio::time::Instant::now();
        let checks = verify(&path, integrity).await.unwrap();
        eprintln!("verify (integrity {integrity}) took {:?}", began.elapsed());
        assert!(failed(&checks).is_empty(), "{checks:#?}");
    }
}
