//! Mutual TLS between SPIFFE identities, for every gRPC listener and call (unix sockets
//! included), following the rotating [`Identity`].
//!
//! - [`server_config`]: serves the current SVID, REQUIRES a client certificate, verifies
//!   its chain against the current bundle and requires a SPIFFE ID of the bundle's trust
//!   domain.
//! - [`client_config`]: presents the current SVID, verifies the server's chain against the
//!   current bundle and requires a SPIFFE ID of the trust domain. No DNS-name check: SVIDs
//!   carry no DNS names, and any SPIFFE ID of the trust domain passes the handshake
//!   (authorization decides the rest, in `nsm-policy`).
//! - `incoming` and `connector`: the tonic adapters (server stream, client connector).
//!
//! Both configs read `Identity::current()` on every handshake, so a rotated SVID or bundle
//! applies to the next connection without a restart, and established connections keep the
//! keys they were made with. TLS 1.2 and 1.3 are enabled (the only versions rustls has);
//! ALPN is `h2`. Session resumption is off on both sides: a resumed session would skip
//! verifying the peer against the *current* bundle, and gRPC connections are long-lived,
//! so resumption would save little.
//!
//! A refusal names its cause in the error of the side that refused, and sends the alert
//! that fits it: an unknown issuer sends `unknown_ca`, an expired certificate
//! `certificate_expired`, a missing client certificate `certificate_required`, a peer
//! without a SPIFFE ID or of another trust domain `certificate_unknown` (the text is in the
//! refusing side's error, [`PeerRejected`]).

mod connector;
mod incoming;
mod plaintext;
mod verify;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};

pub use connector::{DialTarget, DialedStream, ServerPeer, SpiffeConnector};
pub use incoming::{PeerConnectInfo, TlsConnection, TlsIncoming, caller_identity};
pub use verify::PeerRejected;

use crate::source::Identity;

/// The ALPN protocol gRPC runs over.
const ALPN_H2: &[u8] = b"h2";

/// The ring provider every config and verifier here uses (one per process).
///
/// rustls 0.23.48 deprecates ring's provider because it lacks post-quantum key exchange;
/// the workspace chose ring deliberately (aws-lc-rs needs cmake and a C toolchain), and the
/// Go NSM peers we interoperate with offer classical groups too.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// A server config that serves `identity`'s current SVID and requires clients of its
/// trust domain.
pub fn server_config(identity: &Identity) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(Arc::new(verify::SpiffeClientVerifier::new(
            identity.clone(),
        )))
        .with_cert_resolver(Arc::new(verify::CurrentSvid::new(identity.clone())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// A client config that presents `identity`'s current SVID and requires servers of its
/// trust domain.
pub fn client_config(identity: &Identity) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous() // Our verifier replaces webpki's DNS-name check with a SPIFFE check.
        .with_custom_certificate_verifier(Arc::new(verify::SpiffeServerVerifier::new(
            identity.clone(),
        )))
        .with_client_cert_resolver(Arc::new(verify::CurrentSvid::new(identity.clone())));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    // No SNI: the server name we pass is a placeholder (see `connector`), not a host.
    config.enable_sni = false;
    Arc::new(config)
}
