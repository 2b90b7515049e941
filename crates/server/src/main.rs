//! `spectra-server`: parses settings, sets up tracing (stderr), binds,
//! prints `listening on <addr>` as its first stdout line, and runs; or runs
//! a subcommand (`tls init`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use spectra_server::config::{Cli, ServerCommand, Settings};
use spectra_server::tls::TlsCommand;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = &cli.command {
        return run_command(command);
    }
    let settings = match Settings::load(&cli, |k| std::env::var(k).ok()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("spectra-server: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries the lines tests and users read.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spectra-server: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_main(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = format!("spectra-server: {e}");
            let mut source = std::error::Error::source(e.as_ref());
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(command: &ServerCommand) -> ExitCode {
    match command {
        ServerCommand::Tls(TlsCommand::Init(args)) => match spectra_server::tls::init(args) {
            Ok(report) => {
                print!("{}", report.render());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("spectra-server tls init: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve_main(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        stdout.flush()?;
    }
    let shutdown = CancellationToken::new();
    spectra_server::spawn_signal_handler(shutdown.clone());
    spectra_server::run(settings, listener, shutdown).await?;
    Ok(())
}
