//! View models: what each page shows, built from query rows by pure code.
//!
//! Each page has a request type (parsed from the query string), a `load`
//! function that calls the [`Queries`](crate::query::Queries) trait and
//! shapes rows into a serialisable view, and nothing that knows of HTTP. The
//! HTML page, its JSON twin and the CSV export all render the same view, so
//! they cannot disagree.

pub mod alerts;
pub mod cost;
pub mod drift;
pub mod overview;
pub mod trace;
pub mod traces;

use rust_decimal::Decimal;
use serde::Serialize;
use store::rows::decimal_from_i128;

use crate::fmt::MoneySet;
use crate::query::UsageRow;

/// Token counts per type (sums of reported counts; see `missing_usage_calls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

/// Money per token type, each a per-currency sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CostByType {
    pub input: MoneySet,
    pub output: MoneySet,
    pub cache_read: MoneySet,
    pub cache_write: MoneySet,
    pub total: MoneySet,
}

/// Usage summed over some grouping of rollup rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageSum {
    pub key: String,
    /// Provider calls counted once each (one call, one cost).
    pub calls: u64,
    pub errors: u64,
    /// Calls of models with no price: their cost is unknown, not zero.
    pub unpriced_calls: u64,
    /// Calls that reported no token usage.
    pub missing_usage_calls: u64,
    /// Calls whose usage was estimated with a tokenizer.
    pub estimated_calls: u64,
    pub tokens: Tokens,
    pub cost: CostByType,
}

impl UsageSum {
    pub fn named(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, r: &UsageRow) {
        self.calls += r.calls;
        self.errors += r.errors;
        self.missing_usage_calls += r.calls_missing_usage;
        match r.price_status.as_str() {
            "unpriced_model" => self.unpriced_calls += r.calls,
            "estimated_usage" => self.estimated_calls += r.calls,
            _ => {}
        }
        self.tokens.input += r.input_tokens;
        self.tokens.output += r.output_tokens;
        self.tokens.cache_read += r.cache_read_tokens;
        self.tokens.cache_write += r.cache_write_tokens;
        self.tokens.reasoning += r.reasoning_tokens;
        let c = &mut self.cost;
        let cur = r.currency.as_str();
        c.input.add(cur, money(r.cost_input));
        c.output.add(cur, money(r.cost_output));
        c.cache_read.add(cur, money(r.cost_cache_read));
        c.cache_write.add(cur, money(r.cost_cache_write));
        c.total.add(cur, money(r.cost_total));
    }

    pub fn merge(&mut self, o: &UsageSum) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.unpriced_calls += o.unpriced_calls;
        self.missing_usage_calls += o.missing_usage_calls;
        self.estimated_calls += o.estimated_calls;
        self.tokens.input += o.tokens.input;
        self.tokens.output += o.tokens.output;
        self.tokens.cache_read += o.tokens.cache_read;
        self.tokens.cache_write += o.tokens.cache_write;
        self.tokens.reasoning += o.tokens.reasoning;
        self.cost.input.merge(&o.cost.input);
        self.cost.output.merge(&o.cost.output);
        self.cost.cache_read.merge(&o.cost.cache_read);
        self.cost.cache_write.merge(&o.cost.cache_write);
        self.cost.total.merge(&o.cost.total);
    }

    /// Whether every call here was unpriced (its cost is unknown, not $0).
    pub fn all_unpriced(&self) -> bool {
        self.calls > 0 && self.unpriced_calls == self.calls
    }
}

/// A rollup money sum (`Decimal(38, 12)` mantissa) as a decimal.
pub fn money(v: i128) -> Decimal {
    decimal_from_i128(v)
}

/// Groups rows by `key`, keeping first-seen order, then sorts by total cost
/// in `currency` (descending), then calls, then key.
pub fn group_by<'a>(
    rows: impl IntoIterator<Item = &'a UsageRow>,
    currency: &str,
    key: impl Fn(&UsageRow) -> String,
) -> Vec<UsageSum> {
    let mut map: std::collections::BTreeMap<String, UsageSum> = Default::default();
    for r in rows {
        let k = key(r);
        map.entry(k.clone())
            .or_insert_with(|| UsageSum::named(k))
            .add(r);
    }
    let mut out: Vec<UsageSum> = map.into_values().collect();
    out.sort_by(|a, b| {
        b.cost
            .total
            .get(currency)
            .cmp(&a.cost.total.get(currency))
            .then(b.calls.cmp(&a.calls))
            .then(a.key.cmp(&b.key))
    });
    out
}

/// `(empty)` for blank dimension values, so a row is never nameless.
pub fn label(s: &str) -> String {
    if s.is_empty() {
        "(none)".to_string()
    } else {
        s.to_string()
    }
}
