//! The client against in-process mock upstreams (127.0.0.1 only).

use std::sync::Arc;
use std::time::Duration;

use etchr_testkit::{MockUpstream, Reply, Script};
use etchr_upstream::{
    build, CallContext, ChatBackend, ChatRequest, ErrorKind, FallbackChain, HttpUpstream, Message,
    Provider, RetryPolicy, Role, StreamAccumulator, UpstreamConfig,
};
use futures_util::StreamExt;
use serde_json::json;

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn config(mock: &MockUpstream, provider: Provider) -> UpstreamConfig {
    let mut c = UpstreamConfig::new(provider);
    c.base_url = Some(mock.base_url());
    c.model = Some("Qwen/Qwen3-VL-8B-Instruct".into());
    c.api_key = Some(etchr_upstream::ApiKey::new("sk-test-123"));
    c
}

fn upstream(mock: &MockUpstream) -> HttpUpstream {
    HttpUpstream::new(&config(mock, Provider::Vllm))
        .unwrap()
        .with_retry_policy(fast_policy())
}

fn hello() -> ChatRequest {
    ChatRequest::new("", vec![Message::text(Role::User, "hello?")])
}

fn ctx() -> CallContext {
    CallContext::with_budget(Duration::from_secs(20))
}

#[tokio::test]
async fn success_sends_a_well_formed_request() {
    let mock = MockUpstream::start(Script::always(Reply::chat("hi there"))).await;
    let out = upstream(&mock).chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.response.text(), "hi there");
    assert_eq!(out.response.usage.as_ref().unwrap().total_tokens, 15);
    assert_eq!(out.served_by.attempts, 1);
    assert_eq!(out.served_by.upstream, "vllm");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].body["model"], "Qwen/Qwen3-VL-8B-Instruct");
    assert_eq!(reqs[0].body["messages"][0]["content"], "hello?");
    assert!(reqs[0].body.get("stream").is_none());
}

#[tokio::test]
async fn retries_500_then_succeeds() {
    let mock =
        MockUpstream::start(Script::faulty(2, Reply::server_error(), Reply::chat("ok"))).await;
    let out = upstream(&mock).chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.response.text(), "ok");
    assert_eq!(out.served_by.attempts, 3);
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn retries_429_honouring_retry_after() {
    let mock = MockUpstream::start(Script::faulty(
        1,
        Reply::rate_limited("1"),
        Reply::chat("ok"),
    ))
    .await;
    let out = upstream(&mock).chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.served_by.attempts, 2);
    let reqs = mock.requests();
    // A lower bound only: the retry must not come before the upstream said it may.
    assert!(reqs[1].at - reqs[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn retries_connection_resets() {
    let mock = MockUpstream::start(Script::faulty(1, Reply::reset(), Reply::chat("ok"))).await;
    let out = upstream(&mock).chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.response.text(), "ok");
    assert_eq!(out.served_by.attempts, 2);
}

#[tokio::test]
async fn retries_are_bounded() {
    let mock = MockUpstream::start(Script::always(Reply::error(503, "overloaded"))).await;
    let err = upstream(&mock).chat(hello(), ctx()).await.unwrap_err();
    assert_eq!(err.status, Some(503));
    assert_eq!(err.message, "overloaded");
    assert_eq!(err.upstream.as_deref(), Some("vllm"));
    assert_eq!(mock.request_count(), 4); // 1 + max_retries
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mock = MockUpstream::start(Script::always(Reply::flat_error(400, "bad request"))).await;
    let err = upstream(&mock).chat(hello(), ctx()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Api);
    assert_eq!(err.message, "bad request");
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn garbage_and_gemini_array_errors_are_normalised() {
    let mock = MockUpstream::start(Script::queue([
        Reply::garbage(),
        Reply::gemini_error(400, "Image too large"),
    ]))
    .await;
    let u = upstream(&mock);
    let err = u.chat(hello(), ctx()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Decode);
    let err = u.chat(hello(), ctx()).await.unwrap_err();
    assert_eq!(err.message, "Image too large");
    assert_eq!(err.error_type.as_deref(), Some("INVALID_ARGUMENT"));
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn deadline_is_respected() {
    let mock = MockUpstream::start(Script::always(
        Reply::chat("late").delayed(Duration::from_secs(10)),
    ))
    .await;
    let err = upstream(&mock)
        .chat(
            hello(),
            CallContext::with_budget(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::DeadlineExceeded);
    assert!(!err.should_fall_back());
}

#[tokio::test]
async fn retry_after_past_the_deadline_is_not_waited_for() {
    let mock = MockUpstream::start(Script::always(Reply::rate_limited("3"))).await;
    let err = upstream(&mock)
        .chat(hello(), CallContext::with_budget(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn per_call_timeout_retries_within_the_deadline() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("slow").delayed(Duration::from_secs(10)),
        Reply::chat("fast"),
    ]))
    .await;
    let u = upstream(&mock).with_timeout(Duration::from_millis(200));
    let out = u.chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.response.text(), "fast");
    assert_eq!(out.served_by.attempts, 2);
}

#[tokio::test]
async fn fallback_moves_to_the_next_upstream() {
    let bad = MockUpstream::start(Script::always(Reply::server_error())).await;
    let good = MockUpstream::start(Script::always(Reply::chat("from second"))).await;
    let mut second = config(&good, Provider::Vllm);
    second.name = Some("second".into());
    let chain = FallbackChain::new(vec![
        Arc::new(upstream(&bad)),
        Arc::new(
            HttpUpstream::new(&second)
                .unwrap()
                .with_retry_policy(fast_policy()),
        ),
    ])
    .unwrap();
    let out = chain.chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.response.text(), "from second");
    assert_eq!(out.served_by.upstream, "second");
    assert_eq!(bad.request_count(), 4);
    assert_eq!(good.request_count(), 1);
    assert_eq!(chain.profile().name, "vllm");
}

#[tokio::test]
async fn fallback_does_not_hide_bad_requests() {
    let bad = MockUpstream::start(Script::always(Reply::error(
        400,
        "messages must not be empty",
    )))
    .await;
    let good = MockUpstream::start(Script::always(Reply::chat("unused"))).await;
    let chain =
        FallbackChain::new(vec![Arc::new(upstream(&bad)), Arc::new(upstream(&good))]).unwrap();
    let err = chain.chat(hello(), ctx()).await.unwrap_err();
    assert_eq!(err.status, Some(400));
    assert_eq!(good.request_count(), 0);
}

#[tokio::test]
async fn build_makes_a_chain_from_config() {
    let bad = MockUpstream::start(Script::always(Reply::error(401, "invalid key"))).await;
    let good = MockUpstream::start(Script::always(Reply::chat("ok"))).await;
    let cfg: UpstreamConfig = serde_json::from_value(json!({
        "provider": "openai", "name": "primary", "base_url": bad.base_url(), "model": "gpt-4.1",
        "api_key": "sk-a", "max_retries": 0,
        "fallback": [{"provider": "vllm", "name": "local", "base_url": good.base_url(), "model": "qwen"}]
    }))
    .unwrap();
    let backend = build(&cfg).unwrap();
    let out = backend.chat(hello(), ctx()).await.unwrap();
    assert_eq!(out.served_by.upstream, "local");
    assert_eq!(good.bodies()[0]["model"], "qwen");
}

#[tokio::test]
async fn sse_stream_assembles_into_the_full_text() {
    let mock = MockUpstream::start(Script::always(
        Reply::stream(&["Hel", "lo", ", wor", "ld"]).with_gap(Duration::from_millis(5)),
    ))
    .await;
    let mut stream = upstream(&mock).chat_stream(hello(), ctx()).await.unwrap();
    let mut acc = StreamAccumulator::new();
    let mut n = 0;
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk.unwrap());
        n += 1;
    }
    assert_eq!(n, 6);
    let r = acc.finish();
    assert_eq!(r.text(), "Hello, world");
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    let req = &mock.requests()[0];
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn stream_errors_end_the_stream_with_an_error() {
    let mock = MockUpstream::start(Script::queue([
        Reply::stream_then_error(&["par", "tial"], "upstream exploded"),
        Reply::stream(&["a", "b"]).aborted(),
    ]))
    .await;
    let u = upstream(&mock);
    let items: Vec<_> = u.chat_stream(hello(), ctx()).await.unwrap().collect().await;
    assert_eq!(items.len(), 3);
    let err = items[2].as_ref().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Stream);
    assert_eq!(err.message, "upstream exploded");

    let items: Vec<_> = u.chat_stream(hello(), ctx()).await.unwrap().collect().await;
    // The frames before the break arrive; then one error, and the stream ends.
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert!(
        matches!(last.kind, ErrorKind::Stream | ErrorKind::Connect),
        "{last:?}"
    );
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
}

#[tokio::test]
async fn stream_setup_is_retried_and_plain_json_is_accepted() {
    let mock =
        MockUpstream::start(Script::queue([Reply::server_error(), Reply::chat("whole")])).await;
    let stream = upstream(&mock).chat_stream(hello(), ctx()).await.unwrap();
    assert_eq!(stream.served_by.attempts, 2);
    let mut acc = StreamAccumulator::new();
    for c in stream.collect::<Vec<_>>().await {
        acc.push(&c.unwrap());
    }
    assert_eq!(acc.finish().text(), "whole");
}

#[tokio::test]
async fn auth_header_is_sent_and_never_shown() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("ok"),
        Reply::error(401, "nope"),
    ]))
    .await;
    let cfg = config(&mock, Provider::Vllm);
    let u = HttpUpstream::new(&cfg)
        .unwrap()
        .with_retry_policy(fast_policy());
    u.chat(hello(), ctx()).await.unwrap();
    let err = u.chat(hello(), ctx()).await.unwrap_err();
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer sk-test-123")
    );
    for shown in [
        format!("{u:?}"),
        format!("{cfg:?}"),
        format!("{err:?}"),
        err.to_string(),
    ] {
        assert!(!shown.contains("sk-test-123"), "{shown}");
    }
}

#[tokio::test]
async fn client_authorization_passes_through_when_configured() {
    let mock = MockUpstream::start(Script::always(Reply::chat("ok"))).await;
    let mut cfg = config(&mock, Provider::Vllm);
    cfg.pass_through_auth = true;
    let u = HttpUpstream::new(&cfg).unwrap();
    u.chat(
        hello(),
        ctx().with_client_authorization("Bearer client-token"),
    )
    .await
    .unwrap();
    u.chat(hello(), ctx()).await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs[0].header("authorization"), Some("Bearer client-token"));
    assert_eq!(reqs[1].header("authorization"), Some("Bearer sk-test-123"));
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(1);
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
    });
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .unwrap();
    buf
}

#[tokio::test]
async fn gemini_gets_fitted_data_urls_only() {
    let mock = MockUpstream::start(Script::always(Reply::chat("a cat")).with_file(
        "/cat.png",
        "image/png",
        png(64, 48),
    ))
    .await;
    let mut cfg = config(&mock, Provider::Gemini);
    cfg.model = Some("gemini-2.5-flash".into());
    // The mock listens on loopback, which the fetch policy refuses unless told otherwise.
    let fetcher = etchr_upstream::ImageFetcher::new(etchr_upstream::FetchPolicy {
        allowed_hosts: vec!["127.0.0.1".into()],
        allow_private_addresses: true,
        ..Default::default()
    })
    .unwrap();
    let u = HttpUpstream::new(&cfg)
        .unwrap()
        .with_fetcher(Some(fetcher.clone()));
    let big = etchr_upstream::images::data_url(image::ImageFormat::Png, &png(4000, 1000));
    let req = ChatRequest::new(
        "",
        vec![
            Message::user_with_image("what is this?", mock.url("/cat.png")),
            Message::user_with_image("and this?", big),
        ],
    );
    let out = u.chat(req.clone(), ctx()).await.unwrap();
    let fits = &out.served_by.images;
    assert_eq!(fits.len(), 2);
    assert!(fits[0].fetched && !fits[0].reencoded);
    assert!(fits[1].reencoded && fits[1].sent.unwrap().0 <= 3072);
    assert_eq!(
        out.served_by.box_convention,
        etchr_upstream::BoxConvention::Gemini
    );
    let body = mock.bodies().pop().unwrap();
    for m in 0..2 {
        let url = body["messages"][m]["content"][1]["image_url"]["url"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("data:image/"),
            "message {m}: {}",
            &url[..40]
        );
    }

    // Without a fetcher (the server's default), or with fetching off for this upstream, or
    // with the default policy that refuses loopback, nothing is fetched or sent.
    let before = mock.request_count();
    let refused = |u: HttpUpstream| {
        let req = req.clone();
        async move { u.chat(req, ctx()).await.unwrap_err() }
    };
    let err = refused(HttpUpstream::new(&cfg).unwrap()).await;
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("fetching image URLs is off"), "{err}");
    let strict = etchr_upstream::ImageFetcher::new(etchr_upstream::FetchPolicy {
        allowed_hosts: vec!["127.0.0.1".into()],
        ..Default::default()
    })
    .unwrap();
    let err = refused(HttpUpstream::new(&cfg).unwrap().with_fetcher(Some(strict))).await;
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert!(err.message.contains("private, loopback"), "{err}");
    cfg.fetch_remote_images = false;
    let err = refused(HttpUpstream::new(&cfg).unwrap().with_fetcher(Some(fetcher))).await;
    assert_eq!(err.kind, ErrorKind::InvalidRequest);
    assert_eq!(mock.request_count(), before);
}

#[tokio::test]
async fn kimi_requests_are_shaped_on_the_wire() {
    let mock = MockUpstream::start(Script::always(Reply::tool_call(
        "edit_image",
        json!({"op": "zoom"}),
        Some("I need a closer look"),
    )))
    .await;
    let mut cfg = config(&mock, Provider::Kimi);
    cfg.model = Some("kimi-k2.5".into());
    let u = HttpUpstream::new(&cfg).unwrap();
    let mut req = ChatRequest::new(
        "",
        vec![
            Message::text(Role::User, "context"),
            Message::user_with_image(
                "look",
                etchr_upstream::images::data_url(image::ImageFormat::Png, &png(8, 8)),
            ),
        ],
    );
    req.tool_choice = Some(json!("required"));
    let out = u.chat(req, ctx()).await.unwrap();
    let msg = out.response.message().unwrap().clone();
    assert_eq!(
        msg.reasoning_content.as_deref(),
        Some("I need a closer look")
    );
    let body = &mock.bodies()[0];
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"type": "text", "text": "context"}])
    );
    assert_eq!(body["tool_choice"], "auto");

    // The assistant turn goes back with its reasoning for the next tool turn.
    let next = ChatRequest::new(
        "",
        vec![
            msg,
            Message::tool_result("call_0", etchr_upstream::Content::Text("zoomed".into())),
        ],
    );
    u.chat(next, ctx()).await.unwrap();
    let body = &mock.bodies()[1];
    assert_eq!(
        body["messages"][0]["reasoning_content"],
        "I need a closer look"
    );
}

#[tokio::test]
async fn an_image_over_the_decode_limits_is_refused_before_anything_is_sent() {
    // Gemini takes at most 3072 px a side, so a 4000 × 1000 image must be decoded and shrunk;
    // under decode limits below its size it is refused (413 at the server), never decoded and
    // never sent, and the same image within the limits goes through.
    let mock = MockUpstream::start(Script::always(Reply::chat("fine"))).await;
    let big = etchr_upstream::images::data_url(image::ImageFormat::Png, &png(4000, 1000));
    let req = ChatRequest::new("", vec![Message::user_with_image("what is this?", big)]);
    let gemini = || HttpUpstream::new(&config(&mock, Provider::Gemini)).unwrap();
    let tight = etchr_upstream::DecodeLimits {
        max_pixels: 3_999_999,
        max_side: 20_000,
    };
    let err = gemini()
        .with_decode_limits(tight)
        .chat(req.clone(), ctx())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageTooLarge);
    assert!(err.message.contains("4000x1000"), "{err}");
    assert_eq!(mock.request_count(), 0);
    let ok = gemini().chat(req, ctx()).await.unwrap();
    assert_eq!(ok.response.text(), "fine");
    assert_eq!(mock.request_count(), 1);
}
