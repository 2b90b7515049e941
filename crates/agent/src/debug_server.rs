//! The `DEBUG=true` endpoint (SPEC §2): a loopback-only HTTP listener
//! (default `127.0.0.1:6060`) answering `GET /` and `GET /debug/vars` with
//! one JSON document: per-collector timings and errors, the process's memory
//! and CPU time, the open batch and the spool.
//!
//! It is a few dozen lines of HTTP/1.1 on a tokio socket rather than a web
//! framework: it serves one document to a local human or script, and every
//! dependency linked into the agent costs resident memory (SPEC §7: 6 MiB).
//! CPU profiling is not built in: `perf record -p <pid>` profiles the agent
//! from outside, and the document says so.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[cfg(target_os = "linux")]
use crate::collectors::agent::read_process_sample;
use crate::sender::{BatchQueue, SenderStats};
use crate::stats::AgentStats;

/// What the endpoint reads.
#[derive(Clone)]
pub struct DebugSources {
    pub collectors: Arc<AgentStats>,
    pub sender: Arc<SenderStats>,
    pub queue: Arc<BatchQueue>,
    pub started: Instant,
}

/// Serves until `shutdown`. Each connection gets one response and is closed.
pub async fn serve(listener: TcpListener, sources: DebugSources, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "debug endpoint: accept failed");
                    continue;
                }
            },
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            let answer =
                tokio::time::timeout(std::time::Duration::from_secs(5), respond(stream, &sources));
            if let Ok(Err(e)) = answer.await {
                tracing::debug!(error = %e, "debug endpoint: connection failed");
            }
        });
    }
}

async fn respond(mut stream: TcpStream, sources: &DebugSources) -> std::io::Result<()> {
    // Only the request line matters; headers are read (up to 8 KiB) and ignored.
    let mut buf = [0u8; 8192];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let (status, body) = match route(request.lines().next().unwrap_or("")) {
        Route::Vars => ("200 OK", render_vars(sources).to_string()),
        Route::NotFound => (
            "404 Not Found",
            json!({"error": "not found: try GET /debug/vars"}).to_string(),
        ),
        Route::BadMethod => (
            "405 Method Not Allowed",
            json!({"error": "only GET is served"}).to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Vars,
    NotFound,
    BadMethod,
}

/// Routes a request line such as `GET /debug/vars HTTP/1.1`.
fn route(request_line: &str) -> Route {
    let mut parts = request_line.split_ascii_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return Route::BadMethod;
    }
    match target.split('?').next().unwrap_or("") {
        "/" | "/debug/vars" => Route::Vars,
        _ => Route::NotFound,
    }
}

fn render_vars(sources: &DebugSources) -> serde_json::Value {
    let s = &sources.sender;
    json!({
        "agent_version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": sources.started.elapsed().as_secs(),
        "process": read_process_usage(),
        "collectors": sources.collectors.snapshot(),
        "sender": {
            "queued_envelopes": sources.queue.len(),
            "sent_batches": SenderStats::get(&s.sent_batches),
            "sent_envelopes": SenderStats::get(&s.sent_envelopes),
            "rejected_batches": SenderStats::get(&s.rejected_batches),
            "spooled_batches": SenderStats::get(&s.spooled_batches),
            "spool_len": SenderStats::get(&s.spool_len),
            "spool_dropped": SenderStats::get(&s.spool_dropped),
        },
        "profiling": "not built in: profile the agent from outside with `perf record -p <pid>`",
    })
}

/// The agent's own memory and CPU time, read by the `agent` collector's
/// shared [`read_process_sample`].
#[cfg(target_os = "linux")]
fn read_process_usage() -> serde_json::Value {
    let sample = read_process_sample(&mut String::new());
    let cpu = sample
        .cpu_user_seconds
        .zip(sample.cpu_system_seconds)
        .map(|(user, system)| json!({"user_seconds": user, "system_seconds": system}));
    json!({
        "rss_bytes": sample.usage.rss_bytes,
        "peak_rss_bytes": sample.usage.peak_rss_bytes,
        "threads": sample.usage.threads,
        "cpu": cpu,
    })
}

#[cfg(not(target_os = "linux"))]
fn read_process_usage() -> serde_json::Value {
    json!({"unsupported": "process usage is only read on Linux in this version"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_vars_and_refuses_the_rest() {
        assert_eq!(route("GET /debug/vars HTTP/1.1"), Route::Vars);
        assert_eq!(route("GET /?x=1 HTTP/1.1"), Route::Vars);
        assert_eq!(route("GET /other HTTP/1.1"), Route::NotFound);
        assert_eq!(route("POST /debug/vars HTTP/1.1"), Route::BadMethod);
        assert_eq!(route(""), Route::BadMethod);
    }
}
