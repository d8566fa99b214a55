//! Joining content sent as log records to its span, whichever arrives first.
//!
//! Some instrumentations put prompts and completions only in log records,
//! exported separately from the spans. Two holding places, both bounded:
//! * **parked patches**: log content whose span has not been seen yet, kept
//!   up to a byte cap and an age cap (oldest evicted first, every eviction
//!   counted);
//! * **waiting spans**: a model-call span that arrived without content is
//!   registered here while its export request waits a short time for the log
//!   records; patches for it are delivered to the waiter.
//!
//! Invariants: a patch is used at most once; keys include the caller's
//! authenticated tenant scope, so content of one ingest key can never land on
//! another's span; state never exceeds the configured caps. Loss policy: log
//! content is held in memory only (a crash loses parked content, never a
//! span), and content arriving after its span was written is dropped and
//! counted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use schemas::{CanonicalSpan, ContentPatch};
use tokio::sync::Notify;

/// (caller tenant scope, trace id, span id), ids as lowercase hex.
pub type JoinKey = (String, String, String);

#[derive(Debug, Clone, Copy)]
pub struct JoinLimits {
    pub max_waiting_spans: usize,
    pub max_parked_bytes: usize,
    pub parked_ttl: Duration,
}

/// What became of the patches of one logs export.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// Delivered to a span waiting in a trace export.
    pub delivered: u64,
    /// Parked for a span not seen yet.
    pub parked: u64,
    /// Evicted (over the byte cap or too old) while parking these.
    pub evicted: u64,
}

struct Slot {
    patches: Vec<ContentPatch>,
    notify: Arc<Notify>,
}

struct Parked {
    patches: Vec<ContentPatch>,
    bytes: usize,
    at: Instant,
    generation: u64,
}

#[derive(Default)]
struct State {
    waiting: HashMap<JoinKey, Slot>,
    parked: HashMap<JoinKey, Parked>,
    order: VecDeque<(JoinKey, u64)>,
    parked_bytes: usize,
    generation: u64,
}

pub struct Joiner {
    limits: JoinLimits,
    state: Mutex<State>,
}

/// Whether a span should wait for content from log records.
pub fn needs_content(span: &CanonicalSpan) -> bool {
    span.operation.is_model_call()
        && span.input_messages.is_empty()
        && span.output_messages.is_empty()
}

pub fn key_of(scope: &str, span: &CanonicalSpan) -> JoinKey {
    (
        scope.to_owned(),
        span.trace_id.clone(),
        span.span_id.clone(),
    )
}

/// Rough memory of a patch, for the parked-bytes cap.
fn patch_bytes(p: &ContentPatch) -> usize {
    let msgs = p
        .input
        .iter()
        .chain(p.output.iter())
        .fold(0usize, |acc, m| {
            let calls = m.tool_calls.iter().fold(0usize, |a, c| {
                a + c.id.len() + c.name.len() + c.arguments.len() + 64
            });
            acc + m.role.len() + m.content.len() + m.reasoning.len() + calls + 128
        });
    let evals = p.evaluations.iter().fold(0usize, |acc, e| {
        acc + e.name.len() + e.label.len() + e.explanation.len() + 64
    });
    let tools = p
        .tool_definitions
        .as_ref()
        .map_or(0, |v| v.to_string().len());
    msgs + evals + tools + p.trace_id.len() + p.span_id.len() + 128
}

impl Joiner {
    pub fn new(limits: JoinLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps inconsistent in
        // a way that matters more than losing the join: keep serving.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The logs path: deliver each patch to its waiting span or park it.
    pub fn offer(&self, scope: &str, patches: Vec<ContentPatch>, now: Instant) -> Offered {
        let mut out = Offered::default();
        let mut st = self.lock();
        out.evicted += evict(&mut st, &self.limits, now, 0);
        for p in patches {
            let key = (scope.to_owned(), p.trace_id.clone(), p.span_id.clone());
            if let Some(slot) = st.waiting.get_mut(&key) {
                slot.patches.push(p);
                slot.notify.notify_one();
                out.delivered += 1;
                continue;
            }
            let bytes = patch_bytes(&p);
            if bytes > self.limits.max_parked_bytes {
                out.evicted += 1;
                continue;
            }
            out.evicted += evict(&mut st, &self.limits, now, bytes);
            st.generation += 1;
            let generation = st.generation;
            st.parked_bytes += bytes;
            match st.parked.get_mut(&key) {
                Some(parked) => {
                    parked.patches.push(p);
                    parked.bytes += bytes;
                }
                None => {
                    st.order.push_back((key.clone(), generation));
                    st.parked.insert(
                        key,
                        Parked {
                            patches: vec![p],
                            bytes,
                            at: now,
                            generation,
                        },
                    );
                }
            }
            out.parked += 1;
        }
        out
    }

    /// The traces path, step one: apply parked patches to their spans.
    /// Returns how many patches were applied.
    pub fn apply_parked(&self, scope: &str, spans: &mut [CanonicalSpan]) -> u64 {
        let mut st = self.lock();
        if st.parked.is_empty() {
            return 0;
        }
        let mut applied = 0;
        for span in spans.iter_mut() {
            if let Some(parked) = st.parked.remove(&key_of(scope, span)) {
                st.parked_bytes = st.parked_bytes.saturating_sub(parked.bytes);
                for p in &parked.patches {
                    p.apply(span);
                    applied += 1;
                }
            }
        }
        applied
    }

    /// The traces path, step two: register spans that will wait for content.
    /// Returns the keys registered (fewer than asked when at the cap, or when
    /// another request already waits on the same key).
    pub fn register(&self, keys: Vec<JoinKey>, notify: &Arc<Notify>) -> Vec<JoinKey> {
        let mut st = self.lock();
        let mut registered = Vec::new();
        for key in keys {
            if st.waiting.len() >= self.limits.max_waiting_spans || st.waiting.contains_key(&key) {
                continue;
            }
            st.waiting.insert(
                key.clone(),
                Slot {
                    patches: Vec::new(),
                    notify: Arc::clone(notify),
                },
            );
            registered.push(key);
        }
        registered
    }

    /// Whether every registered key has received at least one patch.
    pub fn all_delivered(&self, keys: &[JoinKey]) -> bool {
        let st = self.lock();
        keys.iter()
            .all(|k| st.waiting.get(k).is_none_or(|s| !s.patches.is_empty()))
    }

    /// End the wait: unregister the keys and hand over what was delivered.
    pub fn take(&self, keys: &[JoinKey]) -> HashMap<JoinKey, Vec<ContentPatch>> {
        let mut st = self.lock();
        keys.iter()
            .filter_map(|k| st.waiting.remove(k).map(|s| (k.clone(), s.patches)))
            .filter(|(_, p)| !p.is_empty())
            .collect()
    }

    /// Bytes of parked content, for `/metrics`.
    pub fn parked_bytes(&self) -> usize {
        self.lock().parked_bytes
    }

    pub fn waiting_spans(&self) -> usize {
        self.lock().waiting.len()
    }
}

/// Evict parked content older than the TTL, then oldest first until `room`
/// more bytes fit under the cap. Returns patches evicted.
fn evict(st: &mut State, limits: &JoinLimits, now: Instant, room: usize) -> u64 {
    let mut evicted = 0;
    while let Some((key, generation)) = st.order.front().cloned() {
        let live = st.parked.get(&key).filter(|p| p.generation == generation);
        let Some(parked) = live else {
            st.order.pop_front();
            continue;
        };
        let expired = now.saturating_duration_since(parked.at) > limits.parked_ttl;
        let over = st.parked_bytes.saturating_add(room) > limits.max_parked_bytes;
        if !expired && !over {
            break;
        }
        st.order.pop_front();
        if let Some(p) = st.parked.remove(&key) {
            st.parked_bytes = st.parked_bytes.saturating_sub(p.bytes);
            evicted += p.patches.len() as u64;
        }
    }
    evicted
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::span::{Message, Operation};

    fn limits() -> JoinLimits {
        JoinLimits {
            max_waiting_spans: 2,
            max_parked_bytes: 10_000,
            parked_ttl: Duration::from_secs(10),
        }
    }

    fn patch(span: &str, text: &str) -> ContentPatch {
        ContentPatch {
            trace_id: "t".into(),
            span_id: span.into(),
            input: vec![Message {
                role: "user".into(),
                content: text.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn span(id: &str) -> CanonicalSpan {
        CanonicalSpan {
            trace_id: "t".into(),
            span_id: id.into(),
            operation: Operation::Chat,
            ..Default::default()
        }
    }

    #[test]
    fn logs_first_are_parked_then_applied_once() {
        let j = Joiner::new(limits());
        let now = Instant::now();
        let o = j.offer("", vec![patch("a", "hello")], now);
        assert_eq!(o.parked, 1);
        let mut spans = vec![span("a"), span("b")];
        assert_eq!(j.apply_parked("", &mut spans), 1);
        assert!(spans[0].input_messages.contains("hello"));
        assert!(!needs_content(&spans[0]) && needs_content(&spans[1]));
        assert_eq!(j.apply_parked("", &mut spans), 0);
        assert_eq!(j.parked_bytes(), 0);
    }

    #[test]
    fn spans_first_wait_and_receive_their_patches_only_in_their_scope() {
        let j = Joiner::new(limits());
        let n = Arc::new(Notify::new());
        let keys = j.register(vec![key_of("k1", &span("a"))], &n);
        assert_eq!(keys.len(), 1);
        assert!(!j.all_delivered(&keys));
        let other = j.offer("k2", vec![patch("a", "not yours")], Instant::now());
        assert_eq!(other.parked, 1);
        let mine = j.offer("k1", vec![patch("a", "yours")], Instant::now());
        assert_eq!(mine.delivered, 1);
        assert!(j.all_delivered(&keys));
        let got = j.take(&keys);
        assert_eq!(got.len(), 1);
        assert_eq!(j.waiting_spans(), 0);
    }

    #[test]
    fn caps_hold() {
        let j = Joiner::new(limits());
        let n = Arc::new(Notify::new());
        let keys: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|s| key_of("", &span(s)))
            .collect();
        assert_eq!(j.register(keys, &n).len(), 2);
        let now = Instant::now();
        let big = "x".repeat(4_000);
        let mut evicted = 0;
        for i in 0..10 {
            evicted += j
                .offer("", vec![patch(&format!("p{i}"), &big)], now)
                .evicted;
        }
        assert!(j.parked_bytes() <= 10_000);
        assert!(evicted >= 8);
        let later = now + Duration::from_secs(11);
        j.offer("", vec![], later);
        assert_eq!(j.parked_bytes(), 0);
    }
}
