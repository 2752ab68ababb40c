//! Test doubles for ETCHR: a mock OpenAI-compatible upstream that runs inside a test.
//!
//! ```no_run
//! # async fn demo() {
//! use etchr_testkit::{MockUpstream, Reply, Script};
//! let mock = MockUpstream::start(Script::faulty(2, Reply::server_error(), Reply::chat("hi"))).await;
//! // point the client at mock.base_url() (".../v1"), then:
//! assert!(mock.requests().len() <= 3);
//! mock.shutdown().await;
//! # }
//! ```
//!
//! The mock listens on `127.0.0.1:0`, answers every `POST` from its [`Script`] (any path, so both
//! `/v1/chat/completions` and `/chat/completions` work), serves the script's static files on `GET`,
//! and records every request. It uses its own accept loop rather than `axum::serve` so that a
//! scripted [`Reply::reset`] can drop the very connection the request came on.

pub mod reply;
pub mod script;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

pub use reply::{chunk, completion, frame, Reply, ReplyBody};
pub use script::{RecordedRequest, Script};

/// Largest request body the mock reads.
const MAX_BODY: usize = 64 << 20;

struct Shared {
    script: Mutex<Script>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Requests whose head has arrived, complete or not.
    heads: tokio::sync::watch::Sender<usize>,
    /// Requests whose body broke off before it was complete (never recorded).
    broken: tokio::sync::watch::Sender<usize>,
    /// Whether requests are kept for [`MockUpstream::requests`] (off for long benchmarks).
    recording: std::sync::atomic::AtomicBool,
}

/// Per-connection handle that lets a handler drop its own connection.
#[derive(Clone)]
struct ConnKill(Arc<Notify>);

/// A running mock upstream. Dropping it stops accepting connections.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockUpstream {
    /// Starts a mock on `127.0.0.1:0` (call inside a tokio runtime).
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("mock upstream: cannot bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("mock upstream: no local address");
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            requests: Mutex::new(Vec::new()),
            heads: tokio::sync::watch::Sender::new(0),
            broken: tokio::sync::watch::Sender::new(0),
            recording: std::sync::atomic::AtomicBool::new(true),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let kill = ConnKill(Arc::new(Notify::new()));
                let svc = hyper_util::service::TowerToHyperService::new(
                    router.clone().layer(Extension(kill.clone())),
                );
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
                    tokio::select! {
                        _ = conn => {}
                        // Dropping the connection closes the socket mid-request.
                        _ = kill.0.notified() => {}
                    }
                });
            }
        });
        Self {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL an OpenAI client expects.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The JSON bodies of the `POST` requests received so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.body)
            .collect()
    }

    /// How many requests arrived.
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Keeps (the default) or stops keeping the requests that arrive. A benchmark sending
    /// thousands of megabyte bodies turns this off, so the mock's memory does not grow by
    /// gigabytes (and page faults do not land in the latencies it measures).
    pub fn set_recording(&self, on: bool) {
        self.shared
            .recording
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until the bodies of `n` requests have broken off (or were over the mock's size
    /// limit): requests the upstream could not act on, which are not recorded.
    pub async fn bodies_broken(&self, n: usize) {
        let mut broken = self.shared.broken.subscribe();
        let _ = broken.wait_for(|&seen| seen >= n).await;
    }

    /// Waits until `n` request heads have arrived, whether or not their bodies have (or ever
    /// will): how a test sees a request that is still being sent.
    pub async fn heads_arrived(&self, n: usize) {
        let mut heads = self.shared.heads.subscribe();
        let _ = heads.wait_for(|&seen| seen >= n).await;
    }

    /// Replaces the script (e.g. to make a healthy upstream fail mid-test).
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = script;
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.stop_accepting();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop_accepting(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(kill): Extension<ConnKill>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    shared.heads.send_modify(|n| *n += 1);
    // A body that breaks off (or is too large) is not a request a real server could act on:
    // it is refused and not recorded.
    let Ok(raw) = axum::body::to_bytes(body, MAX_BODY).await else {
        shared.broken.send_modify(|n| *n += 1);
        return (StatusCode::BAD_REQUEST, "the request body broke off").into_response();
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null),
        raw,
        at: Instant::now(),
    };
    if shared.recording.load(std::sync::atomic::Ordering::Relaxed) {
        shared.requests.lock().unwrap().push(recorded.clone());
    }

    if parts.method == Method::GET {
        let file = shared
            .script
            .lock()
            .unwrap()
            .files
            .get(parts.uri.path())
            .cloned();
        return match file {
            Some((ctype, bytes)) => {
                ([(axum::http::header::CONTENT_TYPE, ctype)], bytes).into_response()
            }
            None => (StatusCode::NOT_FOUND, "no such mock file").into_response(),
        };
    }

    let reply = shared.script.lock().unwrap().next(&recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    render(reply, kill).await
}

async fn render(reply: Reply, kill: ConnKill) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match reply.body {
        ReplyBody::Reset => {
            kill.0.notify_one();
            // Never answer; the connection task drops us with the socket.
            std::future::pending::<()>().await;
            unreachable!()
        }
        ReplyBody::Json(v) => (status, axum::Json(v)).into_response(),
        ReplyBody::Text(t) => (status, t).into_response(),
        ReplyBody::Sse { frames, gap, abort } => {
            // The pause lets hyper flush the frames before the break; otherwise it drops the
            // connection with the response head still buffered and the client sees a plain reset.
            let tail = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::other("mock stream aborted"))
            })
            .take(usize::from(abort));
            let frames = futures_util::stream::iter(frames.into_iter().enumerate()).then(
                move |(i, f)| async move {
                    if i > 0 && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    Ok::<Bytes, std::io::Error>(Bytes::from(f))
                },
            );
            let body = Body::from_stream(frames.chain(tail));
            (status, body).into_response()
        }
    };
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn scripted_replies_are_served_in_order_and_recorded() {
        let mock = MockUpstream::start(
            Script::queue([Reply::rate_limited("1"), Reply::chat("hello")]).with_file(
                "/img.png",
                "image/png",
                &b"png"[..],
            ),
        )
        .await;
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", mock.base_url());
        let r = client
            .post(&url)
            .json(&json!({"model": "m"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "1");
        let r = client
            .post(&url)
            .bearer_auth("k")
            .json(&json!({"model": "m2"}))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        let r = client.post(&url).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 500);
        let r = client.get(mock.url("/img.png")).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap(), &b"png"[..]);

        let reqs = mock.requests();
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[1].header("authorization"), Some("Bearer k"));
        assert_eq!(reqs[1].path, "/v1/chat/completions");
        assert_eq!(mock.bodies()[1]["model"], "m2");
        mock.shutdown().await;
    }

    #[tokio::test]
    async fn resets_drop_the_connection_and_streams_stream() {
        let mock =
            MockUpstream::start(Script::queue([Reply::reset(), Reply::stream(&["a", "b"])])).await;
        let client = reqwest::Client::new();
        let url = format!("{}/chat/completions", mock.base_url());
        let err = client.post(&url).json(&json!({})).send().await.unwrap_err();
        assert!(!err.is_status(), "{err}");
        let text = client
            .post(&url)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            text.contains("\"content\":\"a\"") && text.ends_with("data: [DONE]\n\n"),
            "{text}"
        );
    }
}
