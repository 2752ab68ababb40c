//! Canned upstream replies: completions, errors in every shape providers use, SSE streams, delays
//! and dropped connections.

use std::time::Duration;

use serde_json::{json, Value};

/// What the mock sends back for one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
    /// Waited before answering (the "slow upstream").
    pub delay: Duration,
}

/// The body of a [`Reply`].
#[derive(Debug, Clone)]
pub enum ReplyBody {
    Json(Value),
    /// Sent verbatim (HTML error pages, garbage, plain-text errors).
    Text(String),
    /// Server-sent events: complete frames (`"data: ...\n\n"`), `gap` apart; with `abort` the
    /// connection breaks after the last frame instead of ending cleanly.
    Sse {
        frames: Vec<String>,
        gap: Duration,
        abort: bool,
    },
    /// The connection is dropped without any response (a reset, as seen by the client).
    Reset,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(body),
            delay: Duration::ZERO,
        }
    }

    /// A verbatim text reply.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: ReplyBody::Text(body.into()),
            delay: Duration::ZERO,
        }
    }

    /// A 200 chat completion whose assistant message says `text`.
    pub fn chat(text: &str) -> Self {
        Self::json(
            200,
            completion(json!({"role": "assistant", "content": text}), "stop"),
        )
    }

    /// A 200 chat completion with an arbitrary assistant `message` object.
    pub fn chat_message(message: Value) -> Self {
        let finish = if message.get("tool_calls").is_some() {
            "tool_calls"
        } else {
            "stop"
        };
        Self::json(200, completion(message, finish))
    }

    /// A 200 completion calling the tool `name` with `arguments` (serialised into the string the
    /// wire format uses), with optional `reasoning_content` as thinking models send.
    pub fn tool_call(name: &str, arguments: Value, reasoning: Option<&str>) -> Self {
        let mut msg = json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{"id": "call_0", "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}}]
        });
        if let Some(r) = reasoning {
            msg["reasoning_content"] = json!(r);
        }
        Self::chat_message(msg)
    }

    /// The OpenAI error shape: `{"error":{"message","type","param","code"}}`.
    pub fn error(status: u16, message: &str) -> Self {
        let kind = match status {
            429 => "rate_limit_exceeded",
            401 => "invalid_request_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        };
        Self::json(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        )
    }

    /// A flat error: `{"error":"msg"}`.
    pub fn flat_error(status: u16, message: &str) -> Self {
        Self::json(status, json!({"error": message}))
    }

    /// Gemini's compatibility-layer error: a JSON array `[{"error":{code,message,status}}]`.
    pub fn gemini_error(status: u16, message: &str) -> Self {
        let symbolic = match status {
            400 => "INVALID_ARGUMENT",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        Self::json(
            status,
            json!([{"error": {"code": status, "message": message, "status": symbolic}}]),
        )
    }

    /// A 500 with an OpenAI-shaped body.
    pub fn server_error() -> Self {
        Self::error(500, "mock internal error")
    }

    /// A 429 with `Retry-After: <retry_after>` (seconds or an HTTP date).
    pub fn rate_limited(retry_after: &str) -> Self {
        Self::error(429, "mock rate limit").with_header("retry-after", retry_after)
    }

    /// 200 with a body that is not JSON.
    pub fn garbage() -> Self {
        Self::text(200, "this is {not json").with_header("content-type", "application/json")
    }

    /// Drops the connection without answering.
    pub fn reset() -> Self {
        Self {
            status: 0,
            headers: Vec::new(),
            body: ReplyBody::Reset,
            delay: Duration::ZERO,
        }
    }

    /// An SSE stream of content deltas, one per part, then a finish chunk and `[DONE]`.
    pub fn stream(parts: &[&str]) -> Self {
        let mut frames = vec![frame(&chunk(
            json!({"role": "assistant", "content": ""}),
            None,
        ))];
        frames.extend(
            parts
                .iter()
                .map(|p| frame(&chunk(json!({"content": p}), None))),
        );
        frames.push(frame(&chunk(json!({}), Some("stop"))));
        frames.push("data: [DONE]\n\n".into());
        Self::sse(frames)
    }

    /// An SSE stream that sends `parts` and then an error event in the OpenAI shape.
    pub fn stream_then_error(parts: &[&str], message: &str) -> Self {
        let mut frames: Vec<String> = parts
            .iter()
            .map(|p| frame(&chunk(json!({"content": p}), None)))
            .collect();
        frames.push(frame(
            &json!({"error": {"message": message, "type": "server_error", "code": null}}),
        ));
        Self::sse(frames)
    }

    /// An SSE reply from complete raw frames.
    pub fn sse(frames: Vec<String>) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into()),
            ],
            body: ReplyBody::Sse {
                frames,
                gap: Duration::ZERO,
                abort: false,
            },
            delay: Duration::ZERO,
        }
    }

    /// Waits `delay` before answering.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// For SSE replies: waits `gap` between frames.
    pub fn with_gap(mut self, gap: Duration) -> Self {
        if let ReplyBody::Sse { gap: g, .. } = &mut self.body {
            *g = gap;
        }
        self
    }

    /// For SSE replies: breaks the connection after the frames instead of ending cleanly (a
    /// trailing `[DONE]` frame is removed, so the client sees a stream cut short).
    pub fn aborted(mut self) -> Self {
        if let ReplyBody::Sse { abort, frames, .. } = &mut self.body {
            *abort = true;
            if frames.last().is_some_and(|f| f.trim() == "data: [DONE]") {
                frames.pop();
            }
        }
        self
    }
}

/// A chat-completion body around one assistant message.
pub fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": "mock-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": null}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

/// A `chat.completion.chunk` body with one choice.
pub fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000u64,
        "model": "mock-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    })
}

/// One SSE `data:` frame.
pub fn frame(data: &Value) -> String {
    format!("data: {data}\n\n")
}
