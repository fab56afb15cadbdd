//! File safety shared by config, rules and store: the StrictModes check on files that steer
//! the daemon (and, later, files created with an explicit mode).
//!
//! Imports nothing from the crate: every layer may use it. It reports facts as typed errors;
//! each caller words them in its own error type, so its messages stay its own.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
}
