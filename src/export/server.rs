//! The `/metrics` HTTP server: hyper (HTTP/1) on the daemon's tokio runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::metrics::{
    encode_snapshot, to_classic_text, CLASSIC_CONTENT_TYPE, CONTENT_TYPE as METRICS_TYPE,
};
use super::Snapshot;
use crate::config::export::Prometheus;

/// The running server; stopped when dropped or with [`Server::stop`].
pub struct Server {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    pub addr: SocketAddr,
}

/// What the server counts about its clients.
#[derive(Debug, Default)]
struct Counts {
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl Server {
    /// Binds `config.listen` and serves on the current runtime. A bind error names the
    /// address.
    pub async fn start(
        config: &Prometheus,
        snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    ) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "[export.prometheus] listen = \"{}\": cannot listen: {e}",
                config.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(accept_loop(listener, snapshots, config.clone(), stop_rx));
        Ok(Server { stop, handle, addr })
    }

    pub async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.handle.await {
            tracing::warn!("/metrics server ended badly: {e}");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    config: Prometheus,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let counts = Arc::new(Counts::default());
    let header_timeout = config.header_timeout.std();
    let connection_timeout = config.connection_timeout.std();
    let top_n = config.top_n;
    let mut accept_errors = 0u64;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: log the first, then pause briefly so
                // a busy error does not spin the runtime.
                accept_errors += 1;
                if accept_errors == 1 {
                    tracing::warn!("/metrics: cannot accept a connection: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: close at once rather than queue, so idle clients cannot pile up.
            if counts.refused.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "/metrics: more than {} connections at once; closing the extra ones \
                     (said once)",
                    config.max_connections
                );
            }
            drop(stream);
            continue;
        };
        let snapshots = snapshots.clone();
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let snap = snapshots.borrow().clone();
                async move { Ok::<_, Infallible>(respond(&req, snap.as_deref(), top_n)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            if tokio::time::timeout(connection_timeout, conn)
                .await
                .is_err()
            {
                counts.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            drop(slot);
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    snap: Option<&Snapshot>,
    top_n: usize,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, ctype: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "hogtrap serves /metrics only\n".into(),
            "text/plain; charset=utf-8",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /metrics\n".into(),
            "text/plain; charset=utf-8",
        );
    }
    match snap {
        // Prometheus asks for OpenMetrics; anything else gets the classic text format.
        Some(s) if wants_openmetrics(req) => {
            reply(StatusCode::OK, encode_snapshot(s, top_n), METRICS_TYPE)
        }
        Some(s) => reply(
            StatusCode::OK,
            to_classic_text(&encode_snapshot(s, top_n)),
            CLASSIC_CONTENT_TYPE,
        ),
        None => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "no sample yet\n".into(),
            "text/plain; charset=utf-8",
        ),
    }
}

fn wants_openmetrics(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}
