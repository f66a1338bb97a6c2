//! Opening the files synack writes (`-w`, `--server-side`, `--mermaid`):
//! the one place that creates or truncates a file, so that running synack
//! under sudo never lets the caller write where they could not themselves.
//!
//! The rules (issue 11):
//! - **Under sudo** (effective uid 0 with `SUDO_UID`/`SUDO_GID` naming
//!   another user), every open runs with the caller's filesystem identity:
//!   `setfsuid`/`setfsgid` on the opening thread and the caller's groups.
//!   The kernel then refuses what the caller could not write, and a file
//!   it creates is the caller's from birth: no path is ever chowned.
//! - **The last component is opened with `O_NOFOLLOW`.** A symbolic link
//!   there is followed only when the link and its directory belong to the
//!   opening user (or root) and nobody else can replace the link (the
//!   directory is not writable by others, or is sticky). `/dev/stdout` and
//!   a link in your own home still work; a link planted in `/tmp` or in
//!   someone else's directory is refused.
//! - **Opened without truncation first.** As plain root, an existing file
//!   with other hard links in a directory others can write to is refused
//!   before a byte of it is lost; [`create_all`] compares every output by
//!   (device, inode) before it truncates any, so two spellings of one file
//!   are a usage error, not a destroyed capture.
//! - A file this run created can be removed again ([`Receipt::remove_created`])
//!   when the run fails before it wrote anything worth keeping.
//!
//! Privileged: switching the filesystem identity needs root (CAP_SETUID,
//! CAP_SETGID); without sudo nothing is switched. `setgroups` applies to the
//! whole process (glibc broadcasts it), so open output files before other
//! threads start.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{self, Gid, Uid, UnlinkatFlags};

/// A file by its identity on disk, whatever its spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(stat: &FileStat) -> FileId {
        FileId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }
}

/// Whose permissions output files are opened with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The process's own (a user, or root without sudo).
    Own { uid: u32 },
    /// The user who ran `sudo` (from `SUDO_UID`, `SUDO_GID`, `SUDO_USER`).
    Caller {
        uid: u32,
        gid: u32,
        user: Option<String>,
    },
}

impl Identity {
    /// From the process's effective uid and sudo's variables.
    pub fn from_env() -> Identity {
        let var = |name| std::env::var(name).ok();
        Identity::decide(
            unistd::geteuid().as_raw(),
            var("SUDO_UID").as_deref(),
            var("SUDO_GID").as_deref(),
            var("SUDO_USER"),
        )
    }

    /// Root with `SUDO_UID` and `SUDO_GID` naming another user acts as
    /// that user; anyone else acts as themselves (a non-root process
    /// could not switch, and needs not: its files are its own).
    pub fn decide(
        euid: u32,
        sudo_uid: Option<&str>,
        sudo_gid: Option<&str>,
        sudo_user: Option<String>,
    ) -> Identity {
        let parse = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u32>().ok());
        match (euid, parse(sudo_uid), parse(sudo_gid)) {
            (0, Some(uid), Some(gid)) if uid != 0 => Identity::Caller {
                uid,
                gid,
                user: sudo_user.filter(|u| !u.is_empty()),
            },
            _ => Identity::Own { uid: euid },
        }
    }

    /// The uid the kernel checks the opens against.
    pub fn uid(&self) -> u32 {
        match self {
            Identity::Own { uid } | Identity::Caller { uid, .. } => *uid,
        }
    }

    /// Takes on this identity on the current thread until the guard drops.
    fn assume(&self) -> Result<Assumed, OutFileError> {
        match self {
            Identity::Own { .. } => Ok(Assumed { restore: None }),
            Identity::Caller { uid, gid, user } => {
                Assumed::switch(Uid::from_raw(*uid), Gid::from_raw(*gid), user.as_deref())
            }
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Own { uid: 0 } => f.write_str("root"),
            Identity::Own { uid } => write!(f, "uid {uid}"),
            Identity::Caller {
                uid,
                user: Some(user),
                ..
            } => write!(f, "{user} (uid {uid}, who ran sudo)"),
            Identity::Caller { uid, .. } => write!(f, "uid {uid} (who ran sudo)"),
        }
    }
}

/// The caller's filesystem identity on this thread; root's comes back on
/// drop.
struct Assumed {
    /// Root's supplementary groups, to put back.
    restore: Option<Vec<Gid>>,
}

impl Assumed {
    fn switch(uid: Uid, gid: Gid, user: Option<&str>) -> Result<Assumed, OutFileError> {
        let failed = |source: io::Error| OutFileError::Identity {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            source,
        };
        let saved = unistd::getgroups().map_err(|e| failed(e.into()))?;
        // The caller's own groups, as `id` shows them; without a user name
        // only their primary group (never root's groups).
        let groups = user
            .and_then(|u| CString::new(u).ok())
            .and_then(|u| unistd::getgrouplist(&u, gid).ok())
            .unwrap_or_else(|| vec![gid]);
        unistd::setgroups(&groups).map_err(|e| failed(e.into()))?;
        let guard = Assumed {
            restore: Some(saved),
        };
        unistd::setfsgid(gid);
        unistd::setfsuid(uid);
        // Both calls return the previous value even when they fail: a
        // second call reports what is in force now.
        if unistd::setfsgid(gid) != gid || unistd::setfsuid(uid) != uid {
            return Err(failed(io::Error::from(io::ErrorKind::PermissionDenied)));
        }
        Ok(guard)
    }
}

impl Drop for Assumed {
    fn drop(&mut self) {
        if let Some(groups) = self.restore.take() {
            let root = Uid::effective();
            unistd::setfsuid(root);
            unistd::setfsgid(Gid::effective());
            if let Err(e) = unistd::setgroups(&groups) {
                log::warn!("restoring root's supplementary groups: {e}");
            }
        }
    }
}

/// Why an output file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OutFileError {
    #[error("{flag} {}: not a file name (give a file, not a directory)", path.display())]
    NotAFile { flag: &'static str, path: PathBuf },
    #[error(
        "{flag} {}: {who} may not write there, and synack opens its files as the user \
         who ran sudo",
        path.display()
    )]
    Denied {
        flag: &'static str,
        path: PathBuf,
        who: Identity,
        #[source]
        source: io::Error,
    },
    #[error(
        "{flag} {}: a symbolic link that someone else could have planted or replaced \
         (link or directory not owned by {who}, or a directory others can write); synack \
         does not write through it: give the real file's path",
        path.display()
    )]
    Symlink {
        flag: &'static str,
        path: PathBuf,
        who: Identity,
    },
    #[error(
        "{flag} {}: this file has {links} names and sits in a directory others can write \
         to; as root synack does not overwrite it (one of its names may be a file of \
         someone else): give another file",
        path.display()
    )]
    HardLinked {
        flag: &'static str,
        path: PathBuf,
        links: u64,
    },
    #[error(
        "{flag} {} is also the file of {other} {}: give each output its own file",
        path.display(),
        other_path.display()
    )]
    Clash {
        flag: &'static str,
        path: PathBuf,
        other: &'static str,
        other_path: PathBuf,
    },
    #[error("creating {} ({flag})", path.display())]
    Open {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {}, which this failed run created", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("taking on uid {uid} and gid {gid} (SUDO_UID, SUDO_GID) to open the output files")]
    Identity {
        uid: u32,
        gid: u32,
        #[source]
        source: io::Error,
    },
}

/// An output file, open for writing, not yet written.
pub struct OutputFile {
    pub file: File,
    pub receipt: Receipt,
}

/// What is known about an opened output file, for the messages and to undo
/// its creation.
#[derive(Debug)]
pub struct Receipt {
    path: PathBuf,
    id: FileId,
    regular: bool,
    /// The directory and the name this run created the file under.
    created: Option<(OwnedFd, OsString)>,
    identity: Identity,
}

impl Receipt {
    /// The path as the user gave it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn id(&self) -> FileId {
        self.id
    }

    /// This run created the file (it did not exist before).
    pub fn created(&self) -> bool {
        self.created.is_some()
    }

    /// Removes the file again if this run created it and the name still
    /// points at it (compared by device and inode, as the opening user).
    /// Returns whether it was removed.
    ///
    /// # Errors
    /// Taking on the identity, or the unlink itself.
    pub fn remove_created(&self) -> Result<bool, OutFileError> {
        let Some((dir, name)) = &self.created else {
            return Ok(false);
        };
        let _as = self.identity.assume()?;
        let still_ours = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileId::of(&st) == self.id);
        if !still_ours {
            return Ok(false);
        }
        unistd::unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir).map_err(|e| {
            OutFileError::Remove {
                path: self.path.clone(),
                source: e.into(),
            }
        })?;
        Ok(true)
    }
}

/// Opens one output file, truncated, by the rules of this module.
///
/// # Errors
/// See [`OutFileError`].
pub fn create(flag: &'static str, path: &Path) -> Result<OutputFile, OutFileError> {
    let mut files = create_all(&[(flag, path)])?;
    Ok(files.remove(0))
}

/// Opens every output file (named by its option, for the messages), checks
/// that no two are the same file, then truncates them. On any error, the
/// files created so far are removed again and none is truncated.
///
/// # Errors
/// See [`OutFileError`].
pub fn create_all(outputs: &[(&'static str, &Path)]) -> Result<Vec<OutputFile>, OutFileError> {
    create_all_as(&Identity::from_env(), outputs)
}

/// [`create_all`] with the identity given rather than read from the
/// environment.
///
/// # Errors
/// See [`OutFileError`].
pub fn create_all_as(
    identity: &Identity,
    outputs: &[(&'static str, &Path)],
) -> Result<Vec<OutputFile>, OutFileError> {
    let mut opened: Vec<(&'static str, OutputFile)> = Vec::with_capacity(outputs.len());
    let undo = |opened: &[(&'static str, OutputFile)]| {
        for (_, f) in opened {
            if let Err(e) = f.receipt.remove_created() {
                log::warn!("removing {}: {e}", f.receipt.path.display());
            }
        }
    };
    for &(flag, path) in outputs {
        let file = match open_one(flag, path, identity) {
            Ok(file) => file,
            Err(e) => {
                undo(&opened);
                return Err(e);
            }
        };
        // Two outputs in one regular file would overwrite each other;
        // devices (`/dev/null` twice) are fine.
        let clash = opened.iter().find(|(_, other)| {
            file.receipt.regular && other.receipt.regular && other.receipt.id == file.receipt.id
        });
        if let Some((other, other_file)) = clash {
            let err = OutFileError::Clash {
                flag,
                path: path.to_path_buf(),
                other,
                other_path: other_file.receipt.path.clone(),
            };
            opened.push((flag, file));
            undo(&opened);
            return Err(err);
        }
        opened.push((flag, file));
    }
    for (flag, f) in &opened {
        if f.receipt.regular && !f.receipt.created() {
            if let Err(e) = unistd::ftruncate(f.file.as_fd(), 0) {
                let err = OutFileError::Open {
                    flag,
                    path: f.receipt.path.clone(),
                    source: e.into(),
                };
                undo(&opened);
                return Err(err);
            }
        }
    }
    Ok(opened.into_iter().map(|(_, f)| f).collect())
}

/// The directory and the last component of an output path.
fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    match path.components().next_back()? {
        Component::Normal(name) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            Some((dir.unwrap_or(Path::new(".")), name))
        }
        _ => None,
    }
}

/// Whether a symbolic link may be followed: the link and its directory
/// belong to `me` or root, and nobody else can replace the link (the
/// directory is not writable by group or others, or it is sticky, where
/// only the link's owner may remove it).
pub fn may_follow(dir_uid: u32, dir_mode: u32, link_uid: u32, me: u32) -> bool {
    let trusted = |uid| uid == 0 || uid == me;
    let others_write = dir_mode & 0o022 != 0;
    let sticky = dir_mode & 0o1000 != 0;
    trusted(dir_uid) && trusted(link_uid) && (!others_write || sticky)
}

/// A directory only its owner can change, and that owner is trusted.
fn private_dir(dir: &FileStat, me: u32) -> bool {
    (dir.st_uid == 0 || dir.st_uid == me) && dir.st_mode & 0o022 == 0
}

/// The error for `path` (given as `flag`) when a call failed with `e`: a
/// permission refused to the calling user is [`OutFileError::Denied`].
fn open_error(flag: &'static str, path: &Path, me: &Identity, e: Errno) -> OutFileError {
    match (me, e) {
        (Identity::Caller { .. }, Errno::EACCES | Errno::EPERM | Errno::EROFS) => {
            OutFileError::Denied {
                flag,
                path: path.to_path_buf(),
                who: me.clone(),
                source: e.into(),
            }
        }
        _ => OutFileError::Open {
            flag,
            path: path.to_path_buf(),
            source: e.into(),
        },
    }
}

/// Opens `name` in `dir` for writing: created new if it can be, else the
/// existing file, and through a symbolic link only where
/// [`may_follow`] allows. Returns the file and whether it was created.
fn open_or_create(
    dir: &OwnedFd,
    dir_stat: &FileStat,
    name: &OsStr,
    flag: &'static str,
    path: &Path,
    me: &Identity,
) -> Result<(OwnedFd, bool), OutFileError> {
    let fail = |e: Errno| open_error(flag, path, me, e);
    let write = OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let mode = Mode::from_bits_truncate(0o666);
    let mut created = false;
    let mut fd = None;
    // Bounded: each round loses a race with someone removing or creating
    // the name at the same moment.
    for _ in 0..3 {
        match openat(dir, name, write | OFlag::O_CREAT | OFlag::O_EXCL, mode) {
            Ok(new) => {
                created = true;
                fd = Some(new);
                break;
            }
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(fail(e)),
        }
        match openat(dir, name, write | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(existing) => {
                fd = Some(existing);
                break;
            }
            Err(Errno::ENOENT) => continue,
            Err(Errno::ELOOP) => {
                let link = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(fail)?;
                let is_link =
                    SFlag::from_bits_truncate(link.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK;
                if !is_link || !may_follow(dir_stat.st_uid, dir_stat.st_mode, link.st_uid, me.uid())
                {
                    return Err(OutFileError::Symlink {
                        flag,
                        path: path.to_path_buf(),
                        who: me.clone(),
                    });
                }
                // Whether the kernel creates the target is not known: the
                // file is never removed again.
                fd = Some(openat(dir, name, write | OFlag::O_CREAT, mode).map_err(fail)?);
                break;
            }
            Err(e) => return Err(fail(e)),
        }
    }
    let fd = fd.ok_or_else(|| fail(Errno::EAGAIN))?;
    Ok((fd, created))
}

fn open_one(flag: &'static str, path: &Path, me: &Identity) -> Result<OutputFile, OutFileError> {
    let (dir_path, name) = split(path).ok_or_else(|| OutFileError::NotAFile {
        flag,
        path: path.to_path_buf(),
    })?;
    let _as = me.assume()?;
    let fail = |e: Errno| open_error(flag, path, me, e);
    // Intermediate components are followed as by any tool; the kernel
    // checks them against the identity in force.
    let dir = openat(
        AT_FDCWD,
        dir_path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let dir_stat = fstat(&dir).map_err(fail)?;
    let (fd, created) = open_or_create(&dir, &dir_stat, name, flag, path, me)?;
    let stat = fstat(&fd).map_err(fail)?;
    let regular = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
    let links = stat.st_nlink as u64;
    let root_alone = matches!(me, Identity::Own { uid: 0 });
    if !created && regular && links > 1 && root_alone && !private_dir(&dir_stat, 0) {
        return Err(OutFileError::HardLinked {
            flag,
            path: path.to_path_buf(),
            links,
        });
    }
    Ok(OutputFile {
        file: File::from(fd),
        receipt: Receipt {
            path: path.to_path_buf(),
            id: FileId::of(&stat),
            regular,
            created: created.then(|| (dir, name.to_os_string())),
            identity: me.clone(),
        },
    })
}

/// Whether two output paths name one file, before either is opened: by
/// (device, inode) when both exist, else by their directory (resolved)
/// and name. [`create_all`] checks again on the open files.
pub fn same_output(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            x.is_file() && y.is_file() && (x.dev(), x.ino()) == (y.dev(), y.ino())
        }
        _ => match (resolved(a), resolved(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The path with its directory resolved (`canonicalize`) and its name kept.
fn resolved(path: &Path) -> Option<PathBuf> {
    let (dir, name) = split(path)?;
    Some(std::fs::canonicalize(dir).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn bytes(p: &Path) -> &[u8] {
        p.as_os_str().as_bytes()
    }

    /// As this process, whatever SUDO_UID says (`sudo cargo test`).
    fn me() -> Identity {
        Identity::Own {
            uid: unistd::geteuid().as_raw(),
        }
    }

    fn create_all(outputs: &[(&'static str, &Path)]) -> Result<Vec<OutputFile>, OutFileError> {
        create_all_as(&me(), outputs)
    }

    fn create(flag: &'static str, path: &Path) -> Result<OutputFile, OutFileError> {
        Ok(create_all(&[(flag, path)])?.remove(0))
    }
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn root_under_sudo_acts_as_the_caller() {
        assert_eq!(
            Identity::decide(0, Some("1000"), Some("1000"), Some("ann".into())),
            Identity::Caller {
                uid: 1000,
                gid: 1000,
                user: Some("ann".into())
            }
        );
        // sudo to root from root, no sudo, or a user: their own identity.
        assert_eq!(
            Identity::decide(0, Some("0"), Some("0"), None),
            Identity::Own { uid: 0 }
        );
        assert_eq!(
            Identity::decide(0, None, None, None),
            Identity::Own { uid: 0 }
        );
        assert_eq!(
            Identity::decide(0, Some("x"), Some("1000"), None),
            Identity::Own { uid: 0 }
        );
        assert_eq!(
            Identity::decide(1000, Some("1001"), Some("1001"), None),
            Identity::Own { uid: 1000 }
        );
    }

    #[test]
    fn links_are_followed_only_where_nobody_else_could_plant_them() {
        // Your own link in your own directory.
        assert!(may_follow(1000, 0o755, 1000, 1000));
        // /dev/stdout: root's link in root's directory.
        assert!(may_follow(0, 0o755, 0, 1000));
        // Your own link in /tmp (sticky): only you can replace it.
        assert!(may_follow(0, 0o1777, 1000, 1000));
        // Someone else's link in /tmp.
        assert!(!may_follow(0, 0o1777, 1001, 1000));
        assert!(!may_follow(0, 0o1777, 1001, 0));
        // Any link in a directory others can write, not sticky.
        assert!(!may_follow(0, 0o777, 0, 0));
        assert!(!may_follow(1000, 0o775, 1000, 1000));
        // Root following a user's link in the user's home.
        assert!(!may_follow(1000, 0o755, 1000, 0));
    }

    #[test]
    fn a_path_needs_a_file_name() {
        assert_eq!(
            split(Path::new("x.pcap")).map(|(d, n)| (bytes(d), n.as_bytes())),
            Some((&b"."[..], &b"x.pcap"[..]))
        );
        assert_eq!(
            split(Path::new("/tmp/a/x.pcap")).map(|(d, n)| (bytes(d), n.as_bytes())),
            Some((&b"/tmp/a"[..], &b"x.pcap"[..]))
        );
        assert!(split(Path::new("/")).is_none());
        assert!(split(Path::new("a/..")).is_none());
        assert!(split(Path::new("")).is_none());
    }

    #[test]
    fn two_spellings_of_one_file_clash_and_nothing_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("x.pcap");
        std::fs::write(&a, b"keep me").unwrap();
        let b = dir.path().join(".").join("x.pcap");
        assert!(same_output(&a, &b));
        let err = create_all(&[("-w", &a), ("--mermaid", &b)])
            .err()
            .expect("a clash");
        assert!(matches!(err, OutFileError::Clash { .. }), "{err}");
        assert!(err.to_string().contains("is also the file of -w"), "{err}");
        assert_eq!(std::fs::read(&a).unwrap(), b"keep me");
    }

    #[test]
    fn a_clash_on_a_new_file_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("new.pcap");
        let b = dir.path().join("sub").join("..").join("new.pcap");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(same_output(&a, &b));
        assert!(!same_output(&a, &dir.path().join("other.pcap")));
        assert!(create_all(&[("-w", &a), ("--server-side", &b)]).is_err());
        assert!(!a.exists());
    }

    #[test]
    fn devices_may_take_two_outputs() {
        let null = Path::new("/dev/null");
        assert!(create_all(&[("-w", null), ("--mermaid", null)]).is_ok());
    }

    #[test]
    fn an_existing_file_is_truncated_and_a_created_one_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.pcap");
        std::fs::write(&old, b"old capture").unwrap();
        let mut f = create("-w", &old).unwrap();
        assert!(!f.receipt.created());
        f.file.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"new");
        assert!(!f.receipt.remove_created().unwrap());
        assert!(old.exists());

        let new = dir.path().join("new.pcap");
        let f = create("-w", &new).unwrap();
        assert!(f.receipt.created());
        assert!(f.receipt.remove_created().unwrap());
        assert!(!new.exists());
    }

    #[test]
    fn a_created_file_replaced_since_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        let f = create("-w", &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        assert!(!f.receipt.remove_created().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }

    #[test]
    fn a_link_in_a_directory_others_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let link = open.join("evil.pcap");
        symlink(&target, &link).unwrap();
        let err = create("-w", &link).err().expect("refused");
        assert!(matches!(err, OutFileError::Symlink { .. }), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // The same link in a private directory is followed.
        let private = dir.path().join("mine.pcap");
        symlink(&target, &private).unwrap();
        let f = create("-w", &private).unwrap();
        assert!(!f.receipt.created());
        assert_eq!(std::fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn a_directory_is_not_an_output_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = create("-w", dir.path()).err().expect("refused");
        assert!(err.to_string().contains("-w"), "{err}");
        assert!(matches!(
            create("-w", Path::new("/")),
            Err(OutFileError::NotAFile { .. })
        ));
    }
}
