//! Ingest API keys: each maps to one tenant, and only its SHA-256 is kept
//! (in configuration and in memory). A presented key is hashed and compared
//! in constant time with every configured hash.
//!
//! Keys are random and long (`loupe key new` makes 32 random bytes), so a
//! plain SHA-256 is the right hash: a slow password hash protects guessable
//! secrets, which these are not.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The prefix of keys Loupe makes; it lets secret scanners recognise them.
pub const KEY_PREFIX: &str = "loupe_";

/// One `[[ingest.keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub tenant: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// A label for operators (which service holds it).
    #[serde(default)]
    pub name: String,
    /// A forwarder (the shim, an OTel Collector gateway) is trusted to say
    /// which tenant its telemetry belongs to: its key authenticates but does
    /// not fix the tenant. `tenant` then only labels the entry.
    #[serde(default)]
    pub forwarder: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("ingest key {index} ({tenant:?}): sha256 must be 64 hex characters")]
    BadHash { index: usize, tenant: String },
    #[error("ingest key {index}: tenant must not be empty")]
    NoTenant { index: usize },
}

/// The configured keys, ready to check requests against.
#[derive(Debug, Clone, Default)]
pub struct IngestKeys {
    entries: Vec<([u8; 32], String, bool)>,
}

/// What a presented key proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch<'a> {
    /// Everything it sends belongs to this tenant.
    Tenant(&'a str),
    /// A trusted forwarder: the telemetry's own tenant stands.
    Forwarder,
}

impl IngestKeys {
    pub fn new(entries: &[KeyEntry]) -> Result<Self, KeyError> {
        let mut out = Vec::with_capacity(entries.len());
        for (index, e) in entries.iter().enumerate() {
            if e.tenant.trim().is_empty() {
                return Err(KeyError::NoTenant { index });
            }
            let bad = || KeyError::BadHash {
                index,
                tenant: e.tenant.clone(),
            };
            let bytes = hex::decode(e.sha256.trim()).map_err(|_| bad())?;
            let hash: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
            out.push((hash, e.tenant.clone(), e.forwarder));
        }
        Ok(Self { entries: out })
    }

    /// Keys are enforced once any is configured.
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The tenant of a presented tenant key (`None` for unknown keys and
    /// for forwarders').
    pub fn tenant_of(&self, presented: &str) -> Option<&str> {
        match self.lookup(presented)? {
            KeyMatch::Tenant(t) => Some(t),
            KeyMatch::Forwarder => None,
        }
    }

    /// What a presented key proves, if it is one of ours. Every configured
    /// hash is compared, so the time does not say which one matched.
    pub fn lookup(&self, presented: &str) -> Option<KeyMatch<'_>> {
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        let mut found = None;
        for (hash, tenant, forwarder) in &self.entries {
            let diff = hash
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(if *forwarder {
                    KeyMatch::Forwarder
                } else {
                    KeyMatch::Tenant(tenant.as_str())
                });
            }
        }
        found
    }
}

/// The hex SHA-256 to put in configuration for `key`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// A new random key (`loupe_` + 64 hex characters) from 32 bytes of entropy.
pub fn new_key(random: [u8; 32]) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(random))
}

/// The key in an `Authorization: Bearer …` value (or the bare value).
pub fn from_authorization(value: &str) -> &str {
    let v = value.trim();
    match v.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_their_tenant_only() {
        let a = new_key([1; 32]);
        let b = new_key([2; 32]);
        let keys = IngestKeys::new(&[
            KeyEntry {
                tenant: "acme".into(),
                sha256: hash_key(&a),
                name: String::new(),
                forwarder: false,
            },
            KeyEntry {
                tenant: "globex".into(),
                sha256: hash_key(&b),
                name: String::new(),
                forwarder: false,
            },
        ])
        .unwrap();
        assert!(keys.enabled());
        assert_eq!(keys.tenant_of(&a), Some("acme"));
        assert_eq!(keys.tenant_of(&b), Some("globex"));
        assert_eq!(keys.tenant_of("loupe_nope"), None);
        assert_eq!(keys.tenant_of(""), None);
        let fwd = IngestKeys::new(&[KeyEntry {
            tenant: "shim".into(),
            sha256: hash_key(&a),
            name: String::new(),
            forwarder: true,
        }])
        .unwrap();
        assert_eq!(fwd.lookup(&a), Some(KeyMatch::Forwarder));
        assert_eq!(fwd.lookup(&b), None);
        assert!(a.starts_with("loupe_") && a.len() == 70);
    }

    #[test]
    fn bad_entries_are_named() {
        let e = IngestKeys::new(&[KeyEntry {
            tenant: "acme".into(),
            sha256: "xyz".into(),
            name: String::new(),
            forwarder: false,
        }]);
        assert_eq!(
            e.unwrap_err(),
            KeyError::BadHash {
                index: 0,
                tenant: "acme".into()
            }
        );
        let e = IngestKeys::new(&[KeyEntry {
            tenant: " ".into(),
            sha256: hash_key("k"),
            name: String::new(),
            forwarder: false,
        }]);
        assert_eq!(e.unwrap_err(), KeyError::NoTenant { index: 0 });
        assert!(!IngestKeys::new(&[]).unwrap().enabled());
    }

    #[test]
    fn bearer_values_are_read() {
        assert_eq!(from_authorization("Bearer abc"), "abc");
        assert_eq!(from_authorization("bearer  abc "), "abc");
        assert_eq!(from_authorization("abc"), "abc");
    }
}
