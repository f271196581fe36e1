//! Helpers shared by the integration tests: a fixed clock, the compiled builtins, and the
//! refusal of an input that must be refused.

#![allow(dead_code)]

use nsm_policy::{Denied, Input, Policies};

/// The clock of every test input, unix seconds.
pub(crate) const NOW: i64 = 1_750_000_000;

pub(crate) fn builtin() -> Policies {
    Policies::builtin().expect("the builtin policies compile")
}

pub(crate) fn with_allow_list(document: serde_json::Value) -> Policies {
    Policies::builtin_with_data(document).expect("the allow list loads")
}

/// The refusal of `input`; fails the test when it is allowed.
pub(crate) fn refusal(policies: &Policies, input: &Input) -> Denied {
    match policies.authorize(input) {
        Ok(()) => panic!("expected a refusal, the call was allowed: {input:#?}"),
        Err(denied) => denied,
    }
}

/// Asserts the refusal names `policy` and its reason contains `reason_part`.
pub(crate) fn assert_refused_by(
    policies: &Policies,
    input: &Input,
    policy: &str,
    reason_part: &str,
) {
    let denied = refusal(policies, input);
    assert_eq!(denied.policy, policy, "refused by another policy: {denied}");
    assert!(
        denied.reason.contains(reason_part),
        "the reason {:?} does not say {reason_part:?}",
        denied.reason
    );
}
