//! The workspace's layout is its architecture (README, "The workspace at a glance"): these
//! tests hold the dependency rules against the manifests, so that an arrow pointing the
//! wrong way fails here instead of being noticed in review.
//!
//! Read with `cargo metadata --no-deps` (offline, no build); normal dependencies only, since
//! tests may use what production code may not (the VPP simulator, for one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Each workspace crate's normal dependencies on other workspace crates, and its binaries.
struct Workspace {
    deps: BTreeMap<String, BTreeSet<String>>,
    bins: BTreeMap<String, Vec<String>>,
}

fn workspace() -> Workspace {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let mut deps = BTreeMap::new();
    let mut bins = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().unwrap().to_owned();
        let normal: BTreeSet<String> = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .filter(|d| names.contains(d))
            .collect();
        let binaries: Vec<String> = package["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        deps.insert(name.clone(), normal);
        bins.insert(name, binaries);
    }
    Workspace { deps, bins }
}

impl Workspace {
    fn of(&self, krate: &str) -> &BTreeSet<String> {
        self.deps
            .get(krate)
            .unwrap_or_else(|| panic!("no crate {krate} in the workspace"))
    }

    /// Everything `krate` reaches through normal dependencies.
    fn reach(&self, krate: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![krate.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in self.of(&next) {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }

    /// Fails unless `krate` depends on workspace crates among `allowed` only.
    fn only(&self, krate: &str, allowed: &[&str]) {
        let extra: Vec<&String> = self
            .of(krate)
            .iter()
            .filter(|d| !allowed.contains(&d.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{krate} may depend on {allowed:?} only, but depends on {extra:?}"
        );
    }
}

#[test]
fn dependencies_point_one_way() {
    let ws = workspace();
    ws.only("nsm-domain", &[]);
    ws.only("nsm-vpp", &[]);
    ws.only("nsm-log", &["nsm-domain"]);
    // The wire edge: conversions to the model, and mutual TLS on its listeners and channels.
    ws.only("nsm-proto", &["nsm-domain", "nsm-identity"]);
    ws.only("nsm-vpp-simulator", &["nsm-vpp"]);
    ws.only("nsm-dataplane", &["nsm-domain", "nsm-vpp"]);
    ws.only("nsm-runtime", &["nsm-domain", "nsm-log", "nsm-dataplane"]);
    ws.only("nsm-inspect", &["nsm-domain", "nsm-log"]);
    // Security knows nothing of the mesh: identity is certificates, keys and tokens;
    // policy takes plain facts, which the daemon maps from the mesh's types.
    ws.only("nsm-identity", &[]);
    ws.only("nsm-policy", &[]);
}

#[test]
fn the_runtime_and_the_data_planes_never_see_the_wire_or_the_operators() {
    let ws = workspace();
    for krate in ["nsm-runtime", "nsm-dataplane"] {
        let reached = ws.reach(krate);
        let edge: Vec<&String> = reached
            .iter()
            .filter(|d| *d == "nsm-proto" || d.starts_with("nsm-serve") || *d == "nsm-inspect")
            .collect();
        assert!(edge.is_empty(), "{krate} reaches {edge:?}");
    }
}

#[test]
fn the_daemon_never_links_the_vpp_simulator() {
    let ws = workspace();
    assert!(
        !ws.reach("nsm-serve").contains("nsm-vpp-simulator"),
        "nsm-serve reaches the simulator: {:?}",
        ws.reach("nsm-serve")
    );
}

#[test]
fn the_only_binary_is_nsm_and_it_dispatches_to_the_command_crates() {
    let ws = workspace();
    let with_bins: BTreeMap<&String, &Vec<String>> = ws
        .bins
        .iter()
        .filter(|(krate, bins)| !bins.is_empty() && *krate != "nsm-tests")
        .collect();
    let nsm = String::from("nsm");
    assert_eq!(with_bins.keys().copied().collect::<Vec<_>>(), vec![&nsm]);
    for command in ["nsm-serve", "nsm-inspect", "nsm-samples", "nsm-bench"] {
        assert!(
            ws.of("nsm").contains(command),
            "nsm does not dispatch to {command}"
        );
    }
}

/// Rust sources under `dir`, recursively, leaving out test code (`tests.rs`, `testlog.rs`,
/// and `tests/` folders), which may damage a log on purpose.
fn production_sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                production_sources(&path, found);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && name != "testlog.rs" {
            found.push(path);
        }
    }
}

#[test]
fn nothing_outside_the_log_crate_issues_sql_against_a_log() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The demo prints the sqlite3 commands an operator can run: the schema is a public
    // contract (README, "The event log"), and showing it is the point.
    let shown_to_the_operator = Path::new("ops/samples/src/demo/steps.rs");
    let tables = [
        "events",
        "live_vwires",
        "live_registry",
        "log_meta",
        "sqlite_sequence",
        "ipam_log",
    ];
    let verbs = ["FROM", "INTO", "UPDATE", "JOIN", "TABLE"];
    let mut offending = Vec::new();
    for area in ["ops", "actors", "proto", "vpp", "events/domain"] {
        let mut sources = Vec::new();
        production_sources(&root.join(area), &mut sources);
        for source in sources {
            let relative = source.strip_prefix(&root).unwrap();
            if relative == shown_to_the_operator {
                continue;
            }
            let text = std::fs::read_to_string(&source).unwrap();
            for (number, line) in text.lines().enumerate() {
                let words: Vec<&str> = line
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .collect();
                let sql = words
                    .windows(2)
                    .any(|w| verbs.contains(&w[0]) && tables.contains(&w[1]));
                if sql {
                    offending.push(format!(
                        "{}:{}: {}",
                        relative.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offending.is_empty(),
        "SQL against a log outside events/log (use nsm-log's API):\n{}",
        offending.join("\n")
    );
}
