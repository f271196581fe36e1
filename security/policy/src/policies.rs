//! The policy engine: compiles the gathered policies and data once, at start, and answers
//! [`Policies::authorize`] per call.
//!
//! Every policy is a Rego package with a `deny` rule: a set of messages, empty when the call
//! is fine. Each is compiled to its own regorus [`CompiledPolicy`] with `data.<package>.deny`
//! as entry point; a call evaluates, in order, the policies whose scope covers it and stops at
//! the first that denies. A `CompiledPolicy` is immutable and shared (`Arc`), so `authorize`
//! takes `&self`, needs no lock and runs on any number of threads at once.
//!
//! Fail closed: an evaluation error (a conflict, a division by zero, a builtin given the wrong
//! type, which strict builtin errors turn into errors) is a refusal naming the policy, and a
//! `deny` of an unexpected shape is a refusal too. Only an empty `deny` (or one that is
//! undefined or `false`) lets a call through.

use std::fmt;
use std::path::{Path, PathBuf};

use regorus::{CompiledPolicy, Engine, Value};

use crate::builtin::{Scope, scope_of};
use crate::diagnostic::Diagnostic;
use crate::document::input_document;
use crate::error::{Denied, LoadError};
use crate::input::Input;
use crate::sample;
use crate::source::{self, DataSource, PolicySource};

/// The compiled policies of a node. Cheap to share (`Arc` it); `authorize` takes `&self`.
#[derive(Clone)]
pub struct Policies {
    evaluators: Vec<Evaluator>,
}

#[derive(Clone)]
struct Evaluator {
    name: String,
    scope: Scope,
    compiled: CompiledPolicy,
}

impl fmt::Debug for Policies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Policies {
    /// The builtin policies with no data: NSM's defaults; the allow list allows everything.
    pub fn builtin() -> Result<Self, LoadError> {
        Self::compile(source::builtin_sources(), Vec::new())
    }

    /// The builtin policies with one data document given in memory (the allow list of a demo
    /// or a benchmark, say). The document is checked as a data file would be.
    pub fn builtin_with_data(document: serde_json::Value) -> Result<Self, LoadError> {
        Self::compile(
            source::builtin_sources(),
            vec![source::in_memory_data(document)?],
        )
    }

    /// The builtins, overlaid with the `*.rego` files of `policy_dir` (a file named like a
    /// builtin replaces it, any other adds a policy evaluated for every call), with the JSON
    /// `data_files` merged into `data` in order. Any policy that does not parse or compile,
    /// declares no `deny`, shares a package with another, or fails to evaluate on the
    /// well-formed sample calls of its scope, is an error naming the file (and the line, when
    /// regorus gives one). Data files must be JSON objects; a `services` key must have the
    /// allow list's shape.
    pub fn load(policy_dir: Option<&Path>, data_files: &[PathBuf]) -> Result<Self, LoadError> {
        let mut sources = source::builtin_sources();
        if let Some(dir) = policy_dir {
            source::overlay_policy_dir(&mut sources, dir)?;
        }
        let data = data_files
            .iter()
            .map(|path| source::read_data_file(path))
            .collect::<Result<Vec<_>, _>>()?;
        let policies = Self::compile(sources, data)?;
        tracing::info!(
            policies = ?policies.names().collect::<Vec<_>>(),
            policy_dir = ?policy_dir,
            data_files = ?data_files,
            "authorization policies loaded"
        );
        Ok(policies)
    }

    /// The names of the loaded policies, in evaluation order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.evaluators
            .iter()
            .map(|evaluator| evaluator.name.as_str())
    }

    /// Allows the call, or names the first policy (in evaluation order) that refuses it.
    pub fn authorize(&self, input: &Input) -> Result<(), Denied> {
        let document = input_document(input);
        for evaluator in &self.evaluators {
            if evaluator.scope.applies_to(input) {
                evaluator.check(document.clone())?;
            }
        }
        Ok(())
    }

    fn compile(sources: Vec<PolicySource>, data: Vec<DataSource>) -> Result<Self, LoadError> {
        let mut engine = Engine::new();
        // Regorus's default, set on purpose: a builtin given bad arguments must be an error
        // (a refusal), not an undefined value that would silently skip a deny rule.
        engine.set_strict_builtin_errors(true);
        let packages = add_policies(&mut engine, &sources)?;
        for data_source in data {
            let document: Value = data_source.document.into();
            engine
                .add_data(document)
                .map_err(|error| LoadError::DataConflict {
                    origin: data_source.origin.clone(),
                    message: Diagnostic::parse(&error.to_string()).to_string(),
                })?;
        }
        let evaluators = sources
            .into_iter()
            .zip(packages)
            .map(|(source, package)| {
                let entry_point = format!("{package}.deny");
                let compiled = engine
                    .compile_with_entrypoint(&entry_point.as_str().into())
                    .map_err(|error| compile_error(None, &error.to_string()))?;
                Ok(Evaluator {
                    scope: scope_of(&source.name),
                    name: source.name,
                    compiled,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let policies = Policies { evaluators };
        policies.probe()?;
        Ok(policies)
    }

    /// Evaluates every policy once on the well-formed sample calls in its scope. regorus
    /// accepts some mistakes at compile time (an unknown function, an unbound variable) and
    /// fails only when evaluating; such a policy would refuse every call it applies to, so it
    /// is refused at start instead.
    fn probe(&self) -> Result<(), LoadError> {
        let probes = [
            ("request", sample::three_hop_request(PROBE_TIME)),
            ("reply", sample::three_hop_reply(PROBE_TIME)),
        ];
        for (call, input) in &probes {
            let document = input_document(input);
            for evaluator in self.evaluators.iter().filter(|e| e.scope.applies_to(input)) {
                if let Err(error) = evaluator.compiled.eval_with_input(document.clone()) {
                    let diagnostic = Diagnostic::parse(&error.to_string());
                    return Err(LoadError::FailsOnSample {
                        policy: evaluator.name.clone(),
                        call,
                        diagnostic: diagnostic.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The clock of the probe calls: any time works, the sample tokens expire relative to it.
const PROBE_TIME: i64 = 1_700_000_000;

/// Parses every source into `engine` and returns each one's package (`data.<package>`).
fn add_policies(engine: &mut Engine, sources: &[PolicySource]) -> Result<Vec<String>, LoadError> {
    let mut packages: Vec<String> = Vec::with_capacity(sources.len());
    for (position, source) in sources.iter().enumerate() {
        let package = engine
            .add_policy(source.origin.clone(), source.rego.clone())
            .map_err(|error| compile_error(Some(&source.origin), &error.to_string()))?;
        if let Some(first) = packages.iter().position(|known| *known == package) {
            return Err(LoadError::DuplicatePackage {
                package,
                first: sources[first].origin.clone(),
                second: sources[position].origin.clone(),
            });
        }
        let declares_deny = engine
            .has_declared_rule_rooted_at(&source.origin, "deny")
            .map_err(|error| compile_error(Some(&source.origin), &error.to_string()))?;
        if !declares_deny {
            return Err(LoadError::NoDenyRule {
                file: source.origin.clone(),
            });
        }
        packages.push(package);
    }
    Ok(packages)
}

/// A regorus error at load time, with the file and line it names (or the file we were
/// loading when it names none).
fn compile_error(loading: Option<&str>, text: &str) -> LoadError {
    let diagnostic = Diagnostic::parse(text);
    match (diagnostic.location, loading) {
        (Some(location), _) => LoadError::PolicyAt {
            location,
            message: diagnostic.message,
        },
        (None, Some(file)) => LoadError::Policy {
            file: file.to_owned(),
            message: diagnostic.message,
        },
        (None, None) => LoadError::Compile {
            message: diagnostic.message,
        },
    }
}

impl Evaluator {
    fn check(&self, document: Value) -> Result<(), Denied> {
        let denied = |reason: String| Denied {
            policy: self.name.clone(),
            reason,
        };
        let outcome = self.compiled.eval_with_input(document).map_err(|error| {
            let diagnostic = Diagnostic::parse(&error.to_string());
            tracing::warn!(policy = %self.name, error = %diagnostic, "policy evaluation failed; the call is refused");
            denied(format!("evaluation failed: {diagnostic}"))
        })?;
        match deny_reason(&outcome) {
            None => Ok(()),
            Some(reason) => Err(denied(reason)),
        }
    }
}

/// The refusal a `deny` value stands for, or `None` when it allows.
fn deny_reason(outcome: &Value) -> Option<String> {
    let messages: Vec<String> = match outcome {
        Value::Undefined | Value::Null | Value::Bool(false) => return None,
        Value::Bool(true) => return Some("denied".to_owned()),
        Value::Set(messages) => messages.iter().map(message_text).collect(),
        Value::Array(messages) => messages.iter().map(message_text).collect(),
        other => {
            return Some(format!(
                "its deny rule produced {other}, not a set of messages"
            ));
        }
    };
    (!messages.is_empty()).then(|| messages.join("; "))
}

fn message_text(message: &Value) -> String {
    match message {
        Value::String(text) => text.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Policies>();
    }

    #[test]
    fn only_an_empty_or_absent_deny_allows() {
        let messages: Value = serde_json::from_str(r#"["b", "a"]"#).expect("JSON");
        assert_eq!(deny_reason(&messages), Some("b; a".to_owned()));
        assert_eq!(deny_reason(&Value::new_set()), None);
        assert_eq!(deny_reason(&Value::Undefined), None);
        assert_eq!(deny_reason(&Value::Bool(true)), Some("denied".to_owned()));
        assert_eq!(
            deny_reason(&Value::from("no")),
            Some("its deny rule produced \"no\", not a set of messages".to_owned())
        );
    }
}
