//! Reading OTLP `AnyValue`s: typed getters that tolerate the wrong type, rendering
//! to strings and to JSON, and unflattening indexed keys (`a.0.b`) into JSON trees.
//!
//! Invariants: nothing here panics on any input; recursion over nested values is
//! bounded by [`MAX_DEPTH`] (deeper levels render as a marker string); an index in
//! a flattened key never sizes an allocation (indices are sorted, not used as offsets).

use std::collections::hash_map::Entry;

use foldhash::HashMap as FastMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use serde_json::{Map, Value};

/// Nesting depth beyond which arrays and kvlists are not descended into.
pub const MAX_DEPTH: usize = 32;
const TOO_DEEP: &str = "[nested too deep]";

/// A read-only view of one attribute list. The first occurrence of a key wins,
/// as the OTel SDKs guarantee unique keys and we must pick one deterministically.
///
/// Mappers probe many keys a span does not carry, so exact lookups go
/// through a hash index (one hash, no chain of string comparisons; foldhash,
/// seeded at random per process, so keys a client picks cannot be made to
/// collide); prefix queries and key order use the entries sorted by key.
#[derive(Debug, Default)]
pub struct Attrs<'a> {
    index: FastMap<&'a str, &'a AnyValue>,
    sorted: Vec<(&'a str, &'a AnyValue)>,
}

impl<'a> Attrs<'a> {
    pub fn new(kvs: &'a [KeyValue]) -> Self {
        let mut index = FastMap::with_capacity_and_hasher(kvs.len(), Default::default());
        let mut sorted = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let Some(v) = kv.value.as_ref() else {
                continue;
            };
            let key = kv.key.as_str();
            if let Entry::Vacant(e) = index.entry(key) {
                e.insert(v);
                sorted.push((key, v));
            }
        }
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Attrs { index, sorted }
    }

    /// Whether any key's first dotted segment is one of `roots` (`gen_ai` of
    /// `gen_ai.system`), so a mapper can tell that none of its keys is here:
    /// a lookup and a binary search per root, whatever the number of keys.
    pub fn has_any_root(&self, roots: &[&str]) -> bool {
        roots.iter().filter(|r| !r.contains('.')).any(|r| {
            // The first key at or after `r.` in key order.
            let at = self
                .sorted
                .partition_point(|(k, _)| before_dotted(k.as_bytes(), r.as_bytes()));
            self.contains(r)
                || self.sorted.get(at).is_some_and(|(k, _)| {
                    k.starts_with(r) && k.as_bytes().get(r.len()) == Some(&b'.')
                })
        })
    }

    pub fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.index.get(key).copied()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Every key, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.sorted.iter().map(|(k, _)| *k)
    }

    /// The entries from the first key `>= prefix` on, in key order.
    fn starting_at(&self, prefix: &str) -> &[(&'a str, &'a AnyValue)] {
        let start = self.sorted.partition_point(|(k, _)| *k < prefix);
        &self.sorted[start..]
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn with_prefix(&self, prefix: &str) -> Vec<(&'a str, &'a AnyValue)> {
        self.starting_at(prefix)
            .iter()
            .take_while(|(k, _)| k.starts_with(prefix))
            .copied()
            .collect()
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.starting_at(prefix)
            .first()
            .is_some_and(|(k, _)| k.starts_with(prefix))
    }

    /// A non-empty string rendering of the first key present (in the given order).
    pub fn str_of(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .filter_map(|k| self.get(k))
            .map(render)
            .find(|s| !s.is_empty())
    }

    /// A non-negative integer from the first key present that holds one.
    pub fn u64_of(&self, keys: &[&str]) -> Option<u64> {
        keys.iter().filter_map(|k| self.get(k)).find_map(as_u64)
    }

    pub fn f64_of(&self, keys: &[&str]) -> Option<f64> {
        keys.iter().filter_map(|k| self.get(k)).find_map(as_f64)
    }

    pub fn bool_of(&self, keys: &[&str]) -> Option<bool> {
        keys.iter().filter_map(|k| self.get(k)).find_map(as_bool)
    }

    /// The value of the first key present as JSON (strings holding JSON are parsed).
    pub fn json_of(&self, keys: &[&str]) -> Option<Value> {
        keys.iter()
            .filter_map(|k| self.get(k))
            .map(to_json_parsing_strings)
            .find(|v| !v.is_null())
    }

    /// Unflatten every `prefix.*` key into a JSON tree (see [`unflatten`]).
    pub fn unflatten(&self, prefix: &str) -> Option<Value> {
        // Most spans carry none of a convention's flattened keys: answer
        // that without allocating.
        if !self.has_prefix(prefix) {
            return None;
        }
        let dotted = format!("{prefix}.");
        let entries: Vec<(&str, Value)> = self
            .with_prefix(&dotted)
            .into_iter()
            .map(|(k, v)| (&k[dotted.len()..], to_json(v)))
            .collect();
        if entries.is_empty() {
            return None;
        }
        Some(unflatten(entries))
    }
}

/// Whether `key` sorts before `root` followed by a dot.
fn before_dotted(key: &[u8], root: &[u8]) -> bool {
    let n = key.len().min(root.len());
    match key[..n].cmp(&root[..n]) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => key.get(root.len()).is_none_or(|&b| b < b'.'),
    }
}

/// Render a value as the string stored in the raw attribute columns: scalars as
/// text, arrays and kvlists as compact JSON, bytes as lowercase hex.
pub fn render(v: &AnyValue) -> String {
    match v.value.as_ref() {
        // A string-table index means nothing without the table (profiles only).
        None | Some(Av::StringValueStrindex(_)) => String::new(),
        Some(Av::StringValue(s)) => s.clone(),
        Some(Av::BoolValue(b)) => b.to_string(),
        Some(Av::IntValue(i)) => i.to_string(),
        Some(Av::DoubleValue(d)) => d.to_string(),
        Some(Av::BytesValue(b)) => hex::encode(b),
        Some(Av::ArrayValue(_)) | Some(Av::KvlistValue(_)) => to_json(v).to_string(),
    }
}

/// Convert to JSON, keeping strings as strings.
pub fn to_json(v: &AnyValue) -> Value {
    to_json_depth(v, 0, false)
}

/// Convert to JSON, parsing strings that hold a JSON object or array (instrumentations
/// serialise structured values to strings; structured exporters send them as kvlists).
pub fn to_json_parsing_strings(v: &AnyValue) -> Value {
    to_json_depth(v, 0, true)
}

fn to_json_depth(v: &AnyValue, depth: usize, parse_strings: bool) -> Value {
    if depth > MAX_DEPTH {
        return Value::String(TOO_DEEP.to_owned());
    }
    match v.value.as_ref() {
        None | Some(Av::StringValueStrindex(_)) => Value::Null,
        Some(Av::StringValue(s)) => {
            if parse_strings && depth == 0 {
                parse_json_container(s).unwrap_or_else(|| Value::String(s.clone()))
            } else {
                Value::String(s.clone())
            }
        }
        Some(Av::BoolValue(b)) => Value::Bool(*b),
        Some(Av::IntValue(i)) => Value::from(*i),
        Some(Av::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        Some(Av::BytesValue(b)) => Value::String(hex::encode(b)),
        Some(Av::ArrayValue(a)) => Value::Array(
            a.values
                .iter()
                .map(|x| to_json_depth(x, depth + 1, false))
                .collect(),
        ),
        Some(Av::KvlistValue(kv)) => {
            let mut m = Map::new();
            for e in &kv.values {
                let val = e
                    .value
                    .as_ref()
                    .map_or(Value::Null, |x| to_json_depth(x, depth + 1, false));
                m.entry(e.key.clone()).or_insert(val);
            }
            Value::Object(m)
        }
    }
}

/// Parse a string as JSON only when it looks like an object or array.
pub fn parse_json_container(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

pub fn as_u64(v: &AnyValue) -> Option<u64> {
    match v.value.as_ref()? {
        Av::IntValue(i) => u64::try_from(*i).ok(),
        Av::DoubleValue(d) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 && *d < 1.8e19 => {
            // Checked above: finite, integral and in range, so the cast is exact.
            Some(*d as u64)
        }
        Av::StringValue(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

pub fn as_f64(v: &AnyValue) -> Option<f64> {
    match v.value.as_ref()? {
        Av::IntValue(i) => Some(*i as f64),
        Av::DoubleValue(d) if d.is_finite() => Some(*d),
        Av::StringValue(s) => s.trim().parse::<f64>().ok().filter(|d| d.is_finite()),
        _ => None,
    }
}

pub fn as_bool(v: &AnyValue) -> Option<bool> {
    match v.value.as_ref()? {
        Av::BoolValue(b) => Some(*b),
        Av::StringValue(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        Av::IntValue(i) => Some(*i != 0),
        _ => None,
    }
}

/// A list of strings: an array value, a JSON-encoded array string, or a single string.
pub fn as_string_list(v: &AnyValue) -> Vec<String> {
    match to_json_parsing_strings(v) {
        Value::Array(items) => items
            .iter()
            .map(json_scalar_to_string)
            .filter(|s| !s.is_empty())
            .collect(),
        Value::Null => Vec::new(),
        other => {
            let s = json_scalar_to_string(&other);
            if s.is_empty() { Vec::new() } else { vec![s] }
        }
    }
}

/// A JSON value as display text: strings without quotes, everything else as JSON.
pub fn json_scalar_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Build a JSON tree from dotted relative keys (`0.message.role` → `[{"message":{"role":..}}]`).
/// Objects whose keys are all non-negative integers become arrays ordered by index.
/// A key that is both a leaf and a branch keeps the branch.
pub fn unflatten<'k>(entries: impl IntoIterator<Item = (&'k str, Value)>) -> Value {
    let mut root = Map::new();
    for (key, value) in entries {
        insert_path(&mut root, key, value);
    }
    arrayify(Value::Object(root), 0)
}

fn insert_path(root: &mut Map<String, Value>, key: &str, value: Value) {
    let mut node = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.entry(part.to_owned()).or_insert(value);
            return;
        }
        let child = node
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        match child {
            Value::Object(m) => node = m,
            _ => return,
        }
    }
}

fn arrayify(v: Value, depth: usize) -> Value {
    let Value::Object(m) = v else { return v };
    if depth > MAX_DEPTH {
        return Value::String(TOO_DEEP.to_owned());
    }
    let all_indices = !m.is_empty() && m.keys().all(|k| k.parse::<u64>().is_ok());
    if all_indices {
        let mut indexed: Vec<(u64, Value)> = m
            .into_iter()
            .filter_map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, arrayify(v, depth + 1))))
            .collect();
        indexed.sort_by_key(|(i, _)| *i);
        Value::Array(indexed.into_iter().map(|(_, v)| v).collect())
    } else {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, arrayify(v, depth + 1)))
                .collect(),
        )
    }
}

/// Render a whole attribute list for the raw columns, keeping order and duplicates.
pub fn render_all(kvs: &[KeyValue]) -> Vec<(String, String)> {
    render_where(kvs, |_| true)
}

/// [`render_all`] of the attributes whose key passes `keep`.
pub fn render_where(kvs: &[KeyValue], keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    kvs.iter()
        .filter(|kv| keep(&kv.key))
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(render).unwrap_or_default(),
            )
        })
        .collect()
}

/// [`render_where`], moving keys and string values out of `kvs` instead of
/// copying them (for a caller that owns the decoded export).
pub fn take_where(kvs: &mut [KeyValue], keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    kvs.iter_mut()
        .filter(|kv| keep(&kv.key))
        .map(|kv| {
            let value = match kv.value.as_mut().and_then(|v| v.value.as_mut()) {
                Some(Av::StringValue(s)) => std::mem::take(s),
                _ => kv.value.as_ref().map(render).unwrap_or_default(),
            };
            (std::mem::take(&mut kv.key), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    #[test]
    fn taking_renders_what_rendering_renders() {
        let kvs = vec![
            kv("a", s("text")),
            kv(
                "b",
                AnyValue {
                    value: Some(Av::IntValue(-3)),
                },
            ),
            kv(
                "c",
                AnyValue {
                    value: Some(Av::BoolValue(true)),
                },
            ),
            kv(
                "d",
                AnyValue {
                    value: Some(Av::BytesValue(vec![0xab, 1])),
                },
            ),
            kv(
                "e",
                AnyValue {
                    value: Some(Av::ArrayValue(ArrayValue {
                        values: vec![s("x"), s("y")],
                    })),
                },
            ),
            kv("skip", s("kept in place")),
            kv("a", s("duplicate")),
        ];
        let keep = |k: &str| k != "skip";
        let rendered = render_where(&kvs, keep);
        let mut owned = kvs.clone();
        assert_eq!(take_where(&mut owned, keep), rendered);
        assert_eq!(rendered.len(), 6);
        assert_eq!(owned[5], kvs[5], "what is not kept is left alone");
    }

    #[test]
    fn roots_are_the_first_segments_of_the_keys() {
        let kvs = vec![
            kv("llm.model_name", s("m")),
            kv(
                "plain",
                AnyValue {
                    value: Some(Av::IntValue(1)),
                },
            ),
        ];
        let a = Attrs::new(&kvs);
        assert!(a.has_any_root(&["gen_ai", "llm"]));
        assert!(a.has_any_root(&["plain"]));
        assert!(!a.has_any_root(&["gen_ai", "ll", "llm.model_name"]));
        assert!(!Attrs::new(&[]).has_any_root(&["llm"]));
        // Keys around `llm.` in byte order: `-` sorts before `.`, `z` after.
        let near = vec![kv("llm-x", s("")), kv("llmz", s("")), kv("llm", s(""))];
        let b = Attrs::new(&near);
        assert!(b.has_any_root(&["llm"]), "the bare root is a key");
        let near = vec![kv("llm-x", s("")), kv("llmz", s("")), kv("llm.a", s(""))];
        assert!(Attrs::new(&near).has_any_root(&["llm"]));
        let near = vec![kv("llm-x", s("")), kv("llmz", s("")), kv("ll.m", s(""))];
        assert!(!Attrs::new(&near).has_any_root(&["llm"]));
    }

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(Av::StringValue(v.to_owned())),
        }
    }
    fn kv(k: &str, v: AnyValue) -> KeyValue {
        KeyValue {
            key: k.to_owned(),
            value: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn integers_tolerate_strings_and_integral_doubles() {
        assert_eq!(as_u64(&s(" 42 ")), Some(42));
        assert_eq!(
            as_u64(&AnyValue {
                value: Some(Av::DoubleValue(3.0))
            }),
            Some(3)
        );
        assert_eq!(
            as_u64(&AnyValue {
                value: Some(Av::DoubleValue(3.5))
            }),
            None
        );
        assert_eq!(
            as_u64(&AnyValue {
                value: Some(Av::IntValue(-1))
            }),
            None
        );
        assert_eq!(
            as_u64(&AnyValue {
                value: Some(Av::DoubleValue(f64::NAN))
            }),
            None
        );
    }

    #[test]
    fn render_arrays_as_json_and_bytes_as_hex() {
        let arr = AnyValue {
            value: Some(Av::ArrayValue(ArrayValue {
                values: vec![s("stop"), s("length")],
            })),
        };
        assert_eq!(render(&arr), r#"["stop","length"]"#);
        let bytes = AnyValue {
            value: Some(Av::BytesValue(vec![0xff, 0x00])),
        };
        assert_eq!(render(&bytes), "ff00");
    }

    #[test]
    fn unflatten_builds_arrays_in_index_order() {
        let kvs = vec![
            kv("p.10.message.role", s("b")),
            kv("p.2.message.role", s("a")),
            kv("p.2.message.tool_calls.0.tool_call.id", s("x")),
        ];
        let a = Attrs::new(&kvs);
        let v = a.unflatten("p").unwrap();
        assert_eq!(v[0]["message"]["role"], "a");
        assert_eq!(v[0]["message"]["tool_calls"][0]["tool_call"]["id"], "x");
        assert_eq!(v[1]["message"]["role"], "b");
    }

    #[test]
    fn huge_index_does_not_allocate() {
        let kvs = vec![kv("p.18446744073709551615.x", s("a"))];
        let v = Attrs::new(&kvs).unflatten("p").unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn deep_kvlists_are_cut() {
        let mut v = s("leaf");
        for _ in 0..200 {
            v = AnyValue {
                value: Some(Av::KvlistValue(KeyValueList {
                    values: vec![kv("k", v)],
                })),
            };
        }
        let rendered = render(&v);
        assert!(rendered.contains(TOO_DEEP));
    }

    #[test]
    fn string_lists_accept_json_strings() {
        assert_eq!(as_string_list(&s(r#"["stop"]"#)), vec!["stop"]);
        assert_eq!(as_string_list(&s("stop")), vec!["stop"]);
    }
}
