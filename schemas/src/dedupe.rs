//! One call, one cost: several spans of the same provider call count once.
//!
//! The anthropic Python SDK traces itself, so with an instrumentation library
//! installed one call yields two LLM spans (sometimes in two traces) sharing the
//! response id. Both spans are kept; all but one get `counted = false`.
//!
//! The key is (tenant, provider, response id); spans without a response id are never
//! merged. The kept span is the best by [`preference`]: content first (it is what an
//! engineer opens), then not the provider SDK's own span, then the earliest start
//! and the smallest span id, so the choice is deterministic and batch-order free.
//! Across exports the collector remembers calls by [`call_key`]
//! (`collector::calls`); there the first span to arrive keeps the count.

use foldhash::HashMap as FastMap;

use crate::keys::anthropic;
use crate::span::CanonicalSpan;

/// Identity of one provider call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey {
    pub tenant_id: String,
    pub provider: String,
    pub response_id: String,
}

/// The call a model-call span records, when it names one.
pub fn dedupe_key(span: &CanonicalSpan) -> Option<DedupeKey> {
    call_key(span).map(|(tenant, provider, response)| DedupeKey {
        tenant_id: tenant.to_owned(),
        provider: provider.to_owned(),
        response_id: response.to_owned(),
    })
}

/// Ordering key: the smallest is the span that counts.
pub fn preference(span: &CanonicalSpan) -> (bool, bool, u64, &str) {
    let has_content = !span.input_messages.is_empty() || !span.output_messages.is_empty();
    (
        !has_content,
        span.scope_name == anthropic::SDK_SCOPE,
        span.start_time_unix_nano,
        &span.span_id,
    )
}

/// [`dedupe_key`] borrowed from the span.
pub fn call_key(span: &CanonicalSpan) -> Option<(&str, &str, &str)> {
    (span.operation.is_model_call() && !span.response_id.is_empty()).then_some((
        span.tenant_id.as_str(),
        span.provider.as_str(),
        span.response_id.as_str(),
    ))
}

/// Mark every span but the preferred one of each call as not counted.
pub fn mark_duplicates(spans: &mut [CanonicalSpan]) {
    // For each span of a call, the index of the call's preferred span.
    let mut counted_as: Vec<Option<usize>> = Vec::with_capacity(spans.len());
    {
        let mut best: FastMap<(&str, &str, &str), usize> = FastMap::default();
        for (i, s) in spans.iter().enumerate() {
            let Some(k) = call_key(s) else { continue };
            match best.get(&k) {
                Some(&j) if preference(&spans[j]) <= preference(s) => {}
                _ => {
                    best.insert(k, i);
                }
            }
        }
        counted_as.extend(
            spans
                .iter()
                .map(|s| call_key(s).and_then(|k| best.get(&k).copied())),
        );
    }
    for (i, (s, best)) in spans.iter_mut().zip(counted_as).enumerate() {
        if let Some(j) = best {
            s.counted = j == i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Operation;

    fn span(id: &str, scope: &str, content: bool, response_id: &str) -> CanonicalSpan {
        CanonicalSpan {
            span_id: id.into(),
            scope_name: scope.into(),
            operation: Operation::Chat,
            provider: "anthropic".into(),
            tenant_id: "t".into(),
            response_id: response_id.into(),
            input_messages: if content {
                "[{}]".into()
            } else {
                String::new()
            },
            counted: true,
            ..CanonicalSpan::default()
        }
    }

    #[test]
    fn instrumentation_span_counts_in_any_order() {
        for order in [[0, 1], [1, 0]] {
            let pool = [
                span("a", anthropic::SDK_SCOPE, false, "m1"),
                span("b", "instr", true, "m1"),
            ];
            let mut batch: Vec<_> = order.iter().map(|&i| pool[i].clone()).collect();
            mark_duplicates(&mut batch);
            let counted: Vec<_> = batch
                .iter()
                .filter(|s| s.counted)
                .map(|s| s.span_id.as_str())
                .collect();
            assert_eq!(counted, ["b"]);
        }
    }

    #[test]
    fn different_tenants_or_missing_ids_are_not_merged() {
        let mut other = span("c", "instr", true, "m1");
        other.tenant_id = "u".into();
        let mut batch = vec![
            span("a", "x", true, "m1"),
            other,
            span("d", "x", true, ""),
            span("e", "x", true, ""),
        ];
        mark_duplicates(&mut batch);
        assert!(batch.iter().all(|s| s.counted));
    }
}
