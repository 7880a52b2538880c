//! Serving: the accept loop, TLS, and per-connection limits.
//!
//! axum's own `serve` does not do TLS, so connections are accepted here, put through the
//! rustls handshake (bounded by the header timeout, so a silent client cannot hold a
//! task), and handed to hyper's HTTP/1.1 server with a header-read timeout. Each request
//! carries the client's address ([`Peer`]) for the per-address limits: the connection's,
//! or behind a configured trusted proxy the one the proxy names ([`crate::proxy`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::members::Peer;
use crate::server::Server;

/// Plain HTTP is served only on a loopback address: elsewhere it is refused, never
/// silently allowed.
pub fn plain_http_allowed(addr: std::net::SocketAddr) -> Result<(), crate::IdentityError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(crate::IdentityError::InsecureNotLoopback(addr.to_string()))
    }
}

/// Serves `server` on `listener` until the task is dropped: TLS with its certificate, or
/// plain HTTP if the configuration asks for it and the listener is on a loopback address.
pub async fn serve(server: Server, listener: TcpListener) -> Result<(), crate::IdentityError> {
    let tls = if server.config().insecure_http {
        // Never silently: without TLS, nothing is pinned and anyone on the path reads and
        // rewrites the traffic, so plain HTTP is for tests on this machine only.
        let addr = listener
            .local_addr()
            .map_err(|e| crate::IdentityError::InsecureNotLoopback(e.to_string()))?;
        plain_http_allowed(addr)?;
        None
    } else {
        Some(tokio_rustls::TlsAcceptor::from(server.tls_config()?))
    };
    // Time-stamping (`crate::tsa`) runs beside the accept loop, and stops with it.
    let _stamping = match crate::tsa::start(&server) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("custody-server: time-stamping cannot start: {e}");
            None
        }
    };
    let header_timeout = server.config().limits.header_timeout;
    let proxies = Arc::new(server.config().trusted_proxies.clone());
    let router = crate::http::router(server);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                eprintln!("custody-server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The client's address, for the per-address limits: the peer's, or behind a
        // trusted proxy the one it forwarded for, per request (crate::proxy).
        let router = if proxies.blocks.is_empty() {
            router.clone().layer(axum::Extension(Peer(peer)))
        } else {
            let proxies = proxies.clone();
            router.clone().layer(axum::middleware::from_fn(move |mut req: Request, next: Next| {
                let client = proxies.client(peer.ip(), req.headers());
                let port = if client == peer.ip() { peer.port() } else { 0 };
                req.extensions_mut().insert(Peer(SocketAddr::new(client, port)));
                next.run(req)
            }))
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, router, header_timeout).await,
                Some(acceptor) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                    {
                        connection(s, router, header_timeout).await;
                    }
                }
            }
        });
    }
}

async fn connection<I>(io: I, router: axum::Router, header_timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Binds `addr` and serves in the background; returns the bound address (useful with
/// port 0) and the task.
pub async fn spawn(
    server: Server,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = serve(server, listener).await {
            eprintln!("custody-server: {e}");
        }
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in ["127.0.0.1:8080", "127.8.0.1:1", "[::1]:8443"] {
            assert!(plain_http_allowed(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0:8080", "192.168.1.20:8443", "[::]:8443", "10.0.0.1:80"] {
            let e = plain_http_allowed(refused.parse().unwrap()).unwrap_err();
            assert!(e.to_string().contains("only served on a loopback address"), "{e}");
        }
    }
}
