//! [`AppState`]: what every handler and the local agent share.

use std::sync::Arc;
use std::time::Duration;

use spectra_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::services::agents::StatusThresholds;
use crate::services::auth::{Authenticator, SessionPolicy};
use crate::services::commands::{CommandService, CommandTimings};
use crate::services::ingest::{IngestLimits, IngestService};
use crate::services::stats::Counters;
use crate::services::throttle::Throttle;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub auth: Authenticator,
    pub ingest: IngestService,
    pub commands: CommandService,
    pub counters: Arc<Counters>,
    /// Cancelled when the server shuts down: long-polls return at once.
    pub shutdown: CancellationToken,
    /// Failed logins per client address (SPEC §6: 429 when throttled).
    pub login_throttle: Arc<Throttle>,
    /// Failed enrollments per client address.
    pub enroll_throttle: Arc<Throttle>,
    /// Served over TLS: session cookies get `Secure`.
    pub tls: bool,
    /// Sparkline trails of the fleet overview.
    pub trails: Arc<crate::services::fleet::FleetTrails>,
}

/// Failed logins from one address before it waits (per window).
pub const LOGIN_MAX_FAILURES: usize = 5;
/// Failed enrollments from one address before it waits (per window).
pub const ENROLL_MAX_FAILURES: usize = 10;
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(300);

impl AppState {
    pub fn new(store: Arc<dyn Store>, settings: Settings, shutdown: CancellationToken) -> Self {
        let counters = Arc::new(Counters::default());
        let trails = Arc::new(crate::services::fleet::FleetTrails::default());
        let settings_tls = settings.tls_cert.is_some();
        let limits = IngestLimits {
            max_body_bytes: settings.max_body_bytes,
            max_decompressed_bytes: settings.max_decompressed_bytes,
        };
        let timings = CommandTimings {
            ttl: settings.command_ttl,
            delivered_timeout: settings.command_delivered_timeout,
            long_poll_max: settings.long_poll_max,
            max_open_per_agent: settings.command_max_open as u64,
            max_per_minute: settings.command_max_per_minute as u64,
        };
        Self {
            auth: Authenticator::new(store.clone(), settings.auth_cache_ttl),
            ingest: IngestService::new(store.clone(), limits, counters.clone(), trails.clone()),
            commands: CommandService::new(
                store.clone(),
                timings,
                counters.clone(),
                shutdown.clone(),
            ),
            store,
            settings: Arc::new(settings),
            counters,
            shutdown,
            login_throttle: Arc::new(Throttle::new(LOGIN_MAX_FAILURES, THROTTLE_WINDOW)),
            enroll_throttle: Arc::new(Throttle::new(ENROLL_MAX_FAILURES, THROTTLE_WINDOW)),
            tls: settings_tls,
            trails,
        }
    }

    /// Whether clients reach this server over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls
    }

    /// Session lifetimes from the settings.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            ttl: self.settings.session_ttl,
            idle: self.settings.session_idle,
        }
    }

    pub fn thresholds(&self) -> StatusThresholds {
        StatusThresholds {
            stale_after: self.settings.stale_after,
            offline_after: self.settings.offline_after,
        }
    }

    /// How often overdue commands are expired.
    pub fn expiry_interval(&self) -> Duration {
        Duration::from_secs(5)
    }
}
