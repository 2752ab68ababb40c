//! `POST /v1/chat/completions`, drop-in.
//!
//! Requests without images are forwarded byte for byte (streaming included: the upstream's SSE
//! bytes are relayed as they arrive). Requests with images run the reasoning loop and answer a
//! standard `chat.completion` (or a stream of chunks), with usage summed over every upstream call
//! and the trace under an extra `etchr` field.
//!
//! To decide which is which without copying megabytes of base64, the body is first read by a
//! probe that looks only at `model`, `stream`, `etchr` and the `type` of each content part; image
//! payloads are skipped by the JSON parser, never allocated.
//!
//! A request known to be passed through before its body is read (the `x-etchr-strategy:
//! passthrough` header, or `[reason] chat_images = "passthrough"`), and at least `[reason]
//! early_forward_bytes` long, is forwarded while it arrives; its last byte goes upstream only once
//! the probe has found nothing to change, so the upstream never acts on a request that should
//! have been refused, rewritten or looped.

use crate::config::ChatImages;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{body_error, bytes_rejection, parse_json};
use crate::routes::common::{
    authorization, client_auth, image_bytes, log_trajectory, record_loop, record_overhead,
    request_id, resolve_model, strategy_header,
};
use crate::state::AppState;
use crate::upstream::{EarlyForward, ForwardBody};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use etchr_reason::tools::TOOL_NAME;
use etchr_reason::{ClientTools, ReasonOutcome, ReasonRequest, Strategy, Trace};
use etchr_upstream::{
    ChatRequest, Content, ContentPart, ErrorKind, Message, Role, UpstreamError, Usage,
};
use futures_util::StreamExt;
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// How one chat request with images is handled: the loop with a strategy, or forwarded as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatMode {
    Loop(Strategy),
    Passthrough,
}

impl std::str::FromStr for ChatMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("passthrough") {
            return Ok(ChatMode::Passthrough);
        }
        s.parse::<Strategy>().map(ChatMode::Loop).map_err(|_| {
            format!("unknown strategy {s:?}: use evr, progressive, tools or passthrough")
        })
    }
}

impl<'de> Deserialize<'de> for ChatMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Per-request loop options, in an `etchr` field of the chat request (removed before anything
/// is sent upstream).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EtchrOptions {
    /// `evr`, `progressive` or `tools` (run the loop), or `passthrough` (forward the request with
    /// its images unchanged). The `x-etchr-strategy` header wins over this.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub strategy: Option<ChatMode>,
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Add the edited images (data URLs) to the `etchr` field of the answer.
    #[serde(default)]
    pub return_images: bool,
}

/// The fields of a chat request the router looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    /// Required, as by OpenAI: even a request only passed through must have messages.
    messages: Vec<ProbeMessage>,
    #[serde(default, deserialize_with = "options_object")]
    etchr: Option<EtchrOptions>,
}

/// `etchr` as an object (or null) only: serde's derive would also take a JSON array as a
/// struct's fields in order, which the schema does not allow.
fn options_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EtchrOptions>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        v @ serde_json::Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("`etchr` must be an object")),
    }
}

#[derive(Deserialize)]
struct ProbeMessage {
    #[serde(default)]
    content: ProbeContent,
}

/// How many image parts a message's content has.
#[derive(Default)]
struct ProbeContent(usize);

#[derive(Deserialize)]
struct ProbePart {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl<'de> Deserialize<'de> for ProbeContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProbeContent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }
            fn visit_str<E>(self, _: &str) -> Result<ProbeContent, E> {
                Ok(ProbeContent(0))
            }
            fn visit_unit<E>(self) -> Result<ProbeContent, E> {
                Ok(ProbeContent(0))
            }
            fn visit_none<E>(self) -> Result<ProbeContent, E> {
                Ok(ProbeContent(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ProbeContent, A::Error> {
                let mut n = 0;
                while let Some(p) = seq.next_element::<ProbePart>()? {
                    if matches!(
                        p.kind.as_deref(),
                        Some("image_url" | "input_image" | "image")
                    ) {
                        n += 1;
                    }
                }
                Ok(ProbeContent(n))
            }
        }
        d.deserialize_any(V)
    }
}

/// Documentation of the request body (the handler reads it in two passes, see the module docs).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ChatCompletionRequest {
    /// The upstream model, or an alias from `[models.aliases]`. Absent or empty: the configured
    /// upstream model (`--upstream-model`, `[upstream] model`).
    model: Option<String>,
    /// OpenAI chat messages. Images are `data:` URLs, or `http(s)` URLs when the server's
    /// `[fetch]` policy allows them (off by default: 400 `image_url_not_allowed`).
    #[schema(value_type = Vec<Object>, min_items = 1)]
    messages: Vec<serde_json::Value>,
    stream: Option<bool>,
    etchr: Option<EtchrOptions>,
}

/// Create a chat completion (OpenAI-compatible).
///
/// Without images the request is proxied to the upstream unchanged (streaming too). With images
/// the reasoning loop runs (strategy from the `x-etchr-strategy` header, the `etchr` field, or
/// config) and the answer comes back as a `chat.completion` (or, with `stream: true`, as SSE:
/// `: keep-alive` comments while the loop runs, then the answer's chunks and `data: [DONE]`),
/// with the trace in an extra `etchr` field; the strategy `passthrough` forwards the request
/// unchanged instead. The client's own `tools` are offered to the upstream on the loop's answering
/// calls; when it calls one, the answer is that call (`finish_reason: "tool_calls"`).
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "chat",
    request_body(content = ChatCompletionRequest, content_type = "application/json"),
    params(
        ("x-etchr-strategy" = Option<String>, Header, description = "`evr`, `progressive` or `tools` (run the loop) or `passthrough` (forward unchanged) for requests with images.")
    ),
    responses(
        (status = 200, description = "A chat.completion, or with `stream: true` a text/event-stream of chat.completion.chunk events", content(
            (Object = "application/json"),
            // Each server-sent event (schemathesis validates events as objects).
            (Object = "text/event-stream")
        )),
        (status = 400, description = "Malformed JSON, an image URL that may not be fetched (or failed to), or an undecodable image", body = ErrorBody),
        (status = 429, description = "The upstream is rate limiting; see Retry-After", body = ErrorBody),
        (status = 502, description = "The upstream failed after retries", body = ErrorBody),
        (status = 503, description = "No upstream is configured", body = ErrorBody),
        (status = 504, description = "The deadline passed", body = ErrorBody)
    )
)]
pub async fn chat_completions(State(state): State<AppState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let out = match early_forward_len(&state, &headers) {
        Some(len) => forward_while_receiving(state, headers, req.into_body(), len).await,
        None => match Bytes::from_request(req, &state).await {
            Ok(body) => chat(state, headers, body, Instant::now(), None).await,
            Err(rejection) => Err(bytes_rejection(rejection)),
        },
    };
    out.unwrap_or_else(IntoResponse::into_response)
}

/// The body's length when this request is forwarded while it arrives: a passthrough request
/// (by header, or by config with no header saying otherwise) with a declared length of at least
/// `[reason] early_forward_bytes`.
fn early_forward_len(state: &AppState, headers: &HeaderMap) -> Option<u64> {
    let threshold = state.config.reason.early_forward_bytes;
    if threshold == 0 || state.upstream().is_err() {
        return None;
    }
    let len: u64 = headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let passthrough = match strategy_header::<ChatMode>(headers) {
        Ok(Some(mode)) => mode == ChatMode::Passthrough,
        Ok(None) => state.config.reason.chat_images == ChatImages::Passthrough,
        // The ordinary path reports the bad header.
        Err(_) => false,
    };
    (passthrough && len >= threshold).then_some(len)
}

/// Reads the body while forwarding it to the primary upstream ([`crate::upstream::EarlyForward`]),
/// then decides as [`chat`] does; the upstream gets the last byte only if the request is passed
/// through unchanged.
async fn forward_while_receiving(
    state: AppState,
    headers: HeaderMap,
    body: Body,
    len: u64,
) -> Result<Response, ApiError> {
    let up = state.upstream()?.clone();
    let mut early = up.proxy.start_early(
        len,
        client_auth(&headers).as_ref(),
        request_id(&headers).as_deref(),
    );
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        early.push(chunk.map_err(body_error)?);
    }
    let body = early.take_body();
    if body.len() as u64 != len {
        return Err(ApiError::invalid_request(
            format!(
                "the request body has {} bytes, but its Content-Length says {len}",
                body.len()
            ),
            None,
        ));
    }
    chat(state, headers, body, Instant::now(), Some(early)).await
}

/// Routes a complete chat request: passthrough or the loop. `early` is the request already on
/// its way upstream, if it is being forwarded while it arrived; it is completed only when the
/// body is passed through unchanged.
async fn chat(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    started: Instant,
    early: Option<EarlyForward>,
) -> Result<Response, ApiError> {
    let probe: Probe = parse_json(&body)?;
    if probe.messages.is_empty() {
        return Err(ApiError::invalid_request(
            "messages must be a non-empty array",
            Some("messages"),
        ));
    }
    let images: usize = probe.messages.iter().map(|m| m.content.0).sum();
    if images == 0 {
        return passthrough(state, headers, body, probe, started, early).await;
    }
    match chat_mode(&state, &headers, &probe)? {
        ChatMode::Passthrough => passthrough(state, headers, body, probe, started, early).await,
        ChatMode::Loop(strategy) => {
            drop(early);
            reason(state, headers, body, strategy, started).await
        }
    }
}

/// The `x-etchr-strategy` header, else the `etchr` field, else `[reason]` config.
fn chat_mode(state: &AppState, headers: &HeaderMap, probe: &Probe) -> Result<ChatMode, ApiError> {
    if let Some(mode) = strategy_header::<ChatMode>(headers)? {
        return Ok(mode);
    }
    if let Some(mode) = probe.etchr.as_ref().and_then(|o| o.strategy) {
        return Ok(mode);
    }
    Ok(match state.config.reason.chat_images {
        ChatImages::Passthrough => ChatMode::Passthrough,
        ChatImages::Loop => ChatMode::Loop(state.config.reason.strategy),
    })
}

/// Passthrough replies up to this size (with a Content-Length) are read whole before answering.
const BUFFERED_REPLY_LIMIT: u64 = 16 << 20;

/// Forwards a request (text-only, or with images in passthrough mode). The body is forwarded as
/// received unless an alias, an `etchr` field or a missing model needs rewriting (then only the
/// top-level object is re-assembled, from raw slices: image payloads are copied, never parsed,
/// and an early forward of the original bytes is abandoned).
async fn passthrough(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    probe: Probe,
    started: Instant,
    mut early: Option<EarlyForward>,
) -> Result<Response, ApiError> {
    let up = state.upstream()?.clone();
    let stream = probe.stream.unwrap_or(false);
    let alias = probe
        .model
        .as_ref()
        .and_then(|m| state.config.models.aliases.get(m).cloned());
    let names_model = probe.model.as_deref().is_some_and(|m| !m.trim().is_empty());
    let fill_model = !names_model && up.proxy.fills_model();
    let body = if alias.is_some() || probe.etchr.is_some() || fill_model {
        // The original bytes must not reach the upstream complete.
        drop(early.take());
        let mut obj: BTreeMap<String, Box<RawValue>> = parse_json(&body)?;
        obj.remove("etchr");
        if let Some(target) = alias {
            let raw = serde_json::value::to_raw_value(&target)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            obj.insert("model".into(), raw);
        }
        if fill_model {
            obj.remove("model");
            ForwardBody::NeedsModel(obj)
        } else {
            ForwardBody::Exact(Bytes::from(
                serde_json::to_vec(&obj).map_err(|e| ApiError::Internal(e.to_string()))?,
            ))
        }
    } else {
        ForwardBody::Exact(body)
    };
    // Still here only when the body goes out as received: complete the upstream's copy.
    let early = early.map(EarlyForward::release);
    let deadline = Instant::now() + state.config.request_timeout();
    let auth = client_auth(&headers);
    drop(probe);
    let fwd = up
        .proxy
        .chat(
            &body,
            stream,
            auth.as_ref(),
            request_id(&headers).as_deref(),
            deadline,
            early,
        )
        .await?;
    let mut upstream_time = fwd.upstream_time;
    let resp = fwd.response;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::OK);
    let content_type = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    // A complete reply of known, bounded size is read first and sent with its length in one
    // write: no chunked framing (and its extra terminating write) on the client's side, and a
    // failure mid-body is a clean 502 rather than a cut connection. Streams, and replies of
    // unknown or large size, are relayed as they arrive.
    let buffer = !stream
        && resp
            .content_length()
            .is_some_and(|n| n <= BUFFERED_REPLY_LIMIT);
    let body = if buffer {
        let t = Instant::now();
        let bytes = tokio::time::timeout_at(deadline.into(), resp.bytes())
            .await
            .map_err(|_| ApiError::Upstream(UpstreamError::deadline()))?
            .map_err(|e| {
                ApiError::Upstream(UpstreamError::new(
                    ErrorKind::Stream,
                    format!("the upstream's reply broke off: {}", e.without_url()),
                ))
            })?;
        upstream_time += t.elapsed();
        Body::from(bytes)
    } else {
        Body::from_stream(resp.bytes_stream())
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    if let Some(ct) = content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if stream {
        out.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    record_overhead(
        &state,
        &mut out,
        "/v1/chat/completions",
        started.elapsed(),
        upstream_time,
    );
    Ok(out)
}

/// Builds the loop's request from a chat request with images.
async fn reason_request(
    state: &AppState,
    headers: &HeaderMap,
    mut chat: ChatRequest,
    strategy: Strategy,
) -> Result<(ReasonRequest, EtchrOptions, bool, String), ApiError> {
    let opts: EtchrOptions = match chat.extra.remove("etchr") {
        None | Some(serde_json::Value::Null) => EtchrOptions::default(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::invalid_request(format!("invalid etchr options: {e}"), Some("etchr"))
        })?,
    };
    let client_tools = client_tools(&mut chat, strategy)?;
    let stream = chat.stream.unwrap_or(false);
    let last_user = chat
        .messages
        .iter()
        .rposition(|m| m.role == Role::User)
        .ok_or_else(|| ApiError::invalid_request("no user message", Some("messages")))?;
    let mut images = Vec::new();
    for m in chat.messages.iter().filter(|m| m.role == Role::User) {
        if let Some(Content::Parts(parts)) = &m.content {
            for p in parts {
                if let ContentPart::ImageUrl { image_url } = p {
                    // http(s) URLs are fetched under the [fetch] policy, or refused.
                    images.push(image_bytes(state, image_url.url.trim().to_string()).await?);
                }
            }
        }
    }
    let question = chat.messages[last_user].text_content();
    let question = if question.trim().is_empty() {
        "Describe the image.".to_string()
    } else {
        question
    };
    // Earlier turns travel as text; their images are all passed with the question.
    let history: Vec<Message> = chat.messages[..last_user]
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if let Some(Content::Parts(_)) = &m.content {
                m.content = Some(Content::Text(m.text_content()));
            }
            m
        })
        .collect();
    let mut params = std::mem::take(&mut chat.extra);
    // Per-call fields the loop sets itself: one choice, its own streaming, tools only where
    // offered (`parallel_tool_calls` without tools is an error on OpenAI; `ClientTools`
    // carries the client's value to the calls that offer its tools).
    for k in ["stream_options", "n", "parallel_tool_calls"] {
        params.remove(k);
    }
    if let Some(t) = chat.temperature {
        params.insert("temperature".into(), t.into());
    }
    if let Some(t) = chat.max_tokens {
        params.insert("max_tokens".into(), t.into());
    }
    let model = resolve_model(state, Some(chat.model.clone()));
    let image = images.remove(0);
    Ok((
        ReasonRequest {
            image,
            extra_images: images,
            question,
            history,
            strategy,
            max_steps: opts.max_steps,
            model,
            ops: None,
            request_id: request_id(headers),
            authorization: authorization(headers),
            params,
            client_tools,
        },
        opts,
        stream,
        chat.model,
    ))
}

/// The client's own `tools`, offered to the upstream on answering calls. `tool_choice: "none"`
/// or no tools means none. The loop's own tool name is reserved under the `tools` strategy.
fn client_tools(
    chat: &mut ChatRequest,
    strategy: Strategy,
) -> Result<Option<ClientTools>, ApiError> {
    let tools = chat.tools.take().unwrap_or_default();
    let choice = chat.tool_choice.take();
    if tools.is_empty() || choice.as_ref().and_then(|c| c.as_str()) == Some("none") {
        return Ok(None);
    }
    if strategy == Strategy::Tools && tools.iter().any(|t| t.function.name == TOOL_NAME) {
        return Err(ApiError::invalid_request(
            format!(
                "the tool name `{TOOL_NAME}` is the loop's own under the tools strategy; rename \
                 the client tool or choose another strategy"
            ),
            Some("tools"),
        ));
    }
    let parallel = chat
        .extra
        .get("parallel_tool_calls")
        .and_then(serde_json::Value::as_bool);
    Ok(Some(ClientTools {
        tools,
        choice,
        parallel,
    }))
}

async fn reason(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    strategy: Strategy,
    started: Instant,
) -> Result<Response, ApiError> {
    let up = state.upstream()?.clone();
    let slot = state
        .loops
        .try_enter()
        .inspect_err(|_| state.metrics.record_rejected_loop())?;
    let chat: ChatRequest = parse_json(&body)?;
    drop(body);
    let (req, opts, stream, model) = reason_request(&state, &headers, chat, strategy).await?;
    let id = format!(
        "chatcmpl-etchr-{}",
        req.request_id.clone().unwrap_or_default()
    );
    if stream {
        return Ok(stream_reason(
            state,
            (up.reasoner.clone(), slot),
            req,
            opts,
            id,
            model,
            started,
        ));
    }
    let outcome = up.reasoner.run(req).await;
    record_loop(&state, strategy, &outcome);
    let outcome = outcome?;
    drop(slot);
    log_trajectory(&state, &outcome).await;
    let upstream = Duration::from_secs_f64(outcome.trace.timings_ms.upstream / 1000.0);
    let completion = Completion::new(&outcome, &opts, id, model);
    let mut res = (StatusCode::OK, axum::Json(completion)).into_response();
    record_overhead(
        &state,
        &mut res,
        "/v1/chat/completions",
        started.elapsed(),
        upstream,
    );
    Ok(res)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `etchr` field: the trace, and the edited images when asked for.
#[derive(Serialize)]
struct EtchrField<'a> {
    #[serde(flatten)]
    trace: &'a Trace,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<Vec<&'a str>>,
}

impl<'a> EtchrField<'a> {
    fn new(outcome: &'a ReasonOutcome, opts: &EtchrOptions) -> Self {
        Self {
            trace: &outcome.trace,
            images: opts
                .return_images
                .then(|| outcome.views.iter().map(|v| &*v.data_url).collect()),
        }
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: [CompletionChoice; 1],
    usage: &'a Usage,
    etchr: EtchrField<'a>,
}

#[derive(Serialize)]
struct CompletionChoice {
    index: u32,
    message: Message,
    finish_reason: &'static str,
}

impl<'a> Completion<'a> {
    fn new(outcome: &'a ReasonOutcome, opts: &EtchrOptions, id: String, model: String) -> Self {
        Self {
            id,
            object: "chat.completion",
            created: now_unix(),
            model: served_model(outcome, model),
            choices: [CompletionChoice {
                index: 0,
                message: answer_message(&outcome.trace),
                finish_reason: finish_reason(&outcome.trace),
            }],
            usage: &outcome.trace.usage,
            etchr: EtchrField::new(outcome, opts),
        }
    }
}

/// The answer, or the client's tool calls when the upstream made some.
fn answer_message(trace: &Trace) -> Message {
    if trace.client_tool_calls.is_empty() {
        return Message::text(Role::Assistant, trace.final_text.clone());
    }
    let mut m = Message::text(Role::Assistant, trace.final_text.clone());
    if trace.final_text.is_empty() {
        m.content = None;
    }
    m.tool_calls = Some(trace.client_tool_calls.clone());
    m
}

fn finish_reason(trace: &Trace) -> &'static str {
    if trace.client_tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    }
}

/// The model that answered last, else the one asked for.
fn served_model(outcome: &ReasonOutcome, asked: String) -> String {
    outcome
        .trace
        .steps
        .iter()
        .rev()
        .find_map(|s| s.call.as_ref().map(|c| c.served_model.clone()))
        .filter(|m| !m.is_empty())
        .unwrap_or(asked)
}

fn sse(value: &impl Serialize) -> Bytes {
    let mut out = b"data: ".to_vec();
    serde_json::to_writer(&mut out, value).expect("chunks serialise");
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Streams a loop: keep-alive comments until it finishes, then the answer as chunks.
fn stream_reason(
    state: AppState,
    // The loop runner and the concurrency slot it holds until the loop ends.
    (reasoner, slot): (etchr_reason::Reasoner, tokio::sync::OwnedSemaphorePermit),
    req: ReasonRequest,
    opts: EtchrOptions,
    id: String,
    model: String,
    started: Instant,
) -> Response {
    let strategy = req.strategy;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let keepalive = Duration::from_secs_f64(state.config.reason.keepalive_secs);
    tokio::spawn(async move {
        // One comment at once, so the client sees the stream open before the loop's first
        // upstream call returns; then one per period while the loop runs.
        if tx
            .send(Bytes::from_static(b": keep-alive\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let run = reasoner.run(req);
        tokio::pin!(run);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tick.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return; // the client left: dropping `run` cancels the loop
                    }
                }
            }
        };
        drop(slot);
        record_loop(&state, strategy, &result);
        match result {
            Ok(outcome) => {
                log_trajectory(&state, &outcome).await;
                let upstream = Duration::from_secs_f64(outcome.trace.timings_ms.upstream / 1000.0);
                let overhead = started.elapsed().saturating_sub(upstream);
                state.metrics.record_overhead(
                    "/v1/chat/completions",
                    overhead.as_secs_f64(),
                    upstream.as_secs_f64(),
                );
                let created = now_unix();
                let model = served_model(&outcome, model);
                let chunk = |delta: serde_json::Value, finish: Option<&str>| {
                    serde_json::json!({
                        "id": id, "object": "chat.completion.chunk", "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                    })
                };
                let trace = &outcome.trace;
                let mut body = serde_json::json!({"content": trace.final_text});
                if !trace.client_tool_calls.is_empty() {
                    let calls: Vec<_> = trace
                        .client_tool_calls
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            serde_json::json!({
                                "index": i, "id": c.id, "type": c.kind,
                                "function": {"name": c.function.name, "arguments": c.function.arguments}
                            })
                        })
                        .collect();
                    body["tool_calls"] = calls.into();
                }
                let frames = [
                    sse(&chunk(
                        serde_json::json!({"role": "assistant", "content": ""}),
                        None,
                    )),
                    sse(&chunk(body, None)),
                    sse(&chunk(serde_json::json!({}), Some(finish_reason(trace)))),
                    sse(&serde_json::json!({
                        "id": id, "object": "chat.completion.chunk", "created": created,
                        "model": model, "choices": [], "usage": outcome.trace.usage,
                        "etchr": EtchrField::new(&outcome, &opts),
                    })),
                ];
                for f in frames {
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let e = ApiError::from(e);
                tracing::warn!(error = %e, "streamed reasoning failed");
                let _ = tx.send(sse(&e.body())).await;
            }
        }
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut res = Response::new(Body::from_stream(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
