//! `spectra-agent`: parses arguments, sets up logging, and calls
//! [`spectra_agent::runtime::run`] (or runs `collect` once, without a
//! server). Everything else lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use spectra_agent::collectors::{self, CollectError, CollectorKind};
use spectra_agent::commands::restart_agent::RestartRequested;
use spectra_agent::config::{
    parse_duration_setting, valid_collector_names, AgentConfig, CliOverrides,
};
use spectra_protocol::{CollectorState, CollectorStatus, Envelope, MetricData};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "spectra-agent",
    version,
    about = "Spectra host agent: collects metrics and sends them to a Spectra server"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// TOML config file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Server base URL (SPECTRA_SERVER).
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// Enrollment token (SPECTRA_TOKEN); `<token>#sha256:<hex>` also pins
    /// the server certificate.
    #[arg(long, global = true, value_name = "T")]
    token: Option<String>,
    /// Trust only the CA certificates in this PEM file (SPECTRA_CA_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Hostname to report (SPECTRA_HOSTNAME, HOSTNAME).
    #[arg(long, global = true, value_name = "H")]
    hostname: Option<String>,
    /// Where the identity and the spool live (SPECTRA_AGENT_STATE_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Host /proc (SPECTRA_PROCFS).
    #[arg(long, global = true, value_name = "P")]
    procfs: Option<PathBuf>,
    /// Host /sys (SPECTRA_SYSFS).
    #[arg(long, global = true, value_name = "P")]
    sysfs: Option<PathBuf>,
    /// Host / (SPECTRA_ROOTFS).
    #[arg(long, global = true, value_name = "P")]
    rootfs: Option<PathBuf>,
    /// Debug logs (DEBUG=true).
    #[arg(long, global = true)]
    debug: bool,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run collectors once and print one JSON envelope per line, without a server.
    Collect {
        /// A collector to run (repeatable); default: every enabled one.
        #[arg(long = "collector", value_name = "NAME")]
        collectors: Vec<String>,
        /// Gap between the two samples of rate-based collectors.
        #[arg(long, default_value = "1s", value_name = "DURATION")]
        sample_interval: String,
    },
}

impl GlobalArgs {
    fn overrides(&self) -> CliOverrides {
        CliOverrides {
            config: self.config.clone(),
            server: self.server.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
            hostname: self.hostname.clone(),
            state_dir: self.state_dir.clone(),
            procfs: self.procfs.clone(),
            sysfs: self.sysfs.clone(),
            rootfs: self.rootfs.clone(),
            debug: self.debug,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => run_agent(&cli.global).await,
        Some(Sub::Collect {
            collectors,
            sample_interval,
        }) => run_collect(&cli.global, collectors, sample_interval).await,
    };
    match result {
        Ok(code) => code,
        Err(e) if e.is::<RestartRequested>() => restart(),
        Err(e) => {
            eprintln!("spectra-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(debug: bool, default_level: &str) {
    let level = if debug { "debug" } else { default_level };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPECTRA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run_agent(args: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut config = AgentConfig::load(&args.overrides())?;
    // This binary can re-exec itself, so RESTART_AGENT is honoured.
    config.commands.allow_restart = true;
    init_tracing(config.debug, "info");
    tracing::debug!(?config, "configuration");
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    spectra_agent::runtime::run(config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on ctrl-c or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    spectra_agent::runtime::wait_for_shutdown_signal().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

#[cfg(unix)]
fn restart() -> ExitCode {
    let e = spectra_agent::commands::restart_agent::exec_self();
    eprintln!("spectra-agent: error: restart failed: {e}");
    ExitCode::FAILURE
}

/// Without exec, exit with a code that tells the service manager (Windows
/// service recovery, systemd `Restart=`) to start the agent again.
#[cfg(not(unix))]
fn restart() -> ExitCode {
    eprintln!(
        "spectra-agent: restart requested; exiting for the service manager to restart the agent"
    );
    ExitCode::from(spectra_agent::commands::restart_agent::RESTART_EXIT_CODE)
}

async fn run_collect(
    args: &GlobalArgs,
    names: &[String],
    sample_interval: &str,
) -> anyhow::Result<ExitCode> {
    let config = AgentConfig::load(&args.overrides())?;
    init_tracing(config.debug, "warn");
    let sample_interval = parse_duration_setting(sample_interval)
        .map_err(|m| anyhow::anyhow!("--sample-interval: {m}"))?;
    let kinds: Vec<CollectorKind> = if names.is_empty() {
        CollectorKind::ALL
            .into_iter()
            .filter(|k| config.collector(*k).enabled)
            .collect()
    } else {
        let mut kinds = Vec::new();
        for name in names {
            let kind = CollectorKind::parse(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown collector `{name}` (valid: {})",
                    valid_collector_names()
                )
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
    };
    // Results in the order asked, whatever order they ran in.
    let mut outcomes: Vec<Option<Result<Vec<MetricData>, CollectError>>> =
        kinds.iter().map(|_| None).collect();
    let mut active: Vec<(usize, Box<dyn collectors::Collector>)> = Vec::new();
    for (index, kind) in kinds.iter().enumerate() {
        let mut collector = collectors::build_with(*kind, &config.roots, &config.collector_options);
        if collector.is_rate_based() {
            // The first sample only primes the counters.
            match collector.collect(chrono::Utc::now()) {
                Ok(_) => active.push((index, collector)),
                Err(e) => outcomes[index] = Some(Err(e)),
            }
        } else {
            active.push((index, collector));
        }
    }
    if active.iter().any(|(_, c)| c.is_rate_based()) {
        tokio::time::sleep(sample_interval).await;
    }
    let now = chrono::Utc::now();
    for (index, mut collector) in active {
        outcomes[index] = Some(collector.collect(now));
    }
    let timestamp = spectra_agent::scheduler::timestamp_of(now.timestamp_millis());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let total = outcomes.len();
    let mut failed = 0usize;
    for (kind, outcome) in kinds.iter().zip(outcomes) {
        let payloads = match outcome.unwrap_or(Err(CollectError::Other("not run".into()))) {
            Ok(payloads) => payloads,
            Err(e) => {
                failed += 1;
                eprintln!("spectra-agent: collector {kind}: {e}");
                let state = match e {
                    CollectError::NotImplemented => CollectorState::NotImplemented,
                    CollectError::Unsupported(_) => CollectorState::Unsupported,
                    _ => CollectorState::Error,
                };
                vec![MetricData::CollectorStatus(CollectorStatus {
                    collector: kind.name().to_owned(),
                    state,
                    message: Some(e.to_string()),
                })]
            }
        };
        for data in payloads {
            let envelope = Envelope::new(timestamp, config.hostname.as_str(), data);
            serde_json::to_writer(&mut out, &envelope)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    if total > 0 && failed == total {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
