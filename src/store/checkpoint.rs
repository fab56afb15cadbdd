//! The WAL checkpoint, on its own connection, so the sampling thread never copies pages into
//! the database file or waits for an fsync.
//!
//! Guarantees:
//! - The writer's connection checkpoints never ([`Store::hand_off_checkpoints`] turns its
//!   automatic checkpoint off); [`Checkpointer::run`] is the only place the WAL is copied and
//!   the database file fsynced.
//! - `PASSIVE`: a checkpoint never waits for the writer and the writer never waits for it; a
//!   stalled disk stalls only the thread that runs it, while commits keep going to the WAL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::{Result, Store, StoreError};

/// The writer's SQLite page cache (KiB): the hot pages of the sample and process tables stay
/// in the daemon's (locked) heap instead of being read again from a file under reclaim.
const WRITER_CACHE_KIB: i64 = 8192;

impl Store {
    /// Turns this connection's automatic checkpoint off (a [`Checkpointer`] does it) and
    /// keeps a larger page cache.
    pub fn hand_off_checkpoints(&mut self) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{WRITER_CACHE_KIB};"
            ))
            .map_err(|e| self.err(e))
    }
}

/// Pages in the WAL and pages copied back by one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointResult {
    pub wal_pages: i64,
    pub copied_pages: i64,
}

pub struct Checkpointer {
    conn: Connection,
    path: PathBuf,
}

impl Checkpointer {
    /// Opens an existing store (the daemon's `Store::open` creates and migrates it).
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Checkpointer> {
        let conn = super::open_existing_read_write(
            path,
            busy_timeout,
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA journal_size_limit = 16777216; PRAGMA wal_autocheckpoint = 0;",
        )?;
        Ok(Checkpointer {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// One `PASSIVE` checkpoint: copies what it can of the WAL, fsyncs the database file.
    pub fn run(&self) -> Result<CheckpointResult> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(CheckpointResult {
                    wal_pages: r.get(1)?,
                    copied_pages: r.get(2)?,
                })
            })
            .map_err(|e| StoreError::from_sqlite(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_leaves_the_wal_to_the_checkpointer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut store = Store::open(&path, Duration::from_millis(100)).unwrap();
        store.hand_off_checkpoints().unwrap();
        let cp = Checkpointer::open(&path, Duration::from_millis(100)).unwrap();
        cp.run().unwrap();
        // Far more than the default 1000-page autocheckpoint: the writer must not reset it.
        for i in 0..3000 {
            store.set_state("k", &format!("{i:0>2000}")).unwrap();
        }
        let r = cp.run().unwrap();
        assert!(r.wal_pages > 1000, "{r:?}");
        assert_eq!(r.copied_pages, r.wal_pages, "{r:?}");
    }
}
