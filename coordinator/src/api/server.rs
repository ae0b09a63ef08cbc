//! The HTTP/1 server under the router, built for clients that do not play
//! fair: a cap on open connections and three timeouts, so no client can
//! hold a connection (and its task and buffers) for long without sending a
//! request.
//!
//! | limit | what it bounds | enforced by |
//! |---|---|---|
//! | [`ConnectionLimits::header_timeout`] | from accept, and from the end of each response on a kept-alive connection, to the last byte of the next request head: slow headers, a connection that sends nothing, an idle keep-alive | hyper's `header_read_timeout` |
//! | [`ConnectionLimits::idle_timeout`] | a read or a write that makes no progress: a client that stops reading its response, a stalled socket | `tokio-io-timeout` on the socket |
//! | body timeout ([`super::ApiSettings::body_timeout`]) | the whole request body | [`super::limit::read_body`] (a layer, answers 408) |
//! | [`ConnectionLimits::max_connections`] | connections served at once | a semaphore; over it, `503` and close |
//!
//! A connection over the cap is answered at once with `503 Service
//! Unavailable`, `Retry-After: 1` and `Connection: close`, written without
//! waiting (a client that does not read gets nothing), and closed: queueing
//! it in the kernel's backlog instead would hand a flood of idle connections
//! the place of real clients. Probes and metrics share the cap on the public
//! port; the admin port ([`super::serve_admin`]) serves them under a cap of
//! its own.
//!
//! `axum::serve` has none of these settings; this is the loop it runs
//! (accept, hyper's HTTP/1 connection per task, graceful shutdown) with them.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::ErrorBody;
use super::error::ErrorDetail;
use crate::metrics;

/// The per-connection limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time to deliver a complete request head, counted from accept and from
    /// the end of the previous response (so it is also the keep-alive idle
    /// limit).
    pub header_timeout: Duration,
    /// A read or write on the socket that waits this long closes the connection.
    pub idle_timeout: Duration,
}

/// The most connections [`ConnectionLimits::max_connections`] may allow.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

/// The whole answer to a connection over the cap.
static BUSY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code: "too_many_connections".into(),
            message: "the server is at its connection limit; retry in a second".into(),
            field: None,
        },
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
});

/// An open connection: holds its place under the cap and in the gauge.
struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        metrics::HTTP_CONNECTIONS.inc();
        Self { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::HTTP_CONNECTIONS.dec();
    }
}

/// Serves `router` on `listener` until `shutdown`; then stops accepting,
/// lets each connection finish its request in flight (bounded by the
/// timeouts) and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, MAX_CONNECTIONS_LIMIT);
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: accepting again
                    // at once would spin.
                    warn!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(&stream, remote);
            continue;
        };
        let slot = Slot::new(permit);
        tokio::spawn(serve_connection(
            stream,
            remote,
            router.clone(),
            limits,
            shutdown.clone(),
            slot,
        ));
    }
    drop(listener);
    // Every slot back: every connection has closed.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Errors of one connection that `accept` reports; the next accept is fine.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over the cap with 503 without waiting, and closes it.
fn refuse(stream: &TcpStream, remote: SocketAddr) {
    metrics::HTTP_CONNECTIONS_REFUSED.inc();
    debug!(%remote, "connection refused: at the connection limit");
    // A full send buffer or a reset just means the client gets no body.
    let _ = stream.try_write(&BUSY);
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    _slot: Slot,
) {
    // Responses are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    let mut io = TimeoutStream::new(stream);
    io.set_read_timeout(Some(limits.idle_timeout));
    io.set_write_timeout(Some(limits.idle_timeout));
    let io = TokioIo::new(Box::pin(io));
    // What `into_make_service_with_connect_info` gives handlers and the rate limit.
    let service = router.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = shutdown.cancelled() => {
            // Finish the request in flight, then close; an idle connection closes now.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        // Timeouts and clients that leave are routine, not the server's trouble.
        debug!(%remote, error = %e, "connection ended with an error");
    }
}
