//! The identity options every program that serves or dials takes (`nsm serve`,
//! `nsm endpoint`, `nsm request`), and turning them into a [`Security`].
//!
//! Exactly one of two things must be configured:
//!
//! - an X.509-SVID from files: `--svid-cert`, `--svid-key` and `--trust-bundle`, all three
//!   (`NSM_SVID_CERT`, `NSM_SVID_KEY`, `NSM_TRUST_BUNDLE`). They are re-read when they
//!   change (`nsm_identity::FileSource`), so a rotation needs no restart;
//! - or `--insecure` (`NSM_INSECURE`): plaintext and no authentication, for development,
//!   announced by a WARN at start.
//!
//! Neither, both, or only some of the three files is refused before anything starts, with
//! a message that says what to configure.

use std::path::PathBuf;

use nsm_identity::{DEFAULT_POLL_INTERVAL, FileSource, SourceError, SvidFiles};

use super::Security;

/// The identity options, flattened into each command's arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IdentityArgs {
    /// This program's X.509-SVID (PEM: the leaf certificate, then any intermediates).
    /// With --svid-key and --trust-bundle; the three are re-read when they change.
    #[arg(long, env = "NSM_SVID_CERT")]
    pub svid_cert: Option<PathBuf>,
    /// The SVID's private key (PEM, PKCS#8).
    #[arg(long, env = "NSM_SVID_KEY")]
    pub svid_key: Option<PathBuf>,
    /// The trust domain's root certificates (PEM) that peers' SVIDs are verified against.
    #[arg(long, env = "NSM_TRUST_BUNDLE")]
    pub trust_bundle: Option<PathBuf>,
    /// Development mode: plaintext gRPC, no authentication of anyone. Never in production.
    #[arg(long, env = "NSM_INSECURE")]
    pub insecure: bool,
}

/// What the options say to do, checked but not yet acted on (no file is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityChoice {
    /// Mutual TLS with the SVID in these files.
    Files(SvidFiles),
    /// `--insecure`.
    Insecure,
}

/// Why the identity options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityOptionsError {
    /// Nothing configured: give an SVID, or `--insecure` for development.
    #[error(
        "no identity configured: give --svid-cert, --svid-key and --trust-bundle (this \
         program's X.509-SVID, its private key and its trust domain's bundle; or \
         NSM_SVID_CERT, NSM_SVID_KEY and NSM_TRUST_BUNDLE) for mutual TLS, or --insecure \
         (NSM_INSECURE=true) to run without TLS or authentication, for development only"
    )]
    Missing,
    /// Some of the three files, not all: give the others.
    #[error("--svid-cert, --svid-key and --trust-bundle go together, but {missing} {verb} missing")]
    Incomplete { missing: String, verb: &'static str },
    /// `--insecure` with an SVID: one of them is a mistake.
    #[error(
        "--insecure and an SVID (--svid-cert, --svid-key, --trust-bundle) were both given: \
         --insecure turns mutual TLS off, so the SVID would be ignored; give one or the other"
    )]
    Both,
    /// The files do not load: the message names the file and the cause.
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl IdentityArgs {
    /// Checks the combination (reads no file).
    pub fn choice(&self) -> Result<IdentityChoice, IdentityOptionsError> {
        let named = [
            ("--svid-cert", &self.svid_cert),
            ("--svid-key", &self.svid_key),
            ("--trust-bundle", &self.trust_bundle),
        ];
        let given = named.iter().filter(|(_, path)| path.is_some()).count();
        match (given, self.insecure) {
            (0, true) => Ok(IdentityChoice::Insecure),
            (0, false) => Err(IdentityOptionsError::Missing),
            (_, true) => Err(IdentityOptionsError::Both),
            (3, false) => Ok(IdentityChoice::Files(SvidFiles {
                cert: self.svid_cert.clone().unwrap_or_default(),
                key: self.svid_key.clone().unwrap_or_default(),
                bundle: self.trust_bundle.clone().unwrap_or_default(),
            })),
            (_, false) => {
                let missing: Vec<&str> = named
                    .iter()
                    .filter(|(_, path)| path.is_none())
                    .map(|(flag, _)| *flag)
                    .collect();
                Err(IdentityOptionsError::Incomplete {
                    verb: if missing.len() == 1 { "is" } else { "are" },
                    missing: missing.join(" and "),
                })
            }
        }
    }

    /// Checks the combination and acts on it ([`IdentityChoice::start`]).
    pub async fn start(&self) -> Result<Security, IdentityOptionsError> {
        self.choice()?.start().await
    }
}

impl IdentityChoice {
    /// Loads the SVID (and follows its files' rotation from now on) and logs who this
    /// program is; or, for `--insecure`, warns that nothing is authenticated.
    pub async fn start(self) -> Result<Security, IdentityOptionsError> {
        match self {
            Self::Insecure => {
                tracing::warn!(
                    "development mode (--insecure): no authentication. Every listener and \
                     call is plaintext, no peer proves who it is, and anyone who can reach a \
                     socket can use it. Never run this in production"
                );
                Ok(Security::insecure())
            }
            Self::Files(files) => {
                let source = FileSource::start(files.clone(), DEFAULT_POLL_INTERVAL).await?;
                let current = source.identity().current();
                tracing::info!(
                    spiffe_id = %current.svid.spiffe_id(),
                    trust_domain = %current.bundle.trust_domain(),
                    not_after = %rfc3339(current.svid.not_after()),
                    cert = %files.cert.display(),
                    "identity: mutual TLS on every listener and call; the SVID files are re-read when they change"
                );
                Ok(Security::from_files(source))
            }
        }
    }
}

/// A certificate's expiry as RFC 3339, UTC.
fn rfc3339(at: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        identity: IdentityArgs,
    }

    fn choice(args: &[&str]) -> Result<IdentityChoice, IdentityOptionsError> {
        let cli = Cli::try_parse_from([&["nsm"], args].concat()).expect("parses");
        cli.identity.choice()
    }

    #[test]
    fn all_three_files_or_insecure_and_nothing_else() {
        let files = ["--svid-cert", "c", "--svid-key", "k", "--trust-bundle", "b"];
        assert_eq!(
            choice(&files).unwrap(),
            IdentityChoice::Files(SvidFiles {
                cert: "c".into(),
                key: "k".into(),
                bundle: "b".into(),
            })
        );
        assert_eq!(choice(&["--insecure"]).unwrap(), IdentityChoice::Insecure);
        let neither = choice(&[]).unwrap_err().to_string();
        assert!(
            neither.contains("--svid-cert") && neither.contains("--insecure"),
            "{neither}"
        );
        let both = choice(&[&files[..], &["--insecure"]].concat())
            .unwrap_err()
            .to_string();
        assert!(both.contains("both given"), "{both}");
        let some = choice(&["--svid-cert", "c"]).unwrap_err().to_string();
        assert!(
            some.contains("--svid-key and --trust-bundle are missing"),
            "{some}"
        );
    }

    #[tokio::test]
    async fn files_that_do_not_load_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("svid.pem");
        let args = IdentityArgs {
            svid_cert: Some(missing.clone()),
            svid_key: Some(dir.path().join("key.pem")),
            trust_bundle: Some(dir.path().join("bundle.pem")),
            insecure: false,
        };
        let error = args.start().await.unwrap_err().to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }
}
