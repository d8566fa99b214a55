//! Users, roles and tenant isolation through every route, against the real
//! engine: a viewer of one tenant cannot reach another's data by any path,
//! finance sees cost everywhere and no body anywhere, sessions and CSRF.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::http::get_with;
use common::seed;
use dashboard::DashboardConfig;
use dashboard::auth::{AuthConfig, ProxyAuthConfig, Role, UserConfig, hash_password};
use http_body_util::BodyExt;
use tower::ServiceExt;

fn user(name: &str, password: &str, role: Role, tenants: &[&str]) -> UserConfig {
    UserConfig {
        name: name.into(),
        password_hash: hash_password(password).unwrap(),
        role,
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
    }
}

async fn post(
    app: &Router,
    uri: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    (status, headers, body)
}

/// Signs in and returns the `Cookie` header value.
async fn sign_in(app: &Router, name: &str, password: &str) -> String {
    let (status, headers, _) = post(
        app,
        "/login",
        &format!("user={name}&password={password}&next=/cost"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/cost");
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn roles_and_tenants_are_enforced_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::migrated_store(dir.path()).await;
    let spans = seed::build(seed::now_ns(), 2, 0);
    seed::insert(&store, &spans).await;
    let cfg = DashboardConfig {
        auth: AuthConfig {
            users: vec![
                user("ana", "s3cret-ana", Role::Viewer, &["globex"]),
                user("fin", "s3cret-fin", Role::Finance, &[]),
                user("boss", "s3cret-boss", Role::Admin, &[]),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = dashboard::app(dashboard::state(&cfg, &store).unwrap());

    // Nobody signed in: pages redirect, the API and CSV refuse.
    let r = get_with(&app, "/cost", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
    assert_eq!(
        get_with(&app, "/api/v1/cost", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get_with(&app, "/cost.csv", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get_with(&app, "/login", &[]).await.status, StatusCode::OK);
    let (status, headers, _) = post(&app, "/login", "user=ana&password=nope&next=/", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("failed=1")
    );
    assert!(!headers.contains_key(header::SET_COOKIE));

    // The admin loads pages first (filling any caches with every tenant)...
    let boss = sign_in(&app, "boss", "s3cret-boss").await;
    for path in ["/", "/cost", "/traces?range=30d", "/drift"] {
        let r = get_with(&app, path, &[("cookie", boss.as_str())]).await;
        assert!(r.body.contains("acme"), "{path}: the admin sees acme");
    }
    // ...then a viewer of globex: acme is invisible by every route.
    let ana = sign_in(&app, "ana", "s3cret-ana").await;
    let as_ana = [("cookie", ana.as_str())];
    let acme_trace = seed::XSS_TRACE;
    for path in [
        format!("/traces/{acme_trace}"),
        format!("/api/v1/traces/{acme_trace}"),
        format!("/traces/{acme_trace}/spans/{}", seed::XSS_SPAN),
        format!("/api/v1/traces/{acme_trace}/spans/{}", seed::XSS_SPAN),
    ] {
        assert_eq!(
            get_with(&app, &path, &as_ana).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [
        "/api/v1/traces?range=30d&tenant=acme",
        "/api/v1/traces?range=30d",
        "/api/v1/cost",
        "/cost.csv",
        "/api/v1/drift",
        "/api/v1",
        "/api/v1/alerts",
        "/traces?range=30d",
        "/cost",
        "/drift",
        "/",
    ] {
        let r = get_with(&app, path, &as_ana).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            !r.body.contains("acme"),
            "{path} leaks acme: {}",
            &r.body[..r.body.len().min(400)]
        );
    }
    assert!(
        get_with(&app, "/api/v1/cost", &as_ana)
            .await
            .body
            .contains("globex")
    );

    // Finance: cost for every tenant, no traces, drift or bodies anywhere.
    let fin = sign_in(&app, "fin", "s3cret-fin").await;
    let as_fin = [("cookie", fin.as_str())];
    let cost = get_with(&app, "/api/v1/cost", &as_fin).await;
    assert!(cost.body.contains("acme") && cost.body.contains("globex"));
    for path in [
        "/traces",
        "/api/v1/traces?range=30d",
        &format!("/api/v1/traces/{acme_trace}"),
        &format!("/api/v1/traces/{acme_trace}/spans/{}", seed::XSS_SPAN),
        "/drift",
        "/alerts",
    ] {
        assert_eq!(
            get_with(&app, path, &as_fin).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in ["/", "/api/v1", "/cost", "/api/v1/cost", "/cost.csv"] {
        let r = get_with(&app, path, &as_fin).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            !r.body.contains("alert(1)") && !r.body.contains(&seed::XSS_PROMPT[..20]),
            "{path} shows a body"
        );
    }

    // The admin sees acme's trace.
    assert_eq!(
        get_with(
            &app,
            &format!("/api/v1/traces/{acme_trace}"),
            &[("cookie", boss.as_str())]
        )
        .await
        .status,
        StatusCode::OK
    );

    // The nav names the user and carries a sign-out form with the token.
    let account = get_with(&app, "/account", &[("cookie", boss.as_str())])
        .await
        .body;
    assert!(
        account.contains("boss") && account.contains("admin") && account.contains("name=\"csrf\""),
        "{account}"
    );
    // CSRF: a state-changing request needs the session's token.
    let (status, _, _) = post(&app, "/logout", "", &[("cookie", boss.as_str())]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = get_with(&app, "/api/v1/session", &[("cookie", boss.as_str())])
        .await
        .json()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, _) = post(
        &app,
        "/logout",
        &format!("csrf={csrf}"),
        &[("cookie", boss.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        get_with(&app, "/api/v1/cost", &[("cookie", boss.as_str())])
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
    store.close().await;
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_slowed_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::migrated_store(dir.path()).await;
    let cfg = DashboardConfig {
        auth: AuthConfig {
            users: vec![user("ana", "right", Role::Admin, &[])],
            ..Default::default()
        },
        ..Default::default()
    };
    let app = dashboard::app(dashboard::state(&cfg, &store).unwrap());
    for _ in 0..5 {
        let (status, _, _) = post(&app, "/login", "user=ana&password=wrong", &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
    let (status, headers, _) = post(&app, "/login", "user=ana&password=right", &[]).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    store.close().await;
}

#[tokio::test]
async fn a_trusted_proxy_header_identifies_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::migrated_store(dir.path()).await;
    let cfg = DashboardConfig {
        auth: AuthConfig {
            proxy: Some(ProxyAuthConfig {
                user_header: "X-Forwarded-User".into(),
                roles: [("ana@example.com".to_string(), Role::Viewer)].into(),
                tenants: [("ana@example.com".to_string(), vec!["globex".to_string()])].into(),
                default_role: None,
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let app = dashboard::app(dashboard::state(&cfg, &store).unwrap());
    assert_eq!(
        get_with(
            &app,
            "/api/v1/cost",
            &[("x-forwarded-user", "ana@example.com")]
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        get_with(
            &app,
            "/api/v1/cost",
            &[("x-forwarded-user", "mallory@example.com")]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let r = get_with(&app, "/cost", &[]).await;
    for h in [
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
    ] {
        assert!(r.headers.contains_key(h), "{h}");
    }
    store.close().await;
}
