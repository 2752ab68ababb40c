//! Client API keys and rate limits, image-URL fetching (off by default; allowlist, private
//! addresses, size and time limits) and the bound on concurrent reasoning loops.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use etchr_ops::{encode_image, OutputFormat, RgbImage};
use etchr_server::{router, AppState, Config};
use etchr_testkit::{MockUpstream, Reply, Script};
use etchr_upstream::UpstreamConfig;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;

fn png(w: u32, h: u32) -> Vec<u8> {
    let raw = (0..w * h)
        .flat_map(|i| [(i % 251) as u8, 40, 200])
        .collect();
    encode_image(&RgbImage::from_raw(w, h, raw).unwrap(), OutputFormat::Png).unwrap()
}

fn data_url(w: u32, h: u32) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png(w, h))
    )
}

struct Reply3 {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply3 {
    let mut req = Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let res = router(state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply3 {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn edit_body(image: &str) -> Value {
    json!({"image": image, "ops": [{"op": "crop", "box": [0, 0, 8, 8]}]})
}

fn keyed(tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut cfg = Config::default();
    cfg.security.api_keys = vec!["key-alpha".into(), "key-beta".into()];
    tweak(&mut cfg);
    cfg.validate().unwrap();
    AppState::new(cfg)
}

#[tokio::test]
async fn api_routes_need_a_configured_key() {
    let state = keyed(|_| {});
    let body = edit_body(&data_url(16, 16));
    let r = call(&state, "POST", "/v1/edit", Some(body.clone()), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "invalid_api_key");
    assert!(r.headers.contains_key("www-authenticate"));
    let r = call(
        &state,
        "POST",
        "/v1/edit",
        Some(body.clone()),
        &[("authorization", "Bearer key-gamma")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &state,
        "POST",
        "/v1/edit",
        Some(body.clone()),
        &[("authorization", "Bearer key-alpha")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &state,
        "POST",
        "/v1/edit",
        Some(body),
        &[("x-api-key", "key-beta")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Unknown routes do not reveal themselves to unauthenticated callers.
    assert_eq!(
        call(&state, "GET", "/v1/nope", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Probes, metrics and the playground's page stay open.
    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        assert_eq!(
            call(&state, "GET", path, None, &[]).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let metrics = router(state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("etchr_auth_refused_total{reason=\"unauthorized\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_metrics_token_guards_the_metrics_and_nothing_else() {
    let state = keyed(|c| c.security.metrics_token = "scrape-token".into());
    const TOKEN: &[(&str, &str)] = &[("authorization", "Bearer scrape-token")];
    let metrics = |headers: &'static [(&'static str, &'static str)]| {
        let state = state.clone();
        async move { call(&state, "GET", "/metrics", None, headers).await }
    };
    let r = metrics(&[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "invalid_api_key");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("metrics_token"));
    // A client key is not the metrics token, nor a wrong token.
    assert_eq!(
        metrics(&[("authorization", "Bearer key-alpha")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        metrics(&[("authorization", "Bearer scrape-tokem")])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(metrics(TOKEN).await.status, StatusCode::OK);
    // The token opens no API route; the probes stay open.
    let body = edit_body(&data_url(16, 16));
    let r = call(&state, "POST", "/v1/edit", Some(body), TOKEN).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&state, "GET", "/healthz", None, &[]).await.status,
        StatusCode::OK
    );
    // Without client keys the token still guards the metrics alone.
    let mut cfg = Config::default();
    cfg.security.metrics_token = "scrape-token".into();
    cfg.validate().unwrap();
    let open = AppState::new(cfg);
    assert_eq!(
        call(&open, "GET", "/metrics", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&open, "GET", "/metrics", None, TOKEN).await.status,
        StatusCode::OK
    );
    assert_ne!(
        call(&open, "GET", "/v1/models", None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn each_key_is_rate_limited_on_its_own() {
    let state = keyed(|c| {
        c.security.rate_limit_per_minute = 6;
        c.security.rate_limit_burst = 2;
    });
    let alpha = [("authorization", "Bearer key-alpha")];
    for _ in 0..2 {
        assert_eq!(
            call(&state, "GET", "/v1/models", None, &alpha).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let r = call(&state, "GET", "/v1/models", None, &alpha).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    // The other key still has its whole burst.
    let beta = [("authorization", "Bearer key-beta")];
    assert_ne!(
        call(&state, "GET", "/v1/models", None, &beta).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[test]
fn security_settings_are_validated() {
    let mut cfg = Config::default();
    cfg.security.api_keys = vec!["has space".into()];
    assert!(cfg.validate().is_err());
    let mut cfg = Config::default();
    cfg.security.rate_limit_burst = 3;
    assert!(cfg.validate().is_err(), "a burst without a rate");
    let mut cfg = Config::default();
    cfg.security.api_keys = vec!["k".into()];
    let mut up = UpstreamConfig::from_url("http://127.0.0.1:9/v1", "vllm", None).unwrap();
    up.pass_through_auth = true;
    cfg.upstream = Some(up);
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("pass_through_auth"));
    let mut cfg = Config::default();
    cfg.fetch.enabled = true;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("allowed_hosts"));
    // The short variable for the keys, as a list, even for keys that look like numbers.
    let env = [("ETCHR_API_KEYS".to_string(), "123, abc".to_string())];
    let cfg = Config::load(None, env, &[]).unwrap();
    assert_eq!(cfg.security.api_keys, ["123", "abc"]);
    assert!(
        !format!("{cfg:?}").contains("abc"),
        "keys must not be printed"
    );
    // The metrics token: from the environment, never printed, no whitespace.
    let env = [(
        "ETCHR_SECURITY__METRICS_TOKEN".to_string(),
        "scrape-xyz".to_string(),
    )];
    let cfg = Config::load(None, env, &[]).unwrap();
    assert_eq!(cfg.security.metrics_token, "scrape-xyz");
    assert!(!format!("{cfg:?}").contains("scrape-xyz"));
    assert!(!format!("{:?}", cfg.security).contains("scrape-xyz"));
    let mut cfg = Config::default();
    cfg.security.metrics_token = "two words".into();
    assert!(cfg.validate().is_err());
}

/// A file server for fetch tests: `/cat.png` (a real PNG), `/big.png` (larger than the test
/// limit), `/slow.png` (answers late), `/hop` (redirects to `localhost`).
async fn image_host() -> MockUpstream {
    let cat = png(24, 16);
    MockUpstream::start(
        Script::from_fn(|req| match req.path.as_str() {
            "/slow.png" => Reply::text(200, "late").delayed(Duration::from_secs(3)),
            _ => Reply::text(404, "not found"),
        })
        .with_file("/cat.png", "image/png", cat)
        .with_file("/big.png", "image/png", vec![0u8; 64 * 1024]),
    )
    .await
}

fn fetching(tweak: impl FnOnce(&mut etchr_server::config::FetchConfig)) -> AppState {
    let mut cfg = Config::default();
    cfg.fetch.enabled = true;
    cfg.fetch.allowed_hosts = vec!["127.0.0.1".into()];
    cfg.fetch.allow_private_addresses = true; // the test server is on loopback
    cfg.fetch.max_bytes = 32 * 1024;
    cfg.fetch.timeout_secs = 1.0;
    tweak(&mut cfg.fetch);
    cfg.validate().unwrap();
    AppState::new(cfg)
}

#[tokio::test]
async fn image_urls_are_refused_unless_fetching_is_on() {
    let host = image_host().await;
    let r = call(
        &AppState::new(Config::default()),
        "POST",
        "/v1/edit",
        Some(edit_body(&host.url("/cat.png"))),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], "image_url_not_allowed");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("[fetch]"));
    assert_eq!(host.request_count(), 0, "nothing may be fetched");
}

#[tokio::test]
async fn allowed_urls_are_fetched_within_limits() {
    let host = image_host().await;
    let state = fetching(|_| {});
    let body = json!({"image": host.url("/cat.png"), "ops": []});
    let r = call(&state, "POST", "/v1/edit", Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["width"], &r.body["height"]),
        (&json!(24), &json!(16))
    );

    let r = call(
        &state,
        "POST",
        "/v1/edit",
        Some(edit_body(&host.url("/big.png"))),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    let r = call(
        &state,
        "POST",
        "/v1/edit",
        Some(edit_body(&host.url("/slow.png"))),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "image_fetch_failed");
    let r = call(
        &state,
        "POST",
        "/v1/edit",
        Some(edit_body(&host.url("/missing.png"))),
        &[],
    )
    .await;
    assert_eq!(r.body["error"]["code"], "image_fetch_failed");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("404"));
}

#[tokio::test]
async fn private_addresses_and_other_hosts_are_refused() {
    let host = image_host().await;
    let strict = fetching(|f| f.allow_private_addresses = false);
    let r = call(
        &strict,
        "POST",
        "/v1/edit",
        Some(edit_body(&host.url("/cat.png"))),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], "image_url_not_allowed");
    // `localhost` is a name: it is resolved, and its loopback addresses refused.
    let strict = fetching(|f| {
        f.allow_private_addresses = false;
        f.allowed_hosts = vec!["localhost".into()];
    });
    let url = format!("http://localhost:{}/cat.png", host.addr().port());
    let r = call(&strict, "POST", "/v1/edit", Some(edit_body(&url)), &[]).await;
    assert_eq!(
        r.body["error"]["code"], "image_url_not_allowed",
        "{}",
        r.body
    );
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("private, loopback"));
    // A host off the allowlist is refused before any connection.
    let state = fetching(|_| {});
    let url = format!("http://localhost:{}/cat.png", host.addr().port());
    let r = call(&state, "POST", "/v1/edit", Some(edit_body(&url)), &[]).await;
    assert_eq!(r.body["error"]["code"], "image_url_not_allowed");
    for bad in ["ftp://127.0.0.1/x.png", "file:///etc/passwd"] {
        let r = call(&state, "POST", "/v1/edit", Some(edit_body(bad)), &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(host.request_count(), 0, "nothing may be fetched");
}

#[tokio::test]
async fn redirects_are_checked_like_the_first_url() {
    let host = image_host().await;
    let target = format!("http://localhost:{}/cat.png", host.addr().port());
    // A host on the allowlist that redirects to one that is not.
    let hop = axum::Router::new().route(
        "/hop",
        axum::routing::get(move || async move { axum::response::Redirect::temporary(&target) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hop_url = format!("http://{}/hop", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hop).await });
    let state = fetching(|_| {});
    let r = call(&state, "POST", "/v1/edit", Some(edit_body(&hop_url)), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.body["error"]["code"], "image_url_not_allowed",
        "{}",
        r.body
    );
    assert_eq!(host.request_count(), 0);
}

fn with_upstream(mock: &MockUpstream, tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut cfg = Config::default();
    let mut up = UpstreamConfig::from_url(&mock.base_url(), "vllm", None).unwrap();
    up.model = Some("mock-model".into());
    up.max_retries = 0;
    cfg.upstream = Some(up);
    tweak(&mut cfg);
    AppState::new(cfg)
}

#[tokio::test]
async fn chat_image_urls_are_fetched_for_the_loop() {
    let host = image_host().await;
    let mock = MockUpstream::start(Script::always(Reply::chat("\\boxed{cat}"))).await;
    let state = with_upstream(&mock, |c| {
        c.fetch.enabled = true;
        c.fetch.allowed_hosts = vec!["127.0.0.1".into()];
        c.fetch.allow_private_addresses = true;
    });
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What animal?"},
        {"type": "image_url", "image_url": {"url": host.url("/cat.png")}}
    ]}], "etchr": {"strategy": "progressive", "max_steps": 0}});
    let r = call(&state, "POST", "/v1/chat/completions", Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(host.request_count(), 1);
    let sent = mock.bodies().pop().unwrap().to_string();
    assert!(
        sent.contains("data:image/"),
        "the upstream gets the image inline"
    );
}

#[tokio::test]
async fn loops_beyond_the_bound_get_a_fast_503() {
    let mock = MockUpstream::start(Script::always(
        Reply::chat("\\boxed{slow}").delayed(Duration::from_millis(1500)),
    ))
    .await;
    let state = with_upstream(&mock, |c| c.reason.max_concurrent_loops = 1);
    let body = json!({"image": data_url(32, 32), "question": "q?", "strategy": "progressive", "max_steps": 0});
    let first = {
        let (state, body) = (state.clone(), body.clone());
        tokio::spawn(async move { call(&state, "POST", "/v1/reason", Some(body), &[]).await })
    };
    while state.loops.running() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = call(&state, "POST", "/v1/reason", Some(body.clone()), &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "overloaded");
    assert_eq!(r.headers["retry-after"], "1");
    // Refused at once, not queued behind the running loop.
    assert!(!first.is_finished());
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    assert_eq!(state.loops.running(), 0);
    assert_eq!(
        call(&state, "POST", "/v1/reason", Some(body), &[])
            .await
            .status,
        StatusCode::OK
    );
}
