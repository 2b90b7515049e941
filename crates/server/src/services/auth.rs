//! Authentication: secrets (generation, SHA-256 hashing, argon2id password
//! hashing), API-token checks, and agent credentials with a small in-memory
//! cache so ingest does not hit the database on every request.
//!
//! Secrets are looked up by their SHA-256 hash, never compared directly; the
//! one place that compares secret material ([`constant_time_eq`]) does so in
//! constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use spectra_store::{
    AgentRecord, AgentState, ApiTokenRecord, Role, SessionRecord, Store, StoreError, UserRecord,
};

use super::audit::Actor;

/// 32 random bytes as 64 hex characters: credentials and tokens.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A random id with a readable prefix (`agt_…`, `cmd_…`).
pub fn generate_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A password a human can type: 20 characters without look-alikes.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// SHA-256 hex of a high-entropy secret: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// argon2id PHC string of a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Compares two byte strings without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `<token>` of an `Authorization: Bearer <token>` header value.
pub fn parse_bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks `password` against an argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Roles from least to most powerful: `viewer` < `operator` < `admin`.
pub fn role_rank(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::Operator => 1,
        Role::Admin => 2,
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

pub fn parse_role(text: &str) -> Option<Role> {
    match text {
        "viewer" => Some(Role::Viewer),
        "operator" => Some(Role::Operator),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

/// How a user authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer <api token>`.
    Token { id: String, name: String },
    /// The browser session cookie; `csrf_token` must come back in
    /// `X-CSRF-Token` on state-changing requests.
    Session { id: String, csrf_token: String },
}

/// An authenticated user, with the role they act with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub via: Via,
}

impl Principal {
    /// Whether this user's role is `min` or above.
    pub fn may(&self, min: Role) -> bool {
        role_rank(self.role) >= role_rank(min)
    }

    /// How the audit log names this user.
    pub fn actor(&self, source_ip: Option<std::net::IpAddr>) -> Actor {
        Actor {
            name: format!("user:{}", self.username),
            source_ip,
        }
    }
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session ends this long after login, whatever happens.
    pub ttl: Duration,
    /// A session unused for this long ends.
    pub idle: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid credentials")]
    Invalid,
    #[error("the session has expired; log in again")]
    SessionExpired,
    #[error("agent {0} is revoked")]
    Revoked(String),
    #[error("agent {0} is waiting for approval")]
    Pending(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks bearer secrets against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    cache_ttl: Duration,
    agents: Arc<Mutex<HashMap<String, (AgentRecord, Instant)>>>,
}

/// Cached credentials past this count are dropped wholesale (a crude bound
/// that keeps memory flat even under a flood of wrong credentials, which
/// are never cached anyway).
const MAX_CACHED_AGENTS: usize = 100_000;

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, cache_ttl: Duration) -> Self {
        Self {
            store,
            cache_ttl,
            agents: Arc::default(),
        }
    }

    /// The API token `token` belongs to.
    pub async fn check_api_token(&self, token: &str) -> Result<ApiTokenRecord, AuthError> {
        self.store
            .api_token_by_hash(&hash_secret(token))
            .await?
            .ok_or(AuthError::Invalid)
    }

    /// The user an API token belongs to, with their current role (a role
    /// change applies to their tokens at once). Records the token's use at
    /// most once a minute; `first_use_in_an_hour` tells the caller to
    /// audit it.
    pub async fn principal_from_token(&self, token: &str) -> Result<(Principal, bool), AuthError> {
        let record = self.check_api_token(token).await?;
        let user = self
            .store
            .get_user(&record.user_id)
            .await?
            .ok_or(AuthError::Invalid)?;
        let now = Utc::now();
        let since_use = record.last_used.map(|t| now - t);
        if since_use.is_none_or(|d| d > chrono::Duration::seconds(60)) {
            self.store.touch_api_token(&record.id, now).await?;
        }
        let audit = since_use.is_none_or(|d| d > chrono::Duration::hours(1));
        Ok((
            Principal {
                user_id: user.id,
                username: user.username,
                role: user.role,
                via: Via::Token {
                    id: record.id,
                    name: record.name,
                },
            },
            audit,
        ))
    }

    /// The user of a session cookie, if the session is neither past its
    /// lifetime nor idle too long; touches it (at most once a minute).
    pub async fn principal_from_session(
        &self,
        secret: &str,
        policy: SessionPolicy,
    ) -> Result<Principal, AuthError> {
        let session = self
            .store
            .session_by_hash(&hash_secret(secret))
            .await?
            .ok_or(AuthError::Invalid)?;
        let now = Utc::now();
        let idle = chrono::Duration::from_std(policy.idle).unwrap_or(chrono::Duration::minutes(30));
        if now >= session.expires_at || now - session.last_seen > idle {
            self.store.delete_session(&session.id).await?;
            return Err(AuthError::SessionExpired);
        }
        if now - session.last_seen > chrono::Duration::seconds(60) {
            self.store.touch_session(&session.id, now).await?;
        }
        let user = self
            .store
            .get_user(&session.user_id)
            .await?
            .ok_or(AuthError::Invalid)?;
        Ok(Principal {
            user_id: user.id,
            username: user.username,
            role: user.role,
            via: Via::Session {
                id: session.id,
                csrf_token: session.csrf_token,
            },
        })
    }

    /// Checks a username and password (argon2, off the async threads). An
    /// unknown user costs the same hashing work as a wrong password, so the
    /// answer time does not tell which usernames exist.
    pub async fn verify_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UserRecord, AuthError> {
        let user = self.store.user_by_name(username).await?;
        let password = password.to_owned();
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || match phc {
            Some(phc) => verify_password(&password, &phc),
            None => {
                // Same cost as a real check, result thrown away.
                let _ = hash_password(&password);
                false
            }
        })
        .await
        .unwrap_or(false);
        match (ok, user) {
            (true, Some(user)) => Ok(user),
            _ => Err(AuthError::Invalid),
        }
    }

    /// Starts a session for `user`; returns the record and the cookie
    /// secret (shown to the browser only).
    pub async fn start_session(
        &self,
        user: &UserRecord,
        policy: SessionPolicy,
    ) -> Result<(SessionRecord, String), AuthError> {
        let secret = generate_secret();
        let now: DateTime<Utc> = Utc::now();
        let ttl = chrono::Duration::from_std(policy.ttl).unwrap_or(chrono::Duration::hours(12));
        let session = SessionRecord {
            id: generate_id("ses"),
            session_hash: hash_secret(&secret),
            user_id: user.id.clone(),
            csrf_token: generate_secret(),
            created_at: now,
            last_seen: now,
            expires_at: now + ttl,
        };
        self.store.create_session(session.clone()).await?;
        Ok((session, secret))
    }

    /// The active agent whose credential is `credential`.
    pub async fn check_agent(&self, credential: &str) -> Result<AgentRecord, AuthError> {
        let hash = hash_secret(credential);
        let cached = {
            let cache = self.agents.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&hash)
                .filter(|(_, at)| at.elapsed() < self.cache_ttl)
                .map(|(a, _)| a.clone())
        };
        let agent = match cached {
            Some(a) => a,
            None => {
                let agent = self
                    .store
                    .agent_by_credential(&hash)
                    .await?
                    .ok_or(AuthError::Invalid)?;
                let mut cache = self.agents.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED_AGENTS {
                    cache.clear();
                }
                cache.insert(hash, (agent.clone(), Instant::now()));
                agent
            }
        };
        match agent.state {
            AgentState::Active => Ok(agent),
            AgentState::Revoked => Err(AuthError::Revoked(agent.id)),
            AgentState::Pending => Err(AuthError::Pending(agent.id)),
        }
    }

    /// Forgets cached credentials (after a revocation, for instance).
    pub fn clear_cache(&self) {
        self.agents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Creates an API token record for `user_id` from a plaintext token.
pub fn new_api_token_record(user_id: &str, name: &str, token: &str) -> ApiTokenRecord {
    ApiTokenRecord {
        id: generate_id("tok"),
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        token_hash: hash_secret(token),
        created_at: Utc::now(),
        last_used: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_hex() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn hashes_are_sha256_hex() {
        // printf abc | sha256sum
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parses_bearer_headers() {
        assert_eq!(parse_bearer("Bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("bearer  abc "), Some("abc"));
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer("Bearer "), None);
    }

    #[test]
    fn password_hashes_are_argon2id() {
        let h = hash_password("pw").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
