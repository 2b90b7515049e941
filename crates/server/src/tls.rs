//! TLS for the server (SPEC §6): serving HTTPS from PEM certificate files,
//! and `spectra-server tls init`, which makes a private CA and a server
//! certificate signed by it.
//!
//! - [`ServerTls::load`]: the certificate chain and key (`--tls-cert`,
//!   `--tls-key`) as a rustls config on the ring provider (the one reqwest
//!   already links), plus the leaf's SHA-256 fingerprint that agents can pin.
//! - [`serve`]: [`crate::http::app`] behind TLS with the same
//!   `axum::serve` as plain HTTP, so graceful shutdown and
//!   `ConnectInfo<SocketAddr>` behave the same. Handshakes run in their own
//!   tasks (a slow or hostile client cannot hold up the others), bounded in
//!   number and time; a failed handshake is logged at debug and the server
//!   goes on.
//! - [`init`]: `tls init`, with rcgen.
//!
//! Fingerprints use the agent's format ([`Fingerprint`]:
//! `sha256:<lowercase hex>`), so what the server prints is what the agent
//! takes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use chrono::{Datelike, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use spectra_agent::transport::tls::{Fingerprint, TOKEN_PIN_SEPARATOR};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the kernel's
/// backlog. Bounds the memory a flood of half-open connections can take.
const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Finished handshakes waiting for axum to pick them up.
const ACCEPTED_QUEUE: usize = 64;
/// Validity of the certificates `tls init` makes: the CA outlives several
/// server certificates; the server certificate stays within the 825 days
/// Apple platforms accept even from a private CA.
const CA_VALIDITY_DAYS: i64 = 3650;
const SERVER_VALIDITY_DAYS: i64 = 825;

pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const SERVER_CERT_FILE: &str = "server.pem";
pub const SERVER_KEY_FILE: &str = "server-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the TLS certificate {path}: {message}")]
    ReadCert { path: PathBuf, message: String },
    #[error("the TLS certificate file {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCert { path: PathBuf },
    #[error("reading the TLS key {path}: {message} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)")]
    ReadKey { path: PathBuf, message: String },
    #[error("the TLS certificate {cert} and key {key} do not fit together: {message}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
    #[error("{} already exist in {}; pass --force to replace them (agents that trust the old CA or pin the old certificate will then refuse the server)", .existing.join(", "), .dir.display())]
    Exists { dir: PathBuf, existing: Vec<String> },
    #[error("`{0}` is not a valid DNS name for a certificate")]
    BadName(String),
    #[error("generating the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The loaded certificate and key, ready to serve.
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate (what agents pin).
    pub fingerprint: Fingerprint,
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the PEM certificate chain (leaf first) and private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsError::ReadCert {
                path: cert.to_owned(),
                message: e.to_string(),
            })?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::NoCert {
                path: cert.to_owned(),
            });
        };
        let fingerprint = Fingerprint::of_der(leaf);
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::ReadKey {
            path: key.to_owned(),
            message: e.to_string(),
        })?;
        let config_error = |message: String| TlsError::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| config_error(e.to_string()))?;
        // The router speaks HTTP/1.1 only (axum's `http1` feature).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            cert_path: cert.to_owned(),
        })
    }

    /// The lines printed at start after the enrollment token.
    pub fn render_startup(&self, enrollment_token: &str) -> String {
        format!(
            "serving https with certificate {}\nserver certificate fingerprint: {}\nagents can pin it with SPECTRA_TOKEN='{enrollment_token}{TOKEN_PIN_SEPARATOR}{}'\n",
            self.cert_path.display(),
            self.fingerprint,
            self.fingerprint,
        )
    }
}

/// Warns when the API is reachable from the network without TLS.
pub fn warn_if_plaintext(listen: SocketAddr) {
    if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "serving plain HTTP on a non-loopback address: traffic including passwords, API tokens, enrollment tokens and agent credentials is unencrypted; enable TLS with --tls-cert and --tls-key (SPECTRA_TLS_CERT, SPECTRA_TLS_KEY), e.g. from `spectra-server tls init`"
        );
    }
}

/// Serves [`crate::http::app`] over TLS on `listener` until `shutdown`, then
/// stops accepting and lets in-flight requests finish, as
/// [`crate::http::serve`] does for plain HTTP.
pub async fn serve(
    listener: TcpListener,
    tls: &ServerTls,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_router(listener, tls, crate::http::app(state), shutdown).await
}

/// [`serve`] for any router (tests use a small one).
pub async fn serve_router(
    listener: TcpListener,
    tls: &ServerTls,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local_addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    let acceptor = TlsAcceptor::from(tls.config.clone());
    let accept_task = tokio::spawn(accept_loop(listener, acceptor, tx, shutdown.clone()));
    // axum gives `ConnectInfo<SocketAddr>` for its own TcpListener and for
    // any listener wrapped by `tap_io`; the no-op tap is how a custom
    // listener gets the same `ConnectInfo` the handlers read.
    let incoming = HandshakenListener { rx, local_addr }.tap_io(|_| ());
    let result = axum::serve(
        incoming,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .await;
    shutdown.cancel();
    let _ = accept_task.await;
    result
}

/// Connections whose TLS handshake is done, as an axum listener.
struct HandshakenListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl axum::serve::Listener for HandshakenListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (shutdown): nothing more will come, and
            // axum is about to stop asking.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = pending.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin (as axum's own accept loop does).
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match handshake {
                Ok(Ok(stream)) => {
                    // A closed channel means the server is stopping.
                    let _ = tx.send((stream, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

// ---- `spectra-server tls init` ----

/// `spectra-server tls ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TlsCommand {
    /// Generate a private CA and a server certificate signed by it.
    Init(InitArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Directory for ca.pem, ca-key.pem, server.pem and server-key.pem.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// A DNS name the server is reached by (repeatable); default: this
    /// machine's hostname. `localhost` is always included.
    #[arg(long = "name", value_name = "HOST")]
    pub names: Vec<String>,
    /// An IP address the server is reached by (repeatable). 127.0.0.1 and
    /// ::1 are always included.
    #[arg(long = "ip", value_name = "IP")]
    pub ips: Vec<IpAddr>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// What `tls init` made.
#[derive(Debug)]
pub struct InitReport {
    pub dir: PathBuf,
    pub names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub fingerprint: Fingerprint,
    pub not_after: chrono::NaiveDate,
}

impl InitReport {
    /// What `tls init` prints: the files, the fingerprint and the exact
    /// settings for the server and the agents.
    pub fn render(&self) -> String {
        let path = |f: &str| self.dir.join(f).display().to_string();
        let host = self
            .names
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        let sans: Vec<String> = self
            .names
            .iter()
            .cloned()
            .chain(self.ips.iter().map(IpAddr::to_string))
            .collect();
        format!(
            "wrote {ca} (CA certificate: copy it to agents)\n\
             wrote {ca_key} (CA private key, mode 0600: keep it off the network; only needed to sign new server certificates)\n\
             wrote {cert} (server certificate, valid until {not_after} for {sans})\n\
             wrote {key} (server private key, mode 0600)\n\
             server certificate fingerprint: {fp}\n\
             \n\
             start the server with:\n  \
             spectra-server --tls-cert {cert} --tls-key {key}\n\
             agents that trust the CA:\n  \
             SPECTRA_SERVER=https://{host}:8080 SPECTRA_CA_FILE=/path/to/ca.pem SPECTRA_TOKEN=<enrollment token> spectra-agent\n\
             or agents that pin the server certificate instead (nothing to copy):\n  \
             SPECTRA_SERVER=https://{host}:8080 SPECTRA_TOKEN='<enrollment token>{sep}{fp}' spectra-agent\n",
            ca = path(CA_CERT_FILE),
            ca_key = path(CA_KEY_FILE),
            cert = path(SERVER_CERT_FILE),
            key = path(SERVER_KEY_FILE),
            not_after = self.not_after,
            sans = sans.join(", "),
            fp = self.fingerprint,
            sep = TOKEN_PIN_SEPARATOR,
        )
    }
}

/// The certificate's names: the given ones (or `default_host`), then
/// `localhost`; its IPs: the given ones, then 127.0.0.1 and ::1. Duplicates
/// are dropped.
pub fn subject_names(
    names: &[String],
    ips: &[IpAddr],
    default_host: &str,
) -> Result<(Vec<String>, Vec<IpAddr>), TlsError> {
    let mut out_names: Vec<String> = Vec::new();
    let given: Vec<String> = if names.is_empty() {
        // A hostname a certificate cannot carry is left out, not an error:
        // the user did not ask for it.
        let host = default_host.trim().to_ascii_lowercase();
        if is_dns_name(&host) {
            vec![host]
        } else {
            Vec::new()
        }
    } else {
        names.to_vec()
    };
    for name in given.into_iter().chain(["localhost".to_owned()]) {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&name) {
            return Err(TlsError::BadName(name));
        }
        if !out_names.contains(&name) {
            out_names.push(name);
        }
    }
    let mut out_ips: Vec<IpAddr> = Vec::new();
    for ip in ips.iter().copied().chain([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]) {
        if !out_ips.contains(&ip) {
            out_ips.push(ip);
        }
    }
    Ok((out_names, out_ips))
}

/// Letters, digits, `-` and dots, labels of 1-63 characters, a `*.` prefix
/// allowed (RFC 1123 names as certificates carry them).
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `tls init`: a CA and a server certificate signed by it, in `args.out`.
pub fn init(args: &InitArgs) -> Result<InitReport, TlsError> {
    let host = spectra_agent::collectors::host_info::detect_hostname();
    let (names, ips) = subject_names(&args.names, &args.ips, &host)?;
    crate::create_private_dir(&args.out).map_err(|source| TlsError::Write {
        path: args.out.clone(),
        source,
    })?;
    let dir = std::fs::canonicalize(&args.out).map_err(|source| TlsError::Write {
        path: args.out.clone(),
        source,
    })?;
    let files = [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE];
    let existing: Vec<String> = files
        .iter()
        .filter(|f| dir.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    if !existing.is_empty() && !args.force {
        return Err(TlsError::Exists { dir, existing });
    }

    let today = Utc::now().date_naive();
    // A day of slack for clocks that run behind.
    let not_before = today - chrono::Days::new(1);
    let date =
        |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let ca_not_after = today + chrono::Duration::days(CA_VALIDITY_DAYS);
    let not_after = today + chrono::Duration::days(SERVER_VALIDITY_DAYS);

    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::default();
    // A name of its own per CA: a verifier looks the issuer up by name, and
    // two CAs made on one host must not pass for each other.
    let mut tag = [0u8; 4];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut tag);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("Spectra CA {} {today} {}", names[0], hex::encode(tag)),
    );
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Spectra");
    // It signs server certificates directly, never another CA.
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = date(not_before);
    ca_params.not_after = date(ca_not_after);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);

    let server_key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    for name in &names {
        let dns = name
            .clone()
            .try_into()
            .map_err(|_| TlsError::BadName(name.clone()))?;
        params.subject_alt_names.push(rcgen::SanType::DnsName(dns));
    }
    for ip in &ips {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(*ip));
    }
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = date(not_before);
    params.not_after = date(not_after);
    let server_cert = params.signed_by(&server_key, &issuer)?;

    // Keys first, all written before anything is reported.
    write_file(&dir.join(CA_KEY_FILE), &ca_key.serialize_pem(), true)?;
    write_file(
        &dir.join(SERVER_KEY_FILE),
        &server_key.serialize_pem(),
        true,
    )?;
    write_file(&dir.join(CA_CERT_FILE), &ca_cert.pem(), false)?;
    write_file(&dir.join(SERVER_CERT_FILE), &server_cert.pem(), false)?;
    Ok(InitReport {
        dir,
        names,
        ips,
        fingerprint: Fingerprint::of_der(server_cert.der()),
        not_after,
    })
}

/// Writes `text` to `path` (replacing it), mode 0600 when `private`.
fn write_file(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    let io = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(io)?;
    // A file replaced with --force keeps its old mode otherwise.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_into(dir: &Path) -> InitReport {
        init(&InitArgs {
            out: dir.to_owned(),
            names: vec!["monitor.example.net".into()],
            ips: vec!["192.0.2.10".parse().unwrap()],
            force: false,
        })
        .unwrap()
    }

    #[test]
    fn default_names_are_the_hostname_and_loopback() {
        let (names, ips) = subject_names(&[], &[], "Web-01").unwrap();
        assert_eq!(names, ["web-01", "localhost"]);
        assert_eq!(
            ips,
            [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        // A hostname no certificate can carry is left out.
        let (names, _) = subject_names(&[], &[], "bad host_name").unwrap();
        assert_eq!(names, ["localhost"]);
    }

    #[test]
    fn given_names_replace_the_hostname_and_duplicates_go() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let (names, ips) = subject_names(
            &["Monitor.Example.".into(), "localhost".into()],
            &[ip, ip],
            "web-01",
        )
        .unwrap();
        assert_eq!(names, ["monitor.example", "localhost"]);
        assert_eq!(ips.len(), 3);
        assert_eq!(ips[0], ip);
    }

    #[test]
    fn invalid_names_are_refused() {
        for bad in ["-x.example", "a..b", "under_score.example", "10.0.0.1", ""] {
            let e = subject_names(&[bad.to_owned()], &[], "h").unwrap_err();
            assert!(matches!(e, TlsError::BadName(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn init_writes_a_ca_and_a_server_certificate_that_load() {
        let dir = tempfile::tempdir().unwrap();
        let report = init_into(dir.path());
        for f in [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        #[cfg(unix)]
        for f in [CA_KEY_FILE, SERVER_KEY_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let tls = ServerTls::load(
            &dir.path().join(SERVER_CERT_FILE),
            &dir.path().join(SERVER_KEY_FILE),
        )
        .unwrap();
        assert_eq!(tls.fingerprint, report.fingerprint);
        let printed = report.render();
        assert!(
            printed.contains(&format!(
                "server certificate fingerprint: {}",
                report.fingerprint
            )),
            "{printed}"
        );
        assert!(
            printed.contains("monitor.example.net, localhost, 192.0.2.10, 127.0.0.1, ::1"),
            "{printed}"
        );
    }

    #[test]
    fn the_server_certificate_verifies_against_the_ca_for_its_names() {
        let dir = tempfile::tempdir().unwrap();
        init_into(dir.path());
        let roots =
            spectra_agent::transport::tls::load_ca_roots(&dir.path().join(CA_CERT_FILE)).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_file(dir.path().join(SERVER_CERT_FILE)).unwrap();
        let now = rustls::pki_types::UnixTime::now();
        use rustls::client::danger::ServerCertVerifier;
        for name in [
            "monitor.example.net",
            "localhost",
            "192.0.2.10",
            "127.0.0.1",
            "::1",
        ] {
            let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&leaf, &[], &server_name, &[], now)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("other.example.net").unwrap();
        assert!(verifier
            .verify_server_cert(&leaf, &[], &other, &[], now)
            .is_err());
    }

    #[test]
    fn init_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let first = init_into(dir.path());
        let e = init(&InitArgs {
            out: dir.path().to_owned(),
            names: vec![],
            ips: vec![],
            force: false,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--force") && e.contains(CA_KEY_FILE), "{e}");
        let tls = ServerTls::load(
            &dir.path().join(SERVER_CERT_FILE),
            &dir.path().join(SERVER_KEY_FILE),
        )
        .unwrap();
        assert_eq!(tls.fingerprint, first.fingerprint, "files left alone");
        let second = init(&InitArgs {
            out: dir.path().to_owned(),
            names: vec![],
            ips: vec![],
            force: true,
        })
        .unwrap();
        assert_ne!(second.fingerprint, first.fingerprint);
    }

    /// A client that trusts only the CA in `dir`.
    fn client_trusting(dir: &Path) -> reqwest::Client {
        let pem = std::fs::read(dir.join(CA_CERT_FILE)).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn serves_with_connect_info_survives_bad_handshakes_and_stops() {
        use axum::extract::ConnectInfo;
        use tokio::io::AsyncWriteExt;

        let dir = tempfile::tempdir().unwrap();
        init_into(dir.path());
        let tls = ServerTls::load(
            &dir.path().join(SERVER_CERT_FILE),
            &dir.path().join(SERVER_KEY_FILE),
        )
        .unwrap();
        let router = axum::Router::new().route(
            "/peer",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve_router(listener, &tls, router, shutdown).await }
        });

        // Plain HTTP and a half-open connection: handshakes that never
        // succeed must not stop the server.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let _idle = TcpStream::connect(addr).await.unwrap();
        let untrusting = reqwest::Client::new()
            .get(format!("https://{addr}/peer"))
            .send()
            .await;
        assert!(untrusting.is_err(), "a client without the CA connected");

        let body = client_trusting(dir.path())
            .get(format!("https://{addr}/peer"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "127.0.0.1");

        shutdown.cancel();
        server.await.unwrap().unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }

    #[test]
    fn mismatched_or_missing_files_are_clear_errors() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_into(a.path());
        init_into(b.path());
        let e = ServerTls::load(
            &a.path().join(SERVER_CERT_FILE),
            &b.path().join(SERVER_KEY_FILE),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("do not fit together"), "{e}");
        let e = ServerTls::load(
            &a.path().join(SERVER_KEY_FILE),
            &a.path().join(SERVER_KEY_FILE),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = ServerTls::load(
            &a.path().join(SERVER_CERT_FILE),
            &a.path().join("missing-key.pem"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing-key.pem"), "{e}");
    }
}
