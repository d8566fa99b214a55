//! Query-string parsing with errors written for people.
//!
//! Invariants: unknown parameters, repeated parameters, malformed values and
//! over-long values are [`DashboardError::BadParam`] (a 400 page naming the
//! parameter), never a 500 and never silently ignored. An empty value means
//! "not set" (what an HTML form sends for an untouched field).

use std::collections::BTreeMap;

use crate::civil::Day;
use crate::error::DashboardError;

/// Longest accepted value of any parameter.
pub const MAX_VALUE_CHARS: usize = 500;

#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parses `raw` (the URL query, without `?`), allowing only `allowed` names.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, DashboardError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| {
                DashboardError::bad("query", "the query string is not valid URL encoding")
            })?;
        let mut values = BTreeMap::new();
        for (k, v) in pairs {
            if !allowed.contains(&k.as_str()) {
                return Err(DashboardError::bad(
                    &k,
                    format!(
                        "unknown parameter; this page accepts: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if v.chars().count() > MAX_VALUE_CHARS {
                return Err(DashboardError::bad(
                    &k,
                    format!("longer than {MAX_VALUE_CHARS} characters"),
                ));
            }
            if v.chars().any(|c| c.is_control()) {
                return Err(DashboardError::bad(&k, "contains control characters"));
            }
            let v = v.trim().to_string();
            if v.is_empty() {
                continue;
            }
            if values.insert(k.clone(), v).is_some() {
                return Err(DashboardError::bad(&k, "given more than once"));
            }
        }
        Ok(Params { values })
    }

    /// A set, non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// A `YYYY-MM-DD` date.
    pub fn day(&self, name: &str) -> Result<Option<Day>, DashboardError> {
        self.get(name)
            .map(|v| {
                Day::parse(v).ok_or_else(|| {
                    DashboardError::bad(name, format!("{v:?} is not a date (YYYY-MM-DD)"))
                })
            })
            .transpose()
    }

    /// One of a fixed set of words.
    pub fn choice<'a>(
        &self,
        name: &str,
        options: &[&'a str],
    ) -> Result<Option<&'a str>, DashboardError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => options
                .iter()
                .find(|o| **o == v)
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    DashboardError::bad(
                        name,
                        format!("{v:?} is not one of: {}", options.join(", ")),
                    )
                }),
        }
    }

    /// Hex ids (trace and span ids).
    pub fn hex_id(name: &str, v: &str) -> Result<String, DashboardError> {
        if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DashboardError::bad(name, format!("{v:?} is not a hex id")));
        }
        Ok(v.to_ascii_lowercase())
    }

    /// The parameters as given, for building links that keep the filters.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Builds `path?k=v&…` from the set pairs, URL-encoded.
pub fn link<'a>(path: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let set: Vec<(&str, &str)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if set.is_empty() {
        return path.to_string();
    }
    match serde_urlencoded::to_string(&set) {
        Ok(q) => format!("{path}?{q}"),
        Err(_) => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_repeated_and_malformed() {
        let ok = Params::parse(
            Some("tenant=acme&from=2024-03-01&to="),
            &["tenant", "from", "to"],
        )
        .unwrap();
        assert_eq!(ok.get("tenant"), Some("acme"));
        assert_eq!(ok.get("to"), None);
        assert_eq!(ok.day("from").unwrap().unwrap().to_string(), "2024-03-01");

        let e = Params::parse(Some("tennant=acme"), &["tenant"]).unwrap_err();
        assert!(e.to_string().contains("tennant"), "{e}");
        assert!(Params::parse(Some("tenant=a&tenant=b"), &["tenant"]).is_err());
        let p = Params::parse(Some("from=2024-02-30"), &["from"]).unwrap();
        assert!(
            p.day("from")
                .unwrap_err()
                .to_string()
                .contains("not a date")
        );
        let p = Params::parse(Some("sort=best"), &["sort"]).unwrap();
        assert!(p.choice("sort", &["newest", "oldest"]).is_err());
        assert!(Params::hex_id("trace_id", "zz").is_err());
        assert_eq!(Params::hex_id("trace_id", "AB12").unwrap(), "ab12");
    }

    #[test]
    fn links_encode_values() {
        assert_eq!(
            link("/traces", [("q", "a&b c"), ("tenant", "")]),
            "/traces?q=a%26b+c"
        );
        assert_eq!(link("/cost", []), "/cost");
    }
}
