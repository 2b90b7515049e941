//! The HTTP transport and enrollment against a scripted HTTP/1.1 server on
//! 127.0.0.1 (raw tokio, so the agent crate needs no server framework).

use std::sync::{Arc, Mutex};

use spectra_agent::collectors::CollectorKind;
use spectra_agent::config::{AgentConfig, CliOverrides};
use spectra_agent::identity::{ensure_identity, load_identity, IdentityError};
use spectra_agent::transport::http::{build_client, HttpTransport};
use spectra_agent::transport::{EncodedBatch, Encoding, Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Serves the scripted `(status, body)` answers in order, one per connection.
async fn serve(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (status, body) in answers {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let seen = Seen {
                head: head.clone(),
                body: Vec::new(),
            };
            let len: usize = seen
                .header("content-length")
                .map(|v| v.parse().unwrap())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            log.lock().unwrap().push(Seen {
                head,
                body: buf[head_end..head_end + len].to_vec(),
            });
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
            sock.shutdown().await.ok();
        }
    });
    (url, seen)
}

fn config(server: &str, state_dir: &std::path::Path, token: Option<&str>) -> AgentConfig {
    let cli = CliOverrides {
        server: Some(server.to_owned()),
        token: token.map(str::to_owned),
        hostname: Some("web-01".into()),
        state_dir: Some(state_dir.to_owned()),
        ..Default::default()
    };
    let c = AgentConfig::from_sources(None, &|_| None, &cli).unwrap();
    assert!(c.collector(CollectorKind::Cpu).enabled);
    c
}

#[tokio::test]
async fn enrollment_stores_identity_and_restart_reuses_it() {
    let (url, seen) = serve(vec![(
        200,
        r#"{"agent_id":"agent-7","credential":"cred-xyz"}"#,
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&url, dir.path(), Some("enroll-tok"));
    let client = build_client().unwrap();
    let id = ensure_identity(&cfg, &client, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(id.agent_id, "agent-7");
    assert_eq!(id.credential, "cred-xyz");
    assert_eq!(load_identity(dir.path()).unwrap(), Some(id.clone()));

    let req = seen.lock().unwrap()[0].clone();
    assert!(
        req.head.starts_with("POST /api/v1/agent/register "),
        "{}",
        req.head
    );
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["token"], "enroll-tok");
    assert_eq!(body["host"]["hostname"], "web-01");

    // Restart: the stored identity is used, with no second request (the
    // scripted server would not answer one).
    let again = ensure_identity(&cfg, &client, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again, id);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn rejected_token_is_a_clear_error() {
    let (url, _) = serve(vec![(401, r#"{"error":"token expired"}"#)]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&url, dir.path(), Some("old"));
    let e = ensure_identity(&cfg, &build_client().unwrap(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, IdentityError::TokenRejected(_)));
    assert_eq!(e.to_string(), "enrollment token rejected: token expired");
    assert!(load_identity(dir.path()).unwrap().is_none());
}

#[tokio::test]
async fn no_token_no_identity_tells_the_user_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("http://127.0.0.1:9", dir.path(), None);
    let e = ensure_identity(&cfg, &build_client().unwrap(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SPECTRA_TOKEN"), "{e}");
}

#[tokio::test]
async fn send_batch_sets_headers_and_maps_statuses() {
    let (url, seen) = serve(vec![
        (202, ""),
        (413, r#"{"error":"body too large"}"#),
        (503, r#"{"error":"busy"}"#),
        (401, r#"{"error":"revoked"}"#),
    ])
    .await;
    let t = HttpTransport::new(build_client().unwrap(), &url, "cred-1");
    let batch = EncodedBatch {
        id: "0123abcd".into(),
        encoding: Encoding::Zstd,
        body: b"compressed".to_vec(),
        envelopes: 2,
    };
    t.send_batch(&batch).await.unwrap();
    let req = seen.lock().unwrap()[0].clone();
    assert!(
        req.head.starts_with("POST /api/v1/metrics "),
        "{}",
        req.head
    );
    assert_eq!(
        req.header("authorization").as_deref(),
        Some("Bearer cred-1")
    );
    assert_eq!(
        req.header("x-spectra-batch-id").as_deref(),
        Some("0123abcd")
    );
    assert_eq!(req.header("content-encoding").as_deref(), Some("zstd"));
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(req.body, b"compressed");

    match t.send_batch(&batch).await {
        Err(TransportError::Rejected {
            status: 413,
            message,
        }) => assert_eq!(message, "body too large"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(matches!(
        t.send_batch(&batch).await,
        Err(TransportError::Unavailable(_))
    ));
    assert!(
        matches!(t.send_batch(&batch).await, Err(TransportError::Unauthorized(m)) if m == "revoked")
    );
}

#[tokio::test]
async fn long_poll_maps_204_to_none_and_decodes_commands() {
    let cmd = r#"{"id":"c1","type":"LIST_MOUNTS","payload":null,"created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:05:00Z"}"#;
    let (url, seen) = serve(vec![(204, ""), (200, cmd), (200, "")]).await;
    let t = HttpTransport::new(build_client().unwrap(), &url, "cred-1");
    assert!(t.next_command().await.unwrap().is_none());
    let c = t.next_command().await.unwrap().unwrap();
    assert_eq!(c.id, "c1");
    assert_eq!(c.command_type, "LIST_MOUNTS");
    let result = spectra_protocol::CommandResult {
        id: "c1".into(),
        command_type: "LIST_MOUNTS".into(),
        payload: serde_json::json!([]),
        error: None,
    };
    t.send_result(&result).await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen[0].head.starts_with("GET /api/v1/agent/command "));
    assert!(seen[2]
        .head
        .starts_with("POST /api/v1/agent/command_result "));
    let body: serde_json::Value = serde_json::from_slice(&seen[2].body).unwrap();
    assert_eq!(body["id"], "c1");
}

#[tokio::test]
async fn a_pending_enrollment_keeps_its_credential_at_once() {
    // Approval mode (issue 5): the 202 carries the credential; the agent
    // keeps it and does not register again (which would spend the token).
    let (url, seen) = serve(vec![(
        202,
        r#"{"agent_id":"agent-9","status":"pending","credential":"cred-pending"}"#,
    )])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&url, dir.path(), Some("enroll-tok"));
    let id = ensure_identity(&cfg, &build_client().unwrap(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(id.agent_id, "agent-9");
    assert_eq!(id.credential, "cred-pending");
    assert_eq!(load_identity(dir.path()).unwrap(), Some(id));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_rotated_credential_is_saved_and_then_used() {
    let (url, seen) = serve(vec![
        (200, r#"{"credential":"cred-new"}"#),
        (200, r#"{"stored":1}"#),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let identity = spectra_agent::identity::Identity {
        agent_id: "agent-7".into(),
        credential: "cred-old".into(),
        server: url.clone(),
        server_fingerprint: None,
    };
    spectra_agent::identity::save_identity(dir.path(), &identity).unwrap();
    let transport = spectra_agent::lifecycle::RotatingTransport::new(
        build_client().unwrap(),
        dir.path().to_owned(),
        identity,
    );
    transport.rotate().await.unwrap();
    let stored = load_identity(dir.path()).unwrap().unwrap();
    assert_eq!(stored.credential, "cred-new");
    assert_eq!(stored.agent_id, "agent-7");
    let batch = EncodedBatch {
        id: "b1".into(),
        encoding: Encoding::Identity,
        body: b"[]".to_vec(),
        envelopes: 0,
    };
    transport.send_batch(&batch).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0].head.starts_with("POST /api/v1/agent/rotate "),
        "{}",
        seen[0].head
    );
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer cred-old")
    );
    assert!(
        seen[1].head.starts_with("POST /api/v1/metrics "),
        "{}",
        seen[1].head
    );
    assert_eq!(
        seen[1].header("authorization").as_deref(),
        Some("Bearer cred-new")
    );
}
