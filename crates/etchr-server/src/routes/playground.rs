//! The playground and trace viewer: a small static web page at `/` (assets under
//! `/playground/`), embedded in the binary so it works offline and needs no build step.
//!
//! The page only talks to this server's own JSON API (`/v1/reason`, `/v1/edit`), so it is served
//! with a strict Content-Security-Policy: scripts, styles and connections from this origin only;
//! images also from `data:` (the API returns edited images as data URLs) and `blob:` (local
//! files opened in the viewer). It is not part of the OpenAPI document, which describes the JSON
//! API only.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;

/// The policy every playground response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
    etag: &'static str,
}

/// FNV-1a, 64 bits: a content hash for ETags and cache-busting query strings, computed at
/// compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// `"<16 hex digits>"` (quotes included, as an ETag is written), at compile time.
const fn etag(hash: u64) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../../assets/playground/", $name));
        const TAG: [u8; 18] = etag(fnv1a(BODY));
        Asset {
            name: $name,
            mime: $mime,
            body: BODY,
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => panic!("hex is ASCII"),
            },
        }
    }};
}

static ASSETS: [Asset; 4] = [
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("index.html", "text/html; charset=utf-8"),
];

const INDEX_HTML: &str = include_str!("../../assets/playground/index.html");

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `index.html` with every asset reference versioned by its content hash (`app.js?v=<hash>`),
/// so the assets can be cached for a year and a new binary still loads its own.
fn index_page() -> &'static (String, String) {
    static PAGE: OnceLock<(String, String)> = OnceLock::new();
    PAGE.get_or_init(|| {
        let mut html = INDEX_HTML.to_string();
        for a in ASSETS.iter().filter(|a| a.name != "index.html") {
            let from = format!("/playground/{}\"", a.name);
            let to = format!("/playground/{}?v={}\"", a.name, a.etag.trim_matches('"'));
            html = html.replace(&from, &to);
        }
        let tag = std::str::from_utf8(&etag(fnv1a(html.as_bytes())))
            .expect("hex is ASCII")
            .to_string();
        (html, tag)
    })
}

/// The playground's routes: `GET /` and `GET /playground/{file}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/playground", get(index))
        .route("/playground/", get(index))
        .route("/playground/{file}", get(asset))
}

/// The playground page.
pub async fn index(headers: HeaderMap) -> Response {
    let (html, tag) = index_page();
    respond(
        &headers,
        "text/html; charset=utf-8",
        html.as_bytes(),
        tag,
        "no-cache",
    )
}

/// One of the page's embedded assets.
pub async fn asset(
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let a = find(&file)
        .ok_or_else(|| ApiError::NotFound(format!("no playground asset named {file:?}")))?;
    if a.name == "index.html" {
        return Ok(index(headers).await);
    }
    // A URL versioned with this build's hash (as the page links them) never changes; anything
    // else is revalidated (cheaply: the ETag answers 304).
    let versioned = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.strip_prefix("v=") == Some(a.etag.trim_matches('"')))
    });
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(respond(&headers, a.mime, a.body, a.etag, cache))
}

fn respond(
    req: &HeaderMap,
    mime: &'static str,
    body: &'static [u8],
    tag: &str,
    cache: &'static str,
) -> Response {
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, mime)], body).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_quoted_etag() {
        for a in &ASSETS {
            assert_eq!(a.etag.len(), 18);
            assert!(a.etag.starts_with('"') && a.etag.ends_with('"'));
        }
        assert_ne!(ASSETS[0].etag, ASSETS[1].etag);
    }

    #[test]
    fn the_index_links_versioned_assets() {
        let (html, _) = index_page();
        let js = find("app.js").unwrap();
        assert!(
            html.contains(&format!(
                "/playground/app.js?v={}",
                js.etag.trim_matches('"')
            )),
            "{html}"
        );
        assert!(html.contains("/playground/style.css?v="));
    }
}
