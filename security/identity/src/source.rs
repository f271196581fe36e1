//! Where this process's identity comes from, and how a rotation reaches its users.
//!
//! [`Identity`] is the one shared, swappable value: the current SVID with the trust bundle
//! it is checked against, published through a `tokio::sync::watch` channel. Readers take
//! `current()` (an `Arc`, so a handshake never holds a lock) or wait on `changes()`. The
//! TLS configs in `tls` read it on every handshake, so a rotation applies to new
//! connections at once and never touches established ones.
//!
//! [`FileSource`] feeds an `Identity` from three PEM files (certificate chain, key, bundle),
//! for hosts without SPIRE. It polls their modification time and length every interval
//! (default 1 s); on a change it re-reads all three and swaps them in together. A change
//! that does not load (a half-written file, a key from another SVID) keeps the old
//! identity, is logged at WARN once naming the file and the cause, and is retried every
//! tick until the files load again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::{BundleError, Svid, SvidError, TrustBundle};

/// How often [`FileSource`] looks at its files unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why an SVID and bundle cannot be used together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The bundle is for another trust domain than the SVID: give the bundle of the SVID's.
    #[error("the SVID {svid} is of trust domain {}, but the trust bundle is for {bundle}", svid.trust_domain())]
    OtherTrustDomain { svid: SpiffeId, bundle: TrustDomain },
}

/// Why a [`FileSource`] could not load its files.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file is missing or unreadable: check the path and permissions.
    #[error("cannot read the {role} file {}: {source}", path.display())]
    Read {
        role: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate and key files do not make an X.509-SVID.
    #[error("the SVID in {} (key {}) is unusable: {source}", cert.display(), key.display())]
    Svid {
        cert: PathBuf,
        key: PathBuf,
        source: SvidError,
    },
    /// The bundle file is unusable or of another trust domain than the SVID.
    #[error("the trust bundle {} is unusable: {source}", path.display())]
    Bundle { path: PathBuf, source: BundleError },
    /// The SVID and bundle do not belong together.
    #[error(transparent)]
    Mismatch(#[from] IdentityError),
}

/// The current SVID and the bundle peers are verified against, always of one trust domain.
#[derive(Debug)]
pub struct IdentitySnapshot {
    pub svid: Svid,
    pub bundle: TrustBundle,
}

/// The shared, swappable identity of this process. Cheap to clone; all clones see the same
/// value.
#[derive(Debug, Clone)]
pub struct Identity {
    current: Arc<watch::Sender<Arc<IdentitySnapshot>>>,
}

impl Identity {
    /// An identity starting with `svid`, verified against `bundle`.
    pub fn new(svid: Svid, bundle: TrustBundle) -> Result<Self, IdentityError> {
        let snapshot = snapshot(svid, bundle)?;
        Ok(Self {
            current: Arc::new(watch::Sender::new(snapshot)),
        })
    }

    /// The SVID and bundle new handshakes use now.
    pub fn current(&self) -> Arc<IdentitySnapshot> {
        Arc::clone(&self.current.borrow())
    }

    /// A receiver that wakes on every replacement (the current value counts as seen).
    pub fn changes(&self) -> watch::Receiver<Arc<IdentitySnapshot>> {
        self.current.subscribe()
    }

    /// Swaps in a rotated SVID and/or bundle. Connections already made are untouched.
    pub fn replace(&self, svid: Svid, bundle: TrustBundle) -> Result<(), IdentityError> {
        let snapshot = snapshot(svid, bundle)?;
        self.current.send_replace(snapshot);
        Ok(())
    }
}

fn snapshot(svid: Svid, bundle: TrustBundle) -> Result<Arc<IdentitySnapshot>, IdentityError> {
    if !svid.spiffe_id().is_member_of(bundle.trust_domain()) {
        return Err(IdentityError::OtherTrustDomain {
            svid: svid.spiffe_id().clone(),
            bundle: bundle.trust_domain().clone(),
        });
    }
    Ok(Arc::new(IdentitySnapshot { svid, bundle }))
}

/// The three files an SVID is read from (`--svid-cert`, `--svid-key`, `--trust-bundle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvidFiles {
    /// Leaf certificate first, then intermediates.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
    /// The trust domain's root certificates.
    pub bundle: PathBuf,
}

/// An [`Identity`] read from files and re-read when they change. Dropping it stops the
/// watching; the `Identity` keeps its last value.
#[derive(Debug)]
pub struct FileSource {
    identity: Identity,
    watcher: JoinHandle<()>,
}

impl FileSource {
    /// Loads the files (any error names the file and the cause) and starts watching them
    /// every `poll_interval`.
    pub async fn start(files: SvidFiles, poll_interval: Duration) -> Result<Self, SourceError> {
        let (svid, bundle) = load(&files).await?;
        let identity = Identity::new(svid, bundle)?;
        let stamp = stamp(&files).await.ok();
        let watcher = tokio::spawn(watch_files(files, identity.clone(), stamp, poll_interval));
        Ok(Self { identity, watcher })
    }

    /// The identity the files feed.
    pub fn identity(&self) -> Identity {
        self.identity.clone()
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// What tells us a file changed: modification time and length of each of the three.
type Stamp = [(SystemTime, u64); 3];

async fn stamp(files: &SvidFiles) -> Result<Stamp, SourceError> {
    let one = |role, path: &Path| {
        let path = path.to_owned();
        async move {
            let meta = tokio::fs::metadata(&path)
                .await
                .map_err(|source| SourceError::Read { role, path, source })?;
            Ok::<_, SourceError>((
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            ))
        }
    };
    Ok([
        one("SVID certificate", &files.cert).await?,
        one("SVID key", &files.key).await?,
        one("trust bundle", &files.bundle).await?,
    ])
}

async fn watch_files(
    files: SvidFiles,
    identity: Identity,
    mut loaded: Option<Stamp>,
    poll_interval: Duration,
) {
    let mut ticks = tokio::time::interval(poll_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The stamp of the last change we warned about (`Some(None)`: a file was missing), so
    // files that stay broken are reported once, not every tick.
    let mut warned: Option<Option<Stamp>> = None;
    loop {
        ticks.tick().await;
        let now = stamp(&files).await;
        if now.as_ref().ok() == loaded.as_ref() {
            continue;
        }
        match reload(&files, &identity).await {
            Ok(()) => {
                loaded = now.ok();
                warned = None;
                let current = identity.current();
                tracing::info!(
                    spiffe_id = %current.svid.spiffe_id(),
                    not_after = ?current.svid.not_after(),
                    trust_domain = %current.bundle.trust_domain(),
                    "identity files changed; new handshakes use the new SVID and bundle"
                );
            }
            Err(error) if warned != Some(now.as_ref().ok().copied()) => {
                warned = Some(now.ok());
                tracing::warn!(
                    %error,
                    "identity files changed but do not load; keeping the previous identity and retrying"
                );
            }
            Err(error) => tracing::debug!(%error, "identity files still do not load"),
        }
    }
}

async fn reload(files: &SvidFiles, identity: &Identity) -> Result<(), SourceError> {
    let (svid, bundle) = load(files).await?;
    Ok(identity.replace(svid, bundle)?)
}

async fn load(files: &SvidFiles) -> Result<(Svid, TrustBundle), SourceError> {
    let cert = read("SVID certificate", &files.cert).await?;
    let key = read("SVID key", &files.key).await?;
    let bundle = read("trust bundle", &files.bundle).await?;
    let svid = Svid::from_pem(&cert, &key).map_err(|source| SourceError::Svid {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })?;
    let bundle =
        TrustBundle::from_pem_for(svid.spiffe_id().trust_domain(), &bundle).map_err(|source| {
            SourceError::Bundle {
                path: files.bundle.clone(),
                source,
            }
        })?;
    Ok((svid, bundle))
}

async fn read(role: &'static str, path: &Path) -> Result<Vec<u8>, SourceError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| SourceError::Read {
            role,
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests;
