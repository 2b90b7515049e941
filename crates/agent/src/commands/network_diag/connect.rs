//! `connect`: one TCP connection attempt with a timeout, classified the way
//! an operator reads it (connected, refused, timeout, unreachable).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spectra_protocol::ConnectResult;
use tokio::net::TcpStream;

use super::error_text;

/// Connects to `address`, giving up after `timeout`. Never fails: every
/// outcome is a [`ConnectResult`].
pub async fn connect_tcp(address: SocketAddr, timeout: Duration) -> ConnectResult {
    let started = Instant::now();
    let attempt = tokio::time::timeout(timeout, TcpStream::connect(address)).await;
    let elapsed_ms = started.elapsed().as_nanos() as f64 / 1e6;
    let (outcome, error) = match attempt {
        Ok(Ok(stream)) => {
            // Closed at once: the test was reaching the port, not talking.
            drop(stream);
            ("connected", None)
        }
        Ok(Err(e)) => (classify(&e), Some(error_text(&e))),
        Err(_) => (
            "timeout",
            Some(format!("no answer within {} ms", timeout.as_millis())),
        ),
    };
    ConnectResult {
        address: address.to_string(),
        success: outcome == "connected",
        latency_ms: (outcome != "timeout").then_some(elapsed_ms),
        error,
        outcome: Some(outcome.to_owned()),
    }
}

/// The `outcome` of a failed connect.
pub fn classify(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::TimedOut => "timeout",
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_connect_errors() {
        let e = |k| io::Error::from(k);
        assert_eq!(classify(&e(io::ErrorKind::ConnectionRefused)), "refused");
        assert_eq!(classify(&e(io::ErrorKind::HostUnreachable)), "unreachable");
        assert_eq!(
            classify(&e(io::ErrorKind::NetworkUnreachable)),
            "unreachable"
        );
        assert_eq!(classify(&e(io::ErrorKind::TimedOut)), "timeout");
        assert_eq!(classify(&e(io::ErrorKind::PermissionDenied)), "error");
    }

    #[tokio::test]
    async fn a_listening_port_connects_and_a_closed_one_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let r = connect_tcp(open, Duration::from_secs(5)).await;
        assert!(r.success, "{r:?}");
        assert_eq!(r.outcome.as_deref(), Some("connected"));
        assert_eq!(r.address, open.to_string());
        assert!(r.latency_ms.is_some_and(|ms| ms >= 0.0));
        drop(listener);
        let r = connect_tcp(open, Duration::from_secs(5)).await;
        assert!(!r.success);
        assert_eq!(r.outcome.as_deref(), Some("refused"), "{r:?}");
        assert!(r.error.unwrap().to_lowercase().contains("refused"));
    }
}
