//! `[export.prometheus]` and `[export.alertmanager]`: how the host is seen from a fleet's
//! Prometheus and Alertmanager. Both are off by default.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{against, at_least, between, Duration, SHORTEST};

/// The most processes per resource the `/metrics` endpoint may list (`top_n`): the bound that
/// keeps the number of series per host fixed whatever the host runs.
pub const TOP_N_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Export {
    pub prometheus: Prometheus,
    pub alertmanager: Alertmanager,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prometheus {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Where; loopback unless set otherwise.
    pub listen: SocketAddr,
    /// How many programs per resource (CPU, memory, I/O, network) are exported.
    pub top_n: usize,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A client must send its request headers within this time, and a connection lives at
    /// most `connection_timeout`.
    pub header_timeout: Duration,
    pub connection_timeout: Duration,
}

impl Default for Prometheus {
    fn default() -> Prometheus {
        Prometheus {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 9711)),
            top_n: 10,
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alertmanager {
    /// Every Alertmanager of the cluster (all peers of an HA pair), e.g.
    /// `["http://am1:9093", "http://am2:9093"]`. Empty: off.
    pub urls: Vec<String>,
    /// One POST's limit.
    pub timeout: Duration,
    /// Re-post open incidents this often; `endsAt` is 4 × this ahead.
    pub resend_every: Duration,
    /// After an incident closes, its resolved alert is re-posted for this long.
    pub resolved_for: Duration,
}

impl Default for Alertmanager {
    fn default() -> Alertmanager {
        Alertmanager {
            urls: Vec::new(),
            timeout: Duration::from_secs(10),
            resend_every: Duration::from_secs(60),
            resolved_for: Duration::from_secs(900),
        }
    }
}

impl Alertmanager {
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }
}

impl Export {
    /// The dotted key and the problem, as `Config::validate` reports them.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        let p = &self.prometheus;
        between("export.prometheus.top_n", p.top_n, 1, TOP_N_MAX)?;
        at_least("export.prometheus.max_connections", p.max_connections, 1)?;
        let header_timeout = p.header_timeout;
        at_least("export.prometheus.header_timeout", header_timeout, SHORTEST)?;
        against(
            p.connection_timeout >= header_timeout,
            "export.prometheus.connection_timeout",
            p.connection_timeout,
            "be at least header_timeout",
            header_timeout,
        )?;
        let a = &self.alertmanager;
        for url in &a.urls {
            if let Err(e) = alertmanager_base(url) {
                return Err(("export.alertmanager.urls".into(), format!("{url:?}: {e}")));
            }
        }
        at_least("export.alertmanager.timeout", a.timeout, SHORTEST)?;
        at_least(
            "export.alertmanager.resend_every",
            a.resend_every,
            Duration::from_secs(1),
        )
    }
}

/// An Alertmanager base URL split into `host:port` and path prefix (without a trailing
/// slash). Only plain `http://` is spoken; put a TLS proxy in front for https.
pub fn alertmanager_base(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("must start with http:// (https is not supported: use a local TLS proxy)")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("needs a host[:port] and no user info".into());
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((with_port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            alertmanager_base("http://127.0.0.1:9093").unwrap(),
            ("127.0.0.1:9093".into(), "".into())
        );
        assert_eq!(
            alertmanager_base("http://am.example/prefix/").unwrap(),
            ("am.example:80".into(), "/prefix".into())
        );
        assert_eq!(
            alertmanager_base("http://[::1]:9093").unwrap(),
            ("[::1]:9093".into(), "".into())
        );
        assert!(alertmanager_base("https://am:9093").is_err());
        assert!(alertmanager_base("http://").is_err());
    }
}
