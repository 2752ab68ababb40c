//! One error type for everything that can go wrong talking to an upstream.
//!
//! Providers disagree on error bodies: OpenAI and vLLM nest `{"error":{"message","type","code"}}`,
//! some proxies send `{"error":"msg"}` or `{"message":...}`, Gemini's compatibility layer sometimes
//! sends a JSON *array* `[{"error":{...}}]`, and gateways in front of all of them send HTML or plain
//! text. [`UpstreamError::from_response`] folds all of these into one shape so that the retry logic,
//! the fallback chain and the server's error mapping each have a single thing to look at.

use std::time::Duration;

use serde_json::Value;

/// What kind of failure this is; decides retrying and fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The upstream answered with an error status (see `status`).
    Api,
    /// 429: rate limited or over quota.
    RateLimited,
    /// 401/403: the key was missing or refused.
    Auth,
    /// One attempt ran past the per-call timeout (another attempt may still fit in the deadline).
    Timeout,
    /// The request's overall deadline passed; nothing more will be tried.
    DeadlineExceeded,
    /// The connection failed or was reset before a complete response arrived.
    Connect,
    /// The upstream answered 2xx with a body that is not a chat completion.
    Decode,
    /// A streaming response failed part-way (an error event or a broken stream).
    Stream,
    /// The request cannot be sent as it is (an image that cannot be fitted, a bad URL, ...).
    InvalidRequest,
    /// An image must be re-encoded to fit the upstream but is larger than the sidecar decodes
    /// (its `DecodeLimits`): refused from its header, before any pixel is allocated.
    ImageTooLarge,
    /// The upstream is misconfigured (no key, bad base URL, ...).
    Config,
}

/// A normalised upstream failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct UpstreamError {
    pub kind: ErrorKind,
    /// The HTTP status the upstream answered with, if it answered.
    pub status: Option<u16>,
    pub message: String,
    /// The provider's error `type` (e.g. `invalid_request_error`), or Gemini's `status`.
    pub error_type: Option<String>,
    /// The provider's error `code`, as a string whatever its JSON type.
    pub code: Option<String>,
    /// How long the upstream asked us to wait (`Retry-After` / `retry-after-ms`).
    pub retry_after: Option<Duration>,
    /// Which upstream failed (its configured name), once known.
    pub upstream: Option<String>,
}

impl UpstreamError {
    /// An error of `kind` with `message` and nothing else.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            message: message.into(),
            error_type: None,
            code: None,
            retry_after: None,
            upstream: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn deadline() -> Self {
        Self::new(
            ErrorKind::DeadlineExceeded,
            "the request deadline passed before the upstream answered",
        )
    }

    /// Tags the error with the upstream's name (kept if already set by an inner layer).
    pub fn with_upstream(mut self, name: &str) -> Self {
        if self.upstream.is_none() {
            self.upstream = Some(name.to_string());
        }
        self
    }

    /// Builds the error for a non-2xx response from its status, body and `Retry-After`.
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let kind = match status {
            429 => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Auth,
            _ => ErrorKind::Api,
        };
        let mut err = Self::new(kind, String::new());
        err.status = Some(status);
        err.retry_after = retry_after;
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => err.fill_from_json(&v),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                err.message = truncate(text.trim(), 500);
            }
        }
        if err.message.is_empty() {
            err.message = format!("upstream answered HTTP {status} with no message");
        }
        err
    }

    /// Reads message/type/code out of any of the known JSON error shapes.
    fn fill_from_json(&mut self, v: &Value) {
        // Gemini: `[{"error": {...}}]` -- look at the first element.
        let v = match v {
            Value::Array(items) => match items.first() {
                Some(first) => first,
                None => return,
            },
            other => other,
        };
        let inner = match v.get("error") {
            Some(Value::String(s)) => {
                self.message = s.clone();
                return;
            }
            Some(obj @ Value::Object(_)) => obj,
            _ => v,
        };
        let str_of = |key: &str| match inner.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        self.message = str_of("message")
            .or_else(|| str_of("detail"))
            .or_else(|| str_of("msg"))
            .unwrap_or_else(|| truncate(&v.to_string(), 500));
        // Gemini puts the symbolic status in `status` and the numeric one in `code`.
        self.error_type = str_of("type").or_else(|| str_of("status"));
        self.code = str_of("code");
    }

    /// Whether the same request to the same upstream may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Connect => true,
            ErrorKind::Api => matches!(self.status, Some(408 | 409 | 425 | 500..=599)),
            _ => false,
        }
    }

    /// Whether a different upstream is worth trying. Beyond the retryable cases this includes
    /// failures that are about *this* upstream (its key, its model list, a garbled body), but not
    /// the request's own faults (400/413/422) nor a passed deadline.
    pub fn should_fall_back(&self) -> bool {
        match self.kind {
            ErrorKind::DeadlineExceeded | ErrorKind::InvalidRequest | ErrorKind::ImageTooLarge => {
                false
            }
            ErrorKind::Auth | ErrorKind::Decode | ErrorKind::Stream | ErrorKind::Config => true,
            ErrorKind::Api => self.is_retryable() || matches!(self.status, Some(404)),
            _ => self.is_retryable(),
        }
    }

    fn describe(&self) -> String {
        let mut s = String::from("upstream");
        if let Some(name) = &self.upstream {
            s.push_str(&format!(" `{name}`"));
        }
        match self.status {
            Some(status) => s.push_str(&format!(" answered HTTP {status}")),
            None => s.push_str(&format!(" failed ({:?})", self.kind)),
        }
        if let Some(code) = self.code.as_ref().or(self.error_type.as_ref()) {
            s.push_str(&format!(" [{code}]"));
        }
        s.push_str(": ");
        s.push_str(&self.message);
        s
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Maps a reqwest transport error (no HTTP status) onto a kind.
pub(crate) fn from_reqwest(e: reqwest::Error) -> UpstreamError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_builder() {
        ErrorKind::Config
    } else if e.is_decode() {
        ErrorKind::Decode
    } else {
        // connect, request, body: the connection broke before a whole answer arrived.
        ErrorKind::Connect
    };
    // The URL is not secret for most providers, but some put keys in query strings: leave it out.
    UpstreamError::new(kind, error_chain(&e.without_url()))
}

/// reqwest's top-level message is terse ("error sending request"); the cause chain says why.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_error_string() {
        let e = UpstreamError::from_response(400, br#"{"error":"model not loaded"}"#, None);
        assert_eq!(e.kind, ErrorKind::Api);
        assert_eq!(e.status, Some(400));
        assert_eq!(e.message, "model not loaded");
        assert!(!e.is_retryable());
        assert!(!e.should_fall_back());
    }

    #[test]
    fn nested_openai_error() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let e = UpstreamError::from_response(429, body, Some(Duration::from_secs(2)));
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.message, "Rate limit reached");
        assert_eq!(e.error_type.as_deref(), Some("requests"));
        assert_eq!(e.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        assert!(e.is_retryable());
        let shown = e.to_string();
        assert!(
            shown.contains("429") && shown.contains("Rate limit reached"),
            "{shown}"
        );
    }

    #[test]
    fn gemini_array_error() {
        let body = br#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
        let e = UpstreamError::from_response(503, body, None);
        assert_eq!(e.message, "The model is overloaded.");
        assert_eq!(e.error_type.as_deref(), Some("UNAVAILABLE"));
        assert_eq!(e.code.as_deref(), Some("503"));
        assert!(e.is_retryable());
    }

    #[test]
    fn plain_text_and_empty_bodies() {
        let e = UpstreamError::from_response(502, b"<html>Bad Gateway</html>\n", None);
        assert_eq!(e.message, "<html>Bad Gateway</html>");
        assert!(e.is_retryable());
        let e = UpstreamError::from_response(500, b"", None);
        assert!(e.message.contains("500"));
        let e = UpstreamError::from_response(500, "x".repeat(2000).as_bytes(), None);
        assert!(e.message.len() < 600);
    }

    #[test]
    fn other_json_shapes() {
        let e =
            UpstreamError::from_response(422, br#"{"detail":"bad field","object":"error"}"#, None);
        assert_eq!(e.message, "bad field");
        let e = UpstreamError::from_response(
            400,
            br#"{"object":"error","message":"too long","type":"BadRequestError","code":400}"#,
            None,
        );
        assert_eq!(e.message, "too long");
        assert_eq!(e.code.as_deref(), Some("400"));
    }

    #[test]
    fn kinds_decide_retry_and_fallback() {
        let auth = UpstreamError::from_response(401, br#"{"error":{"message":"bad key"}}"#, None);
        assert_eq!(auth.kind, ErrorKind::Auth);
        assert!(!auth.is_retryable() && auth.should_fall_back());
        assert!(UpstreamError::from_response(404, b"", None).should_fall_back());
        assert!(!UpstreamError::deadline().should_fall_back());
        assert!(UpstreamError::new(ErrorKind::Connect, "reset").is_retryable());
    }
}
