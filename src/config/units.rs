//! Human units in the config: durations ("10s", "5m", "14d") and sizes ("512MiB"), as serde
//! types; the grammar of each is [`crate::format`]'s, the one every layer reads.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as text in the config ("500ms", "10s", "5m", "2h", "14d").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Duration {
        Duration(std::time::Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }
    pub fn std(self) -> std::time::Duration {
        self.0
    }
    pub fn parse(s: &str) -> Result<Duration, String> {
        crate::format::parse_duration(s).map(Duration)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::format::duration_text(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        const WHAT: &str = "a duration like \"10s\"";
        d.deserialize_any(TextOnly::new(WHAT, WHAT, Duration::parse).numbers_too())
    }
}

/// The visitor of a config value written only as text (a duration, a size, a file mode):
/// `parse` reads the text; a bare number is an error saying what to write instead.
pub(super) struct TextOnly<T> {
    expecting: &'static str,
    /// What a bare number is told to be instead (e.g. `an octal file mode as text like "0600"`).
    not_a_number: &'static str,
    parse: fn(&str) -> Result<T, String>,
    /// Whether a float gets that error too (otherwise serde's own "invalid type").
    floats: bool,
}

impl<T> TextOnly<T> {
    pub(super) fn new(
        expecting: &'static str,
        not_a_number: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Self {
        TextOnly {
            expecting,
            not_a_number,
            parse,
            floats: false,
        }
    }

    fn numbers_too(self) -> Self {
        TextOnly {
            floats: true,
            ..self
        }
    }
}

impl<T> Visitor<'_> for TextOnly<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.parse)(v).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Err(E::custom(format!(
            "expected {}, got {v}",
            self.not_a_number
        )))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.visit_i64(v as i64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if self.floats {
            Err(E::custom(format!(
                "expected {}, got {v}",
                self.not_a_number
            )))
        } else {
            Err(E::invalid_type(de::Unexpected::Float(v), &self))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}B", self.0))
    }
}

/// A size written as text in the config ("512MiB", "2GB").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        crate::format::parse_size(s).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        const WHAT: &str = "a size like \"512MiB\"";
        d.deserialize_any(TextOnly::new(WHAT, WHAT, ByteSize::parse))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("10s").unwrap().as_millis(), 10_000);
        assert_eq!(Duration::parse("14d").unwrap().as_millis(), 14 * 86_400_000);
        assert_eq!(Duration::parse("500ms").unwrap().as_millis(), 500);
        assert!(Duration::parse("ten").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("512MiB").unwrap().0, 512 << 20);
        assert!(ByteSize::parse("lots").is_err());
    }
}
