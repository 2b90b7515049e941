//! First-run credentials (SPEC §1): the `admin` user and its API token, and
//! the enrollment token printed at every start.
//!
//! - No admin user yet: create `admin` (argon2id password hash) and an API
//!   token (stored as its SHA-256), both random unless
//!   `SPECTRA_ADMIN_PASSWORD` / `SPECTRA_ADMIN_TOKEN` set them; both are
//!   shown once and written to `<data-dir>/initial-credentials.txt` (0600).
//! - `SPECTRA_ADMIN_TOKEN` set on a later start and unknown: added as another
//!   admin token, so scripts and tests can always choose theirs.
//! - Enrollment: `SPECTRA_ENROLL_TOKEN`, or the token generated on first
//!   start (unlimited uses, no expiry). Its plaintext is kept in
//!   `<data-dir>/enrollment-token` (0600) so each start can print it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;
use spectra_store::{EnrollmentTokenRecord, Role, Store, StoreError, UserRecord};

use crate::config::{Secret, Settings};
use crate::services::auth::{
    constant_time_eq, generate_id, generate_password, generate_secret, hash_password, hash_secret,
    new_api_token_record,
};

pub const ADMIN_USERNAME: &str = "admin";
pub const CREDENTIALS_FILE: &str = "initial-credentials.txt";
pub const ENROLLMENT_TOKEN_FILE: &str = "enrollment-token";

#[derive(Debug, thiserror::Error)]
pub enum FirstRunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("hashing the admin password: {0}")]
    Hash(String),
}

/// The admin credentials created on this start (shown once).
pub struct InitialCredentials {
    pub username: String,
    pub password: Secret,
    pub api_token: Secret,
}

/// What a start should print.
pub struct StartupCredentials {
    /// `Some` only on the start that created the admin.
    pub initial: Option<InitialCredentials>,
    pub enrollment_token: Secret,
}

impl StartupCredentials {
    /// The lines printed to stdout after `listening on`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.initial {
            out.push_str(&format!(
                "first start: created user `{}`\nadmin password: {}\nadmin api token: {}\n(also written to {CREDENTIALS_FILE} in the data dir; shown only once)\n",
                c.username,
                c.password.expose(),
                c.api_token.expose()
            ));
        }
        out.push_str(&format!(
            "enrollment token: {}\n",
            self.enrollment_token.expose()
        ));
        out
    }
}

/// Makes sure the admin, its token and the enrollment token exist.
pub async fn ensure_credentials(
    store: &dyn Store,
    settings: &Settings,
) -> Result<StartupCredentials, FirstRunError> {
    crate::create_private_dir(&settings.data_dir).map_err(|source| FirstRunError::Write {
        path: settings.data_dir.clone(),
        source,
    })?;
    let initial = ensure_admin(store, settings).await?;
    let enrollment_token = ensure_enrollment_token(store, settings).await?;
    Ok(StartupCredentials {
        initial,
        enrollment_token,
    })
}

async fn ensure_admin(
    store: &dyn Store,
    settings: &Settings,
) -> Result<Option<InitialCredentials>, FirstRunError> {
    let admin = store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::Admin);
    if let Some(admin) = admin {
        if let Some(token) = &settings.admin_token {
            if store
                .api_token_by_hash(&hash_secret(token.expose()))
                .await?
                .is_none()
            {
                store
                    .create_api_token(new_api_token_record(
                        &admin.id,
                        "SPECTRA_ADMIN_TOKEN",
                        token.expose(),
                    ))
                    .await?;
                tracing::info!(user = %admin.username, "added SPECTRA_ADMIN_TOKEN as an API token");
            }
        }
        return Ok(None);
    }
    let password = settings
        .admin_password
        .clone()
        .unwrap_or_else(|| Secret::new(generate_password()));
    let api_token = settings
        .admin_token
        .clone()
        .unwrap_or_else(|| Secret::new(generate_secret()));
    // argon2 is deliberately slow: off the async threads.
    let pw = password.clone();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(pw.expose()))
        .await
        .map_err(|e| FirstRunError::Hash(e.to_string()))?
        .map_err(FirstRunError::Hash)?;
    let user = UserRecord {
        id: generate_id("usr"),
        username: ADMIN_USERNAME.to_owned(),
        password_hash,
        role: Role::Admin,
        created_at: Utc::now(),
    };
    store.create_user(user.clone()).await?;
    store
        .create_api_token(new_api_token_record(
            &user.id,
            "initial admin token",
            api_token.expose(),
        ))
        .await?;
    let creds = InitialCredentials {
        username: user.username,
        password,
        api_token,
    };
    let text = format!(
        "# Spectra initial credentials (created {})\nusername: {}\npassword: {}\napi token: {}\n",
        Utc::now().to_rfc3339(),
        creds.username,
        creds.password.expose(),
        creds.api_token.expose()
    );
    write_private(&settings.data_dir.join(CREDENTIALS_FILE), &text)?;
    tracing::info!(user = ADMIN_USERNAME, "created the admin user");
    Ok(Some(creds))
}

async fn ensure_enrollment_token(
    store: &dyn Store,
    settings: &Settings,
) -> Result<Secret, FirstRunError> {
    let known = store.list_enrollment_tokens().await?;
    let is_known = |token: &str| {
        let hash = hash_secret(token);
        known
            .iter()
            .any(|t| constant_time_eq(t.token_hash.as_bytes(), hash.as_bytes()))
    };
    let path = settings.data_dir.join(ENROLLMENT_TOKEN_FILE);
    let token = match &settings.enroll_token {
        Some(t) => t.expose().to_owned(),
        None => match read_token_file(&path)? {
            Some(t) if is_known(&t) => return Ok(Secret::new(t)),
            _ => generate_secret(),
        },
    };
    if !is_known(&token) {
        store
            .create_enrollment_token(EnrollmentTokenRecord {
                id: generate_id("enr"),
                token_hash: hash_secret(&token),
                uses_left: None,
                expires_at: None,
                labels: BTreeMap::new(),
                created_at: Utc::now(),
            })
            .await?;
    }
    if settings.enroll_token.is_none() {
        write_private(&path, &format!("{token}\n"))?;
    }
    Ok(Secret::new(token))
}

fn read_token_file(path: &Path) -> Result<Option<String>, FirstRunError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_owned()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FirstRunError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `text` to `path`, readable by the owner only (0600 on Unix).
fn write_private(path: &Path, text: &str) -> Result<(), FirstRunError> {
    let err = |source| FirstRunError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let mut file = options.open(path).map_err(err)?;
        // `mode` only applies to a new file: tighten an existing one too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)
    }
    #[cfg(not(unix))]
    {
        let mut file = options.open(path).map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)
    }
}
