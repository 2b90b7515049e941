//! The conformance suite (`spectra_store::conformance`) against the
//! embedded store, one test per behaviour, each on a fresh database in its
//! own temporary directory.

use spectra_store::{conformance, EmbeddedConfig, EmbeddedStore, Store};

fn open_store(dir: &tempfile::TempDir) -> EmbeddedStore {
    let mut config = EmbeddedConfig::new(dir.path());
    // Tests drive maintenance themselves.
    config.background_maintenance = false;
    EmbeddedStore::open(config).expect("open store")
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = open_store(&dir);
            conformance::$name(&store).await;
            store.close().await.expect("close");
        }
    )*};
}

conformance_tests!(
    agents_crud_and_credential_lookup,
    enrollment_tokens_are_consumed,
    users_and_api_tokens,
    settings_round_trip,
    latest_keeps_newest_per_type_and_entity,
    history_raw_returns_what_was_sent,
    history_with_step_averages_per_entity,
    duplicate_batch_changes_nothing,
    batch_belongs_to_the_sending_agent,
    unknown_type_is_stored_as_is,
    list_shaped_snapshots_are_returned,
    commands_are_claimed_once_and_completed_by_their_agent,
    commands_expire,
    audit_log_appends_and_filters,
    history_is_identical_across_maintenance,
    retention_deletes_old_data,
    delete_agent_purges_its_data,
);

#[tokio::test]
async fn run_all_passes_on_fresh_stores() {
    let parent = tempfile::tempdir().expect("tempdir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let base = parent.path().to_owned();
    conformance::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = base.join(format!("store-{n}"));
        async move {
            let mut config = EmbeddedConfig::new(dir);
            config.background_maintenance = false;
            Box::new(EmbeddedStore::open(config).expect("open store")) as Box<dyn Store>
        }
    })
    .await;
    assert_eq!(
        counter.load(std::sync::atomic::Ordering::Relaxed),
        17,
        "every check ran"
    );
}
