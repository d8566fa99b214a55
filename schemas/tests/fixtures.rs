//! Fixture conformance: every real export in `tests/fixtures` is decoded (protobuf and
//! OTLP/JSON, traces and logs), run through the whole pipeline, and every expected
//! value in `manifest.json` is checked for every LLM span.
//!
//! Manifest encoding: a value is expected as is; the marker string
//! `not emitted by this library` means the library does not record it, so the span
//! must not have it either (None / empty — never an invented 0); `null` means not
//! applicable (the provider returned no such value): absent, or zero where a library
//! reports a zero count.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed load is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use schemas::pricing::PriceTable;
use schemas::{CanonicalSpan, Message, NormalizeContext, PriceStatus, StatusCode};
use serde_json::Value;

const DEFAULT_TENANT: &str = "default-tenant";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn manifest() -> Value {
    let text =
        std::fs::read_to_string(fixtures_dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

struct Loaded {
    traces: ExportTraceServiceRequest,
    logs: Option<ExportLogsServiceRequest>,
}

/// Decode both encodings and insist they agree, so the JSON path is proven too.
fn load(fixture: &str) -> Loaded {
    let base = fixtures_dir().join(fixture);
    let pb = std::fs::read(base.with_extension("pb")).expect("pb");
    let traces = ExportTraceServiceRequest::decode(pb.as_slice()).expect("pb decodes");
    let json = std::fs::read_to_string(base.with_extension("json")).expect("json");
    let from_json = schemas::otlp_json::decode_traces(json.as_bytes()).expect("json decodes");
    assert_eq!(
        traces, from_json,
        "{fixture}: JSON and protobuf decode differently"
    );

    let logs_pb = base.with_extension("logs.pb");
    let logs = logs_pb.exists().then(|| {
        let pb = std::fs::read(&logs_pb).expect("logs pb");
        let logs = ExportLogsServiceRequest::decode(pb.as_slice()).expect("logs pb decodes");
        let json = std::fs::read_to_string(base.with_extension("logs.json")).expect("logs json");
        let from_json =
            schemas::otlp_json::decode_logs(json.as_bytes()).expect("logs json decodes");
        assert_eq!(
            logs, from_json,
            "{fixture}: logs JSON and protobuf decode differently"
        );
        logs
    });
    Loaded { traces, logs }
}

fn run(loaded: &Loaded) -> Vec<CanonicalSpan> {
    let ctx = NormalizeContext {
        key_tenant: None,
        default_tenant: DEFAULT_TENANT.to_owned(),
    };
    schemas::process_batch(
        loaded.traces.clone(),
        loaded.logs.as_ref(),
        &ctx,
        &PriceTable::bundled().expect("bundled prices"),
    )
}

fn is_ne(v: &Value) -> bool {
    v.as_str() == Some("not emitted by this library")
}

fn messages(json: &str) -> Vec<Message> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(json).expect("canonical messages parse")
}

fn texts(msgs: &[Message]) -> String {
    msgs.iter()
        .map(|m| format!("{}\n{}", m.content, m.reasoning))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects every mismatch so one run shows them all.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

fn check_tokens(r: &mut Report, at: &str, field: &str, want: &Value, got: Option<u64>) {
    match want {
        Value::Number(n) => r.check(got == n.as_u64(), || {
            format!("{at}: {field} want {n} got {got:?}")
        }),
        v if is_ne(v) => r.check(got.is_none(), || {
            format!("{at}: {field} not emitted, got {got:?}")
        }),
        Value::Null => r.check(matches!(got, None | Some(0)), || {
            format!("{at}: {field} n/a, got {got:?}")
        }),
        other => {
            r.0.push(format!("{at}: {field}: unexpected manifest value {other}"))
        }
    }
}

fn check_span(r: &mut Report, at: &str, ls: &Value, s: &CanonicalSpan, batch: &[CanonicalSpan]) {
    let exp = &ls["expected"];
    let str_or_empty = |k: &str| {
        exp[k]
            .as_str()
            .filter(|_| !is_ne(&exp[k]))
            .unwrap_or("")
            .to_owned()
    };
    r.check(s.provider == str_or_empty("provider"), || {
        format!("{at}: provider {:?}", s.provider)
    });
    r.check(s.operation.as_str() == str_or_empty("operation"), || {
        format!("{at}: operation {:?}", s.operation)
    });
    r.check(s.request_model == str_or_empty("request_model"), || {
        format!(
            "{at}: request_model {:?} want {}",
            s.request_model, exp["request_model"]
        )
    });
    r.check(s.response_model == str_or_empty("response_model"), || {
        format!(
            "{at}: response_model {:?} want {}",
            s.response_model, exp["response_model"]
        )
    });
    r.check(s.response_id == str_or_empty("response_id"), || {
        format!(
            "{at}: response_id {:?} want {}",
            s.response_id, exp["response_id"]
        )
    });

    let reported = |k: &str| {
        exp["library_reports"]
            .get(k)
            .cloned()
            .unwrap_or_else(|| exp[k].clone())
    };
    check_tokens(
        r,
        at,
        "input_tokens",
        &reported("input_tokens"),
        s.usage.input,
    );
    check_tokens(
        r,
        at,
        "output_tokens",
        &reported("output_tokens"),
        s.usage.output,
    );
    check_tokens(
        r,
        at,
        "cache_read",
        &reported("cache_read_input_tokens"),
        s.usage.cache_read,
    );
    check_tokens(
        r,
        at,
        "cache_creation",
        &reported("cache_creation_input_tokens"),
        s.usage.cache_write,
    );
    check_tokens(
        r,
        at,
        "reasoning",
        &reported("reasoning_tokens"),
        s.usage.reasoning,
    );

    let want_finish: Vec<String> = exp["finish_reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // A library that records no finish-reason attribute may still put each choice's
    // finish reason in its output messages: taken from there, it is read, not invented.
    let from_messages: Vec<String> = messages(&s.output_messages)
        .into_iter()
        .map(|m| m.finish_reason)
        .filter(|f| !f.is_empty())
        .collect();
    let derived_ok = is_ne(&exp["finish_reasons"]) && s.finish_reasons == from_messages;
    r.check(s.finish_reasons == want_finish || derived_ok, || {
        format!(
            "{at}: finish_reasons {:?} want {want_finish:?}",
            s.finish_reasons
        )
    });

    let error = exp["error"].as_bool() == Some(true);
    r.check((s.status == StatusCode::Error) == error, || {
        format!("{at}: status {:?}", s.status)
    });
    if error {
        r.check(!s.error_type.is_empty(), || {
            format!("{at}: error_type empty")
        });
        if let Some(t) = exp["error_type_attribute"].as_str() {
            r.check(t.contains(&s.error_type), || {
                format!("{at}: error_type {:?} vs {t}", s.error_type)
            });
        }
        let want = exp["http_status"]
            .as_u64()
            .and_then(|c| u16::try_from(c).ok());
        r.check(s.http_status == want, || {
            format!("{at}: http_status {:?} want {want:?}", s.http_status)
        });
    } else {
        r.check(matches!(s.http_status, None | Some(200)), || {
            format!("{at}: http_status {:?} on a success", s.http_status)
        });
    }

    match &exp["streaming"] {
        Value::Bool(true) => r.check(s.streaming == Some(true), || {
            format!("{at}: streaming {:?}", s.streaming)
        }),
        Value::Bool(false) => r.check(s.streaming != Some(true), || {
            format!("{at}: streaming {:?}", s.streaming)
        }),
        v if is_ne(v) => r.check(s.streaming.is_none(), || {
            format!("{at}: streaming invented {:?}", s.streaming)
        }),
        other => r.0.push(format!(
            "{at}: streaming: unexpected manifest value {other}"
        )),
    }

    let tenant = exp["tenant"].as_str().unwrap_or(DEFAULT_TENANT);
    r.check(s.tenant_id == tenant, || {
        format!("{at}: tenant {:?} want {tenant}", s.tenant_id)
    });

    let input = messages(&s.input_messages);
    let output = messages(&s.output_messages);
    if exp["prompt_present"] == Value::Bool(true) {
        let needle = exp["prompt_substring"].as_str().unwrap_or("<missing>");
        r.check(texts(&input).contains(needle), || {
            format!("{at}: prompt lacks {needle:?}: {}", s.input_messages)
        });
    } else {
        r.check(input.is_empty(), || {
            format!("{at}: prompt invented: {}", s.input_messages)
        });
    }
    if exp["completion_present"] == Value::Bool(true) {
        let needle = exp["completion_substring"].as_str().unwrap_or("<missing>");
        r.check(texts(&output).contains(needle), || {
            format!("{at}: completion lacks {needle:?}: {}", s.output_messages)
        });
    } else if exp["tool_call_name"].as_str().is_none() || is_ne(&exp["tool_call_name"]) {
        r.check(output.is_empty(), || {
            format!("{at}: completion invented: {}", s.output_messages)
        });
    }
    let tool_names: Vec<&str> = output
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|t| t.name.as_str()))
        .collect();
    match exp["tool_call_name"]
        .as_str()
        .filter(|_| !is_ne(&exp["tool_call_name"]))
    {
        Some(name) => r.check(tool_names.contains(&name), || {
            format!("{at}: tool calls {tool_names:?} want {name}")
        }),
        None => r.check(tool_names.is_empty(), || {
            format!("{at}: tool calls invented {tool_names:?}")
        }),
    }

    let in_trace = batch.iter().filter(|o| o.trace_id == s.trace_id).count() as u64;
    r.check(Some(in_trace) == ls["spans_in_trace"].as_u64(), || {
        format!(
            "{at}: {in_trace} spans in trace, want {}",
            ls["spans_in_trace"]
        )
    });

    let collector_eval = s
        .evaluations
        .iter()
        .find(|e| e.name == "json_schema" && e.source == "collector");
    match exp["validation"]
        .as_str()
        .filter(|_| !is_ne(&exp["validation"]))
    {
        Some(label) => r.check(
            collector_eval.map(|e| e.label.as_str()) == Some(label),
            || format!("{at}: validation {collector_eval:?} want {label}"),
        ),
        None => r.check(collector_eval.is_none(), || {
            format!("{at}: validation invented {collector_eval:?}")
        }),
    }

    // Pricing: every known model with reported usage is priced; failed calls bill nothing.
    if error {
        r.check(s.price_status == PriceStatus::NotApplicable, || {
            format!("{at}: error priced {:?}", s.price_status)
        });
    } else {
        r.check(s.price_status == PriceStatus::Priced, || {
            format!("{at}: price_status {:?}", s.price_status)
        });
        r.check(s.cost.total > rust_decimal::Decimal::ZERO, || {
            format!("{at}: zero cost")
        });
    }
}

#[test]
fn every_fixture_span_matches_the_manifest() {
    let m = manifest();
    let mut report = Report::default();
    let mut checked = 0;
    for f in m["fixtures"].as_array().expect("fixtures") {
        let name = f["fixture"].as_str().expect("fixture name");
        let loaded = load(name);
        let spans = run(&loaded);
        report.check(Some(spans.len() as u64) == f["span_count"].as_u64(), || {
            format!(
                "{name}: {} spans, manifest says {}",
                spans.len(),
                f["span_count"]
            )
        });
        for ls in f["llm_spans"].as_array().expect("llm_spans") {
            let id = ls["span_id"].as_str().expect("span id");
            let at = format!("{name}#{id}");
            match spans.iter().find(|s| s.span_id == id) {
                Some(s) => check_span(&mut report, &at, ls, s, &spans),
                None => report.0.push(format!("{at}: span not produced")),
            }
            checked += 1;
        }
    }
    assert!(checked >= 100, "only {checked} spans checked");
    assert!(
        report.0.is_empty(),
        "{} mismatches:\n{}",
        report.0.len(),
        report.0.join("\n")
    );
}

#[test]
fn one_call_one_cost_on_anthropic_fixtures() {
    let m = manifest();
    let mut groups = 0;
    for f in m["fixtures"].as_array().expect("fixtures") {
        let name = f["fixture"].as_str().expect("fixture name");
        if !name.contains("anthropic") {
            continue;
        }
        let spans = run(&load(name));
        // Group the manifest's LLM spans by the provider call they record.
        let mut calls: BTreeMap<i64, Vec<(&str, &str)>> = BTreeMap::new();
        for ls in f["llm_spans"].as_array().expect("llm_spans") {
            let call = ls["call_index"].as_i64().expect("call_index");
            let id = ls["span_id"].as_str().expect("span id");
            calls
                .entry(call)
                .or_default()
                .push((id, ls["role"].as_str().unwrap_or("")));
        }
        for (call, members) in calls {
            let found: Vec<&CanonicalSpan> = members
                .iter()
                .filter_map(|(id, _)| spans.iter().find(|s| s.span_id == *id))
                .collect();
            assert_eq!(found.len(), members.len(), "{name} call {call}");
            if found.iter().all(|s| s.response_id.is_empty()) {
                continue; // failed calls: nothing billed, nothing to merge
            }
            groups += 1;
            let counted: Vec<&str> = found
                .iter()
                .filter(|s| s.counted)
                .map(|s| s.span_id.as_str())
                .collect();
            let instr: Vec<&str> = members
                .iter()
                .filter(|(_, role)| *role == "instrumentation")
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(counted, instr, "{name} call {call}: counted spans");
            // Totals over counted spans equal the call's cost once, not twice.
            let counted_tokens: u64 = found
                .iter()
                .filter(|s| s.counted)
                .filter_map(|s| s.usage.input)
                .sum();
            let instr_tokens = found.iter().find(|s| s.counted).and_then(|s| s.usage.input);
            assert_eq!(Some(counted_tokens), instr_tokens, "{name} call {call}");
        }
    }
    assert!(groups >= 24, "only {groups} anthropic calls checked");
}

#[test]
fn log_records_can_arrive_separately() {
    // The collector may get the logs of a call before or after its spans: the patch
    // path must give the same content as the joint path.
    let loaded = load("otel-openai-v2-default/d_tool_call");
    let logs = loaded.logs.as_ref().expect("fixture has logs");
    let ctx = NormalizeContext::default();
    let mut spans = schemas::normalize_traces(loaded.traces.clone(), &ctx);
    assert!(
        spans.iter().all(|s| s.input_messages.is_empty()),
        "content is only in logs"
    );
    let patches = schemas::content_from_logs(logs);
    assert_eq!(patches.len(), 2);
    for p in &patches {
        let span = spans
            .iter_mut()
            .find(|s| (s.trace_id.as_str(), s.span_id.as_str()) == p.key());
        assert!(p.apply(span.expect("patch joins a span")));
    }
    let joint = run(&loaded);
    for (a, b) in spans.iter().zip(&joint) {
        assert_eq!(a.input_messages, b.input_messages);
        assert_eq!(a.output_messages, b.output_messages);
    }
    let tool = messages(&spans[1].input_messages);
    assert_eq!(
        tool.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(),
        ["user", "assistant", "tool"]
    );
    assert_eq!(tool[2].tool_call_id, "call_u3FvbTgYd3Fow0eKOAJs7ieU");
}

/// A prompt or completion is stored once: in its body column (under the body
/// retention), not again in the attribute map or the events.
#[test]
fn bodies_live_only_in_body_columns() {
    let m = manifest();
    let mut report = Report::default();
    let mut checked = 0;
    for f in m["fixtures"].as_array().expect("fixtures") {
        let name = f["fixture"].as_str().expect("fixture name");
        let spans = run(&load(name));
        let needles: Vec<&str> = f["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .flat_map(|c| [&c["prompt_substring"], &c["completion_substring"]])
            .filter_map(Value::as_str)
            .filter(|s| s.len() >= 8)
            .collect();
        for s in &spans {
            let bodies = format!("{}\n{}", s.input_messages, s.output_messages);
            let elsewhere = format!("{:?}\n{:?}", s.attributes, s.events);
            // A needle that names a field of the declared schema also sits,
            // rightly, in the request parameters.
            for needle in needles
                .iter()
                .filter(|n| bodies.contains(**n) && !s.output_schema.contains(**n))
            {
                checked += 1;
                report.check(!elsewhere.contains(needle), || {
                    format!(
                        "{name}#{}: {needle:?} also outside the body columns",
                        s.span_id
                    )
                });
            }
        }
    }
    assert!(checked >= 100, "only {checked} bodies checked");
    assert!(
        report.0.is_empty(),
        "{} duplicates:\n{}",
        report.0.len(),
        report.0.join("\n")
    );
}

/// Wherever the fast reader of all-text OTel messages takes a fixture's
/// attribute, it reads what the general reader reads.
#[test]
fn the_fast_message_reader_agrees_on_every_fixture_attribute() {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
    let m = manifest();
    let mut taken = 0;
    for f in m["fixtures"].as_array().expect("fixtures") {
        let loaded = load(f["fixture"].as_str().expect("fixture name"));
        for span in loaded
            .traces
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            for kv in &span.attributes {
                let Some(Av::StringValue(text)) = kv.value.as_ref().and_then(|v| v.value.as_ref())
                else {
                    continue;
                };
                if let Some(fast) = schemas::messages::text_messages_fast(text, "user") {
                    let v = schemas::attrs::parse_json_container(text).expect("fast implies JSON");
                    let general = schemas::messages::messages_from_value(&v, "user");
                    let fast = schemas::messages::MessageList::Text(fast);
                    assert_eq!(
                        fast.to_json(),
                        schemas::messages::to_json(&general),
                        "{}: {text}",
                        kv.key
                    );
                    assert_eq!(fast.into_general(), general, "{}: {text}", kv.key);
                    taken += 1;
                }
            }
        }
    }
    assert!(
        taken >= 20,
        "the fast reader took only {taken} fixture attributes"
    );
}
