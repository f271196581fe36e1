//! Mutual TLS on the transports: what a listener serves with ([`ServerSecurity`]), what a
//! channel dials with ([`ClientSecurity`]), and both made from the one choice a process
//! makes at start ([`Security`]: an X.509-SVID, or `--insecure`).
//!
//! With an identity, every listener (unix sockets included) requires a client certificate
//! and every call presents one; each side verifies the peer's chain against the trust
//! bundle and requires a SPIFFE ID of the trust domain (`nsm-identity` owns those checks,
//! and the rustls configs follow the identity's rotation on every handshake). Who may do
//! what is not decided here. Plaintext exists for `--insecure` (development) and for the
//! tests of the refusals.

use std::sync::Arc;

use nsm_identity::{FileSource, Identity, ServerPeer, SpiffeId, client_config, server_config};
use rustls::{ClientConfig, ServerConfig};

/// How a listener serves.
#[derive(Debug, Clone)]
pub enum ServerSecurity {
    /// No TLS (`--insecure`): callers have no identity.
    Plaintext,
    /// Mutual TLS: a caller without an SVID of the trust domain is refused at the
    /// handshake, and each request carries the caller's identity
    /// (`nsm_identity::caller_identity`).
    Mtls(Arc<ServerConfig>),
}

/// How a channel dials.
#[derive(Debug, Clone)]
pub enum ClientSecurity {
    /// No TLS (`--insecure`).
    Plaintext,
    /// Mutual TLS; `server` holds the identity of the server of the latest handshake.
    Mtls {
        config: Arc<ClientConfig>,
        server: ServerPeer,
    },
}

impl ClientSecurity {
    /// Mutual TLS as `identity`, with a new [`ServerPeer`] slot.
    pub fn mtls(identity: &Identity) -> Self {
        Self::Mtls {
            config: client_config(identity),
            server: ServerPeer::default(),
        }
    }

    /// Where the server's identity is recorded (None in plaintext).
    pub fn server_peer(&self) -> Option<&ServerPeer> {
        match self {
            Self::Plaintext => None,
            Self::Mtls { server, .. } => Some(server),
        }
    }
}

/// A process's transport security: mutual TLS as its identity, or plaintext under
/// `--insecure`. Cheap to clone; clones share the identity (and keep its file watcher
/// running while any of them lives).
#[derive(Debug, Clone)]
pub struct Security(Mode);

#[derive(Debug, Clone)]
enum Mode {
    Insecure,
    Mtls(Arc<Mtls>),
}

#[derive(Debug)]
struct Mtls {
    identity: Identity,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// Feeds `identity` from files; dropping it would stop following their rotation.
    _source: Option<FileSource>,
}

impl Security {
    /// Plaintext everywhere: no authentication (`--insecure`).
    pub fn insecure() -> Self {
        Self(Mode::Insecure)
    }

    /// Mutual TLS as `identity` (one held in memory: tests, the demo's own checks).
    pub fn mtls(identity: Identity) -> Self {
        Self::with_source(identity, None)
    }

    /// Mutual TLS as the identity `source` reads from files, following their rotation.
    pub fn from_files(source: FileSource) -> Self {
        Self::with_source(source.identity(), Some(source))
    }

    fn with_source(identity: Identity, source: Option<FileSource>) -> Self {
        Self(Mode::Mtls(Arc::new(Mtls {
            server: server_config(&identity),
            client: client_config(&identity),
            identity,
            _source: source,
        })))
    }

    /// Whether this is `--insecure` (plaintext, no identities).
    pub fn is_insecure(&self) -> bool {
        matches!(self.0, Mode::Insecure)
    }

    /// The process's identity (None under `--insecure`).
    pub fn identity(&self) -> Option<&Identity> {
        match &self.0 {
            Mode::Insecure => None,
            Mode::Mtls(mtls) => Some(&mtls.identity),
        }
    }

    /// The process's current SPIFFE ID (None under `--insecure`).
    pub fn spiffe_id(&self) -> Option<SpiffeId> {
        self.identity()
            .map(|identity| identity.current().svid.spiffe_id().clone())
    }

    /// What its listeners serve with.
    pub fn server(&self) -> ServerSecurity {
        match &self.0 {
            Mode::Insecure => ServerSecurity::Plaintext,
            Mode::Mtls(mtls) => ServerSecurity::Mtls(Arc::clone(&mtls.server)),
        }
    }

    /// What one channel dials with; each call has its own [`ServerPeer`] slot, so make one
    /// per channel.
    pub fn client(&self) -> ClientSecurity {
        match &self.0 {
            Mode::Insecure => ClientSecurity::Plaintext,
            Mode::Mtls(mtls) => ClientSecurity::Mtls {
                config: Arc::clone(&mtls.client),
                server: ServerPeer::default(),
            },
        }
    }
}
