//! Chat-completions wire types.
//!
//! These mirror the OpenAI chat-completions schema closely enough to round-trip what vLLM, DashScope,
//! Gemini, Moonshot and OpenAI send and accept. Every object keeps the fields it does not model in a
//! flattened `extra` map, because providers keep adding fields (`reasoning_content`, `thinking`,
//! `enable_thinking`, `logprobs`, ...) and a sidecar that silently drops them breaks clients.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat-completions request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The upstream model name; an empty string means "use the model from the upstream's config".
    #[serde(default)]
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Everything else (`top_p`, `stop`, `seed`, `stream_options`, provider switches such as
    /// `thinking` or `enable_thinking`) passes through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request with the given messages and every option left to the upstream's defaults.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            ..Self::default()
        }
    }

    /// Whether any message carries an image part.
    pub fn has_images(&self) -> bool {
        self.messages.iter().any(Message::has_images)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

/// One chat message, in a request's history or a response's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    /// Absent (or null) on assistant messages that only call tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The model's thinking (vLLM reasoning parsers, DashScope, Moonshot). Moonshot requires it to be
    /// sent back on assistant tool-call messages while thinking, so it is kept, not dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with plain-text content.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self::with_content(role, Content::Text(text.into()))
    }

    /// A message with arbitrary content.
    pub fn with_content(role: Role, content: Content) -> Self {
        Self {
            role,
            content: Some(content),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            reasoning_content: None,
            extra: Map::new(),
        }
    }

    /// A user message holding one text part and one image part (an `http(s):` or `data:` URL).
    pub fn user_with_image(text: impl Into<String>, image_url: impl Into<String>) -> Self {
        Self::with_content(
            Role::User,
            Content::Parts(vec![
                ContentPart::text(text),
                ContentPart::image_url(image_url),
            ]),
        )
    }

    /// A `tool` message answering the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: Content) -> Self {
        let mut m = Self::with_content(Role::Tool, content);
        m.tool_call_id = Some(tool_call_id.into());
        m
    }

    /// The concatenated text of the message (text parts only).
    pub fn text_content(&self) -> String {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }

    /// Whether the message carries an image part.
    pub fn has_images(&self) -> bool {
        matches!(&self.content, Some(Content::Parts(parts)) if parts.iter().any(|p| matches!(p, ContentPart::ImageUrl { .. })))
    }
}

/// Message content: a plain string or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The concatenated text parts (images and unknown parts skipped).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

/// One part of an array content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    /// Parts this crate does not model (`input_audio`, `video_url`, ...), kept verbatim, `type` included.
    #[serde(untagged)]
    Other(Map<String, Value>),
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    pub fn image_url(url: impl Into<String>) -> Self {
        ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: url.into(),
                detail: None,
                extra: Map::new(),
            },
        }
    }
}

/// The `image_url` object of an image part.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// An `http(s):` URL or a `data:image/...;base64,` URL.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Data URLs run to megabytes; Debug shows their size, not their bytes, so logs stay readable.
impl std::fmt::Debug for ImageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = if self.url.starts_with("data:") {
            let head = self.url.split(',').next().unwrap_or("data:");
            format!("{head},<{} bytes>", self.url.len())
        } else {
            self.url.clone()
        };
        f.debug_struct("ImageUrl")
            .field("url", &url)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

impl Tool {
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            kind: function_type(),
            function: FunctionDef {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                extra: Map::new(),
            },
        }
    }
}

fn function_type() -> String {
    "function".to_string()
}

/// A function tool's declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The function a tool call invokes; `arguments` is a JSON document in a string, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// Token accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A non-streaming chat-completions response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".to_string()
}

impl ChatResponse {
    /// The first choice's message, if any.
    pub fn message(&self) -> Option<&Message> {
        self.choices.first().map(|c| &c.message)
    }

    /// The first choice's text (empty if none).
    pub fn text(&self) -> String {
        self.message()
            .map(Message::text_content)
            .unwrap_or_default()
    }
}

/// One choice of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: Message,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One server-sent event of a streaming response (`chat.completion.chunk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Sent on the last chunk when `stream_options.include_usage` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice's increment in a chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The increment itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A fragment of a tool call; fragments with the same `index` concatenate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

/// A fragment of a function call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Folds a stream of chunks into the response a non-streaming call would have returned, so the
/// loop can stream to its client and still keep a complete trace.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    id: String,
    model: String,
    created: u64,
    choices: Vec<AccChoice>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct AccChoice {
    content: String,
    reasoning: String,
    tool_calls: Vec<ToolCall>,
    finish_reason: Option<String>,
}

impl StreamAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        if chunk.usage.is_some() {
            self.usage.clone_from(&chunk.usage);
        }
        for c in &chunk.choices {
            let i = c.index as usize;
            if self.choices.len() <= i {
                self.choices.resize_with(i + 1, AccChoice::default);
            }
            let acc = &mut self.choices[i];
            if let Some(t) = &c.delta.content {
                acc.content.push_str(t);
            }
            if let Some(t) = &c.delta.reasoning_content {
                acc.reasoning.push_str(t);
            }
            for tc in c.delta.tool_calls.iter().flatten() {
                let j = tc.index as usize;
                if acc.tool_calls.len() <= j {
                    acc.tool_calls.resize_with(j + 1, || ToolCall {
                        id: String::new(),
                        kind: function_type(),
                        function: FunctionCall::default(),
                        extra: Map::new(),
                    });
                }
                let call = &mut acc.tool_calls[j];
                if let Some(id) = &tc.id {
                    call.id.push_str(id);
                }
                if let Some(f) = &tc.function {
                    if let Some(n) = &f.name {
                        call.function.name.push_str(n);
                    }
                    if let Some(a) = &f.arguments {
                        call.function.arguments.push_str(a);
                    }
                }
            }
            if c.finish_reason.is_some() {
                acc.finish_reason.clone_from(&c.finish_reason);
            }
        }
    }

    /// The assembled response.
    pub fn finish(self) -> ChatResponse {
        let choices = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut message = Message::text(Role::Assistant, c.content);
                if !c.reasoning.is_empty() {
                    message.reasoning_content = Some(c.reasoning);
                }
                if !c.tool_calls.is_empty() {
                    message.tool_calls = Some(c.tool_calls);
                }
                Choice {
                    index: i as u32,
                    message,
                    finish_reason: c.finish_reason,
                    extra: Map::new(),
                }
            })
            .collect();
        ChatResponse {
            id: self.id,
            object: completion_object(),
            created: self.created,
            model: self.model,
            choices,
            usage: self.usage,
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_parts_round_trip_and_keep_unknown_parts() {
        let v = json!({
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
                {"type": "input_audio", "input_audio": {"data": "xx", "format": "wav"}}
            ],
            "cache_control": {"type": "ephemeral"}
        });
        let m: Message = serde_json::from_value(v.clone()).unwrap();
        assert!(m.has_images());
        assert_eq!(m.text_content(), "what is this?");
        match &m.content {
            Some(Content::Parts(p)) => {
                assert!(matches!(&p[2], ContentPart::Other(o) if o["type"] == "input_audio"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(serde_json::to_value(&m).unwrap(), v);
    }

    #[test]
    fn responses_tolerate_unknown_fields_and_keep_reasoning() {
        let v = json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "system_fingerprint": "fp",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
                "message": {"role": "assistant", "content": null, "reasoning_content": "hmm",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "edit_image", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0}}
        });
        let r: ChatResponse = serde_json::from_value(v).unwrap();
        assert_eq!(r.extra["system_fingerprint"], "fp");
        let m = r.message().unwrap();
        assert_eq!(m.reasoning_content.as_deref(), Some("hmm"));
        assert_eq!(
            m.tool_calls.as_ref().unwrap()[0].function.name,
            "edit_image"
        );
        assert_eq!(r.usage.unwrap().total_tokens, 7);
    }

    #[test]
    fn accumulator_assembles_text_reasoning_and_tool_calls() {
        let chunks: Vec<ChatChunk> = [
            json!({"id": "s", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "th"}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "ink", "content": "Hel"}}]}),
            json!({"choices": [{"index": 0, "delta": {"content": "lo", "tool_calls": [{"index": 0, "id": "c", "function": {"name": "zoom", "arguments": "{\"a\""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "stop"}]}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let mut acc = StreamAccumulator::new();
        chunks.iter().for_each(|c| acc.push(c));
        let r = acc.finish();
        assert_eq!(r.id, "s");
        assert_eq!(r.text(), "Hello");
        let m = r.message().unwrap();
        assert_eq!(m.reasoning_content.as_deref(), Some("think"));
        assert_eq!(
            m.tool_calls.as_ref().unwrap()[0].function.arguments,
            "{\"a\":1}"
        );
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn image_url_debug_hides_payload() {
        let p = ImageUrl {
            url: format!("data:image/png;base64,{}", "A".repeat(1000)),
            detail: None,
            extra: Map::new(),
        };
        let d = format!("{p:?}");
        assert!(d.len() < 200, "{d}");
        assert!(d.contains("data:image/png;base64"));
    }
}
