//! File safety shared by config, rules and store: the StrictModes check on files that steer
//! the daemon, and the files hogtrap creates (the store and its `-wal`/`-shm`, reports,
//! exports), which get an explicit mode and group whatever the umask ([`Access`]).
//!
//! Imports nothing from the crate: every layer may use it. It reports facts as typed errors;
//! each caller words them in its own error type, so its messages stay its own.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Why a file failed the StrictModes check.
#[derive(Debug, thiserror::Error)]
pub enum StrictModesError {
    /// The file's metadata could not be read (it may not exist).
    #[error("{0}")]
    Metadata(#[source] io::Error),
    /// The file is writable by group or others, owned by another user, or both.
    #[error("{0}")]
    Unsafe(UnsafeFile),
}

/// The facts of a file that failed the check: a file can break both rules, and each caller
/// chooses which one it names first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mode {mode:04o}, owner uid {owner} (hogtrap runs as uid {euid})")]
pub struct UnsafeFile {
    /// The permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// The owner's uid.
    pub owner: u32,
    /// The effective uid of this process.
    pub euid: u32,
}

impl UnsafeFile {
    /// Group or others may write it.
    pub fn writable_by_others(&self) -> bool {
        self.mode & 0o022 != 0
    }

    /// Owned by someone other than this process's user or root.
    pub fn foreign_owner(&self) -> bool {
        self.owner != self.euid && self.owner != 0
    }
}

/// Like sshd's StrictModes: a file (or directory) that steers a root daemon must not be
/// writable by group or others, nor owned by someone other than the user running hogtrap
/// (or root). The sticky bit does not help: a world-writable directory (like /tmp) is safe
/// against replacement only for files we own, so it is refused too.
pub fn check_strict_modes(path: &Path) -> Result<(), StrictModesError> {
    let meta = std::fs::metadata(path).map_err(StrictModesError::Metadata)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let file = UnsafeFile {
        mode: meta.mode() & 0o7777,
        owner: meta.uid(),
        euid,
    };
    if file.writable_by_others() || file.foreign_owner() {
        return Err(StrictModesError::Unsafe(file));
    }
    Ok(())
}

/// Who may read a file hogtrap creates: its permission bits and, optionally, its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Permission bits (`0o600`), set exactly: the umask does not apply.
    pub mode: u32,
    /// The group the file is given to (`chgrp`); `None` keeps the creator's.
    pub gid: Option<u32>,
}

impl Default for Access {
    /// Only the owner (the user hogtrap runs as) may read or write.
    fn default() -> Access {
        Access {
            mode: 0o600,
            gid: None,
        }
    }
}

impl Access {
    /// Gives the open file `f` this mode and group (group first: a chgrp may clear bits).
    pub fn apply(&self, f: &File) -> io::Result<()> {
        if let Some(gid) = self.gid {
            // SAFETY: fchown on a descriptor we own; -1 leaves the owner as it is.
            if unsafe { libc::fchown(f.as_raw_fd(), u32::MAX, gid) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: fchmod on a descriptor we own.
        if unsafe { libc::fchmod(f.as_raw_fd(), self.mode as libc::mode_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Gives an existing file this mode and group; a file that is not there is fine, a
    /// symlink is refused.
    ///
    /// By path, never through a descriptor: closing any descriptor of a file drops every
    /// POSIX lock this process holds on it, and SQLite's locks on a store's `-shm` are what
    /// stop another connection from truncating the WAL index under a reader (a SIGBUS).
    pub fn apply_to_path(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: a symlink, refused", path.display()),
            ));
        }
        if let Some(gid) = self.gid {
            std::os::unix::fs::lchown(path, None, Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.mode))
    }
}

/// Creates (or truncates) `path` for writing with exactly `access`, before any byte is
/// written. A symlink at `path` is refused.
pub fn create(path: &Path, access: Access) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(access.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    access.apply(&f)?;
    Ok(f)
}

/// Writes `bytes` to `path` (a report, an export) with exactly `access`.
pub fn write(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let mut f = create(path, access)?;
    f.write_all(bytes)?;
    f.flush()
}

/// A file more open than configured: what it is, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooOpen {
    pub path: PathBuf,
    /// Its permission bits now.
    pub mode: u32,
    /// The bits the config asks for.
    pub wanted: u32,
}

impl std::fmt::Display for TooOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is mode {:04o}, more open than the configured {:04o}",
            self.path.display(),
            self.mode,
            self.wanted
        )
    }
}

/// An SQLite database file and the `-wal` and `-shm` files beside it.
pub fn with_sidecars(db: &Path) -> [PathBuf; 3] {
    let side = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_path_buf(), side("-wal"), side("-shm")]
}

/// Makes a database file ready for SQLite to open: a missing one is created empty with
/// exactly `access` (SQLite then gives its `-wal` and `-shm` the same mode, and the same
/// group when it runs as root). An existing one is left as it is; each of it and its
/// sidecars that grants a permission `access` does not is returned, for a warning.
pub fn prepare_db(path: &Path, access: Access) -> io::Result<Vec<TooOpen>> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(access.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => {
            access.apply(&f)?;
            // Leftover sidecars of a store that was moved away must not keep their modes.
            for side in &with_sidecars(path)[1..] {
                access.apply_to_path(side)?;
            }
            Ok(Vec::new())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(too_open(path, access)),
        Err(e) => Err(e),
    }
}

/// The database file and sidecars that grant a permission beyond `access.mode`.
pub fn too_open(db: &Path, access: Access) -> Vec<TooOpen> {
    with_sidecars(db)
        .into_iter()
        .filter_map(|path| {
            let mode = std::fs::symlink_metadata(&path).ok()?.mode() & 0o7777;
            (mode & !access.mode != 0).then_some(TooOpen {
                path,
                mode,
                wanted: access.mode,
            })
        })
        .collect()
}

/// The shell command that gives `files` the configured mode (and group).
pub fn fix_command(files: &[TooOpen], group: Option<&str>) -> String {
    let Some(first) = files.first() else {
        return String::new();
    };
    let paths: Vec<String> = files
        .iter()
        .map(|f| shell_quote(&f.path.to_string_lossy()))
        .collect();
    let chmod = format!("chmod {:04o} {}", first.wanted, paths.join(" "));
    match group {
        Some(g) => format!("chgrp {} {} && {chmod}", shell_quote(g), paths.join(" ")),
        None => chmod,
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,=".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The gid of a group given by name or number; `None` when no such group exists.
pub fn group_id(group: &str) -> Option<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Some(gid);
    }
    let name = CString::new(group.as_bytes()).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: a zeroed `group` is a valid out-parameter; buf outlives the call and
        // result points into grp or is null.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return (rc == 0 && !result.is_null()).then_some(grp.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_file_passes_and_group_writable_is_refused() {
        let dir = std::env::temp_dir().join(format!("hogtrap-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_strict_modes(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
        match check_strict_modes(&path) {
            Err(StrictModesError::Unsafe(f)) => {
                assert!(f.writable_by_others());
                assert_eq!(f.mode, 0o620);
                assert!(!f.foreign_owner());
            }
            other => panic!("expected Unsafe, got {other:?}"),
        }
        assert!(matches!(
            check_strict_modes(&dir.join("missing")),
            Err(StrictModesError::Metadata(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn created_files_get_the_exact_mode_and_loose_stores_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.html");
        std::fs::write(&report, "old").unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o666)).unwrap();
        let group = Access {
            mode: 0o640,
            gid: Some(0),
        };
        write(&report, b"new", group).unwrap();
        let meta = std::fs::metadata(&report).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read(&report).unwrap(), b"new");

        let db = dir.path().join("s.db");
        assert!(prepare_db(&db, Access::default()).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&db).unwrap().mode() & 0o7777, 0o600);
        assert!(prepare_db(&db, Access::default()).unwrap().is_empty());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loose = prepare_db(&db, Access::default()).unwrap();
        assert_eq!(loose.len(), 1);
        assert_eq!(loose[0].mode, 0o644);
        let fix = fix_command(&loose, None);
        assert_eq!(fix, format!("chmod 0600 {}", db.display()));
        assert!(fix_command(&loose, Some("adm")).starts_with("chgrp adm "));
        // More closed than configured is fine.
        assert!(too_open(
            &db,
            Access {
                mode: 0o644,
                gid: None
            }
        )
        .is_empty());
    }

    #[test]
    fn groups_by_name_or_number() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("4242"), Some(4242));
        assert_eq!(group_id("no-such-group-hogtrap"), None);
    }
}
