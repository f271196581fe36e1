//! The `nsm` binary as a user runs it: real process, real arguments, exit codes, JSON.

use std::process::Command;

fn nsm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nsm"))
        .args(args)
        .output()
        .expect("run nsm")
}

fn json(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "nsm failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[test]
fn bench_store_prints_throughput_against_raw_sqlite_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let args = [
        "bench",
        "store",
        "--json",
        "--events",
        "400",
        "--writers",
        "8",
        "--rounds",
        "1",
    ];
    let report = json(&nsm(&[&args[..], &["--dir", dir_arg]].concat()));
    assert_eq!(report["events"], 400);
    assert_eq!(report["writers"], 8);
    for field in [
        "events_per_s",
        "raw_sqlite_events_per_s",
        "ratio",
        "p99_append_ms",
    ] {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing: {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    let ratio = report["events_per_s"].as_f64().unwrap()
        / report["raw_sqlite_events_per_s"].as_f64().unwrap();
    assert!((ratio - report["ratio"].as_f64().unwrap()).abs() < 0.01);
    assert!(report["transactions"].as_u64().unwrap() >= 1);
    // The temporary logs are gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bench_fold_and_actors_report_their_figures() {
    let dir = tempfile::tempdir().unwrap();
    let fold = json(&nsm(&[
        "bench",
        "fold",
        "--json",
        "--events",
        "2000",
        "--vwires",
        "200",
        "--dir",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(fold["events"], 2000);
    assert_eq!(fold["vwires"], 200);
    assert_eq!(fold["live_vwires"], 180, "one in ten is closed");
    let actors = json(&nsm(&["bench", "actors", "--json", "--vwires", "500"]));
    assert_eq!(actors["vwires"], 500);
    assert!(actors["bytes_per_idle_vwire"].as_u64().is_some());
}

#[test]
fn bad_arguments_exit_with_a_usage_error() {
    let output = nsm(&["bench", "store", "--writers", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--writers"));
    let output = nsm(&["bench", "store", "--dir", "/nonexistent/nsm-bench"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/nsm-bench"));
    let output = nsm(&["--log", "not a [filter", "bench", "actors", "--vwires", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--log"));
}

#[test]
fn bench_request_sets_up_vwires_over_grpc_and_reports_them_against_the_floor() {
    let report = json(&nsm(&[
        "bench",
        "request",
        "--json",
        "--setups",
        "200",
        "--warmup",
        "20",
        "--serial",
        "50",
        "--clients",
        "8",
        "--floor-samples",
        "100",
    ]));
    assert_eq!(report["setups"], 200);
    for field in [
        "setups_per_s",
        "p50_ms",
        "p99_ms",
        "serial_p50_ms",
        "floor_p50_ms",
        "ratio_p50",
    ] {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing: {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    // The report rounds each figure to 3 decimals, so the ratio of the printed figures may
    // differ from the printed ratio by the rounding of each (large when the floor is ~0.1 ms).
    let serial = report["serial_p50_ms"].as_f64().unwrap();
    let floor = report["floor_p50_ms"].as_f64().unwrap();
    let printed = report["ratio_p50"].as_f64().unwrap();
    let rounding = printed * (0.0005 / floor + 0.0005 / serial) + 0.0005;
    assert!(
        (serial / floor - printed).abs() <= rounding,
        "ratio_p50 {printed} is not serial_p50_ms / floor_p50_ms = {serial} / {floor}"
    );
}

#[test]
fn bench_vpp_programs_cross_connects_into_the_simulator_and_names_a_socket_it_cannot_reach() {
    let report = json(&nsm(&[
        "bench",
        "vpp",
        "--json",
        "--xconnects",
        "200",
        "--rounds",
        "1",
    ]));
    for field in ["xconnects_per_s", "control_ping_us", "in_flight"] {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing: {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    assert_eq!(report["in_flight"], 16);
    assert_eq!(report["xconnects"], 200);
    assert_eq!(report["target"], "simulator");
    let socket = "/nonexistent/nsm-bench/api.sock";
    let output = nsm(&["bench", "vpp", "--vpp-api-socket", socket]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(socket));
}

/// The bench's namespaces under `/run/netns`.
fn bench_namespaces() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.starts_with("nsmbench-"))
        .collect()
}

#[test]
fn bench_dataplane_measures_a_vwire_against_a_bare_veth_pair_and_leaves_no_namespace() {
    if !capable("nsm bench dataplane") {
        return;
    }
    let before = bench_namespaces();
    let report = json(&nsm(&[
        "bench",
        "dataplane",
        "--json",
        "--seconds",
        "1",
        "--vwires",
        "20",
    ]));
    assert_eq!(report["vwires"], 20);
    assert_eq!(report["seconds"], 1);
    for field in [
        "vwire_gbps",
        "bare_veth_gbps",
        "ratio",
        "plumbed_per_s",
        "unplumbed_per_s",
        "concurrency",
    ] {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} missing: {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    let ratio = report["vwire_gbps"].as_f64().unwrap() / report["bare_veth_gbps"].as_f64().unwrap();
    assert!((ratio - report["ratio"].as_f64().unwrap()).abs() < 0.01);
    let left: Vec<_> = bench_namespaces().difference(&before).cloned().collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
fn serve_refuses_bad_configuration_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    let db = db.to_str().unwrap();
    for (args, mentions) in [
        (
            &["serve", "--insecure", "--dataplane", "ebpf", "--db", db][..],
            "unknown data plane",
        ),
        (
            &[
                "serve",
                "--insecure",
                "--listen",
                "localhost:5001",
                "--db",
                db,
            ][..],
            "--listen",
        ),
        (
            &["serve", "--insecure", "--lifetime", "0s", "--db", db][..],
            "--lifetime",
        ),
    ] {
        let output = nsm(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("events.db").exists(),
        "nothing was created"
    );
}

/// Whether this process may make namespaces and veth pairs; under `CI=true` it must.
fn capable(command: &str) -> bool {
    let missing = nsm_dataplane::kernel::missing_capabilities();
    nsm_test_support::capable_or_skip(&format!("the {command} test"), &missing)
}

/// The names in /run/netns that a demo makes (`nsm-demo-*`).
fn demo_namespaces() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.starts_with("nsm-demo-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Replies per client in the demo's ping step (`demo-nsc-1 (...) -> ...` then its pings).
fn replies_per_client(stdout: &str) -> std::collections::BTreeMap<String, usize> {
    let pings = stdout
        .split("Pings across each vWire")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("no ping step in:\n{stdout}"));
    let mut replies = std::collections::BTreeMap::new();
    let mut client = None;
    for line in pings.lines().map(str::trim) {
        if let Some((name, _)) = line.split_once(" (").filter(|_| line.ends_with(':')) {
            client = Some(name.to_owned());
            replies.insert(name.to_owned(), 0);
        } else if line.contains(" bytes from ") {
            let name = client
                .clone()
                .unwrap_or_else(|| panic!("a reply before a client: {line}"));
            *replies.entry(name).or_default() += 1;
        }
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pings_across_both_vwires_records_their_lifecycle_and_leaves_nothing_behind() {
    if !capable("nsm demo") {
        return;
    }
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_nsm"))
        .args(["demo", "--exit-after-pings"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("nsm demo finished within 60s")
        .expect("run nsm demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let replies = replies_per_client(&stdout);
    assert_eq!(
        replies,
        [("demo-nsc-1".to_owned(), 3), ("demo-nsc-2".to_owned(), 3)].into(),
        "{stdout}"
    );
    assert!(!stdout.contains("no reply"), "{stdout}");
    // Mutual TLS with its own throw-away trust domain: each program's SPIFFE ID is shown,
    // and the node recorded each client by the one in its certificate.
    for id in [
        "spiffe://nsm-rs.demo/node/nsm-demo-",
        "spiffe://nsm-rs.demo/endpoint/demo-nse",
        "identity from its certificate: spiffe://nsm-rs.demo/client/demo-nsc-1",
        "identity from its certificate: spiffe://nsm-rs.demo/client/demo-nsc-2",
    ] {
        assert!(stdout.contains(id), "{id} missing:\n{stdout}");
    }
    for event in [
        "Requested",
        "DataplanePlumbed",
        "Established",
        "DataplaneUnplumbed",
        "Closed",
    ] {
        assert!(stdout.contains(event), "{event} missing:\n{stdout}");
    }
    // This run's namespaces are gone. (Compared by this run's tag, not as "no nsm-demo-*
    // at all", so that a demo someone runs meanwhile does not fail the test.)
    let tag = stdout
        .split_whitespace()
        .find(|w| w.starts_with("nsm-demo-") && w.ends_with("-endpoint"))
        .and_then(|w| w.strip_suffix("-endpoint"))
        .unwrap_or_else(|| panic!("no namespace named in:\n{stdout}"));
    let after = demo_namespaces();
    assert!(
        after.iter().all(|n| !n.starts_with(tag)),
        "left behind: {after:?}"
    );
    let dir = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("DIR="))
        .unwrap_or_else(|| panic!("no DIR= in:\n{stdout}"));
    assert!(!std::path::Path::new(dir).exists(), "{dir} was not removed");
}
