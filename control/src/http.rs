//! `GET /metrics` over HTTP (tiny_http), for Prometheus to scrape.
//!
//! Binds 127.0.0.1 by default: the metrics name peers' addresses, so exposing them further
//! is an explicit choice of the operator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Response, Server};

use crate::ControlState;
use crate::prometheus::{CONTENT_TYPE, render};

/// HTTP server errors.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Binding the address failed.
    #[error("cannot serve metrics on {addr}: {message}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        message: String,
    },
}

/// The metrics server thread.
pub(crate) struct HttpServer {
    server: Option<Arc<Server>>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub(crate) fn spawn(addr: SocketAddr, state: Arc<ControlState>) -> Result<Self, HttpError> {
        let server = Server::http(addr).map_err(|e| HttpError::Bind {
            addr,
            message: e.to_string(),
        })?;
        let bound = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| HttpError::Bind {
                addr,
                message: "not an IP listener".into(),
            })?;
        let server = Arc::new(server);
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("camp-ctl-http".into())
            .spawn(move || {
                for req in srv.incoming_requests() {
                    let _ = respond(&state, req);
                }
            })
            .map_err(|e| HttpError::Bind {
                addr,
                message: e.to_string(),
            })?;
        Ok(HttpServer {
            server: Some(server),
            addr: bound,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread.
    pub(crate) fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.unblock();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
            // The last reference: dropping it closes the listening socket.
            drop(server);
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn respond(state: &ControlState, req: tiny_http::Request) -> std::io::Result<()> {
    let path = req.url().split('?').next().unwrap_or("");
    if path != "/metrics" {
        return req
            .respond(Response::from_string("not found; try /metrics\n").with_status_code(404));
    }
    if !matches!(req.method(), Method::Get | Method::Head) {
        return req.respond(Response::from_string("method not allowed\n").with_status_code(405));
    }
    let Some(snap) = state.snapshots.latest() else {
        return req.respond(
            Response::from_string("campd has not published a snapshot yet\n").with_status_code(503),
        );
    };
    let body = render(&snap, state.stats().as_ref());
    // The header is a constant ASCII name and value.
    let ct = Header::from_bytes("Content-Type", CONTENT_TYPE).expect("valid header");
    req.respond(Response::from_string(body).with_header(ct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_over_loopback() {
        let (state, mut engine) = crate::test_state(Duration::from_secs(1));
        let mut http = HttpServer::spawn("127.0.0.1:0".parse().unwrap(), state).unwrap();
        let addr = http.addr();
        assert_ne!(addr.port(), 0);

        let before = get(addr, "/metrics");
        assert!(before.starts_with("HTTP/1.1 503"), "{before}");

        engine.snapshots.publish(|s| s.server.sessions_opened = 17);
        let ok = get(addr, "/metrics");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(
            ok.contains("\ncamp_server_sessions_opened_total 17\n"),
            "{ok}"
        );
        assert!(get(addr, "/").starts_with("HTTP/1.1 404"));
        http.stop();
    }
}
