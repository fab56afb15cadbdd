//! Incidents to Alertmanager: one POST of `/api/v2/alerts` to every configured peer (all of
//! an HA cluster, as Alertmanager's docs ask). Plain HTTP/1.1 through hyper; each POST is
//! bounded by `[export.alertmanager] timeout`.
//!
//! An open incident is posted with `endsAt` = now + 4 × `resend_every` (as Prometheus
//! does), so Alertmanager resolves it by itself if hogtrap goes quiet; a closed one with
//! `endsAt` = its close time, which resolves it.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::SendError;
use crate::config::export::{alertmanager_base, Alertmanager};
use crate::model::TimestampMs;
use crate::store::outbox::IncidentExport;

fn rfc3339(ms: TimestampMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The `/api/v2/alerts` body for these incidents as of `now_ms`.
pub fn payload(
    incidents: &[IncidentExport],
    host: &str,
    config: &Alertmanager,
    now_ms: TimestampMs,
) -> Value {
    let ahead = 4 * config.resend_every.as_millis() as i64;
    Value::Array(
        incidents
            .iter()
            .map(|i| {
                json!({
                    "labels": {
                        "alertname": i.rule,
                        "severity": i.severity.as_str(),
                        "instance": host,
                        "source": "hogtrap",
                    },
                    "annotations": {
                        "summary": i.title,
                        "incident_id": i.id.to_string(),
                        "command": format!("hogtrap show {}", i.id),
                    },
                    "startsAt": rfc3339(i.opened_ms),
                    "endsAt": rfc3339(i.closed_ms.unwrap_or(now_ms + ahead)),
                })
            })
            .collect(),
    )
}

/// Posts `body` to every peer. Ok when at least one accepted it (the others are told at the
/// next re-post); otherwise the first peer's error.
pub async fn post_all(config: &Alertmanager, body: &Value) -> Result<usize, SendError> {
    let bytes = Bytes::from(body.to_string());
    // Side by side, so a hanging peer costs one timeout, not one per peer.
    let tasks: Vec<_> = config
        .urls
        .iter()
        .map(|url| {
            let (url, bytes, timeout) = (url.clone(), bytes.clone(), config.timeout.std());
            tokio::spawn(async move { post_one(&url, bytes, timeout).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for (task, url) in tasks.into_iter().zip(&config.urls) {
        results.push(task.await.unwrap_or_else(|e| {
            Err(SendError::Alertmanager {
                url: url.clone(),
                problem: format!("the attempt ended early: {e}"),
                retryable: true,
            })
        }));
    }
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    if accepted > 0 {
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            tracing::warn!("{e}");
        }
        return Ok(accepted);
    }
    match results.into_iter().find_map(|r| r.err()) {
        Some(e) => Err(e),
        None => Err(SendError::Alertmanager {
            url: String::new(),
            problem: "no Alertmanager configured ([export.alertmanager] urls is empty)".into(),
            retryable: false,
        }),
    }
}

async fn post_one(url: &str, body: Bytes, timeout: Duration) -> Result<(), SendError> {
    let fail = |problem: String, retryable: bool| SendError::Alertmanager {
        url: url.to_string(),
        problem,
        retryable,
    };
    let (authority, prefix) = alertmanager_base(url).map_err(|e| fail(e, false))?;
    let path = format!("{prefix}/api/v2/alerts");
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| fail(format!("cannot connect: {e}"), true))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(format!("HTTP handshake: {e}"), true))?;
        let driver = tokio::spawn(conn);
        let req = Request::post(&path)
            .header(hyper::header::HOST, &authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| fail(format!("bad request: {e}"), false))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(format!("POST {path}: {e}"), true))?;
        let status = resp.status();
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        driver.abort();
        if status.is_success() {
            Ok(())
        } else {
            // 4xx: the payload is refused and will be refused again; 5xx: try later.
            Err(fail(
                format!("POST {path}: {status}: {}", text.trim()),
                !status.is_client_error(),
            ))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!("no answer within {timeout:?}"), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    #[test]
    fn open_incidents_end_ahead_closed_ones_at_their_close() {
        let config = Alertmanager::default();
        let mut i = IncidentExport {
            id: 7,
            rule: "cpu_hog".into(),
            severity: Severity::Warning,
            title: "CPU hog: burner".into(),
            opened_ms: 1_000,
            closed_ms: None,
        };
        let v = payload(std::slice::from_ref(&i), "web1", &config, 60_000);
        assert_eq!(v[0]["labels"]["alertname"], "cpu_hog");
        assert_eq!(v[0]["labels"]["instance"], "web1");
        assert_eq!(v[0]["annotations"]["command"], "hogtrap show 7");
        assert_eq!(v[0]["endsAt"], rfc3339(60_000 + 240_000));
        i.closed_ms = Some(30_000);
        let v = payload(&[i], "web1", &config, 60_000);
        assert_eq!(v[0]["endsAt"], rfc3339(30_000));
    }
}
