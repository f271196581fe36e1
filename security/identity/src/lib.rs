//! Who this process is and who it talks to: SPIFFE X.509-SVIDs (from files, re-read when
//! they change, or from the SPIFFE Workload API), the trust bundle they are checked
//! against, mutual TLS for every gRPC listener and call (rustls, unix sockets included),
//! and the ES256 tokens each hop signs into its path segment.
//!
//! It knows nothing of the mesh's model: who may do what is `nsm-policy`'s to decide.
//!
//! Modules, in the order they build on each other:
//!
//! - `spiffe_id`: [`SpiffeId`] and [`TrustDomain`], valid by construction.
//! - `svid`: [`Svid`] (chain + key, parsed once into what rustls serves), [`TrustBundle`],
//!   and [`PeerIdentity`] (what a peer's leaf says: ID, expiry, public key).
//! - `source`: [`Identity`], the shared, swappable current SVID + bundle, and
//!   [`FileSource`], which feeds it from PEM files and follows their rotation.
//! - `tls`: rustls configs that follow the `Identity` on every handshake
//!   ([`server_config`], [`client_config`]) and the tonic adapters ([`TlsIncoming`],
//!   [`SpiffeConnector`]) that carry the peer's identity to handlers and callers.
//! - `token`: the ES256 path tokens ([`sign_path_token`], [`verify_path_token`]).
//! - `throwaway`: [`ThrowAwayTrustDomain`], an in-memory CA for `nsm demo` and tests.
//!
//! Invariants: an `Identity`'s SVID and bundle are always of one trust domain; a handshake
//! passes only for a peer whose chain verifies against the current bundle and whose leaf
//! is an X.509-SVID of that trust domain; a rotation never touches established
//! connections.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod source;
mod spiffe_id;
mod svid;
mod throwaway;
mod tls;
mod token;

pub use source::{
    DEFAULT_POLL_INTERVAL, FileSource, Identity, IdentityError, IdentitySnapshot, SourceError,
    SvidFiles,
};
pub use spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};
pub use svid::{BundleError, LeafError, PeerIdentity, Svid, SvidError, TrustBundle};
pub use throwaway::{IssuedSvid, ThrowAwayError, ThrowAwayTrustDomain};
pub use tls::{
    DialTarget, DialedStream, PeerConnectInfo, PeerRejected, ServerPeer, SpiffeConnector,
    TlsConnection, TlsIncoming, caller_identity, client_config, server_config,
};
pub use token::{
    DEFAULT_MAX_TOKEN_LIFETIME, PathClaims, TokenError, read_path_claims, sign_path_token,
    verify_path_token,
};
