//! Route tests against the real embedded engine with a seeded dataset: every
//! page and its JSON twin, empty states, invalid parameters, the CSV export,
//! escaping of hostile prompts, keyset pagination and tenant scoping.
//! Each test runs in its own process (cargo-nextest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

use axum::Router;
use axum::http::StatusCode;
use common::http::{get, get_with};
use common::seed::{self, Seeded};
use dashboard::DashboardConfig;
use rust_decimal::Decimal;
use store::Store;

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    seeded: Seeded,
}

async fn env(traces_per_day: u64, big: u64) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = common::migrated_store(dir.path()).await;
    let spans = seed::build(seed::now_ns(), traces_per_day, big);
    let seeded = seed::insert(&store, &spans).await;
    Env {
        _dir: dir,
        store,
        seeded,
    }
}

async fn empty_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = common::migrated_store(dir.path()).await;
    Env {
        _dir: dir,
        store,
        seeded: Seeded::default(),
    }
}

fn app(e: &Env, cfg: &DashboardConfig) -> Router {
    dashboard::app(dashboard::state(cfg, &e.store).unwrap())
}

fn today() -> dashboard::civil::Day {
    dashboard::civil::Day::today()
}

#[tokio::test]
async fn every_page_and_json_twin_renders_the_seeded_data() {
    let e = env(3, 0).await;
    let app = app(&e, &DashboardConfig::default());

    let r = get(&app, "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for label in [
        "Spend today",
        "Month to date",
        "LLM calls today",
        "Error rate",
        "Validation failures",
        "Latency p50 / p95",
        "Unpriced-model calls",
    ] {
        assert!(r.body.contains(label), "overview lacks {label}");
    }
    assert!(
        r.body.contains("<svg class=\"spark\""),
        "tiles have sparklines"
    );
    assert!(
        r.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let j = get(&app, "/api/v1/").await.json();
    assert_eq!(j["trend"].as_array().unwrap().len(), 14);
    assert!(j["today_usage"]["calls"].as_u64().unwrap() > 0, "{j}");

    let r = get(&app, "/cost").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("Daily cost by tenant") && r.body.contains("<svg class=\"chart\""));
    let r = get(&app, "/cost?tenant=globex").await;
    assert!(
        r.body.contains("By model") && r.body.contains("By feature") && r.body.contains("By day")
    );
    assert!(
        r.body.contains("mystery-llm-7b") && r.body.contains("Unpriced models"),
        "unpriced shown apart"
    );
    let j = get(&app, "/api/v1/cost?tenant=globex").await.json();
    assert_eq!(j["sections"][0]["dimension"], "model");

    let r = get(&app, "/drift").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("json_schema") && r.body.contains("Top failure reasons"));
    let j = get(&app, "/api/v1/drift?tenant=acme").await.json();
    assert!(!j["series"].as_array().unwrap().is_empty());

    let r = get(&app, "/traces?range=30d").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<table class=\"grid calls\">"));
    assert!(
        r.body.contains("<html"),
        "a plain request gets the whole page"
    );
    let j = get(&app, "/api/v1/traces?range=30d").await.json();
    let first = &j["calls"][0];
    let (trace, span) = (
        first["trace_id"].as_str().unwrap().to_string(),
        first["span_id"].as_str().unwrap().to_string(),
    );

    let r = get(&app, &format!("/traces/{trace}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains(&format!("id=\"span-{span}\"")));
    assert!(
        r.body.contains("hx-trigger=\"toggle once\""),
        "bodies load lazily"
    );
    assert!(
        !r.body.contains("class=\"chat\""),
        "the tree view carries no bodies"
    );
    let j = get(&app, &format!("/api/v1/traces/{trace}")).await.json();
    assert!(j["span_count"].as_u64().unwrap() >= 2);

    let r = get(&app, &format!("/traces/{trace}/spans/{span}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("class=\"chat\"")
            && r.body.contains("msg system")
            && r.body.contains("msg user")
    );
    let j = get(&app, &format!("/api/v1/traces/{trace}/spans/{span}"))
        .await
        .json();
    assert_eq!(j["input"]["messages"][0]["role"], "system");
    assert!(
        j["cost_total"]["amount"].is_string(),
        "money is an exact decimal string: {}",
        j["cost_total"]
    );

    let r = get(&app, "/alerts").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Alerts are not configured"));
    let j = get(&app, "/api/v1/alerts").await.json();
    assert_eq!(j["evaluator_running"], false);
    assert!(j["history"].as_array().unwrap().is_empty());

    let css = get(&app, "/").await.body;
    let css_href = css
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = get(&app, &css_href).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let r = get(&app, "/static/htmx-2.0.11.min.js").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("htmx"));
    e.store.close().await;
}

#[tokio::test]
async fn an_empty_store_shows_empty_states_not_errors() {
    let e = empty_env().await;
    let app = app(&e, &DashboardConfig::default());
    let r = get(&app, "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No LLM calls in the last 14 days"));
    assert!(
        r.body.contains("$0.00"),
        "no spend is shown as zero when nothing ran"
    );
    let r = get(&app, "/cost").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No LLM calls in this period"));
    let r = get(&app, "/drift").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No validation results in this window"));
    let r = get(&app, "/traces").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("No LLM calls match these filters"));
    for uri in [
        "/api/v1/",
        "/api/v1/cost",
        "/api/v1/drift",
        "/api/v1/traces",
        "/api/v1/alerts",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
        r.json();
    }
    let csv = get(&app, "/cost.csv").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(
        csv.body.lines().count(),
        2,
        "header and total only: {}",
        csv.body
    );
    let r = get(&app, "/traces/0123456789abcdef0123456789abcdef").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("not found"));
    let r = get(&app, "/api/v1/traces/0123456789abcdef0123456789abcdef").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["status"], 404);
    assert_eq!(get(&app, "/nope").await.status, StatusCode::NOT_FOUND);
    e.store.close().await;
}

#[tokio::test]
async fn invalid_parameters_are_clear_400s_never_500s() {
    let e = empty_env().await;
    let app = app(&e, &DashboardConfig::default());
    let cases = [
        ("/cost?from=2024-02-30", "from"),
        ("/cost?from=2024-03-10&to=2024-03-01", "from"),
        ("/cost?from=2020-01-01&to=2024-01-01", "400 days"),
        ("/cost?tennant=acme", "tennant"),
        ("/cost?tenant=a&tenant=b", "more than once"),
        ("/?tenant=%00x", "control"),
        ("/drift?days=0", "days"),
        ("/drift?days=30&bucket=hour", "bucket"),
        ("/drift?bucket=week", "bucket"),
        ("/traces?sort=best", "sort"),
        ("/traces?range=1y", "range"),
        ("/traces?status=weird", "status"),
        ("/traces?validation=maybe", "validation"),
        ("/traces?cursor=garbage", "cursor"),
        ("/traces?cursor=1.2.zz.yy", "cursor"),
        ("/traces/not-hex", "trace_id"),
        ("/traces/0123/spans/xyz", "span_id"),
        ("/traces/0123?span=%3Cb%3E", "span"),
        ("/alerts?x=1", "x"),
    ];
    for (uri, needle) in cases {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
        assert!(
            r.body.contains(needle),
            "{uri} should name {needle}: {}",
            r.body
        );
        assert!(r.body.contains("<html"), "{uri}: an HTML error page");
        let api = format!("/api/v1{uri}");
        let r = get(&app, &api).await;
        if api.contains("/api/v1/cost")
            || api.contains("/api/v1/traces")
            || api.contains("/api/v1/drift")
            || api.contains("/api/v1/alerts")
            || api.starts_with("/api/v1/?")
        {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{api}: {}", r.body);
            assert_eq!(r.json()["error"]["status"], 400);
        }
    }
    let long = format!("/traces?q={}", "a".repeat(600));
    assert_eq!(get(&app, &long).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, "/cost.csv?from=nope").await.status,
        StatusCode::BAD_REQUEST
    );
    e.store.close().await;
}

/// Parses the CSV export (no quoted cells in this dataset).
fn csv_rows(body: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = body.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn the_cost_csv_round_trips_the_numbers_on_the_cost_page() {
    let e = env(3, 0).await;
    let app = app(&e, &DashboardConfig::default());
    let from = today().offset(-20);
    let q = format!("from={from}&to={}", today());
    let json = get(&app, &format!("/api/v1/cost?{q}")).await.json();
    let html = get(&app, &format!("/cost?{q}")).await.body;
    let csv = get(&app, &format!("/cost.csv?{q}")).await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let rows = csv_rows(&csv.body);
    let lines = json["sections"][0]["lines"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        lines.len() + 1,
        "one row per tenant shown, plus the total"
    );
    for (row, line) in rows.iter().zip(lines) {
        assert_eq!(row["section"], "tenant");
        assert_eq!(row["key"], line["key"].as_str().unwrap());
        assert_eq!(row["calls"], line["calls"].to_string());
        assert_eq!(row["input_tokens"], line["tokens"]["input"].to_string());
        assert_eq!(row["unpriced_calls"], line["unpriced_calls"].to_string());
        let amount = line["cost"]["total"][0]["amount"].as_str().unwrap();
        assert_eq!(
            Decimal::from_str(&row["cost_total"]).unwrap(),
            Decimal::from_str(amount).unwrap()
        );
        // the page shows the same exact amount (grouped for people)
        let shown = format!(
            "${}",
            dashboard::fmt::Money {
                amount: Decimal::from_str(amount).unwrap(),
                currency: "USD".into()
            }
            .plain()
        );
        let shown_grouped = dashboard::fmt::Money {
            amount: Decimal::from_str(amount).unwrap(),
            currency: "USD".into(),
        }
        .to_string();
        assert!(
            html.contains(&shown_grouped),
            "page shows {shown} as {shown_grouped}"
        );
        assert!(
            html.contains(&format!(">{}</a>", row["key"])),
            "tenant {} on the page",
            row["key"]
        );
        // and both equal what was inserted, to the last decimal
        let expected = e.seeded.cost_by_tenant[&row["key"]];
        assert_eq!(
            Decimal::from_str(&row["cost_total"]).unwrap(),
            expected.normalize(),
            "{}",
            row["key"]
        );
        assert_eq!(
            row["calls"],
            e.seeded.calls_by_tenant[&row["key"]].to_string()
        );
    }
    let total = rows.last().unwrap();
    assert_eq!(total["section"], "total");
    let sum: Decimal = e.seeded.cost_by_tenant.values().sum();
    assert_eq!(
        Decimal::from_str(&total["cost_total"]).unwrap(),
        sum.normalize()
    );
    assert_eq!(total["unpriced_calls"], e.seeded.unpriced_calls.to_string());
    assert!(e.seeded.unpriced_calls > 0);

    // Drilled into a tenant, the CSV has the model, feature and day tables.
    let csv = get(&app, &format!("/cost.csv?{q}&tenant=globex"))
        .await
        .body;
    let rows = csv_rows(&csv);
    let sections: HashSet<&str> = rows.iter().map(|r| r["section"].as_str()).collect();
    assert_eq!(
        sections,
        HashSet::from(["model", "feature", "day", "total"])
    );
    let unpriced = rows.iter().find(|r| r["key"] == "mystery-llm-7b").unwrap();
    assert_eq!(unpriced["unpriced_calls"], unpriced["calls"]);
    e.store.close().await;
}

#[tokio::test]
async fn a_hostile_prompt_is_displayed_as_text_everywhere() {
    let e = env(1, 0).await;
    let app = app(&e, &DashboardConfig::default());
    let pages = [
        format!("/traces/{}", seed::XSS_TRACE),
        format!("/traces/{}?span={}", seed::XSS_TRACE, seed::XSS_SPAN),
        format!("/traces/{}/spans/{}", seed::XSS_TRACE, seed::XSS_SPAN),
        "/traces?q=script".to_string(),
        "/traces?range=1h".to_string(),
    ];
    for p in &pages {
        let mut r = get(&app, p).await;
        r.body = unentity(&r.body);
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
        assert!(
            !r.body.contains("<script>alert"),
            "{p} contains a live script tag"
        );
        assert!(
            !r.body.contains("<img src=x"),
            "{p} contains a live img tag"
        );
        assert!(!r.body.contains("<b>bold"), "{p} contains live markup");
    }
    let r = get_with(
        &app,
        &format!("/traces/{}/spans/{}", seed::XSS_TRACE, seed::XSS_SPAN),
        &[("HX-Request", "true")],
    )
    .await;
    let r = common::http::Reply {
        body: unentity(&r.body),
        ..r
    };
    assert!(
        r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("&lt;img src=x onerror=alert(4)&gt;"),
        "attributes escaped too"
    );
    let list = unentity(&get(&app, "/traces?q=%3Cscript%3E").await.body);
    assert!(
        list.contains("&lt;script&gt;alert(1)"),
        "the preview is found by text and shown escaped"
    );
    let j = get(
        &app,
        &format!(
            "/api/v1/traces/{}/spans/{}",
            seed::XSS_TRACE,
            seed::XSS_SPAN
        ),
    )
    .await
    .json();
    assert_eq!(
        j["input"]["messages"][1]["content"],
        seed::XSS_PROMPT,
        "JSON carries the text unchanged"
    );
    e.store.close().await;
}

/// Askama escapes with numeric entities; compare in one spelling.
fn unentity(s: &str) -> String {
    s.replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#34;", "&quot;")
        .replace("&#38;", "&amp;")
        .replace("&#39;", "&#x27;")
}

async fn walk(app: &Router, first: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut uri = first.to_string();
    for _ in 0..1000 {
        let j = get(app, &uri).await.json();
        all.extend(j["calls"].as_array().unwrap().iter().cloned());
        match j["next"].as_str() {
            Some(next) => uri = format!("/api/v1{next}"),
            None => return all,
        }
    }
    panic!("pagination never ended");
}

#[tokio::test]
async fn keyset_pagination_visits_every_call_once_in_order_for_each_sort() {
    let e = env(3, 0).await;
    let cfg = DashboardConfig {
        page_size: 7,
        ..Default::default()
    };
    let app = app(&e, &cfg);
    let total: u64 = e.seeded.calls_by_tenant.values().sum();
    for sort in ["newest", "oldest", "slowest", "costliest"] {
        let all = walk(&app, &format!("/api/v1/traces?range=30d&sort={sort}")).await;
        let ids: HashSet<String> = all
            .iter()
            .map(|c| c["span_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), all.len(), "{sort}: no call twice");
        assert_eq!(all.len() as u64, total, "{sort}: every call once");
        let key = |c: &serde_json::Value| match sort {
            "slowest" => c["duration_ns"].as_u64().unwrap() as i128,
            "costliest" => c["cost"]["amount"]
                .as_str()
                .map(|a| {
                    (Decimal::from_str(a).unwrap() * Decimal::from(1_000_000_000_000i64)).mantissa()
                        / 10i128.pow(Decimal::from_str(a).unwrap().scale())
                })
                .unwrap_or(0),
            _ => 0,
        };
        if sort == "slowest" || sort == "costliest" {
            let keys: Vec<i128> = all.iter().map(key).collect();
            if sort == "slowest" {
                assert!(keys.windows(2).all(|w| w[0] >= w[1]), "{sort} descending");
            }
        } else {
            let times: Vec<&str> = all.iter().map(|c| c["time"].as_str().unwrap()).collect();
            let ok = if sort == "newest" {
                times.windows(2).all(|w| w[0] >= w[1])
            } else {
                times.windows(2).all(|w| w[0] <= w[1])
            };
            assert!(ok, "{sort} ordered by time");
        }
    }
    // Filters narrow, and the next link keeps them.
    let j = get(&app, "/api/v1/traces?range=30d&tenant=acme&validation=fail")
        .await
        .json();
    let calls = j["calls"].as_array().unwrap();
    assert!(!calls.is_empty());
    assert!(
        calls
            .iter()
            .all(|c| c["tenant"] == "acme" && c["validation"] == "fail")
    );
    if let Some(next) = j["next"].as_str() {
        assert!(
            next.contains("tenant=acme")
                && next.contains("validation=fail")
                && next.contains("cursor=")
        );
    }
    // Text search matches literally: `_` and `%` are not wildcards.
    let j = get(&app, "/api/v1/traces?range=30d&q=_").await.json();
    assert!(
        j["calls"].as_array().unwrap().is_empty(),
        "`_` matched as a wildcard"
    );
    let j = get(&app, "/api/v1/traces?range=30d&q=GREW%2012%25")
        .await
        .json();
    let calls = j["calls"].as_array().unwrap();
    assert!(
        !calls.is_empty()
            && calls
                .iter()
                .all(|c| c["input_preview"].as_str().unwrap().contains("grew 12%"))
    );
    let j = get(&app, "/api/v1/traces?range=30d&status=error")
        .await
        .json();
    assert!(
        j["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "error")
    );
    let j = get(&app, "/api/v1/traces?range=30d&model=mystery-llm-7b")
        .await
        .json();
    let calls = j["calls"].as_array().unwrap();
    assert!(
        !calls.is_empty()
            && calls
                .iter()
                .all(|c| c["cost"].is_null() && c["cost_text"] == "unpriced"),
        "unpriced is never $0"
    );
    e.store.close().await;
}

#[tokio::test]
async fn htmx_gets_the_results_fragment_with_vary() {
    let e = env(1, 0).await;
    let app = app(&e, &DashboardConfig::default());
    let r = get_with(
        &app,
        "/traces?range=7d&tenant=acme",
        &[("HX-Request", "true")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.body.contains("<html") && !r.body.contains("id=\"filters\""),
        "only the results block"
    );
    assert!(r.body.contains("<table class=\"grid calls\">"));
    assert_eq!(r.headers["vary"], "HX-Request");
    let r = get_with(
        &app,
        "/traces?range=7d",
        &[
            ("HX-Request", "true"),
            ("HX-History-Restore-Request", "true"),
        ],
    )
    .await;
    assert!(
        r.body.contains("<html"),
        "a history restore needs the whole page"
    );
    let r = get_with(
        &app,
        &format!("/traces/{}/spans/{}", seed::XSS_TRACE, seed::XSS_SPAN),
        &[("HX-Request", "true")],
    )
    .await;
    assert!(!r.body.contains("<html") && r.body.contains("span-detail"));
    assert_eq!(r.headers["vary"], "HX-Request");
    e.store.close().await;
}

#[tokio::test]
async fn a_two_thousand_span_trace_renders_whole_and_fast() {
    let e = env(1, 2000).await;
    let app = app(&e, &DashboardConfig::default());
    let _warm = get(&app, &format!("/api/v1/traces/{}", seed::BIG_TRACE)).await;
    let t = std::time::Instant::now();
    let r = get(&app, &format!("/traces/{}", seed::BIG_TRACE)).await;
    let took = t.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.matches("<details class=\"span").count(), 2000);
    assert!(
        r.body.contains("class=\"span d2"),
        "nested spans are indented: {}",
        &r.body[r.body.find("<details").unwrap()..][..1500]
    );
    assert!(
        took < std::time::Duration::from_secs(3),
        "trace page took {took:?}"
    );
    let j = get(&app, &format!("/api/v1/traces/{}", seed::BIG_TRACE))
        .await
        .json();
    assert_eq!(j["span_count"], 2000);
    assert_eq!(j["spans"][0]["depth"], 0);
    e.store.close().await;
}

#[tokio::test]
async fn drift_marks_the_model_change_and_lists_failure_reasons() {
    let e = env(4, 0).await;
    let app = app(&e, &DashboardConfig::default());
    let j = get(&app, "/api/v1/drift?tenant=acme&days=14").await.json();
    let s = &j["series"][0];
    assert_eq!(s["tenant"], "acme");
    assert_eq!(s["name"], "json_schema");
    let changes = s["model_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["response_model"], "gpt-4o-2024-11-20");
    let points = s["points"].as_array().unwrap();
    let rate = |p: &serde_json::Value| p["rate"].as_f64();
    let early: Vec<f64> = points[..8].iter().filter_map(rate).collect();
    let late: Vec<f64> = points[points.len() - 3..].iter().filter_map(rate).collect();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    assert!(
        avg(&late) > avg(&early) + 0.15,
        "failure spike after the change: {early:?} → {late:?}"
    );
    assert!(
        j["reasons"][0]["explanation"]
            .as_str()
            .unwrap()
            .contains("missing required property")
    );
    let html = get(&app, "/drift?tenant=acme").await.body;
    assert!(
        html.contains("→ gpt-4o-2024-11-20"),
        "annotation on the chart"
    );
    e.store.close().await;
}

#[tokio::test]
async fn tenant_scope_and_budgets_are_enforced_in_the_query_layer() {
    let e = env(2, 0).await;
    let mut cfg = DashboardConfig {
        tenants: vec!["globex".into()],
        ..Default::default()
    };
    cfg.budgets.insert("globex".into(), "0.01".into());
    cfg.budgets.insert("acme".into(), "1000".into());
    let app = app(&e, &cfg);
    let j = get(&app, "/api/v1/cost").await.json();
    let keys: Vec<&str> = j["sections"][0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["globex"]);
    let budgets = j["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 1, "budgets of other tenants are not shown");
    assert_eq!(budgets[0]["budget"]["amount"], "0.01");
    let html = get(&app, "/cost").await.body;
    assert!(html.contains("over budget") == budgets[0]["over"].as_bool().unwrap());
    // acme's trace exists but is out of scope: not found, and not in lists
    assert_eq!(
        get(&app, &format!("/traces/{}", seed::XSS_TRACE))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let j = get(&app, "/api/v1/traces?range=30d&tenant=acme")
        .await
        .json();
    assert!(j["calls"].as_array().unwrap().is_empty());
    let j = get(&app, "/api/v1/traces?range=30d").await.json();
    assert!(
        j["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["tenant"] == "globex")
    );
    e.store.close().await;
}

#[tokio::test]
async fn alerts_show_what_the_evaluator_decided_and_whether_it_runs() {
    let e = empty_env().await;
    let app = app(&e, &DashboardConfig::default());
    assert!(
        get(&app, "/alerts")
            .await
            .body
            .contains("Alerts are not configured")
    );
    e.store
        .execute(
            "INSERT INTO loupe.alert_events VALUES
             (now64(3) - INTERVAL 2 HOUR, 'validation-spike', 'validation', 'acme', 'gpt-4o json_schema', 'firing', 'critical', '<script>alert(1)</script> failures 38%', 0.38, 0.05, concat('/drift', char(63), 'tenant=acme'), now() - INTERVAL 2 HOUR),
             (now64(3) - INTERVAL 1 HOUR, 'budget', 'budget', 'globex', 'month', 'firing', 'warning', 'over budget', 1.2, 1.0, 'javascript:alert(2)', now() - INTERVAL 1 HOUR),
             (now64(3) - INTERVAL 30 MINUTE, 'budget', 'budget', 'globex', 'month', 'resolved', 'warning', 'back under budget', 0.9, 1.0, concat('/cost', char(63), 'tenant=globex'), now() - INTERVAL 1 HOUR)",
        )
        .await
        .unwrap();
    e.store
        .execute("INSERT INTO loupe.alert_heartbeats VALUES (now64(3), 'a1')")
        .await
        .unwrap();
    let j = get(&app, "/api/v1/alerts").await.json();
    assert_eq!(j["evaluator_running"], true);
    let firing = j["firing"].as_array().unwrap();
    assert_eq!(firing.len(), 1, "the budget alert resolved: {firing:?}");
    assert_eq!(firing[0]["rule"], "validation-spike");
    assert_eq!(j["history"].as_array().unwrap().len(), 3);
    let html = get(&app, "/alerts").await.body;
    assert!(html.contains("Firing now") && html.contains("href=\"/drift?tenant=acme\""));
    assert!(
        !html.contains("<script>alert") && !html.contains("javascript:"),
        "summary escaped, unsafe link dropped"
    );
    // Filters: by rule, tenant and state.
    let j = get(&app, "/api/v1/alerts?state=resolved").await.json();
    assert!(j["firing"].as_array().unwrap().is_empty());
    let h = j["history"].as_array().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["summary"], "back under budget");
    let j = get(&app, "/api/v1/alerts?tenant=acme").await.json();
    assert!(
        j["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "acme")
    );
    assert_eq!(
        j["tenants"].as_array().unwrap().len(),
        2,
        "choices keep every tenant"
    );
    let j = get(&app, "/api/v1/alerts?rule=budget&state=firing")
        .await
        .json();
    assert_eq!(j["history"].as_array().unwrap().len(), 1);
    assert!(j["firing"].as_array().unwrap().is_empty());
    assert_eq!(
        get(&app, "/alerts?state=maybe").await.status,
        StatusCode::BAD_REQUEST
    );
    let scoped = dashboard::app(
        dashboard::state(
            &DashboardConfig {
                tenants: vec!["globex".into()],
                ..Default::default()
            },
            &e.store,
        )
        .unwrap(),
    );
    let j = get(&scoped, "/api/v1/alerts").await.json();
    assert!(
        j["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "globex")
    );
    e.store.close().await;
}
