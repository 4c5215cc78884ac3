//! The load benchmark's yardstick: a bare axum server that parses each POSTed
//! JSON body and answers 202, storing nothing. Inlet's ingest throughput is
//! reported as a ratio to this, so the figure says what durability, auth and
//! bookkeeping cost on top of "HTTP + JSON parse" on the same machine.
//!
//! `cargo run --release --example reference -- 127.0.0.1:0` prints
//! `listening on <addr>` once bound.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::net::SocketAddr;

async fn accept(body: Bytes) -> StatusCode {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            std::hint::black_box(value);
            StatusCode::ACCEPTED
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new().route("/hooks/{token}", post(accept));
    axum::serve(listener, app).await
}
