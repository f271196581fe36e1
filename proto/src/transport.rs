//! Addresses NSM peers listen on and dial: `unix:///path` and `tcp://host:port`, the URL forms
//! NSM uses for nsmgr sockets and endpoint URLs (`nsm-api.md` §9).
//!
//! This module owns turning such a URL into a tonic [`Channel`] (with a unix-socket connector
//! where needed), plaintext or mutual TLS ([`security`]), and into a bound listener. It does
//! not own `inode://` URLs, which name a file descriptor passed over grpcfd and are refused
//! here with an error that says so.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use nsm_identity::{DialTarget, SpiffeConnector};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

pub mod options;
pub mod security;

pub use options::{IdentityArgs, IdentityChoice, IdentityOptionsError};
pub use security::{ClientSecurity, Security, ServerSecurity};

/// A URL nsm-rs can listen on or dial.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerUrl {
    /// `unix:///absolute/path`
    Unix(PathBuf),
    /// `tcp://host:port` (host a name or an address; IPv6 in brackets)
    Tcp { host: String, port: u16 },
}

/// A URL that is not `unix:///path` or `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", nsm_domain::quote::quote(url))]
pub struct UrlError {
    pub url: String,
    pub problem: String,
}

impl FromStr for PeerUrl {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| UrlError {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("has no scheme; use unix:///path or tcp://host:port"))?;
        match scheme {
            "unix" if rest.starts_with('/') && rest.len() > 1 => Ok(Self::Unix(rest.into())),
            "unix" => Err(bad(
                "a unix URL needs an absolute path: unix:///run/nsm/nsm.sock",
            )),
            "tcp" => {
                if rest.contains('/') {
                    return Err(bad("a tcp URL is tcp://host:port, with no path"));
                }
                let (host, port) = rest
                    .rsplit_once(':')
                    .filter(|(host, _)| !host.is_empty())
                    .ok_or_else(|| bad("a tcp URL needs host:port"))?;
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad("the port must be a number in 0-65535"))?;
                Ok(Self::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            "inode" => Err(bad(
                "inode:// URLs name a descriptor passed over grpcfd, which nsm-rs does not support yet",
            )),
            _ => Err(bad("the scheme must be unix or tcp")),
        }
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// How long dialling may take before a call fails (NSM's nsmgr uses 750 ms).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(750);

impl PeerUrl {
    /// A channel to this peer dialled with `security`: plaintext (as [`Self::channel`]) or
    /// mutual TLS, whose server identity each handshake records in the security's
    /// `ServerPeer`. The connect timeout covers the TLS handshake.
    pub fn channel_with(&self, connect_timeout: Duration, security: &ClientSecurity) -> Channel {
        let ClientSecurity::Mtls { config, server } = security else {
            return self.channel(connect_timeout);
        };
        let target = match self {
            Self::Unix(path) => DialTarget::Unix(path.clone()),
            Self::Tcp { host, port } => DialTarget::Tcp(format!("{host}:{port}")),
        };
        // The URI only has to be well-formed: the connector dials `target`, and TLS runs
        // below tonic, so the scheme stays http.
        Endpoint::from_static("http://nsm.invalid")
            .connect_timeout(connect_timeout)
            .connect_with_connector_lazy(SpiffeConnector::new(
                target,
                Arc::clone(config),
                server.clone(),
            ))
    }

    /// A plaintext channel to this peer (`--insecure`, and tests). It connects lazily, on
    /// the first call, and reconnects after a failure, so one channel per peer can be kept
    /// and shared.
    pub fn channel(&self, connect_timeout: Duration) -> Channel {
        match self {
            Self::Tcp { host, port } => {
                let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
                    .expect("host and port were validated when the URL was parsed");
                endpoint.connect_timeout(connect_timeout).connect_lazy()
            }
            Self::Unix(path) => {
                // The authority is unused on a unix socket, but HTTP/2 needs one.
                let endpoint =
                    Endpoint::from_static("http://localhost").connect_timeout(connect_timeout);
                let path = path.clone();
                endpoint.connect_with_connector_lazy(tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
            }
        }
    }

    /// The socket address of a tcp URL whose host is an IP address (`tcp://0.0.0.0:5001`).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp { host, port } => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host.parse().ok().map(|ip| SocketAddr::new(ip, *port))
            }
            Self::Unix(_) => None,
        }
    }

    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Self::Unix(path) => Some(path),
            Self::Tcp { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_nsm_uses() {
        assert_eq!(
            "unix:///run/nsm/nsm.sock".parse::<PeerUrl>().unwrap(),
            PeerUrl::Unix("/run/nsm/nsm.sock".into())
        );
        let tcp = "tcp://127.0.0.1:5001".parse::<PeerUrl>().unwrap();
        assert_eq!(tcp.socket_addr(), Some("127.0.0.1:5001".parse().unwrap()));
        let v6 = "tcp://[::1]:5001".parse::<PeerUrl>().unwrap();
        assert_eq!(v6.socket_addr(), Some("[::1]:5001".parse().unwrap()));
        assert_eq!(v6.to_string(), "tcp://[::1]:5001");
    }

    #[test]
    fn refuses_what_it_cannot_dial_with_a_reason() {
        for (url, why) in [
            ("localhost:5001", "no scheme"),
            ("unix://relative", "absolute path"),
            ("tcp://host", "host:port"),
            ("tcp://host:99999", "0-65535"),
            ("tcp://host:1/x", "no path"),
            ("inode://1/2", "grpcfd"),
            ("http://x:1", "unix or tcp"),
        ] {
            let error = url.parse::<PeerUrl>().unwrap_err();
            assert!(error.to_string().contains(why), "{url}: {error}");
        }
    }
}
