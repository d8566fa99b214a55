//! Price table tests: one per provider, token accounting, dates, overrides, errors.

use rust_decimal::Decimal;
use std::str::FromStr;

use super::*;
use crate::span::Operation;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn table() -> PriceTable {
    PriceTable::bundled().unwrap()
}

/// 2025-12-01T00:00:00Z
const DEC_2025: u64 = 1_764_547_200_000_000_000;

fn call(provider: &str, model: &str, usage: Usage) -> CanonicalSpan {
    CanonicalSpan {
        tenant_id: "t".into(),
        operation: Operation::Chat,
        provider: provider.into(),
        response_model: model.into(),
        start_time_unix_nano: DEC_2025,
        usage,
        counted: true,
        ..CanonicalSpan::default()
    }
}

fn io(input: u64, output: u64) -> Usage {
    Usage {
        input: Some(input),
        output: Some(output),
        ..Usage::default()
    }
}

fn priced(provider: &str, model: &str, usage: Usage) -> CanonicalSpan {
    let mut s = call(provider, model, usage);
    table().price_span(&mut s);
    s
}

#[test]
fn bundled_table_is_broad_and_dated() {
    let t = table();
    assert!(t.entries().len() >= 40, "{}", t.entries().len());
    assert!(!t.version().is_empty());
    for e in t.entries() {
        assert!(
            e.source.starts_with("https://"),
            "{} lacks provenance",
            e.model
        );
        assert_eq!(e.currency, "USD");
    }
}

#[test]
fn openai_prices_and_cached_input() {
    // 1M input of which 400k cached, 100k output on gpt-4o-mini:
    // 600k × 0.15 + 400k × 0.075 + 100k × 0.60 = 0.09 + 0.03 + 0.06.
    let s = priced(
        "openai",
        "gpt-4o-mini-2024-07-18",
        Usage {
            cache_read: Some(400_000),
            ..io(1_000_000, 100_000)
        },
    );
    assert_eq!(s.price_status, PriceStatus::Priced);
    assert_eq!(s.cost.input, d("0.09"));
    assert_eq!(s.cost.cache_read, d("0.03"));
    assert_eq!(s.cost.output, d("0.06"));
    assert_eq!(s.cost.total, d("0.18"));
    // gpt-4o is not gpt-4o-mini.
    assert_eq!(
        priced("openai", "gpt-4o", io(1_000_000, 0)).cost.total,
        d("2.5")
    );
    // The 2024-05-13 snapshot has its own, higher price.
    assert_eq!(
        priced("openai", "gpt-4o-2024-05-13", io(1_000_000, 0))
            .cost
            .total,
        d("5")
    );
    assert_eq!(
        priced("openai", "text-embedding-3-small", io(1_000_000, 0))
            .cost
            .total,
        d("0.02")
    );
}

#[test]
fn anthropic_input_includes_cache_reads_and_writes() {
    // OTel meaning: 141 input = 24 uncached + 117 cache read (openllmetry d_tool_call).
    let s = priced(
        "anthropic",
        "claude-haiku-4-5-20251001",
        Usage {
            cache_read: Some(117),
            cache_write: Some(0),
            ..io(141, 10)
        },
    );
    // 24 × 1 + 117 × 0.10 + 10 × 5 per million.
    assert_eq!(s.cost.input, d("0.000024"));
    assert_eq!(s.cost.cache_read, d("0.0000117"));
    assert_eq!(s.cost.output, d("0.00005"));
    assert_eq!(s.cost.total, d("0.0000857"));
    let w = priced(
        "anthropic",
        "claude-sonnet-4-5",
        Usage {
            cache_write: Some(1_000_000),
            ..io(1_000_000, 0)
        },
    );
    assert_eq!(w.cost.cache_write, d("3.75"));
    assert_eq!(w.cost.input, Decimal::ZERO);
}

#[test]
fn gemini_mistral_deepseek_cohere_llama_xai() {
    assert_eq!(
        priced(
            "gcp.gemini",
            "models/gemini-2.5-flash",
            io(1_000_000, 1_000_000)
        )
        .cost
        .total,
        d("2.8")
    );
    // Vertex AI resells Gemini at the same list price.
    assert_eq!(
        priced("gcp.vertex_ai", "gemini-2.0-flash-001", io(1_000_000, 0))
            .cost
            .total,
        d("0.1")
    );
    assert_eq!(
        priced("mistral_ai", "mistral-large-2411", io(1_000_000, 1_000_000))
            .cost
            .total,
        d("8")
    );
    assert_eq!(
        priced("deepseek", "deepseek-chat", io(1_000_000, 1_000_000))
            .cost
            .total,
        d("0.7")
    );
    assert_eq!(
        priced("cohere", "command-r-08-2024", io(1_000_000, 1_000_000))
            .cost
            .total,
        d("0.75")
    );
    assert_eq!(
        priced("groq", "llama-3.3-70b-versatile", io(1_000_000, 1_000_000))
            .cost
            .total,
        d("1.38")
    );
    assert_eq!(
        priced(
            "together_ai",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            io(1_000_000, 0)
        )
        .cost
        .total,
        d("0.88")
    );
    assert_eq!(
        priced(
            "aws.bedrock",
            "meta.llama3-3-70b-instruct-v1:0",
            io(1_000_000, 0)
        )
        .cost
        .total,
        d("0.72")
    );
    // Claude on Bedrock: Anthropic's list price.
    assert_eq!(
        priced(
            "aws.bedrock",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            io(1_000_000, 0)
        )
        .cost
        .total,
        d("0.8")
    );
    assert_eq!(
        priced("x_ai", "grok-3-mini", io(1_000_000, 1_000_000))
            .cost
            .total,
        d("0.8")
    );
}

#[test]
fn the_price_effective_at_the_span_time_applies() {
    // o3 was cut from 10 to 2 per million input on 2025-06-10.
    let mut before = call("openai", "o3-2025-04-16", io(1_000_000, 0));
    before.start_time_unix_nano = 1_747_000_000_000_000_000; // 2025-05-11
    table().price_span(&mut before);
    assert_eq!(before.cost.total, d("10"));
    let after = priced("openai", "o3-2025-04-16", io(1_000_000, 0));
    assert_eq!(after.cost.total, d("2"));
    // Before any entry existed: unknown at that time.
    let mut ancient = call("openai", "o3", io(1, 1));
    ancient.start_time_unix_nano = 1_600_000_000_000_000_000;
    table().price_span(&mut ancient);
    assert_eq!(ancient.price_status, PriceStatus::UnpricedModel);
}

#[test]
fn unknown_model_is_flagged_not_silently_zero() {
    let s = priced("openai", "gpt-7-ultra", io(10, 10));
    assert_eq!(s.price_status, PriceStatus::UnpricedModel);
    assert_eq!(s.cost.total, Decimal::ZERO);
    // Same model name, host that is not in the table: not guessed from another host.
    assert_eq!(
        priced("fireworks_ai", "llama-3.3-70b-versatile", io(1, 1)).price_status,
        PriceStatus::UnpricedModel
    );
}

#[test]
fn missing_usage_is_estimated_from_content_or_flagged() {
    let msgs = r#"[{"role":"user","content":"What is the capital of France?"}]"#;
    let mut s = call("openai", "gpt-4o-mini", Usage::default());
    s.input_messages = msgs.into();
    table().price_span(&mut s);
    assert_eq!(s.price_status, PriceStatus::EstimatedUsage);
    assert!(s.usage.input.is_some_and(|n| n > 0));
    assert!(s.cost.total > Decimal::ZERO);

    let mut bare = call("openai", "gpt-4o-mini", Usage::default());
    table().price_span(&mut bare);
    assert_eq!(bare.price_status, PriceStatus::MissingUsage);
    assert_eq!(
        bare.usage,
        Usage::default(),
        "absent usage is not invented as zero"
    );

    let mut failed = call("openai", "gpt-4o-mini", Usage::default());
    failed.status = StatusCode::Error;
    table().price_span(&mut failed);
    assert_eq!(failed.price_status, PriceStatus::NotApplicable);
}

#[test]
fn user_file_overrides_and_tenant_entries() {
    let user = r#"
version = "acme-2025-12"
[[price]]
provider = "openai"
model = "gpt-4o-mini"
input = 0.10
output = "0.40"
effective_from = 2025-01-01
source = "negotiated contract"

[[price]]
provider = "openai"
model = "gpt-4o-mini"
tenant = "acme"
input = "0.05"
output = "0.20"
effective_from = "2025-01-01"

[[price]]
provider = "internal"
model = "our-finetune-v3"
input = "1"
output = "2"
effective_from = "2025-01-01"
"#;
    let t = table().with_user_file(user, "loupe-prices.toml").unwrap();
    assert!(t.version().ends_with("+acme-2025-12"));
    let price = |tenant: &str, provider: &str, model: &str| {
        let mut s = call(provider, model, io(1_000_000, 0));
        s.tenant_id = tenant.into();
        t.price_span(&mut s);
        s.cost.total
    };
    assert_eq!(price("globex", "openai", "gpt-4o-mini"), d("0.1"));
    assert_eq!(price("acme", "openai", "gpt-4o-mini"), d("0.05"));
    assert_eq!(price("globex", "internal", "our-finetune-v3"), d("1"));
    // Untouched entries still come from the bundled table.
    assert_eq!(price("acme", "openai", "gpt-4o"), d("2.5"));
}

#[test]
fn malformed_user_file_names_the_line() {
    let bad =
        "version = \"x\"\n\n[[price]]\nprovider = \"openai\"\nmodel = \"gpt-4o\"\ninput = \"2.50\n";
    let err = table().with_user_file(bad, "my-prices.toml").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("my-prices.toml: line 6"), "{msg}");

    let bad_date = "[[price]]\nprovider = \"openai\"\nmodel = \"m1\"\ninput = 1\noutput = 1\neffective_from = \"2025-01-01\"\n\n[[price]]\nprovider = \"openai\"\nmodel = \"m2\"\ninput = 1\noutput = 1\neffective_from = \"soon\"\n";
    let err = PriceTable::from_toml(bad_date, "p.toml", true).unwrap_err();
    assert!(
        matches!(
            err,
            PriceFileError::Entry {
                line: 8,
                index: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("m2"));

    let negative = "[[price]]\nprovider = \"openai\"\nmodel = \"m\"\ninput = \"-1\"\noutput = 1\neffective_from = \"2025-01-01\"\n";
    assert!(
        PriceTable::from_toml(negative, "p.toml", true)
            .unwrap_err()
            .to_string()
            .contains("negative")
    );

    let unknown = "[[price]]\nprovider = \"openai\"\nmodel = \"m\"\ninput = 1\noutput = 1\neffective_from = \"2025-01-01\"\ncahce_read = 1\n";
    let err = PriceTable::from_toml(unknown, "p.toml", true).unwrap_err();
    assert!(err.to_string().contains("cahce_read"), "{err}");
}

#[test]
fn reported_cost_prices_models_the_table_lacks() {
    let mut s = call("openai", "gpt-7-ultra", io(10, 10));
    s.attributes = vec![(
        crate::keys::openinference::COST_TOTAL.into(),
        "0.0123".into(),
    )];
    table().price_span(&mut s);
    assert_eq!(s.price_status, PriceStatus::Priced);
    assert_eq!(s.price_version, REPORTED_VERSION);
    assert_eq!(s.cost.total, d("0.0123"));
}

#[test]
fn days_from_dates() {
    assert_eq!(parse_day("1970-01-01"), Some(0));
    assert_eq!(
        parse_day("2025-12-01"),
        Some((DEC_2025 / 1_000_000_000 / 86_400) as i64)
    );
    assert_eq!(parse_day("2025-13-01"), None);
    assert_eq!(parse_day("soon"), None);
}

#[test]
fn usage_the_source_estimated_is_priced_as_estimated() {
    let mut s = call("openai", "gpt-4o-mini", io(100, 20));
    s.attributes
        .push((crate::keys::loupe::USAGE_ESTIMATED.into(), "true".into()));
    table().price_span(&mut s);
    assert_eq!(s.price_status, PriceStatus::EstimatedUsage);
    assert!(s.cost.total > Decimal::ZERO);
}

#[test]
fn a_batch_is_priced_as_each_span_alone() {
    // Repeats of one lookup (served from the batch's memo) between spans
    // that differ in exactly one part of the key: model, provider, day,
    // tenant (with a tenant price), and time 0 ("now").
    let tenant_prices = r#"
version = "memo"
[[price]]
provider = "openai"
model = "o3"
tenant = "acme"
input = "1"
output = "1"
effective_from = "2025-01-01"
"#;
    let t = table().with_user_file(tenant_prices, "test").unwrap();
    let mut spans = Vec::new();
    for _ in 0..3 {
        spans.push(call("openai", "o3-2025-04-16", io(1_000_000, 0)));
        let mut early = call("openai", "o3-2025-04-16", io(1_000_000, 0));
        early.start_time_unix_nano = 1_747_000_000_000_000_000;
        spans.push(early);
        let mut acme = call("openai", "o3", io(1_000_000, 0));
        acme.tenant_id = "acme".into();
        spans.push(acme);
        spans.push(call("openai", "o3", io(1_000_000, 0)));
        spans.push(call("anthropic", "o3", io(1_000_000, 0)));
        let mut now = call("openai", "o3", io(1_000_000, 0));
        now.start_time_unix_nano = 0;
        spans.push(now);
        spans.push(call("openai", "gpt-7-ultra", io(1, 1)));
    }
    let mut alone = spans.clone();
    for s in &mut alone {
        t.price_span(s);
    }
    t.price_spans(&mut spans);
    for (a, b) in alone.iter().zip(&spans) {
        assert_eq!(
            a.cost, b.cost,
            "{} {} {}",
            a.tenant_id, a.provider, a.response_model
        );
        assert_eq!(a.price_status, b.price_status);
    }
    // The key's parts matter: the same model costs what its own key says.
    assert_eq!(spans[0].cost.total, d("2"));
    assert_eq!(spans[1].cost.total, d("10"));
    assert_eq!(spans[2].cost.total, d("1"));
    assert_ne!(spans[3].cost.total, d("1"));
    // More distinct lookups than the memo keeps: the rest are looked up plainly.
    let mut many: Vec<CanonicalSpan> = (0..LookupMemo::CAPACITY + 8)
        .map(|i| call("openai", &format!("unknown-{i}"), io(1, 1)))
        .collect();
    many.push(call("openai", "o3-2025-04-16", io(1_000_000, 0)));
    t.price_spans(&mut many);
    let (known, unknown) = many.split_last().unwrap();
    assert_eq!(known.cost.total, d("2"));
    assert!(
        unknown
            .iter()
            .all(|s| s.price_status == PriceStatus::UnpricedModel)
    );
}
