//! # nsm-test-support: what every test suite of nsm-rs shares
//!
//! The one rule for tests that need something a developer's machine may lack (root, network
//! namespaces, a tool, a browser, a mount): outside CI such a test skips and prints why; with
//! `CI=true` a missing capability is a failure, because CI runs as root with everything
//! installed and a skipped test there would hide a regression.
//!
//! [`vpp`] starts private VPP instances for the tests that run on a real VPP.
//!
//! It depends on nothing, so every crate's tests can use it. It owns no fixtures: the
//! end-to-end helpers live in `nsm-tests`, the actor helpers beside the actor tests.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::fmt::Debug;

pub mod vpp;

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `true` when `available`; otherwise prints `skipped: <why>` and returns `false`, or panics
/// under `CI=true`.
pub fn available_or_skip(available: bool, why: &str) -> bool {
    if available {
        return true;
    }
    assert!(!in_ci(), "CI=true and {why}: these tests must run in CI");
    eprintln!("skipped: {why}");
    false
}

/// `true` when nothing is `missing` (capabilities, tools); otherwise skips as
/// [`available_or_skip`] says, naming what `test` lacks.
pub fn capable_or_skip<T: Debug>(test: &str, missing: &[T]) -> bool {
    available_or_skip(
        missing.is_empty(),
        &format!("{test} needs {missing:?} (run as root)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs_whatever_the_environment() {
        assert!(capable_or_skip::<&str>("a test", &[]));
        assert!(available_or_skip(true, "never printed"));
    }

    #[test]
    fn something_missing_skips_outside_ci_and_fails_inside() {
        let outcome = std::panic::catch_unwind(|| capable_or_skip("a test", &["CAP_NET_ADMIN"]));
        match outcome {
            Ok(ran) => assert!(!in_ci() && !ran),
            Err(_) => assert!(in_ci()),
        }
    }
}
