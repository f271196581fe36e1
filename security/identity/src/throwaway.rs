//! A throw-away trust domain: a CA made in memory (rcgen, ECDSA P-256) that issues
//! X.509-SVIDs, for `nsm demo` and for tests. Nothing here is meant for production: the
//! CA key lives in process memory and is gone when the value is dropped.
//!
//! The SVIDs follow the X.509-SVID specification and SPIRE's defaults: one URI SAN (the
//! SPIFFE ID), a P-256 key (what ES256 path tokens need), key usage digitalSignature,
//! extended key usage serverAuth and clientAuth (one SVID serves both ends of mutual TLS),
//! not a CA. `not_before` lies a minute in the past so that peers whose clocks are slightly
//! behind accept a fresh SVID.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

use crate::source::SvidFiles;
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::{BundleError, Svid, SvidError, TrustBundle};

/// How far in the past a fresh certificate's validity starts (clock skew between peers).
const BACKDATE: Duration = Duration::from_secs(60);
/// How long the throw-away CA is valid; longer than any demo or test runs.
const CA_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a throw-away certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum ThrowAwayError {
    /// rcgen refused the parameters or could not generate a key.
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The trust domain name is not valid.
    #[error(transparent)]
    TrustDomain(#[from] crate::spiffe_id::SpiffeIdError),
    /// The files could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A CA for one trust domain that issues SVIDs on demand.
#[derive(Debug)]
pub struct ThrowAwayTrustDomain {
    trust_domain: TrustDomain,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl ThrowAwayTrustDomain {
    /// Makes a new CA for `trust_domain` (e.g. `"nsm-rs.demo"`). Its certificate carries the
    /// trust domain's ID, so the bundle names its trust domain.
    pub fn new(trust_domain: &str) -> Result<Self, ThrowAwayError> {
        let trust_domain = TrustDomain::new(trust_domain)?;
        let mut params = CertificateParams::default();
        let now = SystemTime::now();
        // A distinct subject per CA: webpki finds issuers by name, so a second CA of the
        // same name would make its SVIDs fail as "bad signature" instead of "unknown issuer".
        let made_at = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        params.distinguished_name = name(&format!(
            "nsm-rs throw-away CA for {trust_domain} ({made_at})"
        ));
        params.subject_alt_names = vec![uri_san(&trust_domain.id())?];
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + CA_LIFETIME).into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let ca = CertifiedIssuer::self_signed(params, key)?;
        Ok(Self { trust_domain, ca })
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The CA certificate as a PEM trust bundle.
    pub fn bundle_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate as a trust bundle.
    pub fn bundle(&self) -> Result<TrustBundle, BundleError> {
        TrustBundle::from_pem(self.bundle_pem().as_bytes())
    }

    /// Issues an SVID for `spiffe_id`, valid from a minute ago for `lifetime` from now.
    pub fn issue(
        &self,
        spiffe_id: &SpiffeId,
        lifetime: Duration,
    ) -> Result<IssuedSvid, ThrowAwayError> {
        let now = SystemTime::now();
        self.issue_valid_between(spiffe_id, now - BACKDATE, now + lifetime)
    }

    /// Issues an SVID valid between the two instants: an expired or not-yet-valid one too
    /// (the CA does not check; tests use it to provoke those refusals).
    pub fn issue_valid_between(
        &self,
        spiffe_id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedSvid, ThrowAwayError> {
        self.issue_with_sans(
            vec![uri_san(spiffe_id)?],
            not_before,
            not_after,
            spiffe_id.to_string(),
        )
    }

    /// Issues a certificate that is NOT an X.509-SVID (a DNS name, no URI SAN), signed by
    /// this CA: for tests of the "peer without a SPIFFE ID" refusal.
    pub fn issue_without_spiffe_id(
        &self,
        dns_name: &str,
        lifetime: Duration,
    ) -> Result<IssuedSvid, ThrowAwayError> {
        let san = SanType::DnsName(Ia5String::try_from(dns_name)?);
        let now = SystemTime::now();
        self.issue_with_sans(vec![san], now - BACKDATE, now + lifetime, dns_name.into())
    }

    fn issue_with_sans(
        &self,
        subject_alt_names: Vec<SanType>,
        not_before: SystemTime,
        not_after: SystemTime,
        label: String,
    ) -> Result<IssuedSvid, ThrowAwayError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("nsm-rs throw-away SVID");
        params.subject_alt_names = subject_alt_names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(IssuedSvid {
            label,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            bundle_pem: self.bundle_pem(),
        })
    }
}

/// A certificate, its key and the issuing CA's bundle, as PEM.
#[derive(Debug, Clone)]
pub struct IssuedSvid {
    label: String,
    /// The leaf certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
    /// The CA certificate of the trust domain.
    pub bundle_pem: String,
}

impl IssuedSvid {
    /// The SPIFFE ID (or, for a non-SVID, the DNS name) it was issued for.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Parses it as an SVID (fails for [`ThrowAwayTrustDomain::issue_without_spiffe_id`]).
    pub fn svid(&self) -> Result<Svid, SvidError> {
        Svid::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }

    /// The issuing CA as a trust bundle.
    pub fn bundle(&self) -> Result<TrustBundle, BundleError> {
        TrustBundle::from_pem(self.bundle_pem.as_bytes())
    }

    /// Writes `<name>.cert.pem`, `<name>.key.pem` (mode 0600) and `<name>.bundle.pem` into
    /// `dir`, the layout `--svid-cert`, `--svid-key` and `--trust-bundle` take.
    pub fn write_files(&self, dir: &Path, name: &str) -> Result<SvidFiles, ThrowAwayError> {
        let files = SvidFiles {
            cert: dir.join(format!("{name}.cert.pem")),
            key: dir.join(format!("{name}.key.pem")),
            bundle: dir.join(format!("{name}.bundle.pem")),
        };
        write_file(&files.cert, &self.cert_pem, 0o644)?;
        write_file(&files.key, &self.key_pem, 0o600)?;
        write_file(&files.bundle, &self.bundle_pem, 0o644)?;
        Ok(files)
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), ThrowAwayError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = || {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?
            .write_all(contents.as_bytes())
    };
    write().map_err(|source| ThrowAwayError::Write {
        path: path.to_owned(),
        source,
    })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "nsm-rs");
    name.push(DnType::CommonName, common_name);
    name
}

fn uri_san(id: &SpiffeId) -> Result<SanType, rcgen::Error> {
    Ok(SanType::URI(Ia5String::try_from(id.as_str())?))
}
