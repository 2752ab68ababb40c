//! `POST /v1/edit`: apply an edit program to an image.

use crate::config::FormatName;
use crate::engine::{data_url, execute, parse_program, EditJob, EditOutcome, ProgramSource};
use crate::error::{ApiError, ErrorBody};
use crate::extract::EditInput;
use crate::schema::BinaryImage;
use crate::state::AppState;
use crate::types::{EditMultipart, EditRequest, EditResponse, Timings, ViewOut};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// What the client asked to get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Json,
    /// The first view's bytes, in this format.
    Raw(FormatName),
}

/// The first of `application/json`, `image/png`, `image/jpeg` named in `Accept` wins; anything
/// else (or no header) means JSON. Quality values are ignored: clients that want bytes say so.
fn negotiate(headers: &HeaderMap) -> Reply {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Reply::Json;
    };
    for item in accept.split(',') {
        let mime = item
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "*/*" | "application/*" => return Reply::Json,
            "image/png" => return Reply::Raw(FormatName::Png),
            "image/jpeg" | "image/jpg" => return Reply::Raw(FormatName::Jpeg),
            _ => {}
        }
    }
    Reply::Json
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The finished response body, built on the blocking thread so base64 and JSON serialisation
/// of large images stay off the async runtime.
enum Built {
    Json(Vec<u8>),
    Raw {
        bytes: Vec<u8>,
        mime: &'static str,
        headers: Vec<(HeaderName, String)>,
    },
}

/// Apply an edit program to an image.
///
/// Send the image and an edit program (`ops`) whose boxes and points use the `coords`
/// convention, or a `question` (and optional `context`) for the editing model to plan the
/// program from; get back the edited image, the repaired program in original-image pixels and
/// the transform from the edited view back to the original. With `Accept: image/png` or
/// `image/jpeg` the response is the raw bytes of the first view instead, with its size and
/// transform in `x-etchr-*` headers.
#[utoipa::path(
    post,
    path = "/v1/edit",
    tag = "edit",
    request_body(
        description = "The image and the edit program, as JSON or as a multipart form.",
        content(
            (EditRequest = "application/json", example = json!({
                "image": "data:image/png;base64,iVBORw0KGgo...",
                "ops": [{"op": "crop", "box": [100, 50, 400, 300]}, {"op": "zoom", "factor": 2}],
                "coords": "pixel"
            })),
            (EditMultipart = "multipart/form-data")
        )
    ),
    params(
        ("accept" = Option<String>, Header, description = "`image/png` or `image/jpeg` for raw bytes of the first view; JSON otherwise.")
    ),
    responses(
        (status = 200, description = "The edited image", content(
            (EditResponse = "application/json"),
            (inline(BinaryImage) = "image/png"),
            (inline(BinaryImage) = "image/jpeg")
        )),
        (status = 400, description = "Malformed JSON, a missing or mistyped field, bad base64, a data URL that is not an image, or an image that cannot be decoded", body = ErrorBody),
        (status = 413, description = "The body is over the size limit, or the image is over the pixel limit", body = ErrorBody),
        (status = 415, description = "The body is neither JSON nor multipart/form-data", body = ErrorBody),
        (status = 422, description = "The program cannot be rendered (the message names the op index), or `ops` is absent and the editing model is disabled", body = ErrorBody),
        (status = 503, description = "Too many edits in progress (`overloaded`) or the editing model's queue is full (`model_overloaded`); retry after the `Retry-After` seconds", body = ErrorBody),
        (status = 504, description = "The request ran past the configured timeout", body = ErrorBody)
    )
)]
pub async fn edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    input: EditInput,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let cfg = &state.config;
    let reply = negotiate(&headers);

    let quality = match input.quality {
        None => cfg.output.jpeg_quality,
        Some(q @ 1..=100) => q,
        Some(q) => {
            return Err(ApiError::invalid_request(
                format!("quality must be within 1-100, got {q}"),
                Some("quality"),
            ))
        }
    };
    let format = match reply {
        Reply::Raw(f) => f,
        Reply::Json => input.format.unwrap_or(cfg.output.format),
    }
    .with_quality(quality);
    if let Some((w, h)) = input.resized {
        if w == 0 || h == 0 {
            return Err(ApiError::invalid_request(
                "resized must be two positive integers [width, height]",
                Some("resized"),
            ));
        }
    }

    let program = match input.ops {
        Some(ops) => ProgramSource::Ops(parse_program(ops, cfg.limits.max_ops)?),
        None => {
            let planner = state.planner.clone().ok_or_else(|| {
                ApiError::PlannerUnavailable(
                    "`ops` is required: planning an edit from a `question` needs the editing model, \
                     which this server has not loaded ([model] enabled = false); send an explicit \
                     `ops` array"
                        .into(),
                )
            })?;
            let question = input
                .question
                .filter(|q| !q.trim().is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_request(
                        "send `ops`, or a `question` to plan from",
                        Some("question"),
                    )
                })?;
            ProgramSource::Plan {
                planner,
                question,
                context: input.context,
            }
        }
    };

    let image = super::common::fetch_if_remote(&state, input.image).await?;
    let job = EditJob {
        image,
        program,
        coords: input.coords,
        resized: input.resized,
        format,
        all_views: reply == Reply::Json,
        limits: cfg.decode_limits(),
        render: cfg.render_options(),
    };

    let (built, timings) = state
        .renders
        .run(move || -> Result<(Built, Timings), ApiError> {
            let outcome = execute(job)?;
            Ok(build(outcome, reply, started))
        })
        .await
        .inspect_err(|e| {
            if matches!(e, ApiError::Overloaded(_)) {
                state.metrics.record_rejected_render();
            }
        })??;
    state.metrics.record_render(timings.render / 1000.0);

    Ok(match built {
        Built::Json(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Built::Raw {
            bytes,
            mime,
            headers,
        } => {
            let mut res = Response::new(Body::from(bytes));
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
            for (name, value) in headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            res
        }
    })
}

fn build(outcome: EditOutcome, reply: Reply, started: Instant) -> (Built, Timings) {
    let mut timings = outcome.timings;
    let EditOutcome {
        views,
        program,
        repairs,
        format,
        ..
    } = outcome;
    match reply {
        Reply::Raw(_) => {
            let first = views
                .into_iter()
                .next()
                .expect("execute returns at least one view");
            timings.total = ms(started);
            let headers = vec![
                (
                    HeaderName::from_static("x-etchr-width"),
                    first.width.to_string(),
                ),
                (
                    HeaderName::from_static("x-etchr-height"),
                    first.height.to_string(),
                ),
                (
                    HeaderName::from_static("x-etchr-transform"),
                    serde_json::to_string(&first.transform).unwrap_or_default(),
                ),
                (
                    HeaderName::from_static("x-etchr-repairs"),
                    repairs.len().to_string(),
                ),
                (
                    HeaderName::from_static("x-etchr-timings-ms"),
                    format!(
                        "decode={:.2},render={:.2},encode={:.2},total={:.2}",
                        timings.decode, timings.render, timings.encode, timings.total
                    ),
                ),
            ];
            (
                Built::Raw {
                    bytes: first.bytes,
                    mime: format.mime(),
                    headers,
                },
                timings,
            )
        }
        Reply::Json => {
            let t = Instant::now();
            let urls: Vec<String> = views.iter().map(|v| data_url(&v.bytes, format)).collect();
            timings.encode += ms(t);
            let many = views.len() > 1;
            let list = many.then(|| {
                views
                    .iter()
                    .zip(&urls)
                    .map(|(v, url)| ViewOut {
                        image: url.clone(),
                        width: v.width,
                        height: v.height,
                        transform: v.transform.clone(),
                    })
                    .collect()
            });
            let mut urls = urls;
            let first = views
                .into_iter()
                .next()
                .expect("execute returns at least one view");
            timings.total = ms(started);
            let response = EditResponse {
                image: urls.swap_remove(0),
                width: first.width,
                height: first.height,
                ops: program,
                transform: first.transform,
                repairs,
                views: list,
                timings_ms: timings,
            };
            let body = serde_json::to_vec(&response).expect("edit responses always serialise");
            (Built::Json(body), timings)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()), Reply::Json);
        assert_eq!(negotiate(&accept("image/png")), Reply::Raw(FormatName::Png));
        assert_eq!(
            negotiate(&accept("image/jpeg;q=0.9, application/json")),
            Reply::Raw(FormatName::Jpeg)
        );
        assert_eq!(
            negotiate(&accept("application/json, image/png")),
            Reply::Json
        );
        assert_eq!(negotiate(&accept("image/webp")), Reply::Json);
    }
}
