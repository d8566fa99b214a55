//! Server-side sessions: a random token (the cookie) maps to a principal, an
//! absolute expiry and the session's CSRF token. Bounded: when full, the
//! session closest to expiry is evicted first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Principal;

/// At most this many live sessions.
pub const MAX_SESSIONS: usize = 10_000;
pub const COOKIE: &str = "loupe_session";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    expires: Instant,
}

#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn token() -> String {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    hex::encode(raw)
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session; returns its cookie value.
    pub fn create(&self, principal: Principal) -> String {
        let now = Instant::now();
        let id = token();
        let session = Session {
            principal,
            csrf: token(),
            expires: now + self.ttl,
        };
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(id.clone(), session);
        }
        id
    }

    /// The live session for a cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let map = self.map.lock().ok()?;
        map.get(id).filter(|s| s.expires > now).cloned()
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Compares a presented CSRF token with the session's in constant time.
pub fn csrf_matches(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len()
        && presented
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn p() -> Principal {
        Principal {
            name: "ana".into(),
            role: Role::Viewer,
            tenants: Some(vec!["acme".into()]),
        }
    }

    #[test]
    fn sessions_live_until_they_expire_or_end() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create(p());
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.principal, p());
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("nope").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        let short = Sessions::new(Duration::from_millis(1));
        let id = short.create(p());
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get(&id).is_none());
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = set_cookie("abc", Duration::from_secs(10), true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert_eq!(cookie_value("a=1; loupe_session=abc; b=2"), Some("abc"));
        assert_eq!(cookie_value("loupe_session="), None);
        assert!(
            csrf_matches("abcd", "abcd")
                && !csrf_matches("abce", "abcd")
                && !csrf_matches("abc", "abcd")
        );
    }
}
