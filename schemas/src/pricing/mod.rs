//! Pricing: a dated price table and the cost of one span.
//!
//! The bundled table (`schemas/prices.toml`, compiled in) can be extended and
//! overridden by a user file of the same format, whose entries may be limited to one
//! tenant (`tenant = "acme"`). Lookup is a pure function of (tenant, provider,
//! model, time): the model name is normalised ([`model_name`]), tenant entries beat
//! global ones, user entries beat bundled ones, and among entries of one model the
//! one effective at the span's start time applies.
//!
//! Token accounting: `usage.input` includes cache reads and writes (see
//! [`crate::span::Usage`]); uncached input = input − cache_read − cache_write is priced
//! at the input price, cached parts at their own prices (input price when the table
//! has none), reasoning inside output (at `reasoning` when the entry sets it).
//!
//! Invariants: money is `Decimal` end to end; an unknown model costs zero *and* is
//! flagged `unpriced_model`; a model call without usage is estimated from its
//! content (`estimated_usage`) or flagged `missing_usage`; a failed call that
//! reported no usage bills nothing (`NotApplicable`).

pub mod estimate;
pub mod model_name;

use std::collections::HashMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::keys::openinference as oi;
use crate::span::{CanonicalSpan, Cost, PriceStatus, StatusCode, Usage};

pub use model_name::{model_keys, normalize_model};

/// The table shipped with this crate.
pub const BUNDLED_PRICES: &str = include_str!("../../prices.toml");
const DEFAULT_CURRENCY: &str = "USD";
/// `price_version` of spans priced from a cost the source itself reported.
pub const REPORTED_VERSION: &str = "reported";

/// A price file that cannot be used; says which file, line and entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceFileError {
    #[error("{origin}: line {line}, column {column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: line {line}: price entry {index} ({model}): {message}")]
    Entry {
        origin: String,
        line: usize,
        index: usize,
        model: String,
        message: String,
    },
}

/// One dated price. Amounts are per one million tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    pub provider: String,
    /// Normalised model key.
    pub model: String,
    pub input: Decimal,
    pub output: Decimal,
    pub cache_read: Option<Decimal>,
    pub cache_write: Option<Decimal>,
    pub reasoning: Option<Decimal>,
    pub currency: String,
    /// `YYYY-MM-DD` as written.
    pub effective_from: String,
    /// Days since 1970-01-01 of `effective_from`.
    effective_day: i64,
    pub source: String,
    /// `None` for entries that apply to every tenant.
    pub tenant: Option<String>,
    /// Where the entry came from: bundled entries rank below user entries.
    user: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    version: String,
    entries: Vec<PriceEntry>,
    /// Model key -> indices into `entries` (a span's lookup probes a few keys).
    by_model: HashMap<String, Vec<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    version: Option<String>,
    currency: Option<String>,
    #[serde(default)]
    price: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    provider: String,
    model: String,
    input: Amount,
    output: Amount,
    cache_read: Option<Amount>,
    cache_write: Option<Amount>,
    reasoning: Option<Amount>,
    currency: Option<String>,
    effective_from: DateText,
    source: Option<String>,
    tenant: Option<String>,
}

/// Amounts may be written as strings (exact) or TOML numbers (converted through
/// their shortest decimal text, which is exact for any price a person writes).
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Int(i64),
    Float(f64),
}

impl Amount {
    fn to_decimal(&self) -> Result<Decimal, String> {
        let d = match self {
            Amount::Text(s) => {
                Decimal::from_str(s.trim()).map_err(|e| format!("amount {s:?}: {e}"))?
            }
            Amount::Int(i) => Decimal::from(*i),
            Amount::Float(f) => {
                Decimal::from_str(&f.to_string()).map_err(|e| format!("amount {f}: {e}"))?
            }
        };
        if d.is_sign_negative() {
            return Err(format!("negative price {d}"));
        }
        Ok(d)
    }
}

/// Dates may be quoted (`"2025-01-31"`) or TOML dates (`2025-01-31`).
#[derive(Deserialize)]
#[serde(untagged)]
enum DateText {
    Text(String),
    Date(toml::value::Datetime),
}

impl DateText {
    fn text(&self) -> String {
        match self {
            DateText::Text(s) => s.trim().to_owned(),
            DateText::Date(d) => d.to_string(),
        }
    }
}

impl PriceTable {
    /// The bundled table.
    pub fn bundled() -> Result<PriceTable, PriceFileError> {
        Self::from_toml(BUNDLED_PRICES, "prices.toml (bundled)", false)
    }

    /// A table from price-file text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str, user: bool) -> Result<PriceTable, PriceFileError> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            PriceFileError::Syntax {
                origin: origin.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let currency = doc.currency.unwrap_or_else(|| DEFAULT_CURRENCY.to_owned());
        let mut entries = Vec::with_capacity(doc.price.len());
        for (index, e) in doc.price.into_iter().enumerate() {
            let fail = |message: String| PriceFileError::Entry {
                origin: origin.to_owned(),
                line: entry_line(text, index),
                index: index + 1,
                model: e.model.clone(),
                message,
            };
            let model = normalize_model(&e.model);
            if model.is_empty() {
                return Err(fail("empty model".to_owned()));
            }
            let effective_from = e.effective_from.text();
            let effective_day = parse_day(&effective_from).ok_or_else(|| {
                fail(format!(
                    "effective_from {effective_from:?} is not YYYY-MM-DD"
                ))
            })?;
            let opt = |a: &Option<Amount>| a.as_ref().map(Amount::to_decimal).transpose();
            entries.push(PriceEntry {
                provider: crate::convention::normalize_provider(&e.provider),
                // Keep the snapshot a file names: it is the most specific key.
                model: model_keys(&e.model).into_iter().next().unwrap_or(model),
                input: e.input.to_decimal().map_err(fail)?,
                output: e.output.to_decimal().map_err(fail)?,
                cache_read: opt(&e.cache_read).map_err(fail)?,
                cache_write: opt(&e.cache_write).map_err(fail)?,
                reasoning: opt(&e.reasoning).map_err(fail)?,
                currency: e.currency.clone().unwrap_or_else(|| currency.clone()),
                effective_from,
                effective_day,
                source: e.source.clone().unwrap_or_default(),
                tenant: e.tenant.clone().filter(|t| !t.is_empty()),
                user,
            });
        }
        Ok(PriceTable {
            version: doc.version.unwrap_or_else(|| "unversioned".to_owned()),
            by_model: index_by_model(&entries),
            entries,
        })
    }

    /// Extend and override this table with a user price file.
    pub fn with_user_file(
        mut self,
        text: &str,
        origin: &str,
    ) -> Result<PriceTable, PriceFileError> {
        let user = Self::from_toml(text, origin, true)?;
        self.version = format!("{}+{}", self.version, user.version);
        self.entries.extend(user.entries);
        self.by_model = index_by_model(&self.entries);
        Ok(self)
    }

    /// Recorded on every priced span: which table priced it.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn entries(&self) -> &[PriceEntry] {
        &self.entries
    }

    /// The entry that prices `model` from `provider` for `tenant` at `at_unix_nano`
    /// (0 = now, i.e. the latest entry).
    pub fn lookup(
        &self,
        tenant: &str,
        provider: &str,
        model: &str,
        at_unix_nano: u64,
    ) -> Option<&PriceEntry> {
        let day = lookup_day(at_unix_nano);
        for key in model_keys(model) {
            let candidates: Vec<&PriceEntry> = self
                .by_model
                .get(&key)
                .into_iter()
                .flatten()
                .filter_map(|&i| self.entries.get(i))
                .filter(|e| e.tenant.as_deref().is_none_or(|t| t == tenant))
                .collect();
            let Some(chosen_provider) = pick_provider(&candidates, provider) else {
                continue;
            };
            let best = candidates
                .into_iter()
                .filter(|e| e.provider == chosen_provider)
                .filter(|e| day.is_none_or(|d| e.effective_day <= d))
                // Specific beats general: tenant entries, then user entries, then the latest date.
                .max_by_key(|e| (e.tenant.is_some(), e.user, e.effective_day));
            if best.is_some() {
                return best;
            }
        }
        None
    }

    /// Fill `cost`, `price_status` and `price_version` of one span.
    pub fn price_span(&self, span: &mut CanonicalSpan) {
        self.price_span_with(span, &mut LookupMemo::off());
    }

    /// [`Self::price_span`] for every span of a batch; the spans of one batch
    /// share a few models, so each distinct lookup runs once.
    pub fn price_spans(&self, spans: &mut [CanonicalSpan]) {
        let mut memo = LookupMemo::with_capacity(LookupMemo::CAPACITY);
        for s in spans {
            self.price_span_with(s, &mut memo);
        }
    }

    /// [`Self::lookup`] through `memo`.
    fn lookup_memo<'t>(
        &'t self,
        memo: &mut LookupMemo<'t>,
        tenant: &str,
        provider: &str,
        model: &str,
        at_unix_nano: u64,
    ) -> Option<&'t PriceEntry> {
        let day = lookup_day(at_unix_nano);
        let hit = memo.seen.iter().find(|(k, _)| {
            k.day == day && k.model == model && k.provider == provider && k.tenant == tenant
        });
        if let Some((_, entry)) = hit {
            return *entry;
        }
        let entry = self.lookup(tenant, provider, model, at_unix_nano);
        if memo.seen.len() < memo.capacity {
            let key = MemoKey {
                tenant: tenant.to_owned(),
                provider: provider.to_owned(),
                model: model.to_owned(),
                day,
            };
            memo.seen.push((key, entry));
        }
        entry
    }

    fn price_span_with<'t>(&'t self, span: &mut CanonicalSpan, memo: &mut LookupMemo<'t>) {
        span.cost = Cost {
            currency: DEFAULT_CURRENCY.to_owned(),
            ..Cost::default()
        };
        span.price_version = self.version.clone();
        span.price_status = PriceStatus::NotApplicable;
        if !span.operation.is_model_call() {
            return;
        }
        let has_usage = span.usage.input.is_some() || span.usage.output.is_some();
        if !has_usage && span.status == StatusCode::Error {
            // Providers do not bill failed requests; nothing to flag.
            return;
        }
        let model = if span.response_model.is_empty() {
            span.request_model.clone()
        } else {
            span.response_model.clone()
        };
        let entry = self
            .lookup_memo(
                memo,
                &span.tenant_id,
                &span.provider,
                &model,
                span.start_time_unix_nano,
            )
            .or_else(|| {
                self.lookup_memo(
                    memo,
                    &span.tenant_id,
                    &span.provider,
                    &span.request_model,
                    span.start_time_unix_nano,
                )
            });
        let mut status = if usage_estimated_by_source(span) {
            PriceStatus::EstimatedUsage
        } else {
            PriceStatus::Priced
        };
        let mut usage = span.usage;
        if !has_usage {
            match estimate::estimate_usage(span, &normalize_model(&model)) {
                Some(est) => {
                    usage = est;
                    span.usage = est;
                    status = PriceStatus::EstimatedUsage;
                }
                None => {
                    span.price_status = PriceStatus::MissingUsage;
                    return;
                }
            }
        }
        match entry.and_then(|e| cost_of(e, &usage)) {
            Some(cost) => {
                span.cost = cost;
                span.price_status = status;
            }
            None => match reported_cost(span) {
                Some(cost) => {
                    span.cost = cost;
                    span.price_status = status;
                    span.price_version = REPORTED_VERSION.to_owned();
                }
                None => span.price_status = PriceStatus::UnpricedModel,
            },
        }
    }
}

/// Lookups already made for one batch (a day's prices are fixed, so the day
/// is part of the key).
struct LookupMemo<'t> {
    seen: Vec<(MemoKey, Option<&'t PriceEntry>)>,
    capacity: usize,
}

impl LookupMemo<'_> {
    /// Distinct lookups remembered; a batch with more falls back to plain lookups.
    const CAPACITY: usize = 32;

    fn with_capacity(capacity: usize) -> Self {
        Self {
            seen: Vec::new(),
            capacity,
        }
    }

    /// Remembers nothing (one span: nothing to share).
    fn off() -> Self {
        Self::with_capacity(0)
    }
}

struct MemoKey {
    tenant: String,
    provider: String,
    model: String,
    day: Option<i64>,
}

/// The day whose prices a lookup at `at_unix_nano` reads: `None` (the
/// latest) for time 0, "now".
fn lookup_day(at_unix_nano: u64) -> Option<i64> {
    (at_unix_nano > 0).then_some((at_unix_nano / 1_000_000_000 / 86_400) as i64)
}

fn index_by_model(entries: &[PriceEntry]) -> HashMap<String, Vec<usize>> {
    let mut by_model: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_model.entry(e.model.clone()).or_default().push(i);
    }
    by_model
}

/// Which provider's entries apply: the span's own, else the family it resells
/// (Azure OpenAI → openai), else — for resellers and unnamed providers — the only
/// provider that lists the model.
fn pick_provider<'e>(candidates: &[&'e PriceEntry], provider: &str) -> Option<&'e str> {
    let provider = crate::convention::normalize_provider(provider);
    let find = |p: &str| {
        candidates
            .iter()
            .find(|e| e.provider == p)
            .map(|e| e.provider.as_str())
    };
    if let Some(p) = find(&provider) {
        return Some(p);
    }
    let family = match provider.as_str() {
        "azure.ai.openai" => Some("openai"),
        "gcp.vertex_ai" | "gcp.gen_ai" => Some("gcp.gemini"),
        _ => None,
    };
    if let Some(p) = family.and_then(find) {
        return Some(p);
    }
    const RESELLERS: &[&str] = &[
        "",
        "aws.bedrock",
        "gcp.vertex_ai",
        "gcp.gen_ai",
        "azure.ai.inference",
        "azure.ai.openai",
        "openrouter",
    ];
    if RESELLERS.contains(&provider.as_str()) {
        let first = candidates.first()?.provider.as_str();
        if candidates.iter().all(|e| e.provider == first) {
            return Some(first);
        }
    }
    None
}

/// Cost of a usage at an entry's prices; `None` on arithmetic overflow (nonsense
/// token counts are not priced).
/// The source says it estimated the tokens itself (`loupe.usage.estimated = true`).
fn usage_estimated_by_source(span: &CanonicalSpan) -> bool {
    span.attributes
        .iter()
        .any(|(k, v)| k == crate::keys::loupe::USAGE_ESTIMATED && v == "true")
}

pub fn cost_of(e: &PriceEntry, u: &Usage) -> Option<Cost> {
    let million = Decimal::from(1_000_000u32);
    let at = |tokens: u64, per_million: Decimal| -> Option<Decimal> {
        Decimal::from(tokens)
            .checked_mul(per_million)?
            .checked_div(million)
    };
    let cache_read = u.cache_read.unwrap_or(0);
    let cache_write = u.cache_write.unwrap_or(0);
    let uncached = u
        .input
        .unwrap_or(0)
        .saturating_sub(cache_read.saturating_add(cache_write));
    let output = u.output.unwrap_or(0);
    let output_cost = match (e.reasoning, u.reasoning) {
        (Some(rp), Some(r)) => {
            let r = r.min(output);
            at(output - r, e.output)?.checked_add(at(r, rp)?)?
        }
        _ => at(output, e.output)?,
    };
    let input = at(uncached, e.input)?;
    let cache_read = at(cache_read, e.cache_read.unwrap_or(e.input))?;
    let cache_write = at(cache_write, e.cache_write.unwrap_or(e.input))?;
    let total = input
        .checked_add(output_cost)?
        .checked_add(cache_read)?
        .checked_add(cache_write)?;
    Some(Cost {
        input: input.normalize(),
        output: output_cost.normalize(),
        cache_read: cache_read.normalize(),
        cache_write: cache_write.normalize(),
        total: total.normalize(),
        currency: e.currency.clone(),
    })
}

/// OpenInference's `llm.cost.*`, when the source priced the call itself; used only
/// for models the table does not know.
fn reported_cost(span: &CanonicalSpan) -> Option<Cost> {
    let get = |key: &str| {
        span.attributes
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| Decimal::from_str(v.trim()).ok())
            .filter(|d| !d.is_sign_negative())
    };
    let total = get(oi::COST_TOTAL)?;
    Some(Cost {
        input: get(oi::COST_PROMPT).unwrap_or_default(),
        output: get(oi::COST_COMPLETION).unwrap_or_default(),
        total,
        currency: DEFAULT_CURRENCY.to_owned(),
        ..Cost::default()
    })
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.get(..2)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// Line of the `index`-th `[[price]]` header (1-based lines; 0 when not found).
fn entry_line(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[price]]"))
        .nth(index)
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests;
