//! Router tests: the whole middleware stack, driven with `tower::ServiceExt::oneshot`.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use etchr_ops::{decode_image, encode_image, DecodeLimits, OutputFormat, Program, RgbImage};
use etchr_server::app::{api_routes, build};
use etchr_server::{router, AppState, Config, PlanError, PlanRequest, Planner};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

fn png(w: u32, h: u32) -> Vec<u8> {
    let raw = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| image_px(x, y)))
        .collect();
    let img = RgbImage::from_raw(w, h, raw).unwrap();
    encode_image(&img, OutputFormat::Png).unwrap()
}

/// The test pattern: every pixel differs from its neighbours.
fn image_px(x: u32, y: u32) -> [u8; 3] {
    [(x * 7 % 256) as u8, (y * 5 % 256) as u8, 128]
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn data_url(bytes: &[u8]) -> String {
    format!("data:image/png;base64,{}", b64(bytes))
}

fn app() -> Router {
    router(AppState::new(Config::default()))
}

fn app_with(edit: impl FnOnce(&mut Config)) -> Router {
    let mut cfg = Config::default();
    edit(&mut cfg);
    router(AppState::new(cfg))
}

fn post_json(body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn edit_body(image: &str, ops: Value) -> String {
    json!({"image": image, "ops": ops}).to_string()
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Bytes) {
    let res: Response = app.oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Sends `req` and checks the answer is an OpenAI-shaped error with `status` and `code`.
async fn expect_error(app: Router, req: Request<Body>, status: StatusCode, code: &str) -> Value {
    let (got, headers, body) = send(app, req).await;
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(got, status, "body: {text}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{headers:?}"
    );
    let v: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let err = &v["error"];
    assert_eq!(err["code"], code, "{text}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{text}"
    );
    assert!(err["type"].is_string(), "{text}");
    assert!(err.get("param").is_some(), "{text}");
    v
}

fn decoded(bytes: &[u8]) -> RgbImage {
    decode_image(bytes, &DecodeLimits::default()).unwrap()
}

fn decode_data_url(url: &str) -> RgbImage {
    let (_, data) = url.split_once(',').unwrap();
    decoded(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
}

// ---------------------------------------------------------------- errors

#[tokio::test]
async fn malformed_json_is_400() {
    expect_error(
        app(),
        post_json("{\"image\": "),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
}

#[tokio::test]
async fn wrong_shape_and_unknown_fields_are_400() {
    let v = expect_error(
        app(),
        post_json("{\"ops\": []}"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("image"));
    let body = json!({"image": data_url(&png(4, 4)), "ops": [], "program": []}).to_string();
    let v = expect_error(
        app(),
        post_json(body),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("program"));
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("hello"))
        .unwrap();
    expect_error(
        app(),
        req,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let req = Request::post("/v1/edit").body(Body::from("{}")).unwrap();
    expect_error(
        app(),
        req,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn oversize_body_is_413_with_or_without_content_length() {
    let small = || app_with(|c| c.limits.body_limit_bytes = 1024);
    let big = edit_body(&data_url(&vec![7u8; 4096]), json!([]));
    // Declared length: refused by tower-http before the body is read.
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let v = expect_error(
        small(),
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("1024"));
    // No declared length: refused while reading.
    expect_error(
        small(),
        post_json(big.clone()),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // Multipart too.
    let (ct, body) = multipart(&[("image", Some("image/png"), vec![1u8; 4096])]);
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap();
    expect_error(
        small(),
        req,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
}

#[tokio::test]
async fn bad_base64_is_400() {
    let v = expect_error(
        app(),
        post_json(edit_body(
            "data:image/png;base64,@@@not-base64@@@",
            json!([]),
        )),
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
    assert_eq!(v["error"]["param"], "image");
    assert!(v["error"]["message"].as_str().unwrap().contains("base64"));
    expect_error(
        app(),
        post_json(edit_body("%%%%", json!([]))),
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
}

#[tokio::test]
async fn corrupt_image_is_400() {
    let mut bytes = png(32, 32);
    bytes.truncate(bytes.len() / 2);
    expect_error(
        app(),
        post_json(edit_body(&data_url(&bytes), json!([]))),
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
    let garbage = b64(b"this is not an image at all");
    expect_error(
        app(),
        post_json(edit_body(&garbage, json!([]))),
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
}

#[tokio::test]
async fn non_image_data_url_is_400() {
    let url = format!("data:text/plain;base64,{}", b64(b"hello"));
    let v = expect_error(
        app(),
        post_json(edit_body(&url, json!([]))),
        StatusCode::BAD_REQUEST,
        "invalid_image",
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/plain"),
        "{v}"
    );
}

#[tokio::test]
async fn image_over_pixel_limit_is_413() {
    let app = app_with(|c| c.limits.max_pixels = 100);
    let v = expect_error(
        app,
        post_json(edit_body(&data_url(&png(20, 20)), json!([]))),
        StatusCode::PAYLOAD_TOO_LARGE,
        "image_too_large",
    )
    .await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("400"),
        "{v}"
    );
}

#[tokio::test]
async fn impossible_program_is_422_naming_the_op() {
    let ops = json!([{"op": "crop", "box": [0, 0, 10, 10]}, {"op": "zoom"}]);
    let v = expect_error(
        app(),
        post_json(edit_body(&data_url(&png(32, 32)), ops)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_program",
    )
    .await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("op 1") && msg.contains("zoom"), "{msg}");
    assert_eq!(v["error"]["param"], "ops[1]");

    // An op that does not exist is caught before the image is even decoded.
    let ops = json!([{"op": "crop", "box": [0, 0, 10, 10]}, {"op": "zoom", "factor": 2}, {"op": "explode"}]);
    let v = expect_error(
        app(),
        post_json(edit_body("unused", ops)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_program",
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("op 2 (explode)"),
        "{v}"
    );

    let app = app_with(|c| c.limits.max_ops = 2);
    let ops = json!([{"op": "flip"}, {"op": "flip"}, {"op": "flip"}]);
    expect_error(
        app,
        post_json(edit_body("unused", ops)),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_program",
    )
    .await;
}

#[tokio::test]
async fn bad_quality_is_400() {
    let body = json!({"image": data_url(&png(4, 4)), "ops": [], "quality": 0}).to_string();
    expect_error(
        app(),
        post_json(body),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let req = Request::get("/v1/nope").body(Body::empty()).unwrap();
    expect_error(app(), req, StatusCode::NOT_FOUND, "not_found").await;
    let req = Request::get("/v1/edit").body(Body::empty()).unwrap();
    let v = expect_error(
        app(),
        req,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("GET"));
    let (_, headers, _) = send(
        app(),
        Request::delete("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(headers.contains_key(header::ALLOW), "{headers:?}");
}

#[tokio::test]
async fn missing_ops_without_a_model_is_422() {
    let body =
        json!({"image": data_url(&png(8, 8)), "question": "what is in the corner?"}).to_string();
    let v = expect_error(
        app(),
        post_json(body),
        StatusCode::UNPROCESSABLE_ENTITY,
        "planner_unavailable",
    )
    .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("editing model"),
        "{v}"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_app_keeps_serving() {
    let routes = api_routes().route(
        "/boom",
        get(|| async {
            if true {
                panic!("deliberate test panic");
            }
            "unreachable"
        }),
    );
    let app = build(AppState::new(Config::default()), routes);
    let req = Request::get("/boom").body(Body::empty()).unwrap();
    expect_error(
        app.clone(),
        req,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
    )
    .await;
    let (status, _, _) = send(app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_times_out_with_a_json_504() {
    let routes = api_routes().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    );
    let mut cfg = Config::default();
    cfg.limits.request_timeout_secs = 5;
    let app = build(AppState::new(cfg), routes);
    let req = Request::get("/slow").body(Body::empty()).unwrap();
    expect_error(app, req, StatusCode::GATEWAY_TIMEOUT, "timeout").await;
}

// ---------------------------------------------------------------- success

#[tokio::test]
async fn json_edit_crops_zooms_and_reports_provenance() {
    let body = json!({
        "image": data_url(&png(200, 100)),
        // norm1000 on 200x100: [100,100,600,600] is pixels [20,10,120,60].
        "ops": [{"op": "crop", "box": [100, 100, 600, 600]}, {"op": "zoom", "factor": 2}],
        "coords": "norm1000",
    })
    .to_string();
    let (status, headers, bytes) = send(app(), post_json(body)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(200), Some(100))
    );
    assert!(v["image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    let img = decode_data_url(v["image"].as_str().unwrap());
    assert_eq!(img.dimensions(), (200, 100));
    // The repaired program is in original pixels.
    let program: Program = serde_json::from_value(v["ops"].clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&program).unwrap()[0]["box"],
        json!([20.0, 10.0, 120.0, 60.0])
    );
    // The transform maps the view back to the original.
    let t: etchr_ops::Transform = serde_json::from_value(v["transform"].clone()).unwrap();
    let p = t.to_original(etchr_ops::Point::new(0.0, 0.0));
    assert_eq!((p.x, p.y), (20.0, 10.0));
    assert!(v["repairs"].is_array());
    assert!(
        v.get("views").is_none(),
        "views only when there are several"
    );
    for k in ["decode", "render", "encode", "total"] {
        assert!(v["timings_ms"][k].as_f64().unwrap() >= 0.0, "{k}");
    }
}

#[tokio::test]
async fn empty_program_returns_the_image_and_bare_base64_works() {
    let body = edit_body(&b64(&png(30, 20)), json!([]));
    let (status, _, bytes) = send(app(), post_json(body)).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let img = decode_data_url(v["image"].as_str().unwrap());
    assert_eq!(img.dimensions(), (30, 20));
    assert_eq!(img.get_pixel(13, 7).0, image_px(13, 7));
}

#[tokio::test]
async fn tiles_return_every_view() {
    let ops = json!([{"op": "tiles", "rows": 2, "cols": 2}]);
    let (status, _, bytes) = send(app(), post_json(edit_body(&data_url(&png(64, 64)), ops))).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let views = v["views"].as_array().unwrap();
    assert_eq!(views.len(), 4);
    for view in views {
        assert_eq!(
            (view["width"].as_u64(), view["height"].as_u64()),
            (Some(32), Some(32))
        );
        assert!(view["transform"]["steps"].is_array());
    }
}

#[tokio::test]
async fn jpeg_output_in_json() {
    let body = json!({"image": data_url(&png(16, 16)), "ops": [], "format": "jpeg", "quality": 80})
        .to_string();
    let (status, _, bytes) = send(app(), post_json(body)).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v["image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/jpeg;base64,"));
}

#[tokio::test]
async fn accept_image_returns_raw_bytes() {
    let ops = json!([{"op": "crop", "box": [0, 0, 50, 40]}]);
    for (accept, mime) in [("image/png", "image/png"), ("image/jpeg", "image/jpeg")] {
        let req = Request::post("/v1/edit")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .body(Body::from(edit_body(&data_url(&png(100, 80)), ops.clone())))
            .unwrap();
        let (status, headers, bytes) = send(app(), req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], mime);
        assert_eq!(headers["x-etchr-width"], "50");
        assert!(headers.contains_key("x-etchr-transform"));
        assert_eq!(decoded(&bytes).dimensions(), (50, 40));
    }
}

/// A hand-built multipart body.
fn multipart(parts: &[(&str, Option<&str>, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "etchr-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, ct, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match ct {
            Some(ct) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\nContent-Type: {ct}\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn multipart_edit() {
    let ops = br#"[{"op":"crop","box":[0.25,0.25,0.75,0.75]},{"op":"zoom","width":100}]"#.to_vec();
    let (ct, body) = multipart(&[
        ("image", Some("image/png"), png(80, 40)),
        ("ops", None, ops),
        ("coords", None, b"norm1".to_vec()),
    ]);
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap();
    let (status, _, bytes) = send(app(), req).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(100), Some(50))
    );
    assert_eq!(v["ops"][0]["box"], json!([20.0, 10.0, 60.0, 30.0]));
}

#[tokio::test]
async fn multipart_errors() {
    let (ct, body) = multipart(&[("ops", None, b"[]".to_vec())]);
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap();
    expect_error(app(), req, StatusCode::BAD_REQUEST, "invalid_request").await;
    let (ct, body) = multipart(&[
        ("image", Some("text/html"), b"<html>".to_vec()),
        ("ops", None, b"[]".to_vec()),
    ]);
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap();
    expect_error(app(), req, StatusCode::BAD_REQUEST, "invalid_image").await;
    let (ct, body) = multipart(&[
        ("image", Some("image/png"), png(4, 4)),
        ("ops", None, b"[{".to_vec()),
    ]);
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(body))
        .unwrap();
    expect_error(app(), req, StatusCode::BAD_REQUEST, "invalid_json").await;
}

struct CornerPlanner;

impl Planner for CornerPlanner {
    fn name(&self) -> &str {
        "corner"
    }
    fn plan(&self, req: &PlanRequest<'_>) -> Result<Program, PlanError> {
        assert_eq!(req.question, "what is top left?");
        let (w, h) = req.image.dimensions();
        Program::from_json(&format!(
            r#"[{{"op":"crop","box":[0,0,{},{}]}}]"#,
            w / 2,
            h / 2
        ))
        .map_err(|e| PlanError::Model(e.to_string()))
    }
}

#[tokio::test]
async fn a_planner_plugs_in_through_the_trait() {
    let app = router(AppState::new(Config::default()).with_planner(Arc::new(CornerPlanner)));
    let body =
        json!({"image": data_url(&png(64, 32)), "question": "what is top left?"}).to_string();
    let (status, _, bytes) = send(app.clone(), post_json(body)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(32), Some(16))
    );
    assert!(v["timings_ms"]["plan"].is_number());
    let body = json!({"image": data_url(&png(8, 8))}).to_string();
    expect_error(
        app,
        post_json(body),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

/// A model whose queue is always full.
struct BusyPlanner;

impl Planner for BusyPlanner {
    fn name(&self) -> &str {
        "busy"
    }
    fn plan(&self, _req: &PlanRequest<'_>) -> Result<Program, PlanError> {
        Err(PlanError::Overloaded(
            "the editing model is overloaded: its queue of 4 requests is full".into(),
        ))
    }
}

#[tokio::test]
async fn an_overloaded_model_is_a_fast_503_with_retry_after() {
    let app = router(AppState::new(Config::default()).with_planner(Arc::new(BusyPlanner)));
    let body = json!({"image": data_url(&png(16, 16)), "question": "where?"}).to_string();
    let (status, headers, bytes) = send(app.clone(), post_json(body.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"]["code"], "model_overloaded");
    assert_eq!(v["error"]["type"], "server_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("queue"),
        "{v}"
    );
    // Explicit ops never touch the model.
    let body = edit_body(&data_url(&png(16, 16)), json!([{"op": "flip"}]));
    let (status, _, _) = send(app, post_json(body)).await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------- operations

#[tokio::test]
async fn healthz_and_readyz() {
    let state = AppState::new(Config::default());
    let app = router(state.clone());
    let (status, _, body) = send(
        app.clone(),
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"status": "ok"})
    );
    let (status, _, _) = send(
        app.clone(),
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    state.begin_draining();
    let req = Request::get("/readyz").body(Body::empty()).unwrap();
    expect_error(
        app.clone(),
        req,
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
    )
    .await;
    let (status, _, _) = send(app, Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "liveness is unaffected by draining");
}

#[tokio::test]
async fn metrics_count_requests_per_app_instance() {
    let (a, b) = (app(), app());
    send(
        a.clone(),
        post_json(edit_body(&data_url(&png(8, 8)), json!([]))),
    )
    .await;
    send(
        a.clone(),
        Request::get("/nowhere").body(Body::empty()).unwrap(),
    )
    .await;
    let (status, headers, body) =
        send(a, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"etchr_http_requests_total{route="/v1/edit",method="POST",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="unmatched",method="GET",status="404""#),
        "{text}"
    );
    assert!(
        text.contains("etchr_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains("etchr_render_duration_seconds_bucket"),
        "{text}"
    );
    // Another app instance has its own recorder.
    let (_, _, body) = send(b, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(!String::from_utf8(body.to_vec())
        .unwrap()
        .contains("/v1/edit"));
}

#[tokio::test]
async fn request_ids_are_generated_and_propagated() {
    let (_, headers, _) = send(app(), Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert!(!headers["x-request-id"].is_empty());
    let req = Request::get("/nope")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(app(), req).await;
    assert_eq!(headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn json_is_compressed_but_event_streams_never_are() {
    let routes = api_routes().route(
        "/events",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                "data: x\n\n".repeat(1000),
            )
        }),
    );
    let app = build(AppState::new(Config::default()), routes);
    let req = Request::post("/v1/edit")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::from(edit_body(&data_url(&png(256, 256)), json!([]))))
        .unwrap();
    let (status, headers, _) = send(app.clone(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    let req = Request::get("/events")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(app, req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !headers.contains_key(header::CONTENT_ENCODING),
        "{headers:?}"
    );
}

#[tokio::test]
async fn cors_is_closed_by_default_and_opens_per_config() {
    let preflight = || {
        Request::options("/v1/edit")
            .header(header::ORIGIN, "https://app.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    };
    let (_, headers, _) = send(app(), preflight()).await;
    assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    let open = app_with(|c| c.cors.allowed_origins = vec!["https://app.example".into()]);
    let (_, headers, _) = send(open, preflight()).await;
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
}
