//! The playground page and its embedded assets, through the whole middleware stack
//! (`tower::ServiceExt::oneshot`). The page's behaviour in a browser is tested end to end by
//! `tests/playground_e2e.rs` at the workspace root.

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use etchr_server::routes::playground::CONTENT_SECURITY_POLICY;
use etchr_server::{router, AppState, Config};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn app() -> Router {
    router(AppState::new(Config::default()))
}

async fn get(path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

fn text(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(&name)
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_root_serves_the_playground_with_a_strict_csp() {
    let (status, h, body) = get("/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&h, header::CONTENT_TYPE), "text/html; charset=utf-8");
    let csp = text(&h, header::CONTENT_SECURITY_POLICY);
    assert_eq!(csp, CONTENT_SECURITY_POLICY);
    // Same origin only: no remote script, style or connection source, no inline script.
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains("http")
    );
    assert_eq!(text(&h, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(text(&h, header::CACHE_CONTROL), "no-cache");
    assert!(h.contains_key(header::ETAG));

    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<title>ETCHR playground</title>"));
    // Offline: nothing is loaded from anywhere but this server.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
    assert!(!html.contains("<script>"), "no inline scripts");
    assert!(
        html.contains(r#"<script src="/playground/app.js?v="#),
        "{html}"
    );
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_cached_when_versioned() {
    let (_, _, body) = get("/", &[]).await;
    let html = String::from_utf8(body.to_vec()).unwrap();
    let js_url = html
        .split('"')
        .find(|s| s.starts_with("/playground/app.js?v="))
        .expect("the page links a versioned app.js")
        .to_string();

    let (status, h, js) = get(&js_url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        text(&h, header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        text(&h, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
    let js = String::from_utf8(js.to_vec()).unwrap();
    assert!(js.contains("/v1/reason") && js.contains("/v1/edit"));
    // Only this origin's API: no absolute URLs to fetch from.
    assert!(!js.contains("http://") && !js.contains("https://"));

    // A bare (or stale) URL is revalidated, and the ETag answers 304.
    let (status, h, _) = get("/playground/app.js", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&h, header::CACHE_CONTROL), "no-cache");
    let tag = text(&h, header::ETAG).to_string();
    let (status, h, body) = get("/playground/app.js", &[("if-none-match", &tag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(text(&h, header::ETAG), tag);

    let (status, h, _) = get("/playground/style.css", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&h, header::CONTENT_TYPE), "text/css; charset=utf-8");
    let (status, h, _) = get("/playground/favicon.svg", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&h, header::CONTENT_TYPE), "image/svg+xml");
}

#[tokio::test]
async fn unknown_assets_are_json_404s_and_the_api_is_unchanged() {
    let (status, h, body) = get("/playground/nope.js", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(text(&h, header::CONTENT_TYPE).starts_with("application/json"));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let (status, _, _) = get("/playground/../Cargo.toml", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // POST / is not a page.
    let res = app()
        .oneshot(Request::post("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

    // The JSON API keeps its own headers (no page CSP on it).
    let (status, h, _) = get("/healthz", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!h.contains_key(header::CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn the_page_is_compressed_for_browsers_that_ask() {
    let (status, h, _) = get("/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text(&h, header::CONTENT_ENCODING), "gzip");
    assert!(h.contains_key(header::CONTENT_SECURITY_POLICY));
}
