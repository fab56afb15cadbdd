//! What the record lets others see: the mode and group of the files hogtrap creates
//! (`[store] mode`, `[store] group`) and the user's redaction patterns (`[privacy] redact`).

use std::fmt;

use serde::Deserializer;

use super::units::TextOnly;
use serde::{Deserialize, Serialize, Serializer};

use crate::files::{self, Access};
use crate::format::Redactor;

/// `[privacy]`: patterns for secrets in command lines, on top of the built-in ones.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Privacy {
    /// Regexes (Rust `regex` syntax) whose capture groups, or whole match when they have
    /// none, are replaced by `***` in every command line before it is stored.
    pub redact: Vec<String>,
}

impl Privacy {
    /// The built-in patterns and the user's, compiled (they were validated at load).
    pub fn redactor(&self) -> Redactor {
        Redactor::new(&self.redact).unwrap_or_else(|_| {
            // Unreachable for a loaded config; the built-ins alone are still a redactor.
            Redactor::new(&[]).expect("built-in patterns compile")
        })
    }

    /// A pattern that does not compile: its line in `text`, the key and why.
    pub(super) fn check(&self, text: &str) -> Result<(), (Option<usize>, String, String)> {
        Redactor::new(&self.redact).map(|_| ()).map_err(|e| {
            (
                pattern_line(text, &e.pattern),
                format!("privacy.redact[{}]", e.index),
                format!("not a valid regex: {}", e.message),
            )
        })
    }
}

/// The line of `[privacy] redact` that holds `pattern`, as a basic or literal TOML string.
fn pattern_line(text: &str, pattern: &str) -> Option<usize> {
    let basic = toml::Value::String(pattern.to_string()).to_string();
    let forms = [basic, format!("'{pattern}'"), format!("\"{pattern}\"")];
    let mut in_privacy = false;
    let mut in_redact = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') && !in_redact {
            in_privacy = t.trim_matches(|c| c == '[' || c == ']').trim() == "privacy";
            continue;
        }
        if in_privacy && t.split('=').next().map(str::trim) == Some("redact") {
            in_redact = true;
        }
        if in_redact && forms.iter().any(|f| line.contains(f.as_str())) {
            return Some(i + 1);
        }
    }
    None
}

/// Permission bits written in octal as text: `"0600"`, `"640"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FileMode, D::Error> {
        let parse = |v: &str| {
            u32::from_str_radix(v.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .map(FileMode)
                .ok_or_else(|| format!("expected an octal file mode like \"0600\", got {v:?}"))
        };
        d.deserialize_any(TextOnly::new(
            "an octal file mode like \"0600\"",
            "an octal file mode as text like \"0600\"",
            parse,
        ))
    }
}

impl super::Store {
    /// The mode and group of every file hogtrap creates: the store, its `-wal` and `-shm`,
    /// reports and exports. A group makes the files group-readable.
    pub fn access(&self) -> Access {
        let gid = self.group_name().and_then(files::group_id);
        Access {
            mode: self.mode.0 | if gid.is_some() { 0o040 } else { 0 },
            gid,
        }
    }

    /// `[store] group`, when set.
    pub fn group_name(&self) -> Option<&str> {
        Some(self.group.as_str()).filter(|g| !g.is_empty())
    }

    pub(super) fn validate_access(&self) -> Result<(), super::Invalid> {
        let mode = self.mode.0;
        if mode & 0o600 != 0o600 {
            return super::bad(
                "store.mode",
                format!(
                    "must let the owner read and write (0600 at least), got {:04o}",
                    mode
                ),
            );
        }
        if mode & 0o022 != 0 {
            return super::bad(
                "store.mode",
                format!("must not let group or others write, got {mode:04o}"),
            );
        }
        if let Some(g) = self.group_name() {
            if files::group_id(g).is_none() {
                return super::bad("store.group", format!("no such group {g:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::assert_error_starts;
    use crate::config::Config;
    use std::path::Path;

    fn parse(s: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(s, Path::new("test.toml"))
    }

    #[test]
    fn mode_group_and_patterns_parse_and_are_checked() {
        let c = parse("[store]\nmode = \"0640\"\ngroup = \"root\"\n").unwrap();
        assert_eq!(c.store.access().mode, 0o640);
        assert_eq!(c.store.access().gid, Some(0));
        let c = parse("[store]\ngroup = \"0\"\n").unwrap();
        assert_eq!(c.store.access().mode, 0o640, "a group may read");
        assert_eq!(parse("").unwrap().store.access().mode, 0o600);
        assert_error_starts(
            "[store]\nmode = \"0666\"\n",
            "test.toml:2: store.mode: must not let",
        );
        assert_error_starts("[store]\nmode = \"9\"\n", "test.toml:2: store.mode:");
        assert_error_starts(
            "[store]\n\ngroup = \"no-such-group-hogtrap\"\n",
            "test.toml:3: store.group: no such group",
        );

        let c = parse("[privacy]\nredact = ['--license\\s+(\\S+)']\n").unwrap();
        assert_eq!(
            c.privacy.redactor().redact("x --license L1").as_ref(),
            "x --license ***"
        );
        let e = parse("[privacy]\nredact = [\n  'ok',\n  '(bad',\n]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.toml:4: privacy.redact[1]: not a valid regex"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
