//! Network namespaces as the kernel forwarder names, enters and finds them.
//!
//! A namespace is named by a `file://` URL, as NSM's kernel mechanism names it in its
//! `inodeURL` parameter: `file:///proc/<pid>/ns/net` (a process's) or
//! `file:///var/run/netns/<name>` (one made by `ip netns add`). [`Netns::open`] checks that
//! the file exists and is a namespace, and holds it open, so the handle names the same
//! namespace for as long as it lives even if the process or the bind mount goes away.
//!
//! Entering: a netlink or ICMP socket belongs to the namespace of the thread that made it.
//! [`Netns::run`] runs a closure on a thread of its own that has entered the namespace;
//! sockets it makes keep working from any thread afterwards. A thread of a pool never
//! enters another namespace (it would stay there for the next task).
//!
//! [`all`] lists every namespace on the host (the bind mounts under `/run/netns` and every
//! process's), for reconcile. [`create_named`] and [`delete_named`] make and remove named
//! namespaces the way `ip netns add/delete` does, for `nsm demo` and the benchmark.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::sched::CloneFlags;

/// Where `ip netns` keeps named namespaces (`/var/run` is a link to `/run` on Debian).
pub const NAMED_NETNS_DIR: &str = "/run/netns";

/// Why a namespace could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetnsError {
    /// The URL is not a `file://` URL of an absolute path. Send `file:///proc/<pid>/ns/net`.
    #[error("network namespace URL {url:?}: {problem}")]
    BadUrl { url: String, problem: String },
    /// Nothing is at that path (the process ended, or the namespace was deleted).
    #[error("network namespace {url} does not exist")]
    Missing { url: String },
    /// The file exists but is not a network namespace.
    #[error("{url} is not a network namespace")]
    NotNetns { url: String },
    /// The namespace could not be entered or read: usually a missing capability
    /// (CAP_SYS_ADMIN to enter it).
    #[error("cannot use network namespace {url}: {reason}")]
    Unusable { url: String, reason: String },
    /// A named namespace to create is there already.
    #[error("network namespace {name} exists already")]
    Exists { name: String },
}

/// What tells two namespace files apart: the device and inode of the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsId {
    pub dev: u64,
    pub ino: u64,
}

/// An open network namespace.
#[derive(Debug, Clone)]
pub struct Netns {
    file: Arc<File>,
    id: NetnsId,
    url: String,
}

impl PartialEq for Netns {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Netns {
    /// The namespace a `file://` URL names (an `inodeURL` mechanism parameter).
    pub fn open(url: &str) -> Result<Self, NetnsError> {
        let path = path_of(url)?;
        Self::open_path(&path, url.to_owned())
    }

    /// The namespace of this process (of its first thread).
    pub fn current() -> Result<Self, NetnsError> {
        Self::open_path(Path::new("/proc/self/ns/net"), own_url())
    }

    /// A named namespace, as `ip netns` names them.
    pub fn named(name: &str) -> Result<Self, NetnsError> {
        let path = Path::new(NAMED_NETNS_DIR).join(name);
        let url = format!("file://{}", path.display());
        Self::open_path(&path, url)
    }

    fn open_path(path: &Path, url: String) -> Result<Self, NetnsError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetnsError::Missing { url });
            }
            Err(e) => {
                return Err(NetnsError::Unusable {
                    url,
                    reason: e.to_string(),
                });
            }
        };
        let id = identity(&file).map_err(|e| NetnsError::Unusable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        // Every namespace file is on nsfs: a regular file, or a mount point under
        // /run/netns whose namespace is gone, is on another device.
        if id.dev != nsfs_device() {
            return Err(NetnsError::NotNetns { url });
        }
        Ok(Self {
            file: Arc::new(file),
            id,
            url,
        })
    }

    pub fn id(&self) -> NetnsId {
        self.id
    }

    /// The URL it was opened by (for messages and records).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The descriptor netlink moves a link into this namespace by (`IFLA_NET_NS_FD`).
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `work` on a new thread that has entered this namespace, and returns its result.
    pub async fn run<T, F>(&self, work: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let file = self.file.clone();
        let url = self.url.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("nsm-netns".into())
            .spawn(move || {
                let entered = nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET);
                let outcome = match entered {
                    Ok(()) => Ok(work()),
                    Err(Errno::EINVAL) => Err(NetnsError::NotNetns { url }),
                    Err(e) => Err(NetnsError::Unusable {
                        url,
                        reason: format!("setns: {}", e.desc()),
                    }),
                };
                let _ = tx.send(outcome);
            });
        if let Err(e) = spawned {
            return Err(NetnsError::Unusable {
                url: self.url.clone(),
                reason: format!("cannot start a thread: {e}"),
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(NetnsError::Unusable {
                url: self.url.clone(),
                reason: "the thread that entered it ended early".into(),
            })
        })
    }
}

/// The path a `file://` namespace URL names.
pub fn path_of(url: &str) -> Result<PathBuf, NetnsError> {
    let bad = |problem: &str| NetnsError::BadUrl {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    if url.starts_with("inode://") {
        return Err(bad(
            "inode:// URLs need file descriptors passed over the socket (grpcfd), which nsm-rs does not take; name the namespace as file:///proc/<pid>/ns/net",
        ));
    }
    let Some(path) = url.strip_prefix("file://") else {
        return Err(bad(
            "must be a file:// URL such as file:///proc/<pid>/ns/net or file:///var/run/netns/<name>",
        ));
    };
    if !path.starts_with('/') || path.split('/').any(|part| part == "..") {
        return Err(bad("must name an absolute path without .."));
    }
    Ok(PathBuf::from(path))
}

/// This process's namespace as a URL.
pub fn own_url() -> String {
    format!("file:///proc/{}/ns/net", std::process::id())
}

fn identity(file: &File) -> nix::Result<NetnsId> {
    let stat = nix::sys::stat::fstat(file)?;
    Ok(NetnsId {
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

/// The device of nsfs, where every namespace file lives.
fn nsfs_device() -> u64 {
    static DEVICE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *DEVICE.get_or_init(|| {
        File::open("/proc/self/ns/net")
            .ok()
            .and_then(|f| identity(&f).ok())
            .map_or(0, |id| id.dev)
    })
}

/// Every network namespace on the host this process can see: its own, the named ones
/// (`/run/netns`), and every process's, each once. Unreadable entries are skipped (a
/// process may end while it is listed).
pub fn all() -> Vec<Netns> {
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    let mut keep = |ns: Result<Netns, NetnsError>| {
        if let Ok(ns) = ns
            && seen.insert(ns.id)
        {
            found.push(ns);
        }
    };
    keep(Netns::current());
    if let Ok(entries) = std::fs::read_dir(NAMED_NETNS_DIR) {
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str() {
                keep(Netns::named(name));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            keep(Netns::open(&format!("file:///proc/{pid}/ns/net")));
        }
    }
    found
}

/// Makes a named namespace, as `ip netns add NAME` does: a new namespace bind-mounted on
/// `/run/netns/NAME`, so that it lives without a process in it.
pub async fn create_named(name: &str) -> Result<Netns, NetnsError> {
    check_name(name)?;
    let dir = Path::new(NAMED_NETNS_DIR);
    let path = dir.join(name);
    let url = format!("file://{}", path.display());
    let unusable = |reason: String| NetnsError::Unusable {
        url: url.clone(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| unusable(format!("mkdir {}: {e}", dir.display())))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(NetnsError::Exists { name: name.into() });
        }
        Err(e) => return Err(unusable(format!("create {}: {e}", path.display()))),
    }
    let target = path.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("nsm-netns-add".into())
        .spawn(move || {
            let made = nix::sched::unshare(CloneFlags::CLONE_NEWNET).and_then(|()| {
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    nix::mount::MsFlags::MS_BIND,
                    None::<&str>,
                )
            });
            let _ = tx.send(made);
        });
    let made = match spawned {
        Ok(_) => rx.await.unwrap_or(Err(Errno::ECANCELED)),
        Err(_) => Err(Errno::EAGAIN),
    };
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(unusable(format!(
            "cannot make a network namespace: {} (needs CAP_SYS_ADMIN)",
            e.desc()
        )));
    }
    Netns::named(name)
}

/// Removes a named namespace made by [`create_named`] or `ip netns add`; its links go
/// with it once nothing else holds it. A name that is not there is not an error.
pub fn delete_named(name: &str) -> Result<(), NetnsError> {
    check_name(name)?;
    let path = Path::new(NAMED_NETNS_DIR).join(name);
    if !path.exists() {
        return Ok(());
    }
    // Not mounted (a half-made one) is fine: the file is removed either way.
    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_file(&path).map_err(|e| NetnsError::Unusable {
        url: format!("file://{}", path.display()),
        reason: format!("cannot remove it: {e}"),
    })
}

fn check_name(name: &str) -> Result<(), NetnsError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(ok) {
        return Err(NetnsError::BadUrl {
            url: name.into(),
            problem:
                "a namespace name is 1-64 characters of [A-Za-z0-9._-], not starting with a dot"
                    .into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_absolute_file_paths_only() {
        assert_eq!(
            path_of("file:///proc/1/ns/net").unwrap(),
            PathBuf::from("/proc/1/ns/net")
        );
        for (url, problem) in [
            ("inode://4/4026531840", "grpcfd"),
            ("/proc/1/ns/net", "file:// URL"),
            ("file://proc/1/ns/net", "absolute"),
            ("file:///run/netns/../../etc/passwd", "absolute"),
        ] {
            let error = path_of(url).unwrap_err().to_string();
            assert!(error.contains(problem), "{url}: {error}");
        }
    }

    #[test]
    fn a_regular_file_or_a_missing_path_is_not_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let url = format!("file://{}", file.display());
        assert_eq!(
            Netns::open(&url).unwrap_err(),
            NetnsError::NotNetns { url: url.clone() }
        );
        let missing = format!("file://{}", dir.path().join("gone").display());
        assert!(matches!(
            Netns::open(&missing).unwrap_err(),
            NetnsError::Missing { .. }
        ));
    }

    #[test]
    fn the_own_namespace_is_listed_once() {
        let own = Netns::current().unwrap();
        let listed = all();
        assert_eq!(listed.iter().filter(|ns| ns.id() == own.id()).count(), 1);
    }
}
