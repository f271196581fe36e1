//! The two ways this crate says no: a policy set that cannot be loaded ([`LoadError`], at
//! start) and a call that is refused ([`Denied`], per call).

use std::path::PathBuf;

use crate::diagnostic::SourceLocation;

/// The policies or their data could not be loaded. The node must not start: fix the named
/// file and start again.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A policy file does not parse or compile; the location names file and line.
    #[error("policy file {location}: {message}")]
    PolicyAt {
        /// Where the problem is.
        location: SourceLocation,
        /// regorus's message.
        message: String,
    },
    /// A policy file was refused, but regorus gave no line.
    #[error("policy file {file}: {message}")]
    Policy {
        /// The file.
        file: String,
        /// regorus's message.
        message: String,
    },
    /// The policies compiled one by one but not together (regorus named no file).
    #[error("the policies cannot be compiled together: {message}")]
    Compile {
        /// regorus's message.
        message: String,
    },
    /// A policy compiles but fails to evaluate on a well-formed sample call in its scope (an
    /// unknown function, say), so it would refuse every such call.
    #[error(
        "policy {policy} fails on a well-formed 3-hop {call}, so it would refuse every such call: {diagnostic}"
    )]
    FailsOnSample {
        /// The policy name.
        policy: String,
        /// `request` (server side) or `reply` (client side).
        call: &'static str,
        /// Where and why it fails.
        diagnostic: String,
    },
    /// A policy file has no `deny` rule, so it could never refuse anything.
    #[error(
        "policy file {file} declares no `deny` rule; every policy must define `deny` as a set of messages"
    )]
    NoDenyRule {
        /// The file.
        file: String,
    },
    /// Two policy files declare the same package; their rules would merge silently.
    #[error(
        "policy files {first} and {second} both declare package {package}; give each policy its own package"
    )]
    DuplicatePackage {
        /// The package, as `data.<package>`.
        package: String,
        /// The file loaded first.
        first: String,
        /// The file loaded second.
        second: String,
    },
    /// The policy directory or a file in it cannot be read.
    #[error("cannot read {path}: {source}; check that it exists and is readable")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A data file is not JSON.
    #[error("data file {path} is not valid JSON: {source}")]
    DataSyntax {
        /// The file.
        path: PathBuf,
        /// serde_json's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A data document is not an object, or its `services` allow list does not have the
    /// documented shape `{"services": {"<service glob>": ["<SPIFFE ID glob>", ...]}}`.
    #[error("data file {origin}: {problem}")]
    DataShape {
        /// The data file (or `in-memory data`).
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// A data document cannot be merged with the data loaded before it (the same key twice
    /// with different values).
    #[error("data file {origin} conflicts with data loaded before it: {message}")]
    DataConflict {
        /// The data file (or `in-memory data`).
        origin: String,
        /// regorus's message.
        message: String,
    },
}

/// A call refused by a policy. Maps to gRPC `PermissionDenied`. The reason is built from the
/// policy's messages, which see only the facts of [`crate::Input`]: never token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied by policy {policy}: {reason}")]
pub struct Denied {
    /// The policy that said no (`tokens_valid`, `service_allow_list`, or an added policy's
    /// file name without `.rego`).
    pub policy: String,
    /// Why: the policy's messages joined with `; `, or `evaluation failed: ...` when the policy
    /// could not be evaluated (an error is a refusal, never an allow).
    pub reason: String,
}
