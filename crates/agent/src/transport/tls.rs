//! Which server certificates the agent trusts (SPEC §6).
//!
//! - Nothing configured: reqwest's built-in roots (webpki-roots), for a
//!   server with a certificate from a public CA.
//! - `ca_file` (`SPECTRA_CA_FILE`): exactly the CA certificates in that PEM
//!   file and nothing else, names and dates checked as usual. A private CA
//!   (`spectra-server tls init`) must not widen into "any public CA too":
//!   anyone can get a public certificate for a name they control.
//! - A pinned fingerprint (`SPECTRA_SERVER_FINGERPRINT`, or
//!   `<token>#sha256:<hex>`): only a server whose leaf certificate hashes to
//!   it, whatever its names, dates or issuer (as with an SSH host key); the
//!   handshake signature is still checked, so only the holder of that
//!   certificate's key passes. With `ca_file` too, both must hold.
//!
//! Fingerprints are the SHA-256 of the leaf certificate's DER, written
//! `sha256:<64 lowercase hex digits>` everywhere Spectra prints one;
//! [`Fingerprint::parse`] also takes upper case, colons and no prefix (the
//! way `openssl x509 -fingerprint -sha256` prints it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

/// How a fingerprint starts, in tokens and printed output.
pub const FINGERPRINT_PREFIX: &str = "sha256:";
/// What separates the enrollment token from a pinned fingerprint.
pub const TOKEN_PIN_SEPARATOR: char = '#';

/// The SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error(
        "`{0}` is not a SHA-256 fingerprint: expected sha256: and 64 hex digits (colons allowed)"
    )]
    Malformed(String),
    #[error("the enrollment token carries `#{0}`, which is not a sha256:<hex> fingerprint")]
    BadTokenSuffix(String),
}

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// `sha256:ab12...`, `AB:12:...` or `ab12...` (64 hex digits).
    pub fn parse(text: &str) -> Result<Self, FingerprintError> {
        let malformed = || FingerprintError::Malformed(text.to_owned());
        let trimmed = text.trim();
        let hex_part = match trimmed.get(..FINGERPRINT_PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(FINGERPRINT_PREFIX) => {
                &trimmed[FINGERPRINT_PREFIX.len()..]
            }
            _ => trimmed,
        };
        let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&digits, &mut bytes).map_err(|_| malformed())?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Splits `<token>#sha256:<hex>` into the token the server checks and the
/// pinned fingerprint; a token without `#` is returned whole.
pub fn split_token_pin(token: &str) -> Result<(String, Option<Fingerprint>), FingerprintError> {
    match token.split_once(TOKEN_PIN_SEPARATOR) {
        None => Ok((token.to_owned(), None)),
        Some((plain, suffix)) => {
            let has_prefix = suffix
                .get(..FINGERPRINT_PREFIX.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(FINGERPRINT_PREFIX));
            if !has_prefix {
                return Err(FingerprintError::BadTokenSuffix(suffix.to_owned()));
            }
            Ok((plain.to_owned(), Some(Fingerprint::parse(suffix)?)))
        }
    }
}

/// `true` for `http://` URLs whose host is not a loopback name or address:
/// credentials and metrics would cross the network in clear text.
pub fn is_plaintext_remote(server: &str) -> bool {
    let Some(rest) = server.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => true,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the CA file {path}: {message}")]
    ReadCa { path: PathBuf, message: String },
    #[error("the CA file {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    EmptyCa { path: PathBuf },
    #[error("the CA file {path}: {message}")]
    BadCa { path: PathBuf, message: String },
    #[error("building the TLS settings: {0}")]
    Config(String),
}

/// Why a server certificate was refused; carried inside the rustls error
/// so the agent's log names the setting to look at.
#[derive(Clone, thiserror::Error)]
pub enum TrustError {
    #[error("server certificate does not match the pinned fingerprint (pinned {pinned}, server presented {presented}); if the server's certificate was replaced on purpose, set the new fingerprint")]
    FingerprintMismatch {
        pinned: Fingerprint,
        presented: Fingerprint,
    },
    #[error("server certificate is not signed by the CA in {}", path.display())]
    NotSignedByCa { path: PathBuf },
}

// rustls shows the error inside `CertificateError::Other` with `{:?}`:
// make that the readable message.
impl std::fmt::Debug for TrustError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn refuse(e: TrustError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// The agent's trust settings for its server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTrust {
    pub ca_file: Option<PathBuf>,
    pub pin: Option<Fingerprint>,
}

impl ServerTrust {
    /// The rustls client settings, or `None` for reqwest's defaults.
    pub fn client_config(&self) -> Result<Option<rustls::ClientConfig>, TlsError> {
        if self.ca_file.is_none() && self.pin.is_none() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ca = match &self.ca_file {
            Some(path) => {
                let roots = load_ca_roots(path)?;
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsError::BadCa {
                            path: path.clone(),
                            message: e.to_string(),
                        })?;
                Some((path.clone(), verifier))
            }
            None => None,
        };
        let verifier = AgentVerifier {
            pin: self.pin,
            ca,
            algorithms: provider.signature_verification_algorithms,
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Some(config))
    }
}

/// Every certificate of a PEM file as a trust anchor.
pub fn load_ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::ReadCa {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::EmptyCa {
            path: path.to_owned(),
        });
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Checks the pin, then the CA chain; handshake signatures always.
#[derive(Debug)]
struct AgentVerifier {
    pin: Option<Fingerprint>,
    ca: Option<(PathBuf, Arc<WebPkiServerVerifier>)>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AgentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pinned) = self.pin {
            let presented = Fingerprint::of_der(end_entity);
            if presented != pinned {
                return Err(refuse(TrustError::FingerprintMismatch {
                    pinned,
                    presented,
                }));
            }
        }
        if let Some((path, inner)) = &self.ca {
            inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| match e {
                    // BadSignature: a CA with the same name as ours signed
                    // it (two `tls init` runs on one host), not ours.
                    rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer | CertificateError::BadSignature,
                    ) => refuse(TrustError::NotSignedByCa { path: path.clone() }),
                    other => other,
                })?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

    #[test]
    fn fingerprint_round_trips_in_the_printed_format() {
        let fp = Fingerprint::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(fp.to_string(), format!("sha256:{HEX}"));
        assert_eq!(Fingerprint::parse(&fp.to_string()).unwrap(), fp);
    }

    #[test]
    fn fingerprint_accepts_openssl_style_and_bare_hex() {
        let openssl: String = HEX
            .to_ascii_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let expected = Fingerprint::parse(HEX).unwrap();
        assert_eq!(Fingerprint::parse(&openssl).unwrap(), expected);
        assert_eq!(
            Fingerprint::parse(&format!("SHA256:{openssl}")).unwrap(),
            expected
        );
    }

    #[test]
    fn fingerprint_rejects_wrong_length_and_non_hex() {
        for bad in [
            "",
            "sha256:",
            "sha256:abcd",
            &HEX[1..],
            &format!("{HEX}00"),
            &HEX.replace('f', "g"),
        ] {
            let e = Fingerprint::parse(bad).unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{bad}: {e}");
        }
    }

    #[test]
    fn fingerprint_of_der_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            Fingerprint::of_der(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_pin_is_split_off() {
        let (token, pin) = split_token_pin(&format!("tok-123#sha256:{HEX}")).unwrap();
        assert_eq!(token, "tok-123");
        assert_eq!(pin, Some(Fingerprint::parse(HEX).unwrap()));
        assert_eq!(
            split_token_pin("tok-123").unwrap(),
            ("tok-123".to_owned(), None)
        );
    }

    #[test]
    fn token_with_a_foreign_suffix_is_an_error() {
        let e = split_token_pin("tok#md5:abcd").unwrap_err();
        assert_eq!(e, FingerprintError::BadTokenSuffix("md5:abcd".into()));
        let e = split_token_pin("tok#sha256:abcd").unwrap_err();
        assert!(matches!(e, FingerprintError::Malformed(_)), "{e:?}");
    }

    #[test]
    fn plaintext_to_a_remote_host_is_flagged() {
        for remote in [
            "http://10.0.0.5:8080",
            "http://monitor.example.com",
            "http://[2001:db8::1]:8080/",
            "http://0.0.0.0:8080",
        ] {
            assert!(is_plaintext_remote(remote), "{remote}");
        }
        for local in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://10.0.0.5:8443",
        ] {
            assert!(!is_plaintext_remote(local), "{local}");
        }
    }

    #[test]
    fn ca_file_without_certificates_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = load_ca_roots(&path).unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = load_ca_roots(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn trust_errors_read_well_through_rustls() {
        let pinned = Fingerprint::parse(HEX).unwrap();
        let presented = Fingerprint::of_der(b"other");
        let e = refuse(TrustError::FingerprintMismatch { pinned, presented }).to_string();
        assert!(
            e.contains("server certificate does not match the pinned fingerprint"),
            "{e}"
        );
        assert!(
            e.contains(&pinned.to_string()) && e.contains(&presented.to_string()),
            "{e}"
        );
        let e = refuse(TrustError::NotSignedByCa {
            path: "/etc/spectra/ca.pem".into(),
        })
        .to_string();
        assert!(
            e.contains("not signed by the CA in /etc/spectra/ca.pem"),
            "{e}"
        );
    }
}
