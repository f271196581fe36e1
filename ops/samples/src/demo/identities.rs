//! The demo's throw-away trust domain, `nsm-rs.demo`: a CA made in memory for this run,
//! and an X.509-SVID for each program, so the demo runs with mutual TLS everywhere, as a
//! production mesh does, without SPIRE.
//!
//! Each program's SVID is written to the demo's directory as `<name>.cert.pem`,
//! `<name>.key.pem` (mode 0600) and `<name>.bundle.pem` and handed to the program with
//! `--svid-cert`, `--svid-key` and `--trust-bundle`. The demo's own calls (health checks,
//! the registry query) present an SVID of its own, held in memory. The CA's key never
//! leaves this process and is gone when the demo ends.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use nsm_identity::{Identity, SpiffeId, SvidFiles, ThrowAwayTrustDomain};
use nsm_proto::transport::Security;

/// The demo's trust domain.
pub(super) const TRUST_DOMAIN: &str = "nsm-rs.demo";
/// How long the SVIDs are valid: longer than anyone leaves a demo running.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The CA of this run, and the demo's own identity.
#[derive(Debug)]
pub(super) struct Identities {
    ca: ThrowAwayTrustDomain,
    /// What the demo's own calls to its children present.
    pub(super) own: Security,
}

/// One program's SVID, written to files.
#[derive(Debug, Clone)]
pub(super) struct ProgramSvid {
    pub(super) spiffe_id: SpiffeId,
    pub(super) files: SvidFiles,
}

impl ProgramSvid {
    /// `--svid-cert <cert> --svid-key <key> --trust-bundle <bundle>`.
    pub(super) fn flags(&self) -> Vec<String> {
        [
            ("--svid-cert", &self.files.cert),
            ("--svid-key", &self.files.key),
            ("--trust-bundle", &self.files.bundle),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
        .collect()
    }
}

impl Identities {
    /// A new CA, and the demo's own SVID.
    pub(super) fn new() -> anyhow::Result<Self> {
        let ca = ThrowAwayTrustDomain::new(TRUST_DOMAIN)
            .context("cannot make the demo's trust domain")?;
        let own_id = id(&ca, "/demo")?;
        let issued = ca.issue(&own_id, LIFETIME)?;
        let identity = Identity::new(issued.svid()?, issued.bundle()?)?;
        Ok(Self {
            ca,
            own: Security::mtls(identity),
        })
    }

    /// An SVID for `path` (`/node/<name>`), written to `dir` as `<file_name>.*.pem`.
    pub(super) fn issue(
        &self,
        path: &str,
        dir: &Path,
        file_name: &str,
    ) -> anyhow::Result<ProgramSvid> {
        let spiffe_id = id(&self.ca, path)?;
        let files = self
            .ca
            .issue(&spiffe_id, LIFETIME)?
            .write_files(dir, file_name)
            .with_context(|| format!("cannot write the SVID of {spiffe_id}"))?;
        Ok(ProgramSvid { spiffe_id, files })
    }
}

fn id(ca: &ThrowAwayTrustDomain, path: &str) -> anyhow::Result<SpiffeId> {
    SpiffeId::from_parts(ca.trust_domain(), path)
        .with_context(|| format!("{path:?} is not a SPIFFE ID path"))
}
