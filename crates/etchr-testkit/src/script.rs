//! What the mock answers, request by request.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;

use crate::reply::Reply;

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
    pub raw: Bytes,
    /// When it arrived (for asserting that a retry waited at least what `Retry-After` said).
    pub at: Instant,
}

impl RecordedRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>;

/// A script: a queue of replies for chat requests, then a fallback (or a closure deciding), plus
/// static files for `GET` (remote images).
#[derive(Clone)]
pub struct Script {
    pub(crate) queue: VecDeque<Reply>,
    pub(crate) otherwise: Option<Reply>,
    pub(crate) handler: Option<Handler>,
    pub(crate) files: HashMap<String, (String, Bytes)>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("queue", &self.queue.len())
            .field("otherwise", &self.otherwise.is_some())
            .field("handler", &self.handler.is_some())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// An empty script: every request gets a 500 saying the script ran out.
    pub fn new() -> Self {
        Self {
            queue: VecDeque::new(),
            otherwise: None,
            handler: None,
            files: HashMap::new(),
        }
    }

    /// The same reply to every request.
    pub fn always(reply: Reply) -> Self {
        Self::new().otherwise(reply)
    }

    /// These replies in order, then 500s.
    pub fn queue(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            queue: replies.into_iter().collect(),
            ..Self::new()
        }
    }

    /// `n` copies of `fault`, then `then` forever: the usual "flaky upstream".
    pub fn faulty(n: usize, fault: Reply, then: Reply) -> Self {
        Self::queue(std::iter::repeat_n(fault, n)).otherwise(then)
    }

    /// A closure from request to reply (used once the queue is empty).
    pub fn from_fn(f: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            handler: Some(Arc::new(f)),
            ..Self::new()
        }
    }

    /// Appends a reply to the queue.
    pub fn then(mut self, reply: Reply) -> Self {
        self.queue.push_back(reply);
        self
    }

    /// The reply once the queue is empty.
    pub fn otherwise(mut self, reply: Reply) -> Self {
        self.otherwise = Some(reply);
        self
    }

    /// Serves `bytes` with `content_type` on `GET path` (e.g. an image for URL-fetch tests).
    pub fn with_file(mut self, path: &str, content_type: &str, bytes: impl Into<Bytes>) -> Self {
        self.files
            .insert(path.to_string(), (content_type.to_string(), bytes.into()));
        self
    }

    /// The next reply for `req`.
    pub(crate) fn next(&mut self, req: &RecordedRequest) -> Reply {
        if let Some(r) = self.queue.pop_front() {
            return r;
        }
        if let Some(h) = &self.handler {
            return h(req);
        }
        self.otherwise
            .clone()
            .unwrap_or_else(|| Reply::error(500, "mock upstream: script exhausted"))
    }
}
