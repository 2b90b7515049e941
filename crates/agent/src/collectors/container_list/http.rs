//! A minimal blocking HTTP/1.1 client over a unix socket, for the Docker
//! Engine API and Podman's compatible one.
//!
//! Hand-written on purpose: the agent must stay under SPEC §7's 6 MiB RSS,
//! and `bollard` (the maintained Docker client) brings hyper, tokio's I/O
//! driver, hyper-util, tower and a TLS stack, and is async while collectors
//! are sync (run on a blocking thread). The requests needed are a handful
//! of `GET`s with `Connection: close`; the only framing to handle is
//! `Content-Length`, `Transfer-Encoding: chunked` and read-to-close
//! (RFC 9112 §6.3), which [`parse_response`] does as a pure function.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request got no complete reply. Every variant names the socket.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {}: {}", .socket.display(), describe_connect_error(.source))]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("{} did not answer {request} within {} s", .socket.display(), .timeout.as_secs_f64())]
    TimedOut {
        socket: PathBuf,
        request: String,
        timeout: Duration,
    },
    #[error("{} closed the connection in the middle of the reply to {request}", .socket.display())]
    Closed { socket: PathBuf, request: String },
    #[error("talking to {} ({request}): {source}", .socket.display())]
    Io {
        socket: PathBuf,
        request: String,
        source: std::io::Error,
    },
    #[error("{} sent a malformed reply to {request}: {message}", .socket.display())]
    Malformed {
        socket: PathBuf,
        request: String,
        message: String,
    },
    #[error("the reply of {} to {request} is larger than {cap} bytes", .socket.display())]
    TooLarge {
        socket: PathBuf,
        request: String,
        cap: usize,
    },
}

/// What the admin should do about a failed `connect(2)` to a socket.
pub fn describe_connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "{e} (run the agent as root or add its user to the socket's group, e.g. `docker`)"
        ),
        std::io::ErrorKind::ConnectionRefused => {
            format!("{e} (the socket exists but no daemon listens on it)")
        }
        std::io::ErrorKind::NotFound => format!("{e} (no socket there)"),
        _ => e.to_string(),
    }
}

/// A framing problem found by [`parse_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub String);

/// Parses the bytes received so far. `Ok(None)`: the reply is not complete
/// yet (more bytes, or the end of the connection, will tell). `at_eof`
/// says the peer closed: then a body without length ends there, and any
/// other incomplete reply is `Ok(None)` for the caller to report as cut.
pub fn parse_response(buf: &[u8], at_eof: bool) -> Result<Option<Response>, FramingError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| FramingError("header is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    // `HTTP/1.1 200 OK`
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    let status = match (version, code) {
        (Some(v), Some(c)) if v.starts_with("HTTP/1.") => c
            .parse::<u16>()
            .map_err(|_| FramingError(format!("bad status line {status_line:?}")))?,
        _ => return Err(FramingError(format!("bad status line {status_line:?}"))),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| FramingError(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let body = &buf[head_end + 4..];
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        get("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        match decode_chunked(body)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(length) = get("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| FramingError(format!("bad Content-Length {length:?}")))?;
        if body.len() < length {
            return Ok(None);
        }
        body[..length].to_vec()
    } else if status == 204 || status == 304 {
        Vec::new()
    } else if at_eof {
        body.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response {
        status,
        headers,
        body,
    }))
}

/// Decodes a complete chunked body (RFC 9112 §7.1): `<hex size>[;ext]\r\n
/// <data>\r\n` ... `0\r\n[trailers]\r\n`. `Ok(None)` until the last chunk.
fn decode_chunked(mut rest: &[u8]) -> Result<Option<Vec<u8>>, FramingError> {
    let mut body = Vec::with_capacity(rest.len());
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| FramingError("chunk size is not text".into()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| FramingError(format!("bad chunk size {line:?}")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            return Ok(find(rest, b"\r\n").map(|_| body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err(FramingError("chunk data not followed by CRLF".into()));
        }
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `GET path` on the unix socket `socket`, the whole exchange (connect,
/// send, receive) bounded by `timeout`, the reply by `cap` bytes.
pub fn get(
    socket: &Path,
    path: &str,
    timeout: Duration,
    cap: usize,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let request = format!("GET {path}");
    let io_error = |source: std::io::Error| {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            HttpError::TimedOut {
                socket: socket.to_path_buf(),
                request: request.clone(),
                timeout,
            }
        } else {
            HttpError::Io {
                socket: socket.to_path_buf(),
                request: request.clone(),
                source,
            }
        }
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| HttpError::Connect {
        socket: socket.to_path_buf(),
        source,
    })?;
    stream.set_write_timeout(Some(timeout)).map_err(io_error)?;
    // The Host header is required by HTTP/1.1; Docker ignores its value.
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: spectra-agent\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).map_err(io_error)?;

    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io_error(std::io::ErrorKind::TimedOut.into()));
        }
        stream.set_read_timeout(Some(remaining)).map_err(io_error)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A reset after a complete reply is still a reply.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(io_error(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > cap {
            return Err(HttpError::TooLarge {
                socket: socket.to_path_buf(),
                request,
                cap,
            });
        }
        let at_eof = n == 0;
        match parse_response(&buf, at_eof) {
            Ok(Some(response)) => return Ok(response),
            Ok(None) if at_eof => {
                return Err(HttpError::Closed {
                    socket: socket.to_path_buf(),
                    request,
                })
            }
            Ok(None) => {}
            Err(FramingError(message)) => {
                return Err(HttpError::Malformed {
                    socket: socket.to_path_buf(),
                    request,
                    message,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_content_length_reply_and_waits_for_all_of_it() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let r = parse_response(full, false).unwrap().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{\"a\":1}");
        assert_eq!(
            parse_response(&full[..full.len() - 1], false).unwrap(),
            None
        );
        assert_eq!(parse_response(&full[..full.len() - 1], true).unwrap(), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n", false).unwrap(), None);
    }

    #[test]
    fn decodes_a_chunked_reply_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"a\"\r\n3\r\n:12\r\n1\r\n}\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let r = parse_response(raw, false).unwrap().unwrap();
        assert_eq!(r.body, b"{\"a\":12}");
        // Cut before the last chunk: not complete, even at end of file.
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n";
        assert_eq!(parse_response(cut, true).unwrap(), None);
    }

    #[test]
    fn a_body_without_length_ends_at_close() {
        let raw = b"HTTP/1.0 200 OK\r\n\r\nhello";
        assert_eq!(parse_response(raw, false).unwrap(), None);
        assert_eq!(parse_response(raw, true).unwrap().unwrap().body, b"hello");
    }

    #[test]
    fn rejects_garbage_with_what_was_wrong() {
        let e = parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false).unwrap_err();
        assert!(e.0.contains("bad status line"), "{e:?}");
        let e = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
        )
        .unwrap_err();
        assert!(e.0.contains("bad chunk size"), "{e:?}");
        let e = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).unwrap_err();
        assert!(e.0.contains("Content-Length"), "{e:?}");
    }

    #[test]
    fn permission_denied_tells_how_to_fix_it() {
        // Tests run as root, for whom chmod 000 on a socket changes
        // nothing: the mapping is tested on the error kind itself.
        let e = HttpError::Connect {
            socket: PathBuf::from("/var/run/docker.sock"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot connect to /var/run/docker.sock: "),
            "{text}"
        );
        assert!(
            text.contains("add its user to the socket's group"),
            "{text}"
        );
        let refused = describe_connect_error(&std::io::ErrorKind::ConnectionRefused.into());
        assert!(refused.contains("no daemon listens"), "{refused}");
    }
}
