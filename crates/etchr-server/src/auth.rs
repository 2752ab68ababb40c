//! Client authentication (API keys) and per-key rate limits.
//!
//! Keys are compared in constant time: each configured key is stored as its SHA-256 digest,
//! the presented key is hashed the same way and compared against *every* digest with
//! `subtle`, so neither the position of a matching key nor the length or prefix of a wrong
//! one shows in the timing. The keys themselves are never logged.

use crate::config::SecurityConfig;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The configured keys and one token bucket per key.
pub struct ClientAuth {
    digests: Vec<[u8; 32]>,
    limiters: Vec<DefaultDirectRateLimiter>,
    clock: DefaultClock,
}

/// Why a request was refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// No key, or not one of ours.
    Unauthorized,
    /// The key is over its rate; retry after this long.
    RateLimited(Duration),
}

impl ClientAuth {
    /// The authenticator for `cfg`, or `None` when no keys are configured (open access).
    pub fn from_config(cfg: &SecurityConfig) -> Option<Self> {
        if cfg.api_keys.is_empty() {
            return None;
        }
        let quota = NonZeroU32::new(cfg.rate_limit_per_minute).map(|rate| {
            let burst = NonZeroU32::new(cfg.rate_limit_burst).unwrap_or(rate);
            Quota::per_minute(rate).allow_burst(burst)
        });
        Some(Self {
            digests: cfg.api_keys.iter().map(|k| digest(k.trim())).collect(),
            limiters: match quota {
                Some(q) => cfg
                    .api_keys
                    .iter()
                    .map(|_| RateLimiter::direct(q))
                    .collect(),
                None => Vec::new(),
            },
            clock: DefaultClock::default(),
        })
    }

    /// Checks a presented key (from `Authorization: Bearer` or `x-api-key`) and takes one
    /// token from its bucket.
    pub fn check(&self, presented: Option<&str>) -> Result<(), Refusal> {
        let presented = presented.ok_or(Refusal::Unauthorized)?;
        let d = digest(presented);
        let mut found: Option<usize> = None;
        for (i, known) in self.digests.iter().enumerate() {
            // Every digest is compared; only the bookkeeping branches.
            if bool::from(known.ct_eq(&d)) && found.is_none() {
                found = Some(i);
            }
        }
        let index = found.ok_or(Refusal::Unauthorized)?;
        if let Some(limiter) = self.limiters.get(index) {
            if let Err(not_until) = limiter.check() {
                return Err(Refusal::RateLimited(
                    not_until.wait_time_from(self.clock.now()),
                ));
            }
        }
        Ok(())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: `Authorization: Bearer KEY`, else `x-api-key: KEY`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty());
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

/// The token `GET /metrics` requires (`security.metrics_token`), kept as its digest and
/// checked in constant time like the client keys.
#[derive(Clone)]
pub struct MetricsToken([u8; 32]);

impl MetricsToken {
    /// The token of `cfg`, or `None` when none is set (`/metrics` is open).
    pub fn from_config(cfg: &SecurityConfig) -> Option<Self> {
        let token = cfg.metrics_token.trim();
        (!token.is_empty()).then(|| Self(digest(token)))
    }

    /// Whether `presented` is the token.
    pub fn admits(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(digest(p).ct_eq(&self.0)))
    }
}

/// Routes anyone may call: probes, metrics (unless a metrics token is set) and the
/// playground's static files (the playground's own API calls carry a key like any client's).
fn is_public(path: &str) -> bool {
    matches!(path, "/" | "/healthz" | "/readyz" | "/metrics") || path.starts_with("/playground/")
}

/// Middleware: refuses `/metrics` without the metrics token when one is set, and API requests
/// without a valid key (401) or over their key's rate (429).
pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/metrics" {
        if let Some(token) = &state.metrics_token {
            if !token.admits(presented_key(req.headers())) {
                state.metrics.record_auth_refusal("unauthorized");
                return ApiError::Unauthorized(
                    "missing or invalid metrics token: send `Authorization: Bearer <token>` \
                     (security.metrics_token)"
                        .into(),
                )
                .into_response();
            }
        }
    }
    let Some(auth) = state.auth.as_deref() else {
        return next.run(req).await;
    };
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    match auth.check(presented_key(req.headers())) {
        Ok(()) => next.run(req).await,
        Err(Refusal::Unauthorized) => {
            state.metrics.record_auth_refusal("unauthorized");
            ApiError::Unauthorized(
                "missing or invalid API key: send `Authorization: Bearer <key>`".into(),
            )
            .into_response()
        }
        Err(Refusal::RateLimited(wait)) => {
            state.metrics.record_auth_refusal("rate_limited");
            ApiError::RateLimited {
                message: "this API key is over its rate limit; retry later".into(),
                retry_after: wait,
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn cfg(keys: &[&str], per_minute: u32, burst: u32) -> SecurityConfig {
        SecurityConfig {
            api_keys: keys.iter().map(|k| k.to_string()).collect(),
            rate_limit_per_minute: per_minute,
            rate_limit_burst: burst,
            metrics_token: String::new(),
        }
    }

    #[test]
    fn no_keys_means_open_access() {
        assert!(ClientAuth::from_config(&cfg(&[], 10, 0)).is_none());
    }

    #[test]
    fn only_configured_keys_pass() {
        let auth = ClientAuth::from_config(&cfg(&["k-one", "k-two"], 0, 0)).unwrap();
        assert_eq!(auth.check(Some("k-one")), Ok(()));
        assert_eq!(auth.check(Some("k-two")), Ok(()));
        for wrong in ["k-on", "k-one ", "K-ONE", "", "k-three"] {
            assert_eq!(
                auth.check(Some(wrong)),
                Err(Refusal::Unauthorized),
                "{wrong:?}"
            );
        }
        assert_eq!(auth.check(None), Err(Refusal::Unauthorized));
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let auth = ClientAuth::from_config(&cfg(&["a", "b"], 60, 2)).unwrap();
        assert_eq!(auth.check(Some("a")), Ok(()));
        assert_eq!(auth.check(Some("a")), Ok(()));
        match auth.check(Some("a")) {
            Err(Refusal::RateLimited(wait)) => {
                assert!(wait <= Duration::from_secs(1), "{wait:?}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        // Another key is unaffected.
        assert_eq!(auth.check(Some("b")), Ok(()));
    }

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", HeaderValue::from_static(" k2 "));
        assert_eq!(presented_key(&h), Some("k2"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer k1"));
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h), Some("k2"));
    }

    #[test]
    fn probes_and_static_files_are_public() {
        for p in ["/healthz", "/readyz", "/metrics", "/", "/playground/app.js"] {
            assert!(is_public(p), "{p}");
        }
        for p in [
            "/v1/edit",
            "/v1/reason",
            "/v1/chat/completions",
            "/v1/models",
            "/x",
        ] {
            assert!(!is_public(p), "{p}");
        }
    }
}
