//! Who is looking: dashboard users, their roles and tenants, sessions, CSRF
//! tokens and the login rate limit. Enforcement happens in the query layer
//! (a [`Principal`] becomes a query `Scope`); this module only establishes
//! identity and guards requests.
//!
//! Invariants:
//! - With no users and no proxy header configured, the dashboard is open (a
//!   local `loupe up` on loopback) and every request acts as an admin; as soon
//!   as either is configured every page and API call needs a principal.
//! - Passwords are argon2 PHC hashes in configuration; plaintext is never
//!   stored or logged. Verification runs off the async runtime.
//! - A session is a random 256-bit token in an HttpOnly, SameSite=Strict
//!   cookie (Secure when configured); the server keeps at most
//!   `MAX_SESSIONS`, each with its own CSRF token and an absolute expiry.
//! - Repeated failed logins for a user name or from an address are slowed
//!   down exponentially.

pub mod access;
pub mod guard;
pub mod limiter;
pub mod sessions;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use limiter::LoginLimiter;
pub use sessions::{Session, Sessions};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, every tenant.
    Admin,
    /// Cost pages and CSV for every tenant; never a prompt or completion.
    Finance,
    /// Everything, for the listed tenants only.
    Viewer,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "finance" => Ok(Role::Finance),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role {other:?} (admin, finance or viewer)")),
        }
    }
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Finance => "finance",
            Role::Viewer => "viewer",
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// `None`: every tenant.
    pub tenants: Option<Vec<String>>,
}

impl Principal {
    /// The open dashboard's caller (no authentication configured).
    pub fn anonymous_admin() -> Self {
        Self {
            name: "local".into(),
            role: Role::Admin,
            tenants: None,
        }
    }

    /// Prompt and completion bodies are off limits to finance.
    pub fn may_read_bodies(&self) -> bool {
        self.role != Role::Finance
    }

    /// Finance sees cost pages only.
    pub fn may_open(&self, section: Section) -> bool {
        match self.role {
            Role::Admin | Role::Viewer => true,
            Role::Finance => matches!(section, Section::Overview | Section::Cost),
        }
    }

    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == tenant))
    }
}

/// The parts of the dashboard a role may or may not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Cost,
    Drift,
    Traces,
    Alerts,
}

/// One `[[dashboard.users]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// argon2 PHC string (`$argon2id$v=19$...`), e.g. from `loupe user`.
    pub password_hash: String,
    pub role: Role,
    /// Required for viewers; ignored for admin and finance (all tenants).
    #[serde(default)]
    pub tenants: Vec<String>,
}

/// Identity from a trusted reverse proxy (oauth2-proxy, Cloudflare Access...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyAuthConfig {
    /// Header carrying the authenticated user name, e.g. `X-Forwarded-User`.
    pub user_header: String,
    /// Role per user name; users not listed get `default_role`.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    #[serde(default)]
    pub tenants: BTreeMap<String, Vec<String>>,
    pub default_role: Option<Role>,
}

/// `[dashboard.auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub users: Vec<UserConfig>,
    pub proxy: Option<ProxyAuthConfig>,
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure` (serve behind HTTPS).
    pub secure_cookies: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            proxy: None,
            session_ttl_secs: 12 * 3600,
            secure_cookies: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthConfigError {
    #[error("dashboard user {0:?} is defined twice")]
    Duplicate(String),
    #[error("dashboard user {0:?}: password_hash is not an argon2 PHC string")]
    BadHash(String),
    #[error("dashboard user {0:?} is a viewer with no tenants")]
    ViewerWithoutTenants(String),
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        !self.users.is_empty() || self.proxy.is_some()
    }

    pub fn validate(&self) -> Result<(), AuthConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for u in &self.users {
            if !seen.insert(u.name.as_str()) {
                return Err(AuthConfigError::Duplicate(u.name.clone()));
            }
            if argon2::PasswordHash::new(&u.password_hash).is_err() {
                return Err(AuthConfigError::BadHash(u.name.clone()));
            }
            if u.role == Role::Viewer && u.tenants.is_empty() {
                return Err(AuthConfigError::ViewerWithoutTenants(u.name.clone()));
            }
        }
        Ok(())
    }

    fn principal_for(&self, name: &str, role: Role, tenants: &[String]) -> Principal {
        Principal {
            name: name.to_string(),
            role,
            tenants: match role {
                Role::Viewer => Some(tenants.to_vec()),
                Role::Admin | Role::Finance => None,
            },
        }
    }

    /// Checks a user name and password. Slow on purpose (argon2): call it
    /// from a blocking task. Unknown users cost the same as known ones.
    pub fn check_password(&self, name: &str, password: &str) -> Option<Principal> {
        use argon2::PasswordVerifier;
        let user = self.users.iter().find(|u| u.name == name);
        let hash = user.map(|u| u.password_hash.as_str()).unwrap_or(DUMMY_HASH);
        let parsed = argon2::PasswordHash::new(hash).ok()?;
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match (ok, user) {
            (true, Some(u)) => Some(self.principal_for(&u.name, u.role, &u.tenants)),
            _ => None,
        }
    }

    /// The principal a trusted proxy vouches for, from its header value.
    pub fn proxy_principal(&self, user: &str) -> Option<Principal> {
        let p = self.proxy.as_ref()?;
        let user = user.trim();
        if user.is_empty() {
            return None;
        }
        let role = p.roles.get(user).copied().or(p.default_role)?;
        let tenants = p.tenants.get(user).cloned().unwrap_or_default();
        if role == Role::Viewer && tenants.is_empty() {
            return None;
        }
        Some(self.principal_for(user, role, &tenants))
    }
}

/// Hashes a password for configuration (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    use argon2::password_hash::SaltString;
    let mut raw = [0u8; 16];
    rand::fill(&mut raw);
    let salt = SaltString::encode_b64(&raw).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verified against when the user name is unknown, so the time taken does
/// not tell which names exist. (The hash of a random, discarded password.)
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1nH2XlHb2p5QyM3pU0b7hGk7xGq0oQ6m1l0s8c7cZ1M";

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            users: vec![
                UserConfig {
                    name: "ana".into(),
                    password_hash: hash_password("correct horse").unwrap(),
                    role: Role::Viewer,
                    tenants: vec!["acme".into()],
                },
                UserConfig {
                    name: "fin".into(),
                    password_hash: hash_password("ledger").unwrap(),
                    role: Role::Finance,
                    tenants: vec![],
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn passwords_check_and_roles_scope() {
        let c = cfg();
        c.validate().unwrap();
        let ana = c.check_password("ana", "correct horse").unwrap();
        assert_eq!(ana.tenants, Some(vec!["acme".to_string()]));
        assert!(ana.allows_tenant("acme") && !ana.allows_tenant("globex"));
        assert!(ana.may_read_bodies());
        assert!(c.check_password("ana", "wrong").is_none());
        assert!(c.check_password("nobody", "correct horse").is_none());
        let fin = c.check_password("fin", "ledger").unwrap();
        assert!(fin.allows_tenant("globex") && !fin.may_read_bodies());
        assert!(
            fin.may_open(Section::Cost)
                && !fin.may_open(Section::Traces)
                && !fin.may_open(Section::Drift)
        );
    }

    #[test]
    fn configuration_mistakes_are_named() {
        let mut c = cfg();
        c.users[1].password_hash = "plaintext".into();
        assert_eq!(c.validate(), Err(AuthConfigError::BadHash("fin".into())));
        let mut c = cfg();
        c.users[0].tenants.clear();
        assert_eq!(
            c.validate(),
            Err(AuthConfigError::ViewerWithoutTenants("ana".into()))
        );
        let mut c = cfg();
        c.users.push(c.users[0].clone());
        assert_eq!(c.validate(), Err(AuthConfigError::Duplicate("ana".into())));
        assert!(!AuthConfig::default().enabled());
    }

    #[test]
    fn proxy_identity_maps_roles_and_refuses_unknown_users() {
        let c = AuthConfig {
            proxy: Some(ProxyAuthConfig {
                user_header: "X-Forwarded-User".into(),
                roles: BTreeMap::from([
                    ("boss@x".to_string(), Role::Admin),
                    ("v@x".to_string(), Role::Viewer),
                ]),
                tenants: BTreeMap::from([("v@x".to_string(), vec!["acme".to_string()])]),
                default_role: None,
            }),
            ..Default::default()
        };
        assert_eq!(c.proxy_principal("boss@x").unwrap().role, Role::Admin);
        assert_eq!(
            c.proxy_principal("v@x").unwrap().tenants,
            Some(vec!["acme".into()])
        );
        assert!(c.proxy_principal("stranger@x").is_none());
        assert!(c.proxy_principal("").is_none());
    }
}
