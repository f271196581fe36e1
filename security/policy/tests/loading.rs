//! Loading policies and data: a policy directory that replaces or adds policies, data files,
//! and everything that must stop a node at start (with the file and line to fix) or refuse a
//! call at run time (never allow it).

mod common;

use std::path::{Path, PathBuf};

use common::{NOW, assert_refused_by};
use nsm_policy::sample::{three_hop_reply, three_hop_request};
use nsm_policy::{Call, Input, LoadError, MonitorScope, Policies, Side};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

fn load_dir(dir: &Path) -> Result<Policies, LoadError> {
    Policies::load(Some(dir), &[])
}

fn monitor_call() -> Input {
    Input {
        call: Call::MonitorConnections,
        side: Side::Server,
        caller: Some("spiffe://example.org/ns/default/nsc".to_owned()),
        server: None,
        path: Default::default(),
        now: NOW,
        service: None,
        resource: None,
        monitor: Some(MonitorScope::default()),
    }
}

#[test]
fn the_builtins_are_evaluated_in_their_documented_order() {
    let names: Vec<String> = Policies::load(None, &[])
        .expect("builtins")
        .names()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        names,
        [
            "tokens_valid",
            "tokens_expired",
            "tokens_chained",
            "prev_token_signed",
            "next_token_signed",
            "client_allowed",
            "service_connection",
            "service_allow_list"
        ]
    );
}

#[test]
fn a_policy_file_with_a_syntax_error_is_refused_at_start_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(
        dir.path(),
        "extra.rego",
        "package site.extra\n\ndeny contains msg if {\n\tmsg := \"x\"\n\tinput.call ==\n}\n",
    );
    let error = load_dir(dir.path()).expect_err("a syntax error must stop the start");
    match &error {
        LoadError::PolicyAt { location, .. } => {
            assert_eq!(location.file, file.display().to_string());
            assert_eq!(location.line, 6);
        }
        other => panic!("expected a located policy error, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&format!("{} line 6", file.display())),
        "{message}"
    );
    assert!(
        !message.contains('\n'),
        "one line for the operator: {message:?}"
    );
}

#[test]
fn a_replaced_builtin_takes_effect_and_keeps_its_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "tokens_expired.rego",
        "package site.lenient_expiry\n\n# Expiry is checked elsewhere on this site.\ndeny := set()\n",
    );
    write(
        dir.path(),
        "service_allow_list.rego",
        "package site.nobody\n\ndeny contains \"nobody attaches here\" if true\n",
    );
    let policies = load_dir(dir.path()).expect("the replacements load");

    let mut expired = three_hop_reply(NOW);
    expired.path.segments[0].token.exp = Some(NOW - 60);
    assert_eq!(
        policies.authorize(&expired),
        Ok(()),
        "the replaced tokens_expired no longer refuses"
    );

    assert_refused_by(
        &policies,
        &three_hop_request(NOW),
        "service_allow_list",
        "nobody attaches here",
    );
    assert_eq!(
        policies.authorize(&three_hop_reply(NOW)),
        Ok(()),
        "the replacement keeps the Request-server scope"
    );
}

#[test]
fn an_added_policy_is_evaluated_for_every_call_after_the_builtins() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "no_monitoring.rego",
        "package site.no_monitoring\n\ndeny contains \"monitoring is off on this node\" if input.call == \"connection.MonitorConnections\"\n",
    );
    write(dir.path(), "README.md", "not a policy, ignored");
    let policies = load_dir(dir.path()).expect("the addition loads");
    assert_eq!(policies.names().last(), Some("no_monitoring"));
    assert_eq!(policies.authorize(&three_hop_request(NOW)), Ok(()));

    let mut owned = monitor_call();
    owned.monitor = Some(MonitorScope {
        connections: vec![nsm_policy::SelectedConnection {
            id: "c".into(),
            owned_by_caller: true,
        }],
    });
    assert_refused_by(
        &policies,
        &owned,
        "no_monitoring",
        "monitoring is off on this node",
    );
}

#[test]
fn a_policy_that_divides_by_zero_at_run_time_refuses_the_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(
        dir.path(),
        "tokens_chained.rego",
        // Fails at NOW only, so it passes the start-up probe and fails on the call.
        &format!(
            "package site.broken\n\ndeny contains msg if {{\n\tratio := 1 / (input.now - {NOW})\n\tratio > 10\n\tmsg := \"never\"\n}}\n"
        ),
    );
    let policies = load_dir(dir.path()).expect("it parses and compiles");
    let denied = common::refusal(&policies, &three_hop_request(NOW));
    assert_eq!(denied.policy, "tokens_chained");
    assert!(denied.reason.starts_with("evaluation failed: "), "{denied}");
    assert!(
        denied
            .reason
            .contains(&format!("{} line 4", file.display())),
        "{denied}"
    );
    assert!(denied.reason.contains("divide by zero"), "{denied}");
}

#[test]
fn a_policy_that_fails_on_every_well_formed_call_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "typo.rego",
        "package site.typo\n\ndeny contains msg if {\n\tmsg := uppr(input.call)\n\tmsg == \"X\"\n}\n",
    );
    let error = load_dir(dir.path()).expect_err("an unknown function fails every evaluation");
    let message = error.to_string();
    assert!(
        matches!(error, LoadError::FailsOnSample { ref policy, .. } if policy == "typo"),
        "{error:?}"
    );
    assert!(message.contains("typo.rego line 4"), "{message}");
}

#[test]
fn a_policy_whose_rule_conflicts_at_run_time_refuses_the_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "conflict.rego",
        &format!(
            "package site.conflict\n\nverdict := \"a\" if input.now > 0\n\nverdict := \"b\" if input.now == {NOW}\n\ndeny contains \"odd\" if verdict == \"c\"\n"
        ),
    );
    let policies = load_dir(dir.path()).expect("it parses and compiles");
    assert_refused_by(
        &policies,
        &three_hop_request(NOW),
        "conflict",
        "evaluation failed",
    );
}

#[test]
fn a_deny_that_is_not_a_set_of_messages_refuses_the_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "odd.rego", "package site.odd\n\ndeny := 5\n");
    let policies = load_dir(dir.path()).expect("it loads");
    assert_refused_by(
        &policies,
        &three_hop_request(NOW),
        "odd",
        "produced 5, not a set of messages",
    );
}

#[test]
fn a_policy_without_a_deny_rule_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "typo.rego",
        "package site.typo\n\ndenny contains \"x\" if true\n",
    );
    let error = load_dir(dir.path()).expect_err("no deny rule");
    assert!(
        matches!(error, LoadError::NoDenyRule { ref file } if file.ends_with("typo.rego")),
        "{error:?}"
    );
}

#[test]
fn two_policies_in_one_package_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "more_validity.rego",
        "package nsm.tokens_valid\n\ndeny contains \"x\" if false\n",
    );
    let error = load_dir(dir.path()).expect_err("duplicate package");
    let message = error.to_string();
    assert!(message.contains("builtin:tokens_valid.rego"), "{message}");
    assert!(message.contains("more_validity.rego"), "{message}");
    assert!(message.contains("data.nsm.tokens_valid"), "{message}");
}

#[test]
fn a_missing_policy_directory_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nowhere");
    let error = load_dir(&missing).expect_err("missing directory");
    assert!(
        matches!(error, LoadError::Read { ref path, .. } if *path == missing),
        "{error:?}"
    );
}

#[test]
fn an_allow_list_from_a_data_file_takes_effect_and_data_files_merge() {
    let dir = tempfile::tempdir().expect("temp dir");
    let allow_list = write(
        dir.path(),
        "allow.json",
        r#"{ "services": { "secure-intranet": ["spiffe://example.org/ns/default/*"] } }"#,
    );
    let other = write(dir.path(), "other.json", r#"{ "site": { "name": "lab" } }"#);
    let policies = Policies::load(None, &[allow_list, other]).expect("both data files load");
    assert_eq!(policies.authorize(&three_hop_request(NOW)), Ok(()));
    let mut elsewhere = three_hop_request(NOW);
    elsewhere.service = Some("vl3-red".to_owned());
    assert_refused_by(&policies, &elsewhere, "service_allow_list", "vl3-red");
}

#[test]
fn a_data_file_that_is_not_json_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "allow.json", "{ \"services\": {\n  \"a\": [\n}");
    let error = Policies::load(None, std::slice::from_ref(&file)).expect_err("bad JSON");
    let message = error.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn a_malformed_allow_list_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(
        dir.path(),
        "allow.json",
        r#"{ "services": { "secure-intranet": "spiffe://example.org/ns/default/nsc" } }"#,
    );
    let error = Policies::load(None, &[file]).expect_err("a string is not a list");
    assert!(matches!(error, LoadError::DataShape { .. }), "{error:?}");
    assert!(
        error.to_string().contains("services.secure-intranet"),
        "{error}"
    );
}

#[test]
fn conflicting_data_files_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = write(dir.path(), "a.json", r#"{ "site": { "name": "lab" } }"#);
    let second = write(dir.path(), "b.json", r#"{ "site": { "name": "prod" } }"#);
    let error = Policies::load(None, &[first, second.clone()]).expect_err("the same key twice");
    assert!(
        matches!(error, LoadError::DataConflict { ref origin, .. } if *origin == second.display().to_string()),
        "{error:?}"
    );
}
