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
//! provider, response id): two SipHash-1-3 values under keys the standard
//! library draws from the OS at random, so no strings are copied or kept and
//! a client that does not know the keys cannot aim for a collision. Two
//! calls sharing a fingerprint by chance (about 2^-94 over a full memory of
//! 200k calls) would cost the later one its count.
//!
//! Each claim carries a sequence number: a call released and claimed again
//! leaves a stale entry in the eviction order, which eviction and release
//! skip, so neither forgets the newer claim early.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use foldhash::HashMap;
use schemas::CanonicalSpan;
use schemas::dedupe::call_key;

/// A remembered call.
pub type Fingerprint = u128;

/// A call claimed by one export: its fingerprint and the claim's number.
pub type Claim = (Fingerprint, u64);

#[derive(Default)]
struct Memory {
    /// Each remembered call and the number of its live claim.
    seen: HashMap<Fingerprint, u64>,
    /// Claims oldest first; entries whose number is no longer in `seen` are stale.
    order: VecDeque<Claim>,
    next: u64,
}

pub struct RecentCalls {
    capacity: usize,
    keys: [RandomState; 2],
    inner: Mutex<Memory>,
}

impl RecentCalls {
    /// `capacity` 0 turns cross-request deduplication off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            keys: [RandomState::new(), RandomState::new()],
            inner: Mutex::new(Memory::default()),
        }
    }

    /// The fingerprint of the call a span records, when it names one.
    fn fingerprint(&self, span: &CanonicalSpan) -> Option<Fingerprint> {
        let key = call_key(span)?;
        let [a, b] = &self.keys;
        let (hi, lo) = (a.hash_one(key), b.hash_one(key));
        Some((u128::from(hi) << 64) | u128::from(lo))
    }

    /// Mark spans of calls already counted as not counted; remember the calls
    /// these spans now count. Returns the claims made (to release on failure).
    pub fn claim(&self, spans: &mut [CanonicalSpan]) -> Vec<Claim> {
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
        let m = &mut *guard;
        for (i, print) in prints {
            if m.seen.contains_key(&print) {
                if let Some(span) = spans.get_mut(i) {
                    span.counted = false;
                }
                continue;
            }
            while m.seen.len() >= self.capacity {
                let Some((old, n)) = m.order.pop_front() else {
                    break;
                };
                if m.seen.get(&old) == Some(&n) {
                    m.seen.remove(&old);
                }
            }
            if m.order.len() >= self.capacity.saturating_mul(2) {
                // Released claims leave stale entries behind: drop them
                // (afterwards `order` holds exactly the live claims).
                let seen = &m.seen;
                m.order.retain(|(p, n)| seen.get(p) == Some(n));
            }
            let claim = (print, m.next);
            m.next += 1;
            m.seen.insert(print, claim.1);
            m.order.push_back(claim);
            claimed.push(claim);
        }
        claimed
    }

    /// Forget claims of an export that was not accepted (a claim made again
    /// since, by a retry, stays).
    pub fn release(&self, claims: &[Claim]) {
        if claims.is_empty() {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for (print, n) in claims {
            if guard.seen.get(print) == Some(n) {
                guard.seen.remove(print);
            }
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
    fn a_call_claimed_again_is_not_forgotten_for_its_stale_claim() {
        let calls = RecentCalls::new(2);
        let first = calls.claim(&mut [call("a", "A")]);
        calls.release(&first);
        calls.claim(&mut [call("b", "B")]);
        let again = calls.claim(&mut [call("a2", "A")]);
        assert_eq!(again.len(), 1, "a released call counts again");
        // A late release of the first, stale claim leaves the live one.
        calls.release(&first);
        let mut dup = vec![call("a3", "A")];
        calls.claim(&mut dup);
        assert!(!dup[0].counted, "A is still remembered");
        // Full: the next call evicts the oldest live claim, B, not A (whose
        // first, stale claim is older still).
        calls.claim(&mut [call("c", "C")]);
        let mut later = vec![call("a4", "A"), call("b2", "B")];
        calls.claim(&mut later);
        assert!(!later[0].counted, "A is still remembered");
        assert!(later[1].counted, "B was forgotten first");
    }

    #[test]
    fn memory_is_bounded() {
        let calls = RecentCalls::new(3);
        for i in 0..100 {
            calls.claim(&mut [call("x", &format!("m{i}"))]);
        }
        let g = calls.inner.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(g.seen.len() <= 3);
        assert!(g.order.len() <= 6);
    }
}
