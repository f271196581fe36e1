//! The SPIFFE checks rustls runs in every handshake, and the resolvers that hand it the
//! current SVID.
//!
//! Order of checks, on both sides: the chain must verify against the current bundle's
//! roots (webpki: signature, validity period, key usage), then the leaf must be an
//! X.509-SVID of the bundle's trust domain. One refinement: when the chain fails with
//! "unknown issuer" and the leaf names another trust domain, the error says so, since that
//! is the cause an operator needs to read.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::provider;
use crate::source::Identity;
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::{LeafError, PeerIdentity};

/// Why a peer whose chain is otherwise acceptable was refused. Carried inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`, so it shows in the
/// refusing side's logs as `invalid peer certificate: <message>`.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRejected {
    /// The peer's leaf is not an X.509-SVID (no URI SAN, several, or not a SPIFFE ID).
    #[error("the peer presented a certificate that is not an X.509-SVID: {0}")]
    NotAnSvid(LeafError),
    /// The peer's SPIFFE ID is of another trust domain than ours.
    #[error("the peer {peer} is of trust domain {}, but only {ours} is trusted", peer.trust_domain())]
    OtherTrustDomain { peer: SpiffeId, ours: TrustDomain },
}

/// rustls prints `CertificateError::Other` with `{:?}`; printing the message there keeps
/// every log of the refusal readable.
impl std::fmt::Debug for PeerRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<PeerRejected> for Error {
    fn from(rejected: PeerRejected) -> Self {
        Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(rejected))))
    }
}

/// After the chain check: the leaf must be an SVID of `ours`. `chain` is the chain check's
/// outcome, refined when it failed because the peer belongs to another trust domain.
fn check_spiffe_leaf(
    leaf: &CertificateDer<'_>,
    chain: Result<(), Error>,
    ours: &TrustDomain,
) -> Result<(), Error> {
    let identity = PeerIdentity::from_leaf(leaf);
    let other_domain = |id: &SpiffeId| PeerRejected::OtherTrustDomain {
        peer: id.clone(),
        ours: ours.clone(),
    };
    match (chain, identity) {
        (Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)), Ok(peer))
            if !peer.spiffe_id.is_member_of(ours) =>
        {
            Err(other_domain(&peer.spiffe_id).into())
        }
        (Err(chain_error), _) => Err(chain_error),
        (Ok(()), Err(leaf_error)) => Err(PeerRejected::NotAnSvid(leaf_error).into()),
        (Ok(()), Ok(peer)) if !peer.spiffe_id.is_member_of(ours) => {
            Err(other_domain(&peer.spiffe_id).into())
        }
        (Ok(()), Ok(_)) => Ok(()),
    }
}

/// Server side: requires a client certificate and checks it against the current bundle.
#[derive(Debug)]
pub(super) struct SpiffeClientVerifier {
    identity: Identity,
    /// webpki's client verifier for the roots it was built from; rebuilt when the bundle
    /// rotates (compared by pointer, so the common case is one lock and one clone).
    webpki: Mutex<Option<WebPkiForRoots>>,
}

/// webpki's client verifier and the roots it checks against.
type WebPkiForRoots = (Arc<RootCertStore>, Arc<dyn ClientCertVerifier>);

impl SpiffeClientVerifier {
    pub(super) fn new(identity: Identity) -> Self {
        Self {
            identity,
            webpki: Mutex::new(None),
        }
    }

    fn webpki_for(&self, roots: Arc<RootCertStore>) -> Result<Arc<dyn ClientCertVerifier>, Error> {
        let mut cached = self
            .webpki
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((cached_roots, verifier)) = cached.as_ref()
            && Arc::ptr_eq(cached_roots, &roots)
        {
            return Ok(Arc::clone(verifier));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .map_err(|e| {
                Error::General(format!("cannot verify clients with the trust bundle: {e}"))
            })?;
        *cached = Some((roots, Arc::clone(&verifier)));
        Ok(verifier)
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The roots rotate and this answer borrows from `self`; SVID clients present their
        // one SVID whatever the hint, so none is sent.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let current = self.identity.current();
        let webpki = self.webpki_for(current.bundle.root_store())?;
        let chain = webpki
            .verify_client_cert(end_entity, intermediates, now)
            .map(|_| ());
        check_spiffe_leaf(end_entity, chain, current.bundle.trust_domain())?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client side: checks the server's chain against the current bundle, with no DNS-name
/// check.
#[derive(Debug)]
pub(super) struct SpiffeServerVerifier {
    identity: Identity,
}

impl SpiffeServerVerifier {
    pub(super) fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let current = self.identity.current();
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let chain = verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &current.bundle.root_store(),
            intermediates,
            now,
            provider().signature_verification_algorithms.all,
        );
        check_spiffe_leaf(end_entity, chain, current.bundle.trust_domain())?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Hands rustls the current SVID, on both sides of the handshake.
#[derive(Debug)]
pub(super) struct CurrentSvid {
    identity: Identity,
}

impl CurrentSvid {
    pub(super) fn new(identity: Identity) -> Self {
        Self { identity }
    }
}

impl ResolvesServerCert for CurrentSvid {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.identity.current().svid.certified_key())
    }
}

impl ResolvesClientCert for CurrentSvid {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.identity.current().svid.certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
