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

/// The agent's own memory and CPU time (from `/proc/self`, which is the
/// agent's own process even when the host's /proc is mounted elsewhere).
#[cfg(target_os = "linux")]
fn read_process_usage() -> serde_json::Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let usage = parse_self_status(&status);
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let cpu = parse_self_stat_cpu_ticks(&stat)
        .filter(|_| ticks > 0)
        .map(|(user, system)| {
            let hz = ticks as f64;
            json!({"user_seconds": user as f64 / hz, "system_seconds": system as f64 / hz})
        });
    json!({
        "rss_bytes": usage.rss_bytes,
        "peak_rss_bytes": usage.peak_rss_bytes,
        "threads": usage.threads,
        "cpu": cpu,
    })
}

#[cfg(not(target_os = "linux"))]
fn read_process_usage() -> serde_json::Value {
    json!({"unsupported": "process usage is only read on Linux in this version"})
}

#[derive(Debug, Default, PartialEq, Eq)]
struct SelfUsage {
    rss_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    threads: Option<u64>,
}

/// Parses `/proc/self/status` (`VmRSS:     5040 kB`, `VmHWM:`, `Threads:`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_self_status(text: &str) -> SelfUsage {
    let mut u = SelfUsage::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = value
            .split_ascii_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        match key {
            "VmRSS" => u.rss_bytes = number.map(|kb| kb * 1024),
            "VmHWM" => u.peak_rss_bytes = number.map(|kb| kb * 1024),
            "Threads" => u.threads = number,
            _ => {}
        }
    }
    u
}

/// utime and stime (fields 14 and 15 of proc(5) `stat`), counted after the
/// `)` that closes the command name, which may itself hold spaces.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_self_stat_cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let after_comm = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first; utime is field 14.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
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

    #[test]
    fn parses_proc_self_status_and_stat() {
        // Captured from a spectra-agent on Debian 12 (x86_64), trimmed.
        let status =
            "Name:\tspectra-agent\nVmHWM:\t    5272 kB\nVmRSS:\t    5040 kB\nThreads:\t1\n";
        assert_eq!(
            parse_self_status(status),
            SelfUsage {
                rss_bytes: Some(5040 * 1024),
                peak_rss_bytes: Some(5272 * 1024),
                threads: Some(1)
            }
        );
        let stat = "2047 (spectra agent) S 2044 2047 2044 0 -1 4194560 402 0 0 0 3 7 0 0 20 0 1 0 123 10440704 1260";
        assert_eq!(parse_self_stat_cpu_ticks(stat), Some((3, 7)));
        assert_eq!(parse_self_stat_cpu_ticks("garbage"), None);
    }
}
