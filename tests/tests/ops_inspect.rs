//! The operator commands (`nsm events`, `vwires`, `show`, `replay --simulate`, `verify`,
//! `export`/`import`, `completions`) against a log a real node wrote
//! ([`nsm_tests::fixture`]): the rows and JSON are checked against the log's own columns,
//! read here with plain SQL, and against what the fixture made happen.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use nsm_tests::fixture::{CLOSE_TRACE_ID, Fixture, incident_log};
use nsm_tests::mesh::nsm_binary;
use serde_json::Value;
use sqlx::{Connection, Row, SqliteConnection};

fn nsm(args: &[&str]) -> Output {
    std::process::Command::new(nsm_binary())
        .args(args)
        .output()
        .expect("run nsm")
}

/// Runs `nsm args...` and returns its stdout, failing with its stderr if it failed.
fn nsm_ok(args: &[&str]) -> String {
    let output = nsm(args);
    assert!(
        output.status.success(),
        "nsm {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The `events` table as stored: (position, stream, version, event_type, recorded_at,
/// correlation_id, payload), in position order.
type Row7 = (i64, String, i64, String, String, Option<String>, String);

async fn rows(db: &Path) -> Vec<Row7> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .expect("open the log");
    sqlx::query(
        "SELECT position, stream, version, event_type, recorded_at, correlation_id, payload \
         FROM events ORDER BY position",
    )
    .fetch_all(&mut conn)
    .await
    .expect("read the log")
    .into_iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        )
    })
    .collect()
}

fn kinds_of(events: &[Value], vwire: &str) -> Vec<String> {
    let stream = format!("vwire-{vwire}");
    events
        .iter()
        .filter(|e| e["stream"] == stream.as_str())
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_answer_from_a_log_a_node_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = incident_log(dir.path()).await;
    let db = fixture.db.display().to_string();
    let stored = rows(&fixture.db).await;

    // nsm events --json: every row, every column as stored.
    let events = json_lines(&nsm_ok(&["events", "--db", &db, "--json"]));
    assert_eq!(events.len(), stored.len());
    for (line, row) in events.iter().zip(&stored) {
        assert_eq!(line["position"], row.0);
        assert_eq!(line["stream"], row.1.as_str());
        assert_eq!(line["version"], row.2);
        assert_eq!(line["event_type"], row.3.as_str());
        assert_eq!(line["recorded_at"], row.4.as_str());
        assert_eq!(line["correlation_id"].as_str(), row.5.as_deref());
        let payload: Value = serde_json::from_str(&row.6).unwrap();
        assert_eq!(line["payload"], payload);
    }
    let v = &fixture.vwires;
    let lifecycle = |kinds: &[&str]| kinds.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
    let plumbed = ["Requested", "DataplanePlumbed", "Established"];
    assert_eq!(
        kinds_of(&events, &v["closed"]),
        lifecycle(&[&plumbed[..], &["Refreshed", "DataplaneUnplumbed", "Closed"]].concat())
    );
    assert_eq!(
        kinds_of(&events, &v["failed"]),
        lifecycle(&["Requested", "Failed"])
    );
    for expired in ["expired", "downtime"] {
        assert_eq!(
            kinds_of(&events, &v[expired]),
            lifecycle(&[&plumbed[..], &["DataplaneUnplumbed", "Expired"]].concat())
        );
    }
    assert_eq!(
        kinds_of(&events, &v["survivor"]),
        lifecycle(&[&plumbed[..], &["Refreshed"]].concat())
    );
    let expired_payload = |vwire: &str| {
        events
            .iter()
            .find(|e| {
                e["stream"] == format!("vwire-{vwire}").as_str() && e["event_type"] == "Expired"
            })
            .map(|e| e["payload"].clone())
            .unwrap()
    };
    assert_eq!(expired_payload(&v["downtime"])["during_downtime"], true);
    assert_eq!(expired_payload(&v["expired"])["during_downtime"], false);

    // The table: one row per event, its columns the stored ones.
    let table = nsm_ok(&["events", "--db", &db]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["POSITION", "RECORDED_AT", "STREAM", "V", "KIND", "SUMMARY"]
    );
    for (line, row) in lines.zip(&stored) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], row.0.to_string(), "{line}");
        assert_eq!(cells[1], row.4, "{line}");
        let short = row
            .1
            .strip_prefix("vwire-")
            .map_or(row.1.clone(), |id| id[..8].to_owned());
        assert_eq!(cells[2], short, "{line}");
        assert_eq!(cells[3], row.2.to_string(), "{line}");
        assert_eq!(cells[4], row.3, "{line}");
    }
    assert!(table.contains("passed while the node was down"), "{table}");
    assert!(table.contains("nse-1 is full"), "{table}");

    // Filters.
    let positions = |args: &[&str]| -> Vec<i64> {
        let mut all = vec!["events", "--db", &db, "--json"];
        all.extend_from_slice(args);
        json_lines(&nsm_ok(&all))
            .iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect()
    };
    let stored_where = |keep: &dyn Fn(&Row7) -> bool| -> Vec<i64> {
        stored.iter().filter(|r| keep(r)).map(|r| r.0).collect()
    };
    assert_eq!(
        positions(&["--kind", "expired"]),
        stored_where(&|r| r.3 == "Expired")
    );
    assert_eq!(positions(&["--kind", "expired"]).len(), 2);
    let closed_stream = format!("vwire-{}", v["closed"]);
    assert_eq!(
        positions(&["--vwire", &v["closed"][..8]]),
        stored_where(&|r| r.1 == closed_stream)
    );
    assert_eq!(
        positions(&["--trace-id", CLOSE_TRACE_ID]),
        stored_where(&|r| r.5.as_deref() == Some(CLOSE_TRACE_ID))
    );
    assert_eq!(
        positions(&["--trace-id", CLOSE_TRACE_ID]).len(),
        2,
        "unplumb + close"
    );
    assert_eq!(
        positions(&["--service", "icmp"]),
        stored_where(&|r| r.1.starts_with("vwire-"))
    );
    let failed_stream = format!("vwire-{}", v["failed"]);
    assert_eq!(
        positions(&["--endpoint", "nse-1"]),
        stored_where(&|r| r.1.starts_with("vwire-") && r.1 != failed_stream)
    );
    assert_eq!(
        positions(&["--from-position", "20"]),
        stored_where(&|r| r.0 > 20)
    );
    let (t10, t15) = (stored[9].4.as_str(), stored[14].4.as_str());
    assert_eq!(
        positions(&["--since", t10, "--until", t15]),
        stored_where(&|r| r.4.as_str() >= t10 && r.4.as_str() <= t15)
    );
    assert_eq!(positions(&["--limit", "3"]), vec![1, 2, 3]);
    assert!(
        positions(&["--since", "1m"]).len() == stored.len(),
        "all written a moment ago"
    );
    assert!(positions(&["--client", "spiffe://nobody"]).is_empty());

    // nsm vwires: every vWire and its state now.
    let snapshot: Value =
        serde_json::from_str(&nsm_ok(&["vwires", "--db", &db, "--json"])).unwrap();
    assert_eq!(snapshot["position"], stored.len());
    let states: BTreeMap<String, String> = snapshot["vwires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["vwire"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = [
        ("closed", "closed"),
        ("failed", "failed"),
        ("expired", "expired"),
        ("downtime", "expired"),
        ("survivor", "established"),
    ]
    .iter()
    .map(|(name, state)| (v[name].clone(), (*state).to_owned()))
    .collect();
    assert_eq!(states, expected);
    for row in snapshot["vwires"].as_array().unwrap() {
        let failed = row["vwire"] == v["failed"].as_str();
        assert_eq!(row["service"], "icmp");
        assert_eq!(row["endpoint"].is_null(), failed, "{row}");
        assert_eq!(
            row["src_ip_addrs"].as_array().unwrap().is_empty(),
            failed,
            "{row}"
        );
    }
    let live: Value =
        serde_json::from_str(&nsm_ok(&["vwires", "--db", &db, "--json", "--live"])).unwrap();
    let live: Vec<&str> = live["vwires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["vwire"].as_str().unwrap())
        .collect();
    assert_eq!(live, [v["survivor"].as_str()]);
    let people = nsm_ok(&["vwires", "--db", &db]);
    assert_eq!(
        people.lines().count(),
        6,
        "header and five vWires:\n{people}"
    );
    assert!(people.lines().next().unwrap().starts_with("VWIRE"));

    // nsm show: the downtime vWire's story.
    let story: Value = serde_json::from_str(&nsm_ok(&[
        "show",
        "--db",
        &db,
        "--json",
        &v["downtime"][..8],
    ]))
    .unwrap();
    let steps = story["events"].as_array().unwrap();
    let kinds: Vec<&str> = steps
        .iter()
        .map(|s| s["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [&plumbed[..], &["DataplaneUnplumbed", "Expired"]].concat()
    );
    assert_eq!(story["vwire"]["state"], "expired");
    assert!(steps[0]["gap_ms"].is_null());
    assert!(
        steps[3]["gap_ms"].as_i64().unwrap() >= 2_000,
        "the downtime is in the gap"
    );
    assert!(
        steps[4]["changed"]
            .as_str()
            .unwrap()
            .contains("status established→expired")
    );
    let told = nsm_ok(&["show", "--db", &db, &v["downtime"]]);
    assert!(told.contains("(node was down)"), "{told}");

    // replay --simulate and verify find nothing wrong in what the runtime wrote.
    let replay: Value =
        serde_json::from_str(&nsm_ok(&["replay", "--simulate", "--db", &db, "--json"])).unwrap();
    assert_eq!(replay["divergences"], Value::Array(vec![]));
    assert_eq!(replay["checked"], stored.len());
    nsm_ok(&["verify", "--db", &db]);

    // Completions come from the binary.
    let bash = nsm_ok(&["completions", "bash"]);
    assert!(
        bash.contains("vwires") && bash.contains("--trace-id"),
        "{bash}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_refuse_what_is_not_a_log_they_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all\n").unwrap();
    let foreign = dir.path().join("foreign.db");
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", foreign.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE recipes (name TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let newer = dir.path().join("newer.db");
    {
        let store = nsm_log::store::SqliteStore::open(&newer, Default::default())
            .await
            .unwrap();
        store.close().await;
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", newer.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let cases = [
        (&missing, "does not exist"),
        (&text, "SQLite"),
        (&foreign, "nsm-rs"),
        (&newer, "9999"),
    ];
    for command in [
        &["events"][..],
        &["vwires"],
        &["show", "abc"],
        &["replay", "--simulate"],
        &["verify"],
    ] {
        for (db, says) in &cases {
            let mut args = command.to_vec();
            let db_text = db.display().to_string();
            args.extend(["--db", &db_text]);
            let output = nsm(&args);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "nsm {args:?} succeeded");
            assert!(
                stderr.contains(says),
                "nsm {args:?}: {stderr:?} should say {says:?}"
            );
        }
    }
    assert!(!missing.exists(), "a read-only command created the log");
}

/// The fixture, for tests that need only its file.
async fn fixture(dir: &Path) -> Fixture {
    incident_log(dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_simulate_reports_the_tampered_decision_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture(dir.path()).await;
    let stored = rows(&fixture.db).await;
    let stream = format!("vwire-{}", fixture.vwires["expired"]);
    let expired = stored
        .iter()
        .find(|r| r.1 == stream && r.3 == "Expired")
        .unwrap();
    // The recorded expiry now claims to have happened a minute before the deadline.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", fixture.db.display()))
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(&expired.6).unwrap();
    let deadline =
        chrono::DateTime::parse_from_rfc3339(payload["deadline"].as_str().unwrap()).unwrap();
    let early = (deadline - chrono::Duration::minutes(1)).with_timezone(&chrono::Utc);
    let early = early.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    sqlx::query("UPDATE events SET payload = json_set(payload, '$.at', ?1) WHERE position = ?2")
        .bind(&early)
        .bind(expired.0)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let db = fixture.db.display().to_string();
    let output = nsm(&["replay", "--simulate", "--db", &db, "--json"]);
    assert!(!output.status.success(), "a divergence is a failure");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let divergences = report["divergences"].as_array().unwrap();
    assert_eq!(divergences.len(), 1, "{report:#}");
    assert_eq!(divergences[0]["position"], expired.0);
    assert_eq!(divergences[0]["event_type"], "Expired");
    assert_eq!(divergences[0]["kind"], "refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 recorded decision"));
    // Judging only after it finds nothing; judging from it finds it.
    let after = (expired.0 + 1).to_string();
    nsm_ok(&["replay", "--simulate", "--db", &db, "--from", &after]);
    let table = nsm(&[
        "replay",
        "--simulate",
        "--db",
        &db,
        "--from",
        &expired.0.to_string(),
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&format!("\n{}", expired.0)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_bundle_imports_into_an_identical_log() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture(dir.path()).await;
    let db = fixture.db.display().to_string();
    let bundle = dir.path().join("incident.jsonl");
    let imported = dir.path().join("imported.db");
    nsm_ok(&[
        "export",
        "--db",
        &db,
        "--out",
        &bundle.display().to_string(),
    ]);
    nsm_ok(&[
        "import",
        &bundle.display().to_string(),
        "--db",
        &imported.display().to_string(),
    ]);
    assert_eq!(
        rows(&fixture.db).await,
        rows(&imported).await,
        "every column of every row"
    );
    let imported_text = imported.display().to_string();
    let stored = rows(&fixture.db).await;
    for row in stored.iter().step_by(3) {
        let at = &row.4;
        let source = nsm_ok(&["vwires", "--db", &db, "--json", "--at", at]);
        let copy = nsm_ok(&["vwires", "--db", &imported_text, "--json", "--at", at]);
        assert_eq!(source, copy, "at {at}");
    }
    nsm_ok(&["verify", "--db", &imported_text]);
    nsm_ok(&["replay", "--simulate", "--db", &imported_text]);
    // Importing again into a log that holds events is refused.
    let again = nsm(&[
        "import",
        &bundle.display().to_string(),
        "--db",
        &imported_text,
    ]);
    assert!(!again.status.success());
}

/// What a vWire was at a moment, folded here from the raw rows, independently of nsm's code.
#[derive(Debug, PartialEq)]
struct Folded {
    state: String,
    deadline: chrono::DateTime<chrono::Utc>,
    endpoint: Option<String>,
}

fn fold_until(stored: &[Row7], keep: impl Fn(&Row7) -> bool) -> BTreeMap<String, Folded> {
    let time = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let mut folded: BTreeMap<String, Folded> = BTreeMap::new();
    for row in stored
        .iter()
        .filter(|r| r.1.starts_with("vwire-") && keep(r))
    {
        let id = row.1.trim_start_matches("vwire-").to_owned();
        let payload: Value = serde_json::from_str(&row.6).unwrap();
        let state = match row.3.as_str() {
            "Requested" => "requested",
            "Established" => "established",
            "Closed" => "closed",
            "Expired" => "expired",
            "Failed" => "failed",
            _ => "",
        };
        let entry = folded.entry(id).or_insert_with(|| Folded {
            state: String::new(),
            deadline: time(&payload["expires_at"]),
            endpoint: None,
        });
        if !state.is_empty() {
            entry.state = state.to_owned();
        }
        if payload["expires_at"].is_string() {
            entry.deadline = time(&payload["expires_at"]);
        }
        if row.3 == "Established" {
            entry.endpoint = payload["endpoint"]["name"].as_str().map(str::to_owned);
        }
    }
    folded
}

fn snapshot_of(text: &str) -> BTreeMap<String, Folded> {
    let snapshot: Value = serde_json::from_str(text).unwrap();
    snapshot["vwires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let deadline = chrono::DateTime::parse_from_rfc3339(r["deadline"].as_str().unwrap());
            (
                r["vwire"].as_str().unwrap().to_owned(),
                Folded {
                    state: r["state"].as_str().unwrap().to_owned(),
                    deadline: deadline.unwrap().to_utc(),
                    endpoint: r["endpoint"].as_str().map(str::to_owned),
                },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_equals_an_independent_fold_at_random_moments() {
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture(dir.path()).await;
    let db = fixture.db.display().to_string();
    let stored = rows(&fixture.db).await;
    let time = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let (first, last) = (time(&stored[0].4), time(&stored[stored.len() - 1].4));
    let span = (last - first).num_microseconds().unwrap();
    let mut rng = rand::rng();
    let mut moments: Vec<chrono::DateTime<chrono::Utc>> = (0..12)
        .map(|_| first + chrono::Duration::microseconds(rng.random_range(-1_000..span + 1_000)))
        .collect();
    // Exactly at an event, and a microsecond before one.
    let pick = time(&stored[rng.random_range(0..stored.len())].4);
    moments.extend([pick, pick - chrono::Duration::microseconds(1)]);
    for moment in moments {
        let at = moment.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let answer = snapshot_of(&nsm_ok(&["vwires", "--db", &db, "--json", "--at", &at]));
        let expected = fold_until(&stored, |r| time(&r.4) <= moment);
        assert_eq!(answer, expected, "at {at}");
    }
    for _ in 0..6 {
        let position = rng.random_range(0..=stored.len() as i64 + 2);
        let text = position.to_string();
        let answer = snapshot_of(&nsm_ok(&[
            "vwires",
            "--db",
            &db,
            "--json",
            "--position",
            &text,
        ]));
        assert_eq!(
            answer,
            fold_until(&stored, |r| r.0 <= position),
            "at position {position}"
        );
    }
}
