//! The accept loop: HTTP/1 over hyper with the edge's limits, in place of
//! `axum::serve` (which has neither a header timeout nor a connection cap).
//!
//! - **Header timeout** (`header_timeout_secs`): hyper's own
//!   `header_read_timeout`. hyper arms it whenever a connection waits for a
//!   request, the first one and each one after a keep-alive response, so
//!   it is also the idle keep-alive timeout: a connection that sends
//!   nothing, half its headers or nothing more after a response is closed.
//! - **Connection cap** (`max_connections`): a semaphore permit per
//!   connection. Past it the connection is accepted, answered a fixed 503
//!   `too_many_connections` and closed, rather than left in the kernel's
//!   backlog, where a client only sees a hang and the backlog's sockets
//!   still cost the kernel. Those answers are themselves capped
//!   (`MAX_REFUSING`, each at most `REFUSAL_TIME`); past that a connection
//!   is closed at once.
//! - **Header limits**: a header line over [`MAX_HEADER_LINE`], a header
//!   block over [`MAX_HEADER_BLOCK`] or more than [`MAX_HEADERS`] headers
//!   is answered 431 with `{"error", "code"}` and the connection closed,
//!   before the router runs (`oversized_headers`). hyper parses up to
//!   [`HYPER_MAX_HEADERS`] headers and buffers up to its default
//!   `max_buf_size` (about 400 KiB); past those it answers a bare 431 of
//!   its own (no body, it offers no hook for one) and closes.
//! - **Graceful shutdown**: accepting stops, every connection finishes its
//!   request in flight and closes (hyper's `graceful_shutdown`), and the
//!   loop waits until every permit is back.
//!
//! Cost per connection: one task (as `axum::serve`), a semaphore CAS and a
//! `watch` receiver clone. Per request: what `axum::serve` does (a router
//! clone, one boxed body), plus hyper's header timer (a boxed sleep and a
//! timer-wheel entry) and, off the hook path, the peer address in the
//! request's extensions.

use crate::http::error::AppError;
use crate::http::guard::PeerAddr;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use futures::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::Service;

/// Busy answers written at once; more over-cap connections are closed bare.
const MAX_REFUSING: usize = 256;
/// The longest a busy answer may take (write, then drain what the client sent).
const REFUSAL_TIME: Duration = Duration::from_secs(2);
/// After an accept error such as EMFILE: wait instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One header's line (`name: value`) at most; cookies and JWTs fit.
pub const MAX_HEADER_LINE: usize = 16 << 10;
/// All of a request's header lines together.
pub const MAX_HEADER_BLOCK: usize = 64 << 10;
/// Headers in one request; senders send a dozen or two.
pub const MAX_HEADERS: usize = 100;
/// What hyper parses before it refuses by itself: above [`MAX_HEADERS`],
/// so requests just past our limit get our JSON answer. (Over hyper's
/// default of 100 its header arrays go on the heap: two small allocations
/// a request.)
const HYPER_MAX_HEADERS: usize = 256;

const BUSY_BODY: &str = r#"{"error":"the server is at its connection limit; retry shortly","code":"too_many_connections"}"#;

/// The limits the loop enforces.
#[derive(Clone, Copy, Debug)]
pub struct EdgeLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl EdgeLimits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            header_timeout: config.header_timeout(),
            // A semaphore holds at most `MAX_PERMITS`; shutdown takes all
            // permits at once as a u32.
            max_connections: config.max_connections.clamp(1, u32::MAX as usize),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let (stop, stopping) = watch::channel(false);
    let builder = Arc::new(http_builder(limits));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                on_accept_error(&e).await;
                continue;
            }
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let connection = Connection {
                    router: router.clone(),
                    builder: builder.clone(),
                    stopping: stopping.clone(),
                    _permit: permit,
                };
                tokio::spawn(connection.serve(stream, peer));
            }
            Err(_) => refuse(stream, peer, &refusing),
        }
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it closes.
    let _ = connections
        .acquire_many(limits.max_connections as u32)
        .await;
    Ok(())
}

fn http_builder(limits: EdgeLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(HYPER_MAX_HEADERS)
        .keep_alive(true);
    builder
}

/// Connection errors concern one client; others (EMFILE, ENFILE, ENOMEM)
/// the process, which gets a moment to free descriptors.
async fn on_accept_error(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying shortly");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// One accepted connection and what it needs.
struct Connection {
    router: Router,
    builder: Arc<http1::Builder>,
    stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, peer: SocketAddr) {
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            if let Some(refusal) = oversized_headers(request.headers()) {
                return Either::Left(std::future::ready(Ok(refusal)));
            }
            // Only the admin checks need the address (`guard`); the hook
            // path skips the extension insert.
            if !request.uri().path().starts_with("/hooks/") {
                request.extensions_mut().insert(PeerAddr(peer.ip()));
            }
            Either::Right(router.clone().call(request.map(Body::new)))
        });
        let connection = self
            .builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            // Fires on the one `send(true)` (or when the loop is gone).
            _ = self.stopping.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            // Timeouts and clients going away: normal at the edge.
            tracing::debug!(error = %e, "connection closed with an error");
        }
    }
}

/// The 431 for headers past our limits, or `None`. Every request passes
/// here: one walk over the header map, adding lengths.
fn oversized_headers(headers: &HeaderMap) -> Option<axum::response::Response> {
    // `name: value\r\n`
    let line = |name: &HeaderName, value: &HeaderValue| name.as_str().len() + value.len() + 4;
    let (code, message) = if headers.len() > MAX_HEADERS {
        (
            "too_many_headers",
            format!(
                "the request has {} headers; at most {MAX_HEADERS} are accepted",
                headers.len()
            ),
        )
    } else if let Some((name, _)) = headers
        .iter()
        .find(|(name, value)| line(name, value) > MAX_HEADER_LINE)
    {
        (
            "header_too_large",
            format!("the header `{name}` is longer than {MAX_HEADER_LINE} bytes"),
        )
    } else if headers.iter().map(|(n, v)| line(n, v)).sum::<usize>() > MAX_HEADER_BLOCK {
        (
            "headers_too_large",
            format!("the request's headers are larger than {MAX_HEADER_BLOCK} bytes in all"),
        )
    } else {
        return None;
    };
    let error = AppError::Coded {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        code,
        message,
    };
    let mut response = error.into_response();
    // The request's body (if any) is not read: the connection cannot
    // carry another request after this one.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// Past the cap: a short 503 when a refusal slot is free, else a bare close.
fn refuse(stream: TcpStream, peer: SocketAddr, refusing: &Arc<Semaphore>) {
    let Ok(permit) = refusing.clone().try_acquire_owned() else {
        return;
    };
    // Logged only with a refusal slot, so a flood cannot flood the log.
    tracing::warn!(address = %peer.ip(), "connection refused: at the connection limit");
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_TIME, answer_busy(stream)).await;
    });
}

async fn answer_busy(mut stream: TcpStream) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        BUSY_BODY.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(BUSY_BODY.as_bytes()).await?;
    stream.shutdown().await?;
    // Read what the client sent until it closes: closing with unread bytes
    // sends a reset, which can destroy the answer before the client reads it.
    let mut sink = [0u8; 1024];
    while stream.read(&mut sink).await? > 0 {}
    Ok(())
}
