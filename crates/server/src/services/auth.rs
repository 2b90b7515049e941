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

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use spectra_store::{AgentRecord, AgentState, ApiTokenRecord, Store, StoreError};

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

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid credentials")]
    Invalid,
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

    /// The API token `token` belongs to. For now every valid token is admin
    /// (users and roles come later).
    pub async fn check_api_token(&self, token: &str) -> Result<ApiTokenRecord, AuthError> {
        self.store
            .api_token_by_hash(&hash_secret(token))
            .await?
            .ok_or(AuthError::Invalid)
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
