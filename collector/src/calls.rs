//! One call, one cost across export requests.
//!
//! `schemas::finish_batch` already keeps one counted span per provider call
//! inside one export. The two spans of one call (the Anthropic SDK's own and an
//! instrumentation's) may arrive in different exports, so the collector
//! remembers the calls it has counted recently: a later span of a remembered
//! call is stored with `counted = false`.
//!
//! Invariants: bounded (oldest calls forgotten first); a claim is released
//! when its export fails, so a retried export still counts its calls; rows are
//! immutable, so across exports the first span to arrive carries the count
//! (within one export `schemas::dedupe::preference` still picks).
//!
//! A call is remembered as a 128-bit fingerprint of its key (tenant,
//! provider, response id), from two hashers seeded at random per process:
//! no strings are copied or kept, and a client cannot choose keys that
//! collide. Two calls sharing a fingerprint by chance (about 2^-90 for a full
//! memory) would cost the later one its count.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use foldhash::HashSet;
use foldhash::quality::RandomState;
use schemas::CanonicalSpan;
use schemas::dedupe::call_key;

/// A remembered call.
pub type Fingerprint = u128;

pub struct RecentCalls {
    capacity: usize,
    seeds: [RandomState; 2],
    inner: Mutex<(HashSet<Fingerprint>, VecDeque<Fingerprint>)>,
}

impl RecentCalls {
    /// `capacity` 0 turns cross-request deduplication off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seeds: [RandomState::default(), RandomState::default()],
            inner: Mutex::new((HashSet::default(), VecDeque::new())),
        }
    }

    /// The fingerprint of the call a span records, when it names one.
    fn fingerprint(&self, span: &CanonicalSpan) -> Option<Fingerprint> {
        let key = call_key(span)?;
        let [a, b] = &self.seeds;
        let (hi, lo) = (a.hash_one(key), b.hash_one(key));
        Some((u128::from(hi) << 64) | u128::from(lo))
    }

    /// Mark spans of calls already counted as not counted; remember the calls
    /// these spans now count. Returns the claims made (to release on failure).
    pub fn claim(&self, spans: &mut [CanonicalSpan]) -> Vec<Fingerprint> {
        let mut claimed = Vec::new();
        if self.capacity == 0 {
            return claimed;
        }
        // Fingerprints are computed outside the lock.
        let prints: Vec<(usize, Fingerprint)> = spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.counted)
            .filter_map(|(i, s)| Some((i, self.fingerprint(s)?)))
            .collect();
        if prints.is_empty() {
            return claimed;
        }
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, order) = &mut *guard;
        for (i, print) in prints {
            if seen.contains(&print) {
                if let Some(span) = spans.get_mut(i) {
                    span.counted = false;
                }
                continue;
            }
            while seen.len() >= self.capacity {
                match order.pop_front() {
                    Some(old) => {
                        seen.remove(&old);
                    }
                    None => break,
                }
            }
            if order.len() >= self.capacity.saturating_mul(2) {
                // Released claims leave stale entries behind: drop them.
                order.retain(|k| seen.contains(k));
            }
            seen.insert(print);
            order.push_back(print);
            claimed.push(print);
        }
        claimed
    }

    /// Forget claims of an export that was not accepted.
    pub fn release(&self, claims: &[Fingerprint]) {
        if claims.is_empty() {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for k in claims {
            guard.0.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::span::Operation;

    fn call(id: &str, response: &str) -> CanonicalSpan {
        CanonicalSpan {
            span_id: id.into(),
            tenant_id: "t".into(),
            provider: "anthropic".into(),
            operation: Operation::Chat,
            response_id: response.into(),
            counted: true,
            ..Default::default()
        }
    }

    #[test]
    fn second_export_of_a_call_is_not_counted_unless_the_first_failed() {
        let calls = RecentCalls::new(10);
        let mut first = vec![call("a", "msg_1")];
        let claims = calls.claim(&mut first);
        assert!(first[0].counted);
        let mut second = vec![call("b", "msg_1"), call("c", "msg_2"), call("d", "")];
        calls.claim(&mut second);
        assert_eq!(
            second.iter().map(|s| s.counted).collect::<Vec<_>>(),
            [false, true, true]
        );
        calls.release(&claims);
        let mut retry = vec![call("a", "msg_1")];
        calls.claim(&mut retry);
        assert!(retry[0].counted);
    }

    #[test]
    fn calls_differ_by_every_part_of_their_key() {
        let calls = RecentCalls::new(10);
        let mut spans = vec![
            call("a", "msg_1"),
            call("b", "msg_1"),
            call("c", "msg_1"),
            call("d", "msg_1"),
        ];
        spans[1].tenant_id = "u".into();
        spans[2].provider = "openai".into();
        // The same bytes, split differently between tenant and provider.
        spans[3].tenant_id = "ta".into();
        spans[3].provider = "nthropic".into();
        calls.claim(&mut spans);
        assert!(spans.iter().all(|s| s.counted));
        let mut again = vec![call("e", "msg_1")];
        again[0].tenant_id = "ta".into();
        again[0].provider = "nthropic".into();
        calls.claim(&mut again);
        assert!(!again[0].counted);
    }

    #[test]
    fn memory_is_bounded() {
        let calls = RecentCalls::new(3);
        for i in 0..100 {
            calls.claim(&mut [call("x", &format!("m{i}"))]);
        }
        let g = calls.inner.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(g.0.len() <= 3);
    }
}
