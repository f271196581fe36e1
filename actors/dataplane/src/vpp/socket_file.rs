//! The memif socket files of MEMIF ends, on disk. VPP binds a memif socket file with an
//! absolute path as it is, without making its folder, and never unlinks it (not when its
//! last memif is deleted, not when the socket id is deleted, not when VPP stops); so the
//! forwarder makes the folder before VPP binds and removes the file once VPP stopped
//! listening on it.
//!
//! - **Folders**: each missing folder of the path is made with mode 0755 (whatever the
//!   umask), so a workload of another user can reach the socket. A folder that exists is
//!   never changed: the operator's permissions stand.
//! - **Files**: removed only if the path is absolute, is a UNIX socket (not a symlink, not a
//!   regular file) and nobody listens on it any more, by the rule VPP itself uses before it
//!   replaces a socket file: a connect refused means the file is stale. A socket something
//!   listens on (a live vWire's, or another program's) is left alone.
//! - Abstract names (`@name`, `abstract:name`) have no file and need neither.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// The mode of the folders made for socket files.
const FOLDER_MODE: u32 = 0o755;

/// The file behind a socket name, if it has one: an absolute path.
fn on_disk(socket_file: &str) -> Option<&Path> {
    let path = Path::new(socket_file);
    path.is_absolute().then_some(path)
}

/// Makes the missing folders of `socket_file`'s path, outermost first, each with mode 0755;
/// returns those it made (none for an abstract name or when the folder exists).
pub(crate) fn make_folder(socket_file: &str) -> io::Result<Vec<PathBuf>> {
    let Some(folder) = on_disk(socket_file).and_then(Path::parent) else {
        return Ok(Vec::new());
    };
    let missing: Vec<&Path> = folder.ancestors().take_while(|dir| !dir.exists()).collect();
    let mut made = Vec::new();
    for dir in missing.into_iter().rev() {
        match std::fs::create_dir(dir) {
            Ok(()) => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(FOLDER_MODE))?;
                made.push(dir.to_owned());
            }
            // Made meanwhile by someone else (another end plumbed at once): theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    if !folder.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a folder",
            folder.display()
        )));
    }
    Ok(made)
}

/// What became of a socket file when its end was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    Removed,
    /// No file there (or an abstract name): nothing to do.
    Absent,
    /// Something at the path that is not ours to remove: not a socket, or a socket that
    /// something still listens on.
    Kept,
}

/// Removes `socket_file` if it is a stale UNIX socket (see the module header).
pub(crate) fn remove_stale(socket_file: &str) -> io::Result<Removal> {
    let Some(path) = on_disk(socket_file) else {
        return Ok(Removal::Absent);
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::Absent),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() || listened_on(path)? {
        return Ok(Removal::Kept);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::Absent),
        Err(e) => Err(e),
    }
}

/// Whether something listens on the socket at `path`: only a refused connect says no. The
/// probe is a non-blocking stream socket, so it never waits on a full backlog and never
/// reaches VPP's memif listener (a seqpacket socket answers a stream connect with
/// EPROTOTYPE, which counts as listening).
fn listened_on(path: &Path) -> io::Result<bool> {
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    probe.set_nonblocking(true)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(false),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn missing_folders_are_made_0755_and_existing_ones_are_left_as_they_are() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = root.path().join("a/b/m.sock");
        let made = make_folder(&file.to_string_lossy()).unwrap();
        assert_eq!(made, [root.path().join("a"), root.path().join("a/b")]);
        assert_eq!(mode(&root.path().join("a")), 0o755);
        assert_eq!(mode(&root.path().join("a/b")), 0o755);
        assert_eq!(
            mode(root.path()),
            0o700,
            "an existing folder keeps its mode"
        );
        assert!(make_folder(&file.to_string_lossy()).unwrap().is_empty());
        assert!(make_folder("@abstract").unwrap().is_empty());
        assert!(
            make_folder("abstract:nsm,netns_name=/proc/1/ns/net")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("plain"), "x").unwrap();
        let file = root.path().join("plain/m.sock");
        assert!(make_folder(&file.to_string_lossy()).is_err());
    }

    #[test]
    fn only_a_socket_nobody_listens_on_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let file = |name: &str| root.path().join(name).to_string_lossy().into_owned();

        let live = UnixListener::bind(file("live.sock")).unwrap();
        assert_eq!(remove_stale(&file("live.sock")).unwrap(), Removal::Kept);
        drop(live);
        assert_eq!(remove_stale(&file("live.sock")).unwrap(), Removal::Removed);
        assert!(!root.path().join("live.sock").exists());

        std::fs::write(root.path().join("plain"), "x").unwrap();
        assert_eq!(remove_stale(&file("plain")).unwrap(), Removal::Kept);
        std::os::unix::fs::symlink("/nowhere", root.path().join("link")).unwrap();
        assert_eq!(remove_stale(&file("link")).unwrap(), Removal::Kept);

        assert_eq!(remove_stale(&file("never.sock")).unwrap(), Removal::Absent);
        assert_eq!(remove_stale("@abstract").unwrap(), Removal::Absent);
    }
}
