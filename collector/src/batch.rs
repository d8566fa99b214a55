//! Batches and the batcher: accepted rows are gathered into large batches
//! (by rows, bytes and age) so ClickHouse gets few, large parts.
//!
//! Invariants (property-tested): every submitted row ends in exactly one
//! sealed batch, in submission order; a submission is never split (one
//! export's rows are acknowledged together); every sealed batch has a waiter; a
//! batch exceeds `max_rows` / `max_bytes` only when a single submission does;
//! an open batch is sealed no later than `max_age` after its first rows
//! (the caller honours [`Batcher::deadline`]); every batch gets a token that
//! is unique across restarts, and keeps it through spool and replay.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use store::rows::{EvaluationRow, SpanRow};

/// One insert's worth of rows, and the deduplication token that makes a
/// retried insert of it a no-op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub token: String,
    pub spans: Rows<SpanRow>,
    pub evaluations: Rows<EvaluationRow>,
}

/// Rows kept in the chunks they were submitted in: gathering a batch moves
/// chunks, never rows, so a batch never needs one large allocation (growing
/// one made the kernel zero tens of MiB per batch). Encodes as one flat
/// sequence.
#[derive(Debug, Clone)]
pub struct Rows<T>(Vec<Vec<T>>);

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Rows<T> {
    pub fn len(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Vec::is_empty)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }

    fn push_chunk(&mut self, chunk: Vec<T>) {
        if !chunk.is_empty() {
            self.0.push(chunk);
        }
    }
}

impl<T> IntoIterator for Rows<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().flatten()
    }
}

impl<'a, T> IntoIterator for &'a Rows<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().flatten()
    }
}

impl<T> From<Vec<T>> for Rows<T> {
    fn from(v: Vec<T>) -> Self {
        let mut rows = Self::default();
        rows.push_chunk(v);
        rows
    }
}

impl<T: PartialEq> PartialEq for Rows<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Serialize> Serialize for Rows<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length first: compact formats (the spool's postcard) need it.
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for row in self.iter() {
            seq.serialize_element(row)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Rows<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(Self::from)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("spooled batch does not decode: {0}")]
pub struct BatchDecodeError(String);

impl Batch {
    /// The spool's record payload.
    pub fn encode(&self) -> Result<Vec<u8>, BatchDecodeError> {
        postcard::to_stdvec(self).map_err(|e| BatchDecodeError(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BatchDecodeError> {
        postcard::from_bytes(bytes).map_err(|e| BatchDecodeError(e.to_string()))
    }

    /// The token of the evaluations insert of this batch.
    pub fn evaluations_token(&self) -> String {
        format!("{}.evaluations", self.token)
    }
}

fn kv_bytes(v: &[(String, String)]) -> usize {
    v.iter().map(|(k, x)| k.len() + x.len() + 48).sum()
}

/// Approximate in-memory size of rows (for byte limits): each row, and each
/// resource's attributes once (the spans of a resource share them and
/// arrive next to each other).
pub fn span_rows_bytes(rows: &[SpanRow]) -> usize {
    let mut total = 0;
    let mut last: Option<&std::sync::Arc<[(String, String)]>> = None;
    for r in rows {
        total += span_row_bytes(r);
        if !last.is_some_and(|l| std::sync::Arc::ptr_eq(l, &r.resource_attributes)) {
            total += kv_bytes(&r.resource_attributes);
            last = Some(&r.resource_attributes);
        }
    }
    total
}

/// Approximate in-memory size of a span row without its resource's
/// attributes (for byte limits; see [`span_rows_bytes`]).
fn span_row_bytes(r: &SpanRow) -> usize {
    let strings = [
        &r.tenant_id,
        &r.trace_id,
        &r.span_id,
        &r.parent_span_id,
        &r.name,
        &r.status_message,
        &r.response_id,
        &r.input_preview,
        &r.output_preview,
        &r.input_messages,
        &r.output_messages,
        &r.tool_definitions,
        &r.output_schema,
        &r.events,
        &r.user_id,
        &r.session_id,
        &r.service_name,
        &r.scope_name,
    ]
    .iter()
    .map(|s| s.len())
    .sum::<usize>();
    strings + kv_bytes(&r.attributes) + kv_bytes(&r.request_params) + 512
}

pub fn evaluation_row_bytes(r: &EvaluationRow) -> usize {
    r.explanation.len() + r.name.len() + r.label.len() + r.trace_id.len() + 256
}

#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// The rows of one export, with whatever the caller needs to acknowledge it.
#[derive(Debug)]
pub struct Submission<W> {
    pub spans: Vec<SpanRow>,
    pub evaluations: Vec<EvaluationRow>,
    pub bytes: usize,
    pub waiter: W,
}

/// A batch ready to write, and the waiters it acknowledges.
#[derive(Debug)]
pub struct Sealed<W> {
    pub batch: Batch,
    pub waiters: Vec<W>,
    pub bytes: usize,
}

#[derive(Debug)]
struct Open<W> {
    spans: Rows<SpanRow>,
    evaluations: Rows<EvaluationRow>,
    rows: usize,
    waiters: Vec<W>,
    bytes: usize,
    since: Instant,
}

#[derive(Debug)]
pub struct Batcher<W> {
    limits: BatchLimits,
    token_prefix: String,
    seq: u64,
    open: Option<Open<W>>,
}

impl<W> Batcher<W> {
    /// `token_prefix` must differ between runs (a random id per start).
    pub fn new(limits: BatchLimits, token_prefix: String) -> Self {
        Self {
            limits,
            token_prefix,
            seq: 0,
            open: None,
        }
    }

    /// Add one export's rows; returns the batches this sealed (zero to two).
    pub fn push(&mut self, sub: Submission<W>, now: Instant) -> Vec<Sealed<W>> {
        let mut sealed = Vec::new();
        if sub.spans.is_empty() && sub.evaluations.is_empty() && self.open.is_none() {
            // Nothing to write, but the waiter must still be acknowledged: an
            // empty batch is skipped by the writer and acks at once.
            sealed.push(self.seal_rows(Rows::default(), Rows::default(), vec![sub.waiter], 0));
            return sealed;
        }
        if let Some(open) = &self.open {
            let rows = open.rows + sub.spans.len();
            let bytes = open.bytes + sub.bytes;
            if rows > self.limits.max_rows || bytes > self.limits.max_bytes {
                sealed.extend(self.seal());
            }
        }
        let open = self.open.get_or_insert_with(|| Open {
            spans: Rows::default(),
            evaluations: Rows::default(),
            rows: 0,
            waiters: Vec::new(),
            bytes: 0,
            since: now,
        });
        open.rows += sub.spans.len();
        open.spans.push_chunk(sub.spans);
        open.evaluations.push_chunk(sub.evaluations);
        open.waiters.push(sub.waiter);
        open.bytes += sub.bytes;
        if open.rows >= self.limits.max_rows || open.bytes >= self.limits.max_bytes {
            sealed.extend(self.seal());
        }
        sealed
    }

    /// When the open batch must be sealed by age.
    pub fn deadline(&self) -> Option<Instant> {
        self.open.as_ref().map(|o| o.since + self.limits.max_age)
    }

    /// Seal the open batch, if any (age reached, or draining).
    pub fn seal(&mut self) -> Option<Sealed<W>> {
        let open = self.open.take()?;
        Some(self.seal_rows(open.spans, open.evaluations, open.waiters, open.bytes))
    }

    fn seal_rows(
        &mut self,
        spans: Rows<SpanRow>,
        evaluations: Rows<EvaluationRow>,
        waiters: Vec<W>,
        bytes: usize,
    ) -> Sealed<W> {
        self.seq += 1;
        Sealed {
            batch: Batch {
                token: format!("{}-{}", self.token_prefix, self.seq),
                spans,
                evaluations,
            },
            waiters,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use store::rows::Retention;

    #[test]
    fn a_resource_s_attributes_count_once_per_run_of_its_spans() {
        let attrs: std::sync::Arc<[(String, String)]> =
            vec![("k".to_string(), "v".repeat(10_000))].into();
        let shared: Vec<SpanRow> = (0..10)
            .map(|n| SpanRow {
                resource_attributes: std::sync::Arc::clone(&attrs),
                ..row(n)
            })
            .collect();
        let apart: Vec<SpanRow> = (0..10)
            .map(|n| SpanRow {
                resource_attributes: attrs.to_vec().into(),
                ..row(n)
            })
            .collect();
        let rows_alone: usize = shared.iter().map(span_row_bytes).sum();
        assert_eq!(span_rows_bytes(&shared), rows_alone + 10_000 + 1 + 48);
        assert_eq!(span_rows_bytes(&apart), rows_alone + 10 * (10_000 + 1 + 48));
    }

    pub(crate) fn row(n: u64) -> SpanRow {
        let span = schemas::CanonicalSpan {
            trace_id: format!("{:032x}", n),
            span_id: format!("{:016x}", n),
            ..Default::default()
        };
        SpanRow::from_canonical(&span, Retention::default(), 0)
    }

    fn limits(max_rows: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_rows,
            max_bytes,
            max_age: Duration::from_millis(100),
        }
    }

    #[test]
    fn batches_round_trip_through_the_spool_encoding() {
        let b = Batch {
            token: "x-1".into(),
            spans: vec![row(1), row(2)].into(),
            evaluations: Rows::default(),
        };
        let bytes = b.encode().unwrap_or_default();
        assert_eq!(Batch::decode(&bytes).ok(), Some(b.clone()));
        // Chunks encode as one flat sequence.
        let mut chunked = Rows::from(vec![row(1)]);
        chunked.push_chunk(vec![row(2)]);
        let c = Batch {
            spans: chunked,
            ..b.clone()
        };
        assert_eq!(c.encode().unwrap_or_default(), bytes);
        assert!(Batch::decode(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn age_deadline_starts_with_the_first_rows() {
        let mut b: Batcher<u32> = Batcher::new(limits(10, 1 << 20), "p".into());
        assert!(b.deadline().is_none());
        let t0 = Instant::now();
        let out = b.push(
            Submission {
                spans: vec![row(1)],
                evaluations: vec![],
                bytes: 10,
                waiter: 1,
            },
            t0,
        );
        assert!(out.is_empty());
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(100)));
        let s = b.seal().map(|s| s.waiters);
        assert_eq!(s, Some(vec![1]));
        assert!(b.seal().is_none());
    }

    proptest! {
        #[test]
        fn every_row_once_in_order_and_limits_hold(
            sizes in proptest::collection::vec((0usize..30, 1usize..400), 1..60),
            max_rows in 1usize..50,
            max_bytes in 50usize..3000,
            seal_at in proptest::collection::vec(any::<bool>(), 60),
        ) {
            let mut b: Batcher<usize> = Batcher::new(limits(max_rows, max_bytes), "run".into());
            let mut sealed = Vec::new();
            let mut next = 0u64;
            let now = Instant::now();
            for (i, (n, bytes_per_row)) in sizes.iter().enumerate() {
                let spans: Vec<_> = (0..*n).map(|_| { next += 1; row(next) }).collect();
                sealed.extend(b.push(Submission { spans, evaluations: vec![], bytes: n * bytes_per_row, waiter: i }, now));
                if seal_at[i] { sealed.extend(b.seal()); }
            }
            sealed.extend(b.seal());
            // every row exactly once, in order
            let ids: Vec<String> = sealed.iter().flat_map(|s| s.batch.spans.iter().map(|r| r.span_id.clone())).collect();
            let want: Vec<String> = (1..=next).map(|n| format!("{n:016x}")).collect();
            prop_assert_eq!(ids, want);
            // every waiter exactly once, in order; never a submission split
            let waiters: Vec<usize> = sealed.iter().flat_map(|s| s.waiters.clone()).collect();
            prop_assert_eq!(waiters, (0..sizes.len()).collect::<Vec<_>>());
            // limits: only a single oversized submission may exceed them
            for s in &sealed {
                if s.waiters.len() > 1 {
                    prop_assert!(s.batch.spans.len() <= max_rows);
                    prop_assert!(s.bytes <= max_bytes);
                }
                prop_assert!(!s.waiters.is_empty());
            }
            // unique tokens
            let mut tokens: Vec<_> = sealed.iter().map(|s| s.batch.token.clone()).collect();
            tokens.sort();
            tokens.dedup();
            prop_assert_eq!(tokens.len(), sealed.len());
        }
    }
}
