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

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use schemas::CanonicalSpan;
use schemas::dedupe::{DedupeKey, dedupe_key};

pub struct RecentCalls {
    capacity: usize,
    inner: Mutex<(HashSet<DedupeKey>, VecDeque<DedupeKey>)>,
}

impl RecentCalls {
    /// `capacity` 0 turns cross-request deduplication off.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// Mark spans of calls already counted as not counted; remember the calls
    /// these spans now count. Returns the claims made (to release on failure).
    pub fn claim(&self, spans: &mut [CanonicalSpan]) -> Vec<DedupeKey> {
        let mut claimed = Vec::new();
        if self.capacity == 0 {
            return claimed;
        }
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, order) = &mut *guard;
        for span in spans.iter_mut().filter(|s| s.counted) {
            let Some(key) = dedupe_key(span) else {
                continue;
            };
            if seen.contains(&key) {
                span.counted = false;
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
            seen.insert(key.clone());
            order.push_back(key.clone());
            claimed.push(key);
        }
        claimed
    }

    /// Forget claims of an export that was not accepted.
    pub fn release(&self, claims: &[DedupeKey]) {
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
    fn memory_is_bounded() {
        let calls = RecentCalls::new(3);
        for i in 0..100 {
            calls.claim(&mut [call("x", &format!("m{i}"))]);
        }
        let g = calls.inner.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(g.0.len() <= 3);
    }
}
