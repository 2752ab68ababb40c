//! The upstream-facing routes against the mock upstream: byte-identical passthrough (plain and
//! streaming), the loop behind chat completions (plain and streaming), /v1/reason, /v1/models,
//! and the mapping of upstream failures to OpenAI-shaped errors.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use etchr_ops::{encode_image, OutputFormat, RgbImage};
use etchr_server::{router, AppState, Config};
use etchr_testkit::{MockUpstream, Reply, Script};
use etchr_upstream::UpstreamConfig;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn data_url(w: u32, h: u32) -> String {
    let raw = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(x % 256) as u8, (y % 256) as u8, 90]))
        .collect();
    let png = encode_image(&RgbImage::from_raw(w, h, raw).unwrap(), OutputFormat::Png).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn state(mock: &MockUpstream, tweak: impl FnOnce(&mut Config)) -> AppState {
    let mut cfg = Config::default();
    let mut up = UpstreamConfig::from_url(&mock.base_url(), "vllm", None).unwrap();
    up.model = Some("mock-model".into());
    up.max_retries = 1;
    cfg.upstream = Some(up);
    cfg.models
        .aliases
        .insert("etchr-vl".into(), "real-model".into());
    tweak(&mut cfg);
    AppState::new(cfg)
}

async fn post(
    state: AppState,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router(state)
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

/// The JSON payloads of an SSE body's `data:` frames, without the final `[DONE]`.
fn sse_chunks(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

#[tokio::test]
async fn text_requests_pass_through_byte_for_byte() {
    let upstream_body = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"weird_field":  [1, 2]}"#;
    let mock = MockUpstream::start(Script::always(
        Reply::text(200, upstream_body).with_header("content-type", "application/json"),
    ))
    .await;
    let client_body = json!({"model": "etchr-vl", "messages": [{"role": "user", "content": "hello"}], "etchr": {"strategy": "evr"}});
    let (status, headers, bytes) = post(
        state(&mock, |_| {}),
        "/v1/chat/completions",
        client_body,
        &[("x-request-id", "rid-7")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bytes, upstream_body.as_bytes());
    assert_eq!(headers["x-request-id"], "rid-7");
    assert!(headers.contains_key("x-etchr-overhead-ms"));
    let sent = &mock.requests()[0];
    assert_eq!(sent.header("x-request-id"), Some("rid-7"));
    assert_eq!(sent.body["model"], "real-model", "aliases are resolved");
    assert!(
        sent.body.get("etchr").is_none(),
        "the etchr field never goes upstream"
    );

    // Without an alias or etchr field, the request bytes themselves are forwarded.
    let raw = r#"{"model":"m",  "messages":[{"role":"user","content":"x"}]}"#;
    let res = router(state(&mock, |_| {}))
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(raw))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(&mock.requests()[1].raw[..], raw.as_bytes());
}

#[tokio::test]
async fn streaming_passthrough_is_byte_identical() {
    let reply = Reply::stream(&["Hel", "lo", " world"]);
    let expected: String = match &reply.body {
        etchr_testkit::ReplyBody::Sse { frames, .. } => frames.concat(),
        _ => unreachable!(),
    };
    let mock = MockUpstream::start(Script::always(reply)).await;
    let (status, headers, bytes) = post(
        state(&mock, |_| {}),
        "/v1/chat/completions",
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    assert!(expected.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn upstream_failures_keep_their_meaning() {
    let mock = MockUpstream::start(Script::always(Reply::rate_limited("7"))).await;
    let st = state(&mock, |c| c.upstream.as_mut().unwrap().max_retries = 0);
    let (status, headers, bytes) = post(
        st,
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(json_of(&bytes)["error"]["code"], "upstream_rate_limited");

    let mock = MockUpstream::start(Script::always(Reply::server_error())).await;
    let (status, _, bytes) = post(
        state(&mock, |_| {}),
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(json_of(&bytes)["error"]["type"], "server_error");
    assert_eq!(mock.request_count(), 2, "one retry, then 502");

    let mock =
        MockUpstream::start(Script::faulty(1, Reply::server_error(), Reply::chat("ok"))).await;
    let (status, _, _) = post(
        state(&mock, |_| {}),
        "/v1/chat/completions",
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn chat_with_an_image_runs_the_loop() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("\\boxed{1}"),
        Reply::chat("It is blue. \\boxed{blue}"),
    ]))
    .await;
    let body = json!({
        "model": "etchr-vl",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What colour?"},
                {"type": "image_url", "image_url": {"url": data_url(64, 48)}}
            ]}
        ],
        "etchr": {"strategy": "evr"}
    });
    let (status, headers, bytes) =
        post(state(&mock, |_| {}), "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v = json_of(&bytes);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "It is blue. \\boxed{blue}"
    );
    assert_eq!(
        v["usage"]["total_tokens"], 30,
        "usage is summed over both calls"
    );
    assert_eq!(v["etchr"]["answer"], "blue");
    assert_eq!(v["etchr"]["strategy"], "evr");
    assert_eq!(v["etchr"]["planner"], "tile_search");
    assert!(headers.contains_key("x-etchr-overhead-ms"));
    let sent = mock.bodies();
    assert_eq!(sent[0]["model"], "real-model");
    assert_eq!(sent[0]["messages"][0]["content"], "Be brief.");
}

#[tokio::test]
async fn streamed_chat_with_an_image_sends_keepalives_chunks_and_done() {
    let mock = MockUpstream::start(Script::always(Reply::chat("\\boxed{1}"))).await;
    let body = json!({
        "model": "m", "stream": true,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Q?"},
            {"type": "image_url", "image_url": {"url": data_url(32, 32)}}
        ]}]
    });
    let (status, headers, bytes) = post(
        state(&mock, |_| {}),
        "/v1/chat/completions",
        body,
        &[("x-etchr-strategy", "progressive")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(": keep-alive\n\n"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks = sse_chunks(&text);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "\\boxed{1}");
    let last = chunks.last().unwrap();
    assert_eq!(last["etchr"]["strategy"], "progressive");
    assert_eq!(last["usage"]["total_tokens"], 15);
}

#[tokio::test]
async fn http_image_urls_are_refused() {
    let mock = MockUpstream::start(Script::always(Reply::chat("x"))).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]});
    let (status, _, bytes) = post(state(&mock, |_| {}), "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 400);
    assert!(json_of(&bytes)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not fetched"));
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn reason_route_answers_with_steps_and_images() {
    let mock = MockUpstream::start(Script::queue([
        Reply::tool_call(
            "edit_image",
            json!({"ops": [{"op": "crop", "box": [0, 0, 500, 500]}]}),
            None,
        ),
        Reply::chat("\\boxed{42}"),
    ]))
    .await;
    let body = json!({"image": data_url(100, 80), "question": "How many?", "strategy": "tools", "return_images": true});
    let (status, headers, bytes) = post(state(&mock, |_| {}), "/v1/reason", body, &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let v = json_of(&bytes);
    assert_eq!(v["answer"], "42");
    assert_eq!(v["planner"], "upstream_tools");
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["steps"][1]["edit"]["program"][0]["box"],
        json!([0.0, 0.0, 50.0, 40.0])
    );
    assert!(headers.contains_key("x-etchr-overhead-ms"));
}

#[tokio::test]
async fn reason_deadline_is_a_504() {
    let mock = MockUpstream::start(Script::always(
        Reply::chat("late").delayed(std::time::Duration::from_secs(5)),
    ))
    .await;
    let st = state(&mock, |c| c.reason.deadline_secs = 0.3);
    let body = json!({"image": data_url(40, 40), "question": "Q", "max_steps": 0});
    let (status, _, bytes) = post(st, "/v1/reason", body, &[]).await;
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&bytes));
}

#[tokio::test]
async fn models_merge_aliases_and_missing_upstream_is_503() {
    let list = json!({"object": "list", "data": [{"id": "real-model", "object": "model", "owned_by": "vllm"}]});
    let mock = MockUpstream::start(Script::new().with_file(
        "/v1/models",
        "application/json",
        list.to_string().into_bytes(),
    ))
    .await;
    let res = router(state(&mock, |_| {}))
        .oneshot(Request::get("/v1/models").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v = json_of(&res.into_body().collect().await.unwrap().to_bytes());
    let ids: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["real-model", "etchr-vl"]);

    let (status, _, bytes) = post(
        AppState::new(Config::default()),
        "/v1/reason",
        json!({"image": data_url(8, 8), "question": "q"}),
        &[],
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(json_of(&bytes)["error"]["code"], "upstream_not_configured");
}

async fn get_text(state: AppState, path: &str) -> String {
    let res = router(state)
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn passthrough_falls_back_in_order_and_fills_each_upstreams_model() {
    let primary = MockUpstream::start(Script::always(Reply::error(503, "overloaded"))).await;
    let backup = MockUpstream::start(
        Script::always(
            Reply::text(200, r#"{"from":"backup"}"#)
                .with_header("content-type", "application/json"),
        )
        .with_file(
            "/v1/models",
            "application/json",
            br#"{"object":"list","data":[{"id":"backup-model"}]}"#.to_vec(),
        ),
    )
    .await;
    let st = state(&primary, |c| {
        let up = c.upstream.as_mut().unwrap();
        up.max_retries = 0;
        let mut fb = UpstreamConfig::from_url(&backup.base_url(), "vllm", None).unwrap();
        fb.model = Some("backup-model".into());
        up.fallback = vec![fb];
    });
    // No model named: each upstream gets its own configured model.
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let (status, _, bytes) = post(st.clone(), "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes, br#"{"from":"backup"}"#);
    assert_eq!(primary.bodies()[0]["model"], "mock-model");
    assert_eq!(backup.bodies()[0]["model"], "backup-model");
    // The model list falls back the same way.
    let models = json_of(get_text(st.clone(), "/v1/models").await.as_bytes());
    assert_eq!(models["data"][0]["id"], "backup-model", "{models}");
    assert_eq!(models["data"][1]["id"], "etchr-vl");

    // A failure that is the request's own (400) does not fall back.
    primary.set_script(Script::always(Reply::error(400, "bad request")));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = post(st, "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(
        backup.request_count(),
        2,
        "no fallback on the client's error (the backup's other request was the model list)"
    );
}

#[tokio::test]
async fn image_requests_can_be_passed_through_unchanged() {
    let mock = MockUpstream::start(Script::always(
        Reply::text(200, r#"{"ok":1}"#).with_header("content-type", "application/json"),
    ))
    .await;
    let image = data_url(64, 48);
    let raw = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"Q?"}},{{"type":"image_url","image_url":{{"url":"{image}"}}}}]}}]}}"#
    );
    // By header: the very bytes go upstream, no loop runs (one call, no edited view).
    let res = router(state(&mock, |_| {}))
        .oneshot(
            Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .header("x-etchr-strategy", "passthrough")
                .body(Body::from(raw.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(mock.request_count(), 1);
    assert_eq!(&mock.requests()[0].raw[..], raw.as_bytes());

    // By the etchr field: only that field is removed.
    let mut body: Value = serde_json::from_str(&raw).unwrap();
    body["etchr"] = json!({"strategy": "passthrough"});
    let (status, _, _) = post(state(&mock, |_| {}), "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 200);
    let sent = &mock.bodies()[1];
    assert!(sent.get("etchr").is_none());
    assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"], image);

    // By config, with a per-request loop strategy still able to opt in.
    let st = state(&mock, |c| {
        c.reason.chat_images = etchr_server::config::ChatImages::Passthrough
    });
    let (status, _, bytes) = post(
        st.clone(),
        "/v1/chat/completions",
        serde_json::from_str(&raw).unwrap(),
        &[],
    )
    .await;
    assert_eq!((status, &bytes[..]), (StatusCode::OK, &br#"{"ok":1}"#[..]));
    assert_eq!(mock.request_count(), 3);

    // An unknown mode is a clear 400 naming the header.
    let (status, _, bytes) = post(
        st,
        "/v1/chat/completions",
        serde_json::from_str(&raw).unwrap(),
        &[("x-etchr-strategy", "bogus")],
    )
    .await;
    assert_eq!(status, 400);
    let e = json_of(&bytes);
    assert_eq!(e["error"]["param"], "x-etchr-strategy");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("passthrough"));
}

fn image_question() -> Value {
    json!([{"role": "user", "content": [
        {"type": "text", "text": "What is the weather where this photo was taken?"},
        {"type": "image_url", "image_url": {"url": data_url(64, 48)}}
    ]}])
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}})
}

#[tokio::test]
async fn client_tools_are_offered_and_their_calls_come_back() {
    for strategy in ["evr", "progressive", "tools"] {
        let mock = MockUpstream::start(Script::from_fn(|req| {
            if req.body["messages"].to_string().contains("boxed{0}") {
                Reply::chat("\\boxed{1}") // evr's verification
            } else {
                Reply::tool_call("get_weather", json!({"city": "Oslo"}), None)
            }
        }))
        .await;
        let body = json!({"model": "m", "messages": image_question(), "tools": [weather_tool()],
            "parallel_tool_calls": false, "etchr": {"strategy": strategy}});
        let st = state(&mock, |_| {});
        let (status, _, bytes) = post(st.clone(), "/v1/chat/completions", body, &[]).await;
        assert_eq!(
            status,
            200,
            "{strategy}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let v = json_of(&bytes);
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{strategy}: {v}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
        assert_eq!(v["etchr"]["stop_reason"], "tool_calls");
        // Answering calls carry the client's tool; verification calls never do.
        let verifications = mock
            .bodies()
            .iter()
            .filter(|b| b["messages"].to_string().contains("boxed{0}"))
            .count();
        assert_eq!(verifications, usize::from(strategy == "evr"), "{strategy}");
        for sent in mock.bodies() {
            let names: Vec<&str> = sent["tools"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| t["function"]["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            if sent["messages"].to_string().contains("boxed{0}") {
                assert!(names.is_empty(), "{strategy}: {names:?}");
                assert!(sent.get("parallel_tool_calls").is_none(), "{strategy}");
            } else {
                assert!(names.contains(&"get_weather"), "{strategy}: {names:?}");
                assert_eq!(names.contains(&"edit_image"), strategy == "tools");
                assert_eq!(sent["parallel_tool_calls"], false, "{strategy}");
            }
        }
        let metrics = get_text(st, "/metrics").await;
        assert!(
            metrics.contains(&format!(
                "etchr_loops_total{{strategy=\"{strategy}\",outcome=\"tool_calls\"}} 1"
            )),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn streamed_client_tool_calls_arrive_as_tool_call_deltas() {
    let mock = MockUpstream::start(Script::always(Reply::tool_call(
        "get_weather",
        json!({"city": "Oslo"}),
        None,
    )))
    .await;
    let body = json!({"model": "m", "stream": true, "messages": image_question(),
        "tools": [weather_tool()], "tool_choice": "required"});
    let (status, _, bytes) = post(
        state(&mock, |_| {}),
        "/v1/chat/completions",
        body,
        &[("x-etchr-strategy", "progressive")],
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8(bytes).unwrap();
    let chunks = sse_chunks(&text);
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .unwrap_or_else(|| panic!("no tool call delta in {text}"));
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["name"], "get_weather");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    assert_eq!(mock.bodies()[0]["tool_choice"], "required");
}

#[tokio::test]
async fn the_loops_own_tool_name_is_reserved_under_the_tools_strategy() {
    let mock = MockUpstream::start(Script::always(Reply::chat("x"))).await;
    let tool = json!({"type": "function", "function": {"name": "edit_image"}});
    let body = json!({"model": "m", "messages": image_question(), "tools": [tool],
        "etchr": {"strategy": "tools"}});
    let (status, _, bytes) = post(state(&mock, |_| {}), "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 400);
    assert_eq!(json_of(&bytes)["error"]["param"], "tools");
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn a_passthrough_reply_cut_short_is_a_clean_502() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A raw upstream that promises 100 bytes, sends 10 and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 64 * 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"id\":\"x\",")
                .await;
            let _ = sock.shutdown().await;
        }
    });
    let mut cfg = Config::default();
    let mut up = UpstreamConfig::from_url(&format!("http://{addr}/v1"), "vllm", None).unwrap();
    up.max_retries = 0;
    cfg.upstream = Some(up);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, bytes) = post(AppState::new(cfg), "/v1/chat/completions", body, &[]).await;
    assert_eq!(status, 502, "{}", String::from_utf8_lossy(&bytes));
    assert!(json_of(&bytes)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("broke off"));
}

/// A chat reply of `{"ok":1}`.
fn ok_reply() -> Reply {
    Reply::text(200, r#"{"ok":1}"#).with_header("content-type", "application/json")
}

/// Waits until the upstream has seen the head of its `n`-th request. Without early forwarding
/// that head would not come while the test still holds the body's end back, and the guard fails
/// the test instead of letting it hang.
async fn upstream_started(mock: &MockUpstream, n: usize) {
    tokio::time::timeout(std::time::Duration::from_secs(30), mock.heads_arrived(n))
        .await
        .expect("the upstream's request should start while the body is still arriving");
}

/// A request body the test feeds chunk by chunk, with its declared length.
fn streamed_request(
    len: usize,
    headers: &[(&str, &str)],
) -> (tokio::sync::mpsc::UnboundedSender<Vec<u8>>, Request<Body>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let chunks = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|c| c.map(Ok::<_, std::convert::Infallible>))
    });
    let mut req = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("content-length", len);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    (tx, req.body(Body::from_stream(chunks)).unwrap())
}

/// A chat request with an image, over 256 bytes (the tests' early-forward threshold).
fn image_chat_bytes() -> Vec<u8> {
    format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"Q?"}},{{"type":"image_url","image_url":{{"url":"{}"}}}}]}}]}}"#,
        data_url(64, 48)
    )
    .into_bytes()
}

#[tokio::test]
async fn large_passthrough_bodies_go_upstream_while_they_arrive() {
    let mock = MockUpstream::start(Script::always(ok_reply())).await;
    let st = state(&mock, |c| c.reason.early_forward_bytes = 256);
    let raw = image_chat_bytes();
    let (tx, req) = streamed_request(raw.len(), &[("x-etchr-strategy", "passthrough")]);
    let res = tokio::spawn(router(st).oneshot(req));
    // Every byte, but the client's body has not ended yet.
    let (a, b) = raw.split_at(raw.len() / 2);
    tx.send(a.to_vec()).unwrap();
    tx.send(b.to_vec()).unwrap();
    // The upstream's request starts before the client's body has ended (without early
    // forwarding this never happens, and the guard below fails the test instead of hanging)...
    upstream_started(&mock, 1).await;
    // ...but cannot complete before the whole body has been checked, which needs its end: the
    // last chunk is held back (a window for the upstream to show a complete request, if it had
    // one; not a timing bound).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(mock.request_count(), 0);
    drop(tx);
    let res = res.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], br#"{"ok":1}"#);
    assert_eq!(mock.request_count(), 1);
    assert_eq!(mock.requests()[0].raw, raw);
}

#[tokio::test]
async fn an_early_forward_reaches_the_upstream_whole_only_when_passed_through_unchanged() {
    let mock = MockUpstream::start(Script::always(ok_reply())).await;
    let st = state(&mock, |c| {
        c.reason.early_forward_bytes = 256;
        c.reason.chat_images = etchr_server::config::ChatImages::Passthrough;
    });
    // Sends the body in three chunks, the last only once the upstream's request has started
    // (its `heads`-th head has arrived), so the decision falls while that request is open.
    let send = |st: AppState, raw: Vec<u8>, heads: usize| {
        let mock = &mock;
        async move {
            let (tx, req) = streamed_request(raw.len(), &[]);
            let res = tokio::spawn(router(st).oneshot(req));
            let third = raw.len() / 3;
            tx.send(raw[..third].to_vec()).unwrap();
            tx.send(raw[third..2 * third].to_vec()).unwrap();
            upstream_started(mock, heads).await;
            tx.send(raw[2 * third..].to_vec()).unwrap();
            drop(tx);
            let res = res.await.unwrap().unwrap();
            let status = res.status();
            (status, res.into_body().collect().await.unwrap().to_bytes())
        }
    };

    // An alias and an `etchr` field must be rewritten: the original bytes are cut off
    // upstream, and only the rewritten body arrives whole.
    let mut body: Value = serde_json::from_slice(&image_chat_bytes()).unwrap();
    body["model"] = json!("etchr-vl");
    body["etchr"] = json!({"strategy": "passthrough"});
    let (status, _) = send(st.clone(), body.to_string().into_bytes(), 1).await;
    assert_eq!(status, 200);
    assert_eq!(mock.request_count(), 1);
    let sent = &mock.bodies()[0];
    assert_eq!(sent["model"], "real-model");
    assert!(sent.get("etchr").is_none());

    // Malformed JSON is refused here and never reaches the upstream whole.
    let mut broken = image_chat_bytes();
    broken.truncate(broken.len() - 3);
    let (status, bytes) = send(st.clone(), broken, 3).await;
    assert_eq!(status, 400);
    assert_eq!(json_of(&bytes)["error"]["code"], "invalid_json");
    assert_eq!(mock.request_count(), 1);

    // A body shorter than its Content-Length is a 400, and is not forwarded whole either.
    let raw = image_chat_bytes();
    let (tx, req) = streamed_request(raw.len() + 5, &[]);
    tx.send(raw.clone()).unwrap();
    drop(tx);
    let res = router(st).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn a_client_gone_mid_body_leaves_the_upstream_a_request_it_cannot_act_on() {
    let mock = MockUpstream::start(Script::always(ok_reply())).await;
    let st = state(&mock, |c| c.reason.early_forward_bytes = 256);
    let raw = image_chat_bytes();
    let (tx, req) = streamed_request(raw.len(), &[("x-etchr-strategy", "passthrough")]);
    let handler = tokio::spawn(router(st).oneshot(req));
    // Every byte, but not the body's end.
    tx.send(raw.clone()).unwrap();
    upstream_started(&mock, 1).await;
    // The client goes away: the handler is dropped with its body unfinished.
    handler.abort();
    tokio::time::timeout(std::time::Duration::from_secs(30), mock.bodies_broken(1))
        .await
        .expect("the upstream's copy should break off");
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn a_failed_early_forward_is_retried_with_the_same_bytes() {
    let mock = MockUpstream::start(Script::faulty(1, Reply::server_error(), ok_reply())).await;
    let st = state(&mock, |c| c.reason.early_forward_bytes = 256);
    let raw = image_chat_bytes();
    let (tx, req) = streamed_request(raw.len(), &[("x-etchr-strategy", "passthrough")]);
    let (a, b) = raw.split_at(raw.len() / 2);
    tx.send(a.to_vec()).unwrap();
    tx.send(b.to_vec()).unwrap();
    drop(tx);
    let res = router(st).oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.raw == raw));
}
