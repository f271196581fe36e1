//! X.509-SVIDs (a certificate chain whose leaf names one SPIFFE ID, with its private key),
//! trust bundles (the roots of one trust domain), and what we learn from a peer's chain.
//!
//! Everything here is parsed once, when it is loaded, so a TLS handshake only clones `Arc`s:
//! an [`Svid`] carries the rustls `CertifiedKey` it is served as, a [`TrustBundle`] the
//! `RootCertStore` chains are checked against.
//!
//! The SPIFFE rules applied to a leaf (X.509-SVID specification): exactly one URI SAN, and
//! it is a valid SPIFFE ID; the leaf is not a CA. A trust bundle's roots may carry the trust
//! domain's own ID (`spiffe://<td>`, as SPIRE's CA does); when they do it must be the
//! expected trust domain, which is how a bundle of another trust domain is caught at load.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};

/// Why a certificate is not a usable X.509-SVID leaf. Used for our own SVID and for peers'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// The bytes are not an X.509 certificate.
    #[error("the certificate is not valid X.509 DER: {0}")]
    NotX509(String),
    /// No URI SAN at all: a certificate made for a DNS name, not an X.509-SVID.
    #[error("the certificate carries no SPIFFE ID (no URI SAN): it is not an X.509-SVID")]
    NoSpiffeId,
    /// More than one URI SAN, which the X.509-SVID specification forbids.
    #[error("the certificate carries {count} URI SANs; an X.509-SVID has exactly one")]
    SeveralUris { count: usize },
    /// The one URI SAN is not a valid SPIFFE ID.
    #[error("the certificate's URI SAN is not a valid SPIFFE ID: {0}")]
    InvalidSpiffeId(#[from] SpiffeIdError),
    /// The leaf is a CA certificate, which an X.509-SVID leaf must not be.
    #[error("the certificate for {0} is a CA certificate; an X.509-SVID leaf must not be")]
    LeafIsCa(SpiffeId),
}

/// Why an SVID (certificate chain plus key) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SvidError {
    /// The certificate PEM is malformed: fix or re-issue the file.
    #[error("cannot read the certificate PEM: {0}")]
    CertificatePem(rustls_pki_types::pem::Error),
    /// The certificate PEM holds no `CERTIFICATE` block (empty or half-written file?).
    #[error("the certificate PEM holds no CERTIFICATE block")]
    NoCertificate,
    /// The key PEM holds no key, or a malformed one.
    #[error(
        "cannot read the private key PEM (expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block): {0}"
    )]
    KeyPem(rustls_pki_types::pem::Error),
    /// The leaf certificate is not an X.509-SVID.
    #[error(transparent)]
    Leaf(#[from] LeafError),
    /// The private key is not the one the leaf certificate was issued for.
    #[error(
        "the private key does not match the certificate's public key (is the key file from another SVID?)"
    )]
    KeyMismatch,
    /// The key is of a type rustls cannot sign with, or the chain is unusable.
    #[error("cannot use the private key: {0}")]
    UnusableKey(rustls::Error),
}

/// Why a trust bundle could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle PEM is malformed.
    #[error("cannot read the trust bundle PEM: {0}")]
    Pem(rustls_pki_types::pem::Error),
    /// The bundle holds no certificate.
    #[error("the trust bundle holds no CERTIFICATE block")]
    Empty,
    /// A root is not a certificate webpki accepts as a trust anchor.
    #[error("root certificate {index} of the trust bundle is unusable: {cause}")]
    BadRoot { index: usize, cause: String },
    /// A root names (by its `spiffe://<td>` URI SAN) another trust domain than expected.
    #[error(
        "the trust bundle is for trust domain {found}, but {expected} was expected (a bundle of another trust domain?)"
    )]
    OtherTrustDomain {
        expected: TrustDomain,
        found: TrustDomain,
    },
    /// No root names a trust domain and none was given.
    #[error(
        "no root of the trust bundle names its trust domain (spiffe://<td> URI SAN); say which trust domain it is for"
    )]
    UnknownTrustDomain,
}

/// What a leaf certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The one SPIFFE ID of the leaf.
    pub spiffe_id: SpiffeId,
    /// When the leaf stops being valid.
    pub not_after: SystemTime,
    /// The leaf's public key (DER SubjectPublicKeyInfo): what the peer's tokens verify with.
    pub public_key: SubjectPublicKeyInfoDer<'static>,
}

impl PeerIdentity {
    /// Reads the identity from a leaf certificate, applying the X.509-SVID rules.
    pub fn from_leaf(leaf: &CertificateDer<'_>) -> Result<Self, LeafError> {
        let (_, cert) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| LeafError::NotX509(e.to_string()))?;
        let spiffe_id = single_spiffe_id(&cert)?;
        if cert.is_ca() {
            return Err(LeafError::LeafIsCa(spiffe_id));
        }
        Ok(Self {
            spiffe_id,
            not_after: system_time(cert.validity().not_after.timestamp()),
            public_key: SubjectPublicKeyInfoDer::from(cert.public_key().raw.to_vec()),
        })
    }
}

/// This process's X.509-SVID: chain, key, and what the leaf says.
#[derive(Debug)]
pub struct Svid {
    identity: PeerIdentity,
    key: PrivateKeyDer<'static>,
    certified_key: Arc<CertifiedKey>,
}

impl Svid {
    /// Loads an SVID from the certificate PEM (leaf first, then intermediates) and the key PEM.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, SvidError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(SvidError::CertificatePem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(SvidError::KeyPem)?;
        Self::from_der(chain, key)
    }

    /// Builds an SVID from DER: `chain[0]` is the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, SvidError> {
        let leaf = chain.first().ok_or(SvidError::NoCertificate)?;
        let identity = PeerIdentity::from_leaf(leaf)?;
        let certified_key = CertifiedKey::from_der(chain, key.clone_key(), &crate::tls::provider())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => SvidError::KeyMismatch,
                other => SvidError::UnusableKey(other),
            })?;
        Ok(Self {
            identity,
            key,
            certified_key: Arc::new(certified_key),
        })
    }

    /// The SVID's SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.identity.spiffe_id
    }

    /// When the leaf certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.identity.not_after
    }

    /// The leaf and intermediates, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.certified_key.cert
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.certified_key.cert[0]
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// What a peer learns from this SVID (ID, expiry, public key).
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// The chain and signing key as rustls serves them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified_key)
    }
}

/// The roots of one trust domain, which peers' chains are verified against.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    trust_domain: TrustDomain,
    roots: Vec<CertificateDer<'static>>,
    root_store: Arc<RootCertStore>,
}

impl TrustBundle {
    /// Loads a bundle whose roots name their trust domain (`spiffe://<td>` URI SAN).
    pub fn from_pem(pem: &[u8]) -> Result<Self, BundleError> {
        let roots = read_roots(pem)?;
        let named = named_trust_domain(&roots, None)?;
        let trust_domain = named.ok_or(BundleError::UnknownTrustDomain)?;
        Self::from_roots(trust_domain, roots)
    }

    /// Loads a bundle for `trust_domain`. Roots that name no trust domain are accepted; a
    /// root naming another one is refused.
    pub fn from_pem_for(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, BundleError> {
        let roots = read_roots(pem)?;
        named_trust_domain(&roots, Some(&trust_domain))?;
        Self::from_roots(trust_domain, roots)
    }

    fn from_roots(
        trust_domain: TrustDomain,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, BundleError> {
        let mut store = RootCertStore::empty();
        for (index, root) in roots.iter().enumerate() {
            store.add(root.clone()).map_err(|e| BundleError::BadRoot {
                index,
                cause: e.to_string(),
            })?;
        }
        Ok(Self {
            trust_domain,
            roots,
            root_store: Arc::new(store),
        })
    }

    /// The trust domain the bundle is for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The root certificates.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The roots as webpki trust anchors.
    pub fn root_store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.root_store)
    }
}

fn read_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BundleError> {
    let roots = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(BundleError::Pem)?;
    if roots.is_empty() {
        return Err(BundleError::Empty);
    }
    Ok(roots)
}

/// The trust domain the roots name, checking they agree with each other and with `expected`.
fn named_trust_domain(
    roots: &[CertificateDer<'static>],
    expected: Option<&TrustDomain>,
) -> Result<Option<TrustDomain>, BundleError> {
    let mut named: Option<TrustDomain> = expected.cloned();
    for (index, root) in roots.iter().enumerate() {
        let (_, cert) =
            X509Certificate::from_der(root.as_ref()).map_err(|e| BundleError::BadRoot {
                index,
                cause: e.to_string(),
            })?;
        let Ok(id) = single_spiffe_id(&cert) else {
            continue; // A root without a SPIFFE ID names no trust domain.
        };
        match &named {
            Some(td) if !id.is_member_of(td) => {
                return Err(BundleError::OtherTrustDomain {
                    expected: td.clone(),
                    found: id.trust_domain(),
                });
            }
            Some(_) => {}
            None => named = Some(id.trust_domain()),
        }
    }
    Ok(named)
}

fn single_spiffe_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, LeafError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| LeafError::NotX509(e.to_string()))?;
    let uris: Vec<&str> = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    match uris.as_slice() {
        [] => Err(LeafError::NoSpiffeId),
        [uri] => Ok(SpiffeId::parse(uri)?),
        many => Err(LeafError::SeveralUris { count: many.len() }),
    }
}

fn system_time(unix_seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_seconds.unsigned_abs());
    if unix_seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests;
