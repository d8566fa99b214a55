//! The dashboard's typed configuration, with every default in one place.
//!
//! Budgets are decimal strings in the config file (`"1500.00"`) so that money
//! never passes through a float; [`DashboardConfig::validate`] parses them once.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `[dashboard]` in `loupe.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Where the dashboard listens. Loopback unless configured.
    pub listen: SocketAddr,
    /// Month-to-date budget per tenant, as decimal strings in `currency`.
    pub budgets: BTreeMap<String, String>,
    /// The currency budgets are stated in (the price table's currency).
    pub currency: String,
    /// Rows per page on the traces list.
    pub page_size: u32,
    /// Longest a dashboard query may run, in seconds (sent as `max_execution_time`).
    pub query_timeout_secs: u32,
    /// When set, the dashboard only ever shows these tenants (enforced in the
    /// query layer). Empty: all tenants.
    pub tenants: Vec<String>,
    /// Users, roles and sessions; open (loopback) when nothing is configured.
    /// Never serialised (it holds password hashes).
    #[serde(skip_serializing)]
    pub auth: crate::auth::AuthConfig,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            budgets: BTreeMap::new(),
            currency: "USD".to_string(),
            page_size: 50,
            query_timeout_secs: 20,
            tenants: Vec::new(),
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("dashboard.budgets.{tenant}: {value:?} is not a decimal amount")]
    Budget { tenant: String, value: String },
    #[error("dashboard.page_size must be between 1 and 500, got {0}")]
    PageSize(u32),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
}

impl DashboardConfig {
    /// Parsed budgets; an error names the first bad entry.
    pub fn validate(&self) -> Result<BTreeMap<String, Decimal>, ConfigError> {
        if !(1..=500).contains(&self.page_size) {
            return Err(ConfigError::PageSize(self.page_size));
        }
        self.auth.validate()?;
        self.budgets
            .iter()
            .map(|(tenant, value)| {
                value
                    .trim()
                    .parse::<Decimal>()
                    .ok()
                    .filter(|d| !d.is_sign_negative())
                    .map(|d| (tenant.clone(), d))
                    .ok_or_else(|| ConfigError::Budget {
                        tenant: tenant.clone(),
                        value: value.clone(),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_3000() {
        let c: DashboardConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.page_size, 50);
        assert!(c.validate().unwrap().is_empty());
    }

    #[test]
    fn budgets_are_exact_decimals_and_bad_ones_are_named() {
        let mut c = DashboardConfig::default();
        c.budgets.insert("acme".into(), "1500.10".into());
        assert_eq!(c.validate().unwrap()["acme"].to_string(), "1500.10");
        c.budgets.insert("zeta".into(), "lots".into());
        assert_eq!(
            c.validate().unwrap_err(),
            ConfigError::Budget {
                tenant: "zeta".into(),
                value: "lots".into()
            }
        );
    }
}
