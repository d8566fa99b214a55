//! Redaction of secrets and personal data in span bodies and attribute values,
//! applied at ingest before anything is stored.
//!
//! Invariants:
//! - Secrets (provider API keys, bearer tokens, private keys, cloud and VCS
//!   tokens) are redacted unless a configuration turns them off; PII (emails,
//!   phone numbers, card numbers that pass the Luhn check) only when enabled,
//!   globally or per tenant; extra patterns are configurable.
//! - A match becomes `[REDACTED:<kind>]`. Replacements never contain quotes or
//!   backslashes, so JSON bodies stay valid JSON.
//! - A span whose text changed is marked `redacted`; the marker says what kind
//!   of value was there, never the value.
//! - Pure and allocation-light: strings without a match are not copied.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::{Captures, Regex, RegexSet};
use serde::Deserialize;

use crate::span::CanonicalSpan;

/// What to redact. `Default` redacts secrets only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedactionConfig {
    pub secrets: bool,
    pub emails: bool,
    pub phones: bool,
    pub cards: bool,
    /// Extra patterns: name → regular expression.
    pub patterns: Vec<CustomPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    pub name: String,
    pub regex: String,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            secrets: true,
            emails: false,
            phones: false,
            cards: false,
            patterns: Vec::new(),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedactionError {
    #[error("redaction pattern {name:?} is not a valid regular expression: {reason}")]
    BadPattern { name: String, reason: String },
    #[error("redaction pattern name {0:?} must be letters, digits, '_' or '-'")]
    BadName(String),
}

/// Built-in secret shapes: (kind, pattern). Kept specific enough that prose
/// does not match (prefixes and lengths of the real formats).
const SECRETS: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ),
    ("anthropic_key", r"(?-u:\b)sk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai_key",
        r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    (
        "stripe_key",
        r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
    ),
    (
        "aws_access_key",
        r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
    ),
    (
        "github_token",
        r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    ),
    ("google_api_key", r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}"),
    ("slack_token", r"(?-u:\b)xox[abprs]-[A-Za-z0-9\-]{10,}"),
    ("huggingface_token", r"(?-u:\b)hf_[A-Za-z0-9]{30,}"),
    (
        "jwt",
        r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
    // "Bearer", "bearer" or "BEARER" (not any mix of cases: a
    // case-insensitive word expands to 64 literals and slowed the one-pass
    // prefilter over every body several-fold).
    (
        "bearer_token",
        r"(?-u:\b)(?:Bearer|bearer|BEARER)\s+[A-Za-z0-9_\-\.=~+/]{16,}",
    ),
];

const EMAIL: &str = r"(?-u:\b)[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}(?-u:\b)";
const PHONE: &str = r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|(?-u:\b)\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}(?-u:\b)";
const CARD: &str = r"(?-u:\b)(?:\d[ \-]?){12,18}\d(?-u:\b)";

/// One compiled rule: a kind and its pattern; cards also need the Luhn check.
#[derive(Debug, Clone)]
struct Rule {
    kind: String,
    re: Regex,
    luhn: bool,
}

/// A compiled configuration.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<Rule>,
    /// Every rule's pattern in one automaton: one pass over a text says
    /// which rules (usually none) need their own replacing pass.
    any: RegexSet,
    /// The fewest bytes any rule can match: shorter texts (most attribute
    /// values) cannot hold a match, and skip the automaton's per-call cost.
    min_len: usize,
}

impl Redactor {
    pub fn new(cfg: &RedactionConfig) -> Result<Self, RedactionError> {
        let mut rules = Vec::new();
        let mut add = |kind: &str, pattern: &str, luhn: bool| -> Result<(), RedactionError> {
            let re = Regex::new(pattern).map_err(|e| RedactionError::BadPattern {
                name: kind.to_string(),
                reason: e.to_string(),
            })?;
            rules.push(Rule {
                kind: kind.to_string(),
                re,
                luhn,
            });
            Ok(())
        };
        if cfg.secrets {
            for (kind, pattern) in SECRETS {
                add(kind, pattern, false)?;
            }
        }
        for p in &cfg.patterns {
            let ok = !p.name.is_empty()
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(RedactionError::BadName(p.name.clone()));
            }
            add(&p.name, &p.regex, false)?;
        }
        if cfg.emails {
            add("email", EMAIL, false)?;
        }
        if cfg.cards {
            add("card_number", CARD, true)?;
        }
        if cfg.phones {
            add("phone", PHONE, false)?;
        }
        let any = RegexSet::new(rules.iter().map(|r| r.re.as_str())).map_err(|e| {
            RedactionError::BadPattern {
                name: "(all patterns together)".to_string(),
                reason: e.to_string(),
            }
        })?;
        let min_len = rules
            .iter()
            .map(|r| min_match_len(r.re.as_str()))
            .min()
            .unwrap_or(0);
        Ok(Self {
            rules,
            any,
            min_len,
        })
    }

    /// Whether some rule matches somewhere in `text`.
    fn may_match(&self, text: &str) -> bool {
        text.len() >= self.min_len && self.any.is_match(text)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Redacts JSON text (a body). The patterns run over a view in which the
    /// escapes' letters (`n` of `\n`, `u0041` of `\u0041`, ...) read as spaces:
    /// a value right after a line break then starts at a word boundary, as
    /// it does in the text, and no match ends or starts inside an escape, so
    /// the JSON stays valid. Matches of the rules are replaced left to right
    /// (on overlap the leftmost wins, then the earlier rule). Borrowed when
    /// nothing matched.
    pub fn redact_json<'a>(&self, json: &'a str) -> Cow<'a, str> {
        if memchr::memchr(b'\\', json.as_bytes()).is_none() {
            return self.redact(json);
        }
        let view = blank_escapes(json);
        if !self.may_match(&view) {
            return Cow::Borrowed(json);
        }
        let tail = escape_tails(json);
        // (start, rule, end) of every match, in the original's byte offsets.
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for i in self.any.matches(&view).iter() {
            let Some(rule) = self.rules.get(i) else {
                continue;
            };
            for m in rule.re.find_iter(&view) {
                // Widen to whole escapes at both ends.
                let mut start = m.start();
                while start > 0 && tail.get(start).copied().unwrap_or(false) {
                    start -= 1;
                }
                let mut end = m.end();
                while tail.get(end).copied().unwrap_or(false) {
                    end += 1;
                }
                let text = json.get(start..end).unwrap_or_default();
                if !rule.luhn || luhn_valid(text) {
                    found.push((start, i, end));
                }
            }
        }
        found.sort_unstable();
        let mut out = String::with_capacity(json.len());
        let mut done = 0usize;
        for (start, rule, end) in found {
            if start < done {
                continue;
            }
            let kind = self.rules.get(rule).map_or("secret", |r| r.kind.as_str());
            out.push_str(json.get(done..start).unwrap_or_default());
            out.push_str("[REDACTED:");
            out.push_str(kind);
            out.push(']');
            done = end;
        }
        if done == 0 && out.is_empty() {
            return Cow::Borrowed(json);
        }
        out.push_str(json.get(done..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// Redacts one string; borrowed when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        // Most text holds nothing to redact: a plain search says so faster
        // than the overlapping one that names the matching rules.
        if !self.may_match(text) {
            return out;
        }
        let hits = self.any.matches(text);
        // A replacement (`[REDACTED:kind]`) never makes another rule match,
        // so only the rules that matched the original text need to run.
        for rule in hits.iter().filter_map(|i| self.rules.get(i)) {
            let replaced = rule.re.replace_all(&out, |c: &Captures<'_>| {
                let m = &c[0];
                if rule.luhn && !luhn_valid(m) {
                    m.to_string()
                } else {
                    format!("[REDACTED:{}]", rule.kind)
                }
            });
            if let Cow::Owned(s) = replaced
                && s != *out
            {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// Redacts every body and attribute value of a span; marks it when
    /// anything changed.
    pub fn redact_span(&self, span: &mut CanonicalSpan) {
        if self.rules.is_empty() {
            return;
        }
        let mut changed = false;
        let mut apply = |s: &mut String, json: bool| {
            let redacted = if json {
                self.redact_json(s)
            } else {
                self.redact(s)
            };
            if let Cow::Owned(new) = redacted {
                *s = new;
                changed = true;
                true
            } else {
                false
            }
        };
        // A preview source may be cut (`crate::preview`), and a pattern that
        // needs the rest of the text (a PEM block's END line) cannot match
        // there: when its body held something to redact, the source is
        // dropped and the row previews the redacted body instead.
        for (body, source) in [
            (&mut span.input_messages, &mut span.input_preview),
            (&mut span.output_messages, &mut span.output_preview),
        ] {
            if apply(body, true) {
                source.clear();
            } else {
                apply(source, false);
            }
        }
        apply(&mut span.tool_definitions, true);
        apply(&mut span.status_message, false);
        for (_, v) in span.attributes.iter_mut() {
            apply(v, false);
        }
        for (_, v) in span.request_params.iter_mut() {
            apply(v, false);
        }
        for e in span.events.iter_mut() {
            for (_, v) in e.attributes.iter_mut() {
                apply(v, false);
            }
        }
        for e in span.evaluations.iter_mut() {
            apply(&mut e.explanation, false);
        }
        // Shared by the spans of a resource: replaced, not edited in place.
        if span
            .resource_attributes
            .iter()
            .any(|(_, v)| self.may_match(v))
        {
            let fixed: Vec<(String, String)> = span
                .resource_attributes
                .iter()
                .map(|(k, v)| (k.clone(), self.redact(v).into_owned()))
                .collect();
            if *fixed != *span.resource_attributes {
                span.resource_attributes = fixed.into();
                changed = true;
            }
        }
        if changed {
            span.redacted = true;
        }
    }
}

/// A redactor per tenant, falling back to the default configuration.
#[derive(Debug, Clone)]
pub struct TenantRedactors {
    default: Redactor,
    tenants: HashMap<String, Redactor>,
}

impl TenantRedactors {
    pub fn new(
        default: &RedactionConfig,
        per_tenant: &HashMap<String, RedactionConfig>,
    ) -> Result<Self, RedactionError> {
        let tenants = per_tenant
            .iter()
            .map(|(t, c)| Ok((t.clone(), Redactor::new(c)?)))
            .collect::<Result<_, RedactionError>>()?;
        Ok(Self {
            default: Redactor::new(default)?,
            tenants,
        })
    }

    pub fn for_tenant(&self, tenant: &str) -> &Redactor {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    pub fn redact_span(&self, span: &mut CanonicalSpan) {
        self.for_tenant(&span.tenant_id).redact_span(span);
    }
}

/// The fewest bytes a pattern can match (`regex-syntax` reads it from the
/// pattern as `Regex::new` parses it); 0 when that cannot be told, so that
/// nothing is skipped.
fn min_match_len(pattern: &str) -> usize {
    regex_syntax::parse(pattern)
        .ok()
        .and_then(|hir| hir.properties().minimum_len())
        .unwrap_or(0)
}

/// The byte offsets of the escapes' backslashes in JSON text, each with the
/// length of what follows it (1, or 5 for `\uXXXX`, cut at the end).
fn escapes(json: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = json.as_bytes();
    let mut from = 0usize;
    std::iter::from_fn(move || {
        let at = from + memchr::memchr(b'\\', bytes.get(from..)?)?;
        let len = if bytes.get(at + 1) == Some(&b'u') {
            5
        } else {
            1
        };
        let len = len.min(bytes.len() - at - 1);
        from = at + 1 + len;
        Some((at, len))
    })
}

/// A same-length view of JSON text in which every escape's letters read as
/// spaces (`\n` → `\ `, `\u0041` → `\     `).
fn blank_escapes(json: &str) -> String {
    let mut view = json.as_bytes().to_vec();
    for (at, len) in escapes(json) {
        view[at + 1..at + 1 + len].fill(b' ');
    }
    // Only ASCII bytes inside escapes were replaced, by ASCII.
    String::from_utf8(view).unwrap_or_default()
}

/// For each byte of JSON text, whether it is part of an escape after its
/// backslash.
fn escape_tails(json: &str) -> Vec<bool> {
    let mut tail = vec![false; json.len()];
    for (at, len) in escapes(json) {
        tail[at + 1..at + 1 + len].fill(true);
    }
    tail
}

/// The Luhn checksum over the digits of `s` (separators ignored).
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_on() -> RedactionConfig {
        RedactionConfig {
            secrets: true,
            emails: true,
            phones: true,
            cards: true,
            patterns: vec![CustomPattern {
                name: "ticket".into(),
                regex: r"\bTCK-\d{6}\b".into(),
            }],
        }
    }

    #[test]
    fn texts_shorter_than_any_match_are_skipped_and_the_shortest_still_caught() {
        // The shortest built-in secret is a Slack token: `xox?-` and 10 more.
        let r = Redactor::new(&RedactionConfig::default()).unwrap();
        assert_eq!(r.min_len, 15);
        assert_eq!(r.redact("xoxb-0123456789"), "[REDACTED:slack_token]");
        assert_eq!(r.redact("xoxb-012345678"), "xoxb-012345678");
        // Emails bring it down; a custom pattern that can match nothing
        // turns the skip off.
        let r = Redactor::new(&all_on()).unwrap();
        assert_eq!(r.min_len, "a@b.cc".len());
        assert_eq!(r.redact("a@b.cc"), "[REDACTED:email]");
        let mut cfg = all_on();
        cfg.patterns.push(CustomPattern {
            name: "maybe".into(),
            regex: "x*".into(),
        });
        assert_eq!(Redactor::new(&cfg).unwrap().min_len, 0);
        assert_eq!(min_match_len(r"(?i)ab\d{3}"), 5);
        assert_eq!(min_match_len("é"), 2, "bytes, not characters");
    }

    #[test]
    fn escapes_are_found_whole_and_cut_at_the_end() {
        let found = |s: &str| escapes(s).collect::<Vec<_>>();
        assert_eq!(found(r#"a\nb\\c\u0041d"#), [(1, 1), (4, 1), (7, 5)]);
        assert_eq!(found(r#"x\u00"#), [(1, 3)]);
        assert_eq!(found("x\\"), [(1, 0)]);
        assert_eq!(blank_escapes(r#"a\nb\u0041"#), r#"a\ b\     "#);
        assert_eq!(
            escape_tails(r#"\\x"#),
            [false, true, false],
            "an escaped backslash ends its escape"
        );
    }

    #[test]
    fn secrets_are_redacted_by_default() {
        let r = Redactor::new(&RedactionConfig::default()).unwrap();
        let cases = [
            ("key sk-proj-abcDEF1234567890abcdef1234 here", "openai_key"),
            ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx-yz", "anthropic_key"),
            ("AKIAIOSFODNN7EXAMPLE", "aws_access_key"),
            (
                "Authorization: Bearer abcdefghijklmnop1234567890",
                "bearer_token",
            ),
            ("ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "github_token"),
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow...\\n-----END RSA PRIVATE KEY-----",
                "private_key",
            ),
        ];
        for (text, kind) in cases {
            let out = r.redact(text);
            assert!(
                out.contains(&format!("[REDACTED:{kind}]")),
                "{text} -> {out}"
            );
        }
        // PII stays unless enabled.
        assert_eq!(
            r.redact("mail me at ana@example.com"),
            "mail me at ana@example.com"
        );
    }

    #[test]
    fn prose_is_left_alone_and_not_copied() {
        let r = Redactor::new(&all_on()).unwrap();
        for text in [
            "The capital of France is Paris.",
            "Order 12345 shipped on 2024-08-06 at 10:30.",
            "ask about the task-manager skill",
            "version 1.2.3 costs $4.50",
        ] {
            assert!(matches!(r.redact(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn pii_when_enabled_with_luhn_for_cards() {
        let r = Redactor::new(&all_on()).unwrap();
        let out = r.redact(
            "ana@example.com paid with 4242 4242 4242 4242, call +1 415-555-0132 re TCK-004211",
        );
        assert!(out.contains("[REDACTED:email]"), "{out}");
        assert!(out.contains("[REDACTED:card_number]"), "{out}");
        assert!(out.contains("[REDACTED:phone]"), "{out}");
        assert!(out.contains("[REDACTED:ticket]"), "{out}");
        assert!(!out.contains("4242") && !out.contains("555-0132") && !out.contains("ana@"));
        // 16 digits that fail Luhn are an order number, not a card.
        let out = r.redact("order 1234 5678 9012 3456");
        assert!(!out.contains("card_number"), "{out}");
    }

    #[test]
    fn json_bodies_stay_json() {
        let r = Redactor::new(&all_on()).unwrap();
        let body = r#"[{"role":"user","content":"my key is sk-abcdefghijklmnopqrstuvwxyz123456 and mail a.b@c.io\nthanks"}]"#;
        let out = r.redact(body);
        let v: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        let text = v[0]["content"].as_str().unwrap();
        assert!(text.contains("[REDACTED:openai_key]") && text.contains("[REDACTED:email]"));
    }

    #[test]
    fn secrets_after_a_json_escape_are_redacted_and_the_json_stays_valid() {
        let all = RedactionConfig {
            emails: true,
            cards: true,
            ..RedactionConfig::default()
        };
        let r = Redactor::new(&all).unwrap();
        let content = "key:\nsk-proj-abcdefghijklmnopqrstuvwxyz\tmail\nana@example.com\ncard\u{1}4111 1111 1111 1111 \"q\"";
        let body =
            serde_json::to_string(&serde_json::json!([{ "role": "user", "content": content }]))
                .unwrap();
        // Read as plain text, the `n` of `\n` hides the key and the e-mail
        // swallows it: the body would no longer be JSON.
        assert!(r.redact(&body).contains("sk-proj-abc"));
        let out = r.redact_json(&body).into_owned();
        let back: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
        assert_eq!(
            back[0]["content"],
            "key:\n[REDACTED:openai_key]\tmail\n[REDACTED:email]\ncard\u{1}[REDACTED:card_number] \"q\""
        );
        // Inside a word there is still no match, and clean JSON is not copied.
        let word = serde_json::to_string("xsk-proj-abcdefghijklmnopqrstuvwxyz\n").unwrap();
        assert!(matches!(r.redact_json(&word), Cow::Borrowed(_)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]
        #[test]
        fn redacted_json_bodies_stay_json_whatever_their_text(pieces in proptest::collection::vec(0usize..12, 0..40)) {
            let words = [
                "\n", "\t", "\u{1}", "\\", "\"", " ", "é", "ana@example.com",
                "sk-proj-abcdefghijklmnopqrstuvwxyz", "4111 1111 1111 1111", "word", "Bearer abcdefghijklmnopqrstu",
            ];
            let content: String = pieces.iter().map(|&i| words[i]).collect();
            let body = serde_json::to_string(&serde_json::json!([{ "role": "user", "content": content }])).unwrap();
            let r = Redactor::new(&RedactionConfig { emails: true, cards: true, phones: true, ..RedactionConfig::default() }).unwrap();
            let out = r.redact_json(&body);
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok(), "{out}");
        }
    }

    #[test]
    fn a_key_running_past_a_cut_preview_source_never_reaches_the_preview() {
        use crate::convention::{Side, set_messages};
        let key_body = "MHcCAQEEIB".repeat(40);
        let text = format!(
            "{}\n-----BEGIN EC PRIVATE KEY-----\n{key_body}\n-----END EC PRIVATE KEY-----\n{}",
            "please look at this key ".repeat(4),
            "and more text after it ".repeat(100)
        );
        let mut span = CanonicalSpan::default();
        let messages = vec![crate::span::Message {
            role: "user".into(),
            content: text,
            ..Default::default()
        }];
        set_messages(&mut span, Side::Input, messages);
        assert!(
            span.input_preview.contains("MHcCAQEEIB"),
            "the source holds part of the key"
        );
        assert!(
            !span.input_preview.contains("END EC PRIVATE KEY"),
            "and was cut before its end"
        );
        let r = Redactor::new(&RedactionConfig::default()).unwrap();
        r.redact_span(&mut span);
        assert!(
            !span.input_messages.contains("MHcCAQEEIB"),
            "{}",
            span.input_messages
        );
        assert!(span.input_preview.is_empty(), "{}", span.input_preview);
        let preview = crate::preview::from_json(&span.input_messages, true);
        assert!(preview.contains("[REDACTED:"), "{preview}");
        assert!(!preview.contains("MHcCAQEEIB"), "{preview}");
    }

    #[test]
    fn resource_attributes_are_redacted_without_touching_the_shared_copy() {
        let shared: std::sync::Arc<[(String, String)]> = vec![
            ("service.name".to_string(), "billing".to_string()),
            (
                "deploy.note".to_string(),
                "token sk-abcdefghijklmnopqrstuvwxyz0123".to_string(),
            ),
        ]
        .into();
        let mut span = CanonicalSpan {
            resource_attributes: std::sync::Arc::clone(&shared),
            ..Default::default()
        };
        Redactor::new(&RedactionConfig::default())
            .unwrap()
            .redact_span(&mut span);
        assert!(span.redacted);
        assert_eq!(span.resource_attributes[0].1, "billing");
        assert!(
            span.resource_attributes[1].1.contains("[REDACTED:"),
            "{:?}",
            span.resource_attributes
        );
        assert!(
            shared[1].1.contains("sk-abc"),
            "other holders keep their copy"
        );
    }

    #[test]
    fn spans_are_marked_and_tenants_configured_apart() {
        let mut per = HashMap::new();
        per.insert("hospital".to_string(), all_on());
        let t = TenantRedactors::new(&RedactionConfig::default(), &per).unwrap();
        let mk = |tenant: &str| CanonicalSpan {
            tenant_id: tenant.into(),
            input_messages: r#"[{"role":"user","content":"patient ana@example.com"}]"#.into(),
            input_preview: "patient ana@example.com".into(),
            output_preview: "use sk-abcdefghijklmnopqrstuvwxyz0123".into(),
            attributes: vec![(
                "http.request.header.authorization".into(),
                "Bearer abcdefghijklmnopqrstuvwx".into(),
            )],
            ..Default::default()
        };
        let mut a = mk("hospital");
        t.redact_span(&mut a);
        assert!(a.redacted);
        assert!(a.input_messages.contains("[REDACTED:email]"));
        assert_eq!(a.input_preview, "", "the row previews the redacted body");
        assert!(!a.output_preview.contains("sk-abc"), "{}", a.output_preview);
        assert!(a.attributes[0].1.contains("[REDACTED:bearer_token]"));
        let mut b = mk("shop");
        t.redact_span(&mut b);
        assert!(b.redacted, "the bearer token is a secret for every tenant");
        assert!(
            b.input_messages.contains("ana@example.com"),
            "PII only where enabled"
        );
        let mut c = CanonicalSpan {
            input_messages: "nothing here".into(),
            ..Default::default()
        };
        t.redact_span(&mut c);
        assert!(!c.redacted);
    }

    #[test]
    fn bad_patterns_are_named() {
        let cfg = RedactionConfig {
            patterns: vec![CustomPattern {
                name: "broken".into(),
                regex: "(".into(),
            }],
            ..Default::default()
        };
        match Redactor::new(&cfg) {
            Err(RedactionError::BadPattern { name, .. }) => assert_eq!(name, "broken"),
            other => panic!("{other:?}"),
        }
        let cfg = RedactionConfig {
            patterns: vec![CustomPattern {
                name: "a b".into(),
                regex: "x".into(),
            }],
            ..Default::default()
        };
        assert!(matches!(
            Redactor::new(&cfg),
            Err(RedactionError::BadName(_))
        ));
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4242424242424242"));
        assert!(luhn_valid("5555-5555-5555-4444"));
        assert!(!luhn_valid("4242424242424241"));
        assert!(!luhn_valid("1234"));
    }
}
