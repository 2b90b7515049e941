//! The server's settings: one struct, layered defaults < TOML file
//! (`--config FILE`) < environment (`SPECTRA_*`) < command-line flags.
//!
//! Every layer is parsed into the same all-optional [`SettingsLayer`]; the
//! layers are then merged in order over [`Settings::default`], which is the
//! one place the defaults are written. Secrets ([`Secret`]) never show in
//! `Debug` output.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// A secret setting (password, token): never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://<path>`: the embedded store.
    Sqlite(PathBuf),
    /// `postgres://...` (kept so the error names the scheme; not built yet).
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: String, message: String },
    #[error("PostgreSQL backend not available in this version yet (database url `{0}`); use sqlite://PATH or leave it unset for the embedded store")]
    PostgresUnavailable(String),
}

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// The server's settings, all layers applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: `sqlite://<data_dir>/spectra.db`.
    pub database_url: Option<String>,
    pub local_agent: bool,
    pub admin_password: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub enroll_token: Option<Secret>,
    /// New agents wait for an administrator's approval (`202 pending`);
    /// the default until an admin sets it through
    /// `PUT /api/v1/settings/enrollment`, which is kept in the store.
    pub require_approval: bool,
    /// An agent silent for longer is `stale` (3x the shortest default
    /// collector interval would be 15 s; 30 s leaves room for jitter and
    /// one lost batch).
    pub stale_after: Duration,
    /// An agent silent for longer is `offline`.
    pub offline_after: Duration,
    /// A queued command nobody claimed expires after this.
    pub command_ttl: Duration,
    /// A delivered command without an answer fails after this.
    pub command_delivered_timeout: Duration,
    /// How long `GET /api/v1/agent/command` holds the request at most.
    pub long_poll_max: Duration,
    /// Commands queued or running at once per agent; more are refused (429).
    pub command_max_open: usize,
    /// Commands queued per agent in any minute; more are refused (429).
    pub command_max_per_minute: usize,
    /// Largest accepted (compressed) request body for ingest.
    pub max_body_bytes: usize,
    /// Largest accepted decompressed metrics batch.
    pub max_decompressed_bytes: usize,
    pub retention_raw: Duration,
    pub retention_minute: Duration,
    pub retention_hour: Duration,
    /// How long an agent credential lookup is cached in memory.
    pub auth_cache_ttl: Duration,
    /// PEM certificate chain for HTTPS; set together with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A browser session ends this long after login.
    pub session_ttl: Duration,
    /// A browser session unused this long ends.
    pub session_idle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let retention = spectra_store::Retention::default();
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            data_dir: PathBuf::from("./spectra-data"),
            database_url: None,
            local_agent: true,
            admin_password: None,
            admin_token: None,
            enroll_token: None,
            require_approval: false,
            stale_after: Duration::from_secs(30),
            offline_after: Duration::from_secs(300),
            command_ttl: Duration::from_secs(600),
            command_delivered_timeout: Duration::from_secs(300),
            long_poll_max: Duration::from_secs(30),
            command_max_open: 4,
            command_max_per_minute: 30,
            max_body_bytes: 8 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            retention_raw: retention.raw,
            retention_minute: retention.minute,
            retention_hour: retention.hour,
            auth_cache_ttl: Duration::from_secs(10),
            tls_cert: None,
            tls_key: None,
            session_ttl: Duration::from_secs(12 * 3600),
            session_idle: Duration::from_secs(30 * 60),
        }
    }
}

/// One layer of settings; `None` means "not set here". The TOML file is
/// parsed straight into this struct, so an unknown key is an error that
/// names it. Durations are humantime strings (`"30s"`, `"5m"`, `"7d"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLayer {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub local_agent: Option<bool>,
    pub admin_password: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub enroll_token: Option<Secret>,
    pub require_approval: Option<bool>,
    pub stale_after: Option<String>,
    pub offline_after: Option<String>,
    pub command_ttl: Option<String>,
    pub command_delivered_timeout: Option<String>,
    pub long_poll_max: Option<String>,
    pub command_max_open: Option<usize>,
    pub command_max_per_minute: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_decompressed_bytes: Option<usize>,
    pub retention_raw: Option<String>,
    pub retention_minute: Option<String>,
    pub retention_hour: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub session_ttl: Option<String>,
    pub session_idle: Option<String>,
}

/// `spectra-server <command>`.
#[derive(Debug, clap::Subcommand)]
pub enum ServerCommand {
    /// Certificates for HTTPS.
    #[command(subcommand)]
    Tls(crate::tls::TlsCommand),
}

/// Command-line flags (`spectra-server --help`).
#[derive(Debug, Parser)]
#[command(
    name = "spectra-server",
    version,
    about = "Spectra server: HTTP API, storage and the in-process local agent"
)]
pub struct Cli {
    /// TOML settings file (unknown keys are errors).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: SPECTRA_LISTEN] [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Data directory [env: SPECTRA_DATA_DIR] [default: ./spectra-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH (default <data-dir>/spectra.db) [env: SPECTRA_DATABASE_URL]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Do not monitor this host with the in-process agent.
    #[arg(long)]
    pub no_local_agent: bool,
    /// Serve HTTPS with this PEM certificate chain [env: SPECTRA_TLS_CERT]
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key [env: SPECTRA_TLS_KEY]
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Without a subcommand, the server runs.
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
}

impl Cli {
    fn to_layer(&self) -> SettingsLayer {
        SettingsLayer {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            local_agent: self.no_local_agent.then_some(false),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            ..SettingsLayer::default()
        }
    }
}

impl SettingsLayer {
    /// Parses a TOML settings file's text.
    pub fn parse_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }

    /// The `SPECTRA_*` variables, read through `lookup` (tests pass a map).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let parse_usize = |k: &str| -> Result<Option<usize>, ConfigError> {
            get(k)
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|e| invalid(k, format!("`{v}`: {e}")))
                })
                .transpose()
        };
        let local_agent = match get("SPECTRA_NO_LOCAL_AGENT").as_deref() {
            None => None,
            Some("1" | "true" | "yes") => Some(false),
            Some("0" | "false" | "no") => Some(true),
            Some(v) => {
                return Err(invalid(
                    "SPECTRA_NO_LOCAL_AGENT",
                    format!("expected true or false, got `{v}`"),
                ))
            }
        };
        let require_approval = match get("SPECTRA_REQUIRE_APPROVAL").as_deref() {
            None => None,
            Some("1" | "true" | "yes") => Some(true),
            Some("0" | "false" | "no") => Some(false),
            Some(v) => {
                return Err(invalid(
                    "SPECTRA_REQUIRE_APPROVAL",
                    format!("expected true or false, got `{v}`"),
                ))
            }
        };
        Ok(Self {
            listen: get("SPECTRA_LISTEN"),
            data_dir: get("SPECTRA_DATA_DIR").map(PathBuf::from),
            database_url: get("SPECTRA_DATABASE_URL"),
            local_agent,
            admin_password: get("SPECTRA_ADMIN_PASSWORD").map(Secret),
            admin_token: get("SPECTRA_ADMIN_TOKEN").map(Secret),
            enroll_token: get("SPECTRA_ENROLL_TOKEN").map(Secret),
            require_approval,
            stale_after: get("SPECTRA_STALE_AFTER"),
            offline_after: get("SPECTRA_OFFLINE_AFTER"),
            command_ttl: get("SPECTRA_COMMAND_TTL"),
            command_delivered_timeout: get("SPECTRA_COMMAND_DELIVERED_TIMEOUT"),
            long_poll_max: get("SPECTRA_LONG_POLL_MAX"),
            command_max_open: parse_usize("SPECTRA_COMMAND_MAX_OPEN")?,
            command_max_per_minute: parse_usize("SPECTRA_COMMAND_MAX_PER_MINUTE")?,
            max_body_bytes: parse_usize("SPECTRA_MAX_BODY_BYTES")?,
            max_decompressed_bytes: parse_usize("SPECTRA_MAX_DECOMPRESSED_BYTES")?,
            retention_raw: get("SPECTRA_RETENTION_RAW"),
            retention_minute: get("SPECTRA_RETENTION_MINUTE"),
            retention_hour: get("SPECTRA_RETENTION_HOUR"),
            tls_cert: get("SPECTRA_TLS_CERT").map(PathBuf::from),
            tls_key: get("SPECTRA_TLS_KEY").map(PathBuf::from),
            session_ttl: get("SPECTRA_SESSION_TTL"),
            session_idle: get("SPECTRA_SESSION_IDLE"),
        })
    }
}

fn parse_duration_setting(name: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value).map_err(|e| {
        invalid(
            name,
            format!("`{value}` is not a duration like 30s or 5m: {e}"),
        )
    })?;
    if d.is_zero() {
        return Err(invalid(name, "must be longer than zero"));
    }
    Ok(d)
}

impl Settings {
    /// Loads the settings of the running process: `--config` file, then
    /// the environment, then the flags.
    pub fn load(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut settings = Settings::default();
        if let Some(path) = &cli.config {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.clone(),
                source,
            })?;
            settings.apply(SettingsLayer::parse_toml(&text, path)?)?;
        }
        settings.apply(SettingsLayer::from_env(env)?)?;
        settings.apply(cli.to_layer())?;
        settings.database()?;
        settings.tls_files()?;
        Ok(settings)
    }

    /// Lays `layer` over these settings.
    pub fn apply(&mut self, layer: SettingsLayer) -> Result<(), ConfigError> {
        if let Some(v) = layer.listen {
            self.listen = v.parse().map_err(|e| {
                invalid(
                    "listen",
                    format!("`{v}` is not an address like 0.0.0.0:8080: {e}"),
                )
            })?;
        }
        if let Some(v) = layer.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = layer.database_url {
            self.database_url = Some(v);
        }
        if let Some(v) = layer.local_agent {
            self.local_agent = v;
        }
        if let Some(v) = layer.admin_password {
            self.admin_password = Some(v);
        }
        if let Some(v) = layer.admin_token {
            self.admin_token = Some(v);
        }
        if let Some(v) = layer.enroll_token {
            self.enroll_token = Some(v);
        }
        if let Some(v) = layer.require_approval {
            self.require_approval = v;
        }
        if let Some(v) = layer.tls_cert {
            self.tls_cert = Some(v);
        }
        if let Some(v) = layer.tls_key {
            self.tls_key = Some(v);
        }
        let durations = [
            ("stale_after", layer.stale_after, &mut self.stale_after),
            (
                "offline_after",
                layer.offline_after,
                &mut self.offline_after,
            ),
            ("command_ttl", layer.command_ttl, &mut self.command_ttl),
            (
                "command_delivered_timeout",
                layer.command_delivered_timeout,
                &mut self.command_delivered_timeout,
            ),
            (
                "long_poll_max",
                layer.long_poll_max,
                &mut self.long_poll_max,
            ),
            (
                "retention_raw",
                layer.retention_raw,
                &mut self.retention_raw,
            ),
            (
                "retention_minute",
                layer.retention_minute,
                &mut self.retention_minute,
            ),
            (
                "retention_hour",
                layer.retention_hour,
                &mut self.retention_hour,
            ),
            ("session_ttl", layer.session_ttl, &mut self.session_ttl),
            ("session_idle", layer.session_idle, &mut self.session_idle),
        ];
        for (name, value, slot) in durations {
            if let Some(v) = value {
                *slot = parse_duration_setting(name, &v)?;
            }
        }
        for (name, value, slot) in [
            (
                "command_max_open",
                layer.command_max_open,
                &mut self.command_max_open,
            ),
            (
                "command_max_per_minute",
                layer.command_max_per_minute,
                &mut self.command_max_per_minute,
            ),
            (
                "max_body_bytes",
                layer.max_body_bytes,
                &mut self.max_body_bytes,
            ),
            (
                "max_decompressed_bytes",
                layer.max_decompressed_bytes,
                &mut self.max_decompressed_bytes,
            ),
        ] {
            if let Some(v) = value {
                if v == 0 {
                    return Err(invalid(name, "must be larger than zero"));
                }
                *slot = v;
            }
        }
        if self.offline_after < self.stale_after {
            return Err(invalid(
                "offline_after",
                "must not be shorter than stale_after",
            ));
        }
        // The SPEC's long-poll contract is "up to 30 s"; agents time out beyond it.
        if self.long_poll_max > Duration::from_secs(30) {
            return Err(invalid("long_poll_max", "must be at most 30s"));
        }
        Ok(())
    }

    /// The database the settings point at.
    pub fn database(&self) -> Result<DatabaseUrl, ConfigError> {
        parse_database_url(self.database_url.as_deref(), &self.data_dir)
    }

    /// The HTTPS certificate and key, `None` for plain HTTP; one without
    /// the other is an error.
    pub fn tls_files(&self) -> Result<Option<(&Path, &Path)>, ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(
                "tls_key",
                "tls_cert is set but tls_key is not: HTTPS needs both (--tls-key or SPECTRA_TLS_KEY)",
            )),
            (None, Some(_)) => Err(invalid(
                "tls_cert",
                "tls_key is set but tls_cert is not: HTTPS needs both (--tls-cert or SPECTRA_TLS_CERT)",
            )),
        }
    }

    pub fn retention(&self) -> spectra_store::Retention {
        spectra_store::Retention {
            raw: self.retention_raw,
            minute: self.retention_minute,
            hour: self.retention_hour,
        }
    }
}

/// `sqlite://PATH` (also `sqlite:PATH`), `postgres://` / `postgresql://`;
/// none means `sqlite://<data_dir>/spectra.db`.
pub fn parse_database_url(url: Option<&str>, data_dir: &Path) -> Result<DatabaseUrl, ConfigError> {
    let Some(url) = url else {
        return Ok(DatabaseUrl::Sqlite(data_dir.join("spectra.db")));
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // The URL may hold a password: show only the scheme.
        let scheme = url.split("://").next().unwrap_or("postgres");
        return Err(ConfigError::PostgresUnavailable(format!("{scheme}://...")));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            invalid(
                "database_url",
                format!("`{url}`: expected sqlite://PATH or postgres://..."),
            )
        })?;
    if path.is_empty() {
        return Err(invalid("database_url", "sqlite:// needs a file path"));
    }
    Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn layers_apply_file_then_env_then_cli() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spectra.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1000\"\ndata_dir = \"/from-file\"\nstale_after = \"45s\"\n",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "spectra-server",
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:3000",
        ]);
        let env = env_of(&[
            ("SPECTRA_LISTEN", "127.0.0.1:2000"),
            ("SPECTRA_DATA_DIR", "/from-env"),
        ]);
        let s = Settings::load(&cli, env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("/from-env"));
        assert_eq!(s.stale_after, Duration::from_secs(45));
        assert_eq!(s.offline_after, Duration::from_secs(300));
        assert_eq!(
            s.database().unwrap(),
            DatabaseUrl::Sqlite(PathBuf::from("/from-env/spectra.db"))
        );
    }

    #[test]
    fn unknown_file_key_is_named() {
        let err = SettingsLayer::parse_toml(
            "listen = \"0.0.0.0:1\"\nlisten_port = 3\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn postgres_url_is_a_clear_error_without_the_password() {
        let err = parse_database_url(Some("postgres://u:hunter2@db/spectra"), Path::new("/d"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("PostgreSQL backend not available in this version yet"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn bad_duration_names_the_setting() {
        let env = env_of(&[("SPECTRA_OFFLINE_AFTER", "soon")]);
        let err = Settings::load(&Cli::parse_from(["spectra-server"]), env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("offline_after"), "{err}");
    }

    #[test]
    fn tls_cert_and_key_come_together() {
        let env = env_of(&[("SPECTRA_TLS_CERT", "/etc/spectra/server.pem")]);
        let err = Settings::load(&Cli::parse_from(["spectra-server"]), env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls_key") && err.contains("needs both"),
            "{err}"
        );
        let err = Settings::load(
            &Cli::parse_from(["spectra-server", "--tls-key", "/k.pem"]),
            env_of(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tls_cert") && err.contains("needs both"),
            "{err}"
        );
        // The two may come from different layers.
        let s = Settings::load(
            &Cli::parse_from(["spectra-server", "--tls-key", "/k.pem"]),
            env_of(&[("SPECTRA_TLS_CERT", "/c.pem")]),
        )
        .unwrap();
        assert_eq!(
            s.tls_files().unwrap(),
            Some((Path::new("/c.pem"), Path::new("/k.pem")))
        );
        let s = Settings::load(&Cli::parse_from(["spectra-server"]), env_of(&[])).unwrap();
        assert_eq!(s.tls_files().unwrap(), None);
    }

    #[test]
    fn tls_init_is_a_subcommand_and_serving_the_default() {
        let cli = Cli::parse_from([
            "spectra-server",
            "tls",
            "init",
            "--out",
            "/tmp/x",
            "--name",
            "a.example",
            "--ip",
            "10.0.0.1",
            "--ip",
            "::1",
        ]);
        match cli.command {
            Some(ServerCommand::Tls(crate::tls::TlsCommand::Init(args))) => {
                assert_eq!(args.out, PathBuf::from("/tmp/x"));
                assert_eq!(args.names, ["a.example"]);
                assert_eq!(args.ips.len(), 2);
                assert!(!args.force);
            }
            other => panic!("expected tls init, got {other:?}"),
        }
        assert!(Cli::parse_from(["spectra-server"]).command.is_none());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let env = env_of(&[
            ("SPECTRA_ADMIN_PASSWORD", "pw-very-secret"),
            ("SPECTRA_ADMIN_TOKEN", "tok-very-secret"),
        ]);
        let s = Settings::load(
            &Cli::parse_from(["spectra-server", "--no-local-agent"]),
            env,
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!s.local_agent);
        assert_eq!(
            s.admin_token.as_ref().map(Secret::expose),
            Some("tok-very-secret")
        );
    }
}
