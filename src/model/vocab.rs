//! The one vocabulary: the enums every layer shares, each defined once.
//!
//! Guarantees: each word has exactly one text, [`as_str`](Severity::as_str), which is what is
//! stored, shown, serialized and parsed back; parsing accepts only those texts and an unknown
//! one is an [`UnknownValue`] naming it and the accepted ones, never a silent default.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A text that is not one of an enum's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {})", accepted.join(", "))]
pub struct UnknownValue {
    /// What was being read, e.g. `severity`.
    pub what: &'static str,
    /// The text as found.
    pub value: String,
    pub accepted: &'static [&'static str],
}

/// Defines an enum with one text per variant: `as_str`, `ALL`, `NAMES`, `Display`, `FromStr`
/// and serde, all from the same list.
macro_rules! vocab {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            /// The accepted texts, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The stored and displayed text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: text.to_owned(),
                        accepted: $name::NAMES,
                    }),
                }
            }
        }
    };
}

vocab! {
    /// How much a sample holds. Stored as an integer (`0`, `1`: see [`Level::as_i64`]),
    /// shown as its text.
    #[derive(Default)]
    pub enum Level ("level") {
        /// Host row plus the top processes by each resource.
        #[default]
        Baseline = "baseline",
        /// Every process, with extras and connections (while a capture runs).
        Detail = "detail",
    }
}

impl Level {
    /// The stored number: `0` baseline, `1` detail.
    pub fn as_i64(self) -> i64 {
        match self {
            Level::Baseline => 0,
            Level::Detail => 1,
        }
    }

    /// The level a stored number means; `None` for any other number.
    pub fn from_i64(v: i64) -> Option<Level> {
        match v {
            0 => Some(Level::Baseline),
            1 => Some(Level::Detail),
            _ => None,
        }
    }
}

vocab! {
    /// What a ranking or a culprit is by; a value is in the resource's unit.
    pub enum Resource ("resource") {
        /// CPU %, 100 = one core.
        Cpu = "cpu",
        /// Resident memory, bytes.
        Mem = "mem",
        /// Disk read + write, bytes/s.
        Io = "io",
        /// Network tx + rx, bytes/s.
        Net = "net",
    }
}

vocab! {
    /// What processes are summed by in a grouped view (`--group`, `s:top_groups`).
    pub enum Grouping ("group") {
        /// The program name.
        Name = "name",
        /// The parent process (the forker of a storm).
        Parent = "parent",
        /// The owning user.
        User = "user",
        /// The cgroup (the container or service), where recorded (detail samples).
        Cgroup = "cgroup",
    }
}

vocab! {
    /// How bad an incident is.
    #[derive(Default)]
    pub enum Severity ("severity") {
        Info = "info",
        #[default]
        Warning = "warning",
        Critical = "critical",
    }
}

vocab! {
    /// How urgent an alert is; maps to the desktop notification urgency.
    #[derive(Default)]
    pub enum Urgency ("urgency") {
        Low = "low",
        #[default]
        Normal = "normal",
        Critical = "critical",
    }
}

vocab! {
    /// A delivery channel of the alert outbox. Stored as its text.
    pub enum Channel ("alert channel") {
        Email = "email",
        Desktop = "desktop",
        /// `[export.alertmanager]`: incidents posted to Alertmanager's API.
        Alertmanager = "alertmanager",
    }
}

impl Channel {
    /// The channels that carry messages (`hogtrap alert test` tries these); Alertmanager
    /// carries incidents only.
    pub const MESSAGES: [Channel; 2] = [Channel::Email, Channel::Desktop];
}

vocab! {
    /// Why an alert was written.
    pub enum AlertKind ("alert kind") {
        /// A rule fired (an incident opened or escalated).
        Fire = "fire",
        /// The incident cleared: the recovery message.
        Clear = "clear",
        /// The incident is still open after `reminder_every`.
        Reminder = "reminder",
        /// A summary of the alerts a rate limit held back. Never held itself.
        Digest = "digest",
        /// Anything else a rule sends (a scheduled report, a log-style message).
        Notice = "notice",
    }
}

vocab! {
    /// Why a sample was taken: the clock, or an event that woke the recorder between two
    /// clock samples (a kernel pressure trigger, an OOM kill). Stored as its text.
    #[derive(Default)]
    pub enum SampleReason ("sample reason") {
        /// The schedule (`[sampler] interval`, or the faster one of a capture or of the
        /// short while after a wake-up).
        #[default]
        Clock = "clock",
        /// The CPU pressure trigger fired (`/proc/pressure/cpu`).
        PsiCpu = "psi_cpu",
        /// The memory pressure trigger fired (`/proc/pressure/memory`).
        PsiMemory = "psi_memory",
        /// The I/O pressure trigger fired (`/proc/pressure/io`).
        PsiIo = "psi_io",
        /// The kernel logged an OOM kill.
        Oom = "oom",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_through_its_text_and_serde() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for u in Urgency::ALL {
            assert_eq!(u.to_string().parse::<Urgency>(), Ok(u));
        }
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
        }
        for r in Resource::ALL {
            assert_eq!(r.as_str().parse::<Resource>(), Ok(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for l in Level::ALL {
            assert_eq!(Level::from_i64(l.as_i64()), Some(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
        }
        assert_eq!(Level::from_i64(2), None);
        for r in SampleReason::ALL {
            assert_eq!(r.as_str().parse::<SampleReason>(), Ok(r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn an_unknown_text_is_an_error_naming_it_and_the_accepted_ones() {
        let e = "crit".parse::<Severity>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown severity \"crit\" (expected one of: info, warning, critical)"
        );
        assert!("Mem".parse::<Resource>().is_err());
        assert!("memory".parse::<Resource>().is_err());
        assert!("urgent".parse::<Urgency>().is_err());
    }

    #[test]
    fn display_pads_like_a_str() {
        assert_eq!(format!("{:8}|", Severity::Info), "info    |");
    }
}
