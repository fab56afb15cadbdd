//! What every command may need besides its own flags: the global `--config` and `--db`, the
//! config they name (read once, and only by a command that asks for it), and the record
//! opened read-only through one function.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

use super::time;
use crate::config::Config;
use crate::model::TimestampMs;
use crate::store::query::SampleHead;

/// The global options of one invocation, resolved on first use.
pub struct Ctx {
    config_path: Option<PathBuf>,
    db: Option<PathBuf>,
    config: OnceCell<Config>,
}

/// The store, open read-only, and the path it was opened from (for error lines).
pub struct ReadOnlyStore {
    pub path: PathBuf,
    pub conn: rusqlite::Connection,
}

impl ReadOnlyStore {
    /// The newest sample at or before `at`; an error naming the moment and the store if none.
    pub fn sample_at(&self, at: TimestampMs) -> anyhow::Result<SampleHead> {
        match crate::store::query::sample_at(&self.conn, at)? {
            Some(head) => Ok(head),
            None => bail!(
                "no sample at or before {} in {}",
                time::format_local(at),
                self.path.display()
            ),
        }
    }
}

/// The error of a range that holds no sample, naming it and the store.
pub fn no_samples(from: TimestampMs, to: TimestampMs, db: &Path) -> anyhow::Error {
    anyhow!(
        "no samples between {} and {} in {}",
        time::format_local(from),
        time::format_local(to),
        db.display()
    )
}

impl Ctx {
    pub fn new(config_path: Option<PathBuf>, db: Option<PathBuf>) -> Self {
        Ctx {
            config_path,
            db,
            config: OnceCell::new(),
        }
    }

    /// The `--config` file, if one was given.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The config: the `--config` file, or the embedded default. Loaded on the first call.
    pub fn config(&self) -> anyhow::Result<&Config> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let c = Config::load_or_default(self.config_path())?;
        // What leaves the store is redacted with the user's patterns too.
        crate::format::redact::install(c.privacy.redactor());
        Ok(self.config.get_or_init(|| c))
    }

    /// The store file: `--db`, else the config's `[store] path` (the config is read only when
    /// `--db` is absent).
    pub fn db_path(&self) -> anyhow::Result<PathBuf> {
        match &self.db {
            Some(db) => Ok(db.clone()),
            None => Ok(self.config()?.store.path.clone()),
        }
    }

    /// The store, opened read-only: the one way a query command reaches the record.
    pub fn open_store(&self) -> anyhow::Result<ReadOnlyStore> {
        if self.config_path().is_some() {
            // Its `[privacy] redact` patterns apply to what the commands print. With `--db`
            // the record can be read while the config is broken (what was stored was
            // redacted with its patterns already): say so, and go on with the built-in ones.
            match (self.config(), &self.db) {
                (Ok(_), _) => {}
                (Err(e), Some(_)) => eprintln!(
                    "hogtrap: warning: {e:#}; reading --db with the built-in redaction only"
                ),
                (Err(e), None) => return Err(e),
            }
        }
        let path = self.db_path()?;
        let conn = crate::store::open_read_only(&path)?;
        Ok(ReadOnlyStore { path, conn })
    }
}
