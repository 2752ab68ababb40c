//! Extractors whose rejection is [`ApiError`], so malformed bodies get the same OpenAI-shaped
//! errors as everything else instead of axum's plain-text rejections.

use crate::config::FormatName;
use crate::engine::ImagePayload;
use crate::error::ApiError;
use crate::types::EditRequest;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use etchr_ops::CoordSystem;
use serde::de::DeserializeOwned;

/// JSON body extractor: 415 without a JSON content type, 400 `invalid_json` for syntax errors,
/// 400 `invalid_request` for well-formed JSON of the wrong shape, 413 over the body limit.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, distinguishing syntax errors from shape errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::InvalidJson(format!("the request body is not valid JSON: {e}"))
            }
            Category::Data => ApiError::invalid_request(format!("invalid request: {e}"), None),
        }
    })
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"))
}

fn is_multipart(headers: &HeaderMap) -> bool {
    content_type(headers).is_some_and(|ct| ct == "multipart/form-data")
}

/// Whether `err` or anything it wraps is the body limit being hit.
fn caused_by_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn too_large_or(status: StatusCode, message: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the request body is over the size limit: {message}"
        ))
    } else {
        ApiError::invalid_request(format!("could not read the request body: {message}"), None)
    }
}

fn limit_status(status: StatusCode, err: &(dyn std::error::Error + 'static)) -> StatusCode {
    if caused_by_length_limit(err) {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        status
    }
}

pub fn bytes_rejection(r: BytesRejection) -> ApiError {
    too_large_or(limit_status(r.status(), &r), r.body_text())
}

/// A request body that failed while it was read as a stream: 413 over the body limit, else 400.
pub fn body_error(e: axum::Error) -> ApiError {
    too_large_or(limit_status(StatusCode::BAD_REQUEST, &e), e.to_string())
}

fn multipart_rejection(r: MultipartRejection) -> ApiError {
    too_large_or(limit_status(r.status(), &r), r.body_text())
}

fn multipart_error(e: MultipartError) -> ApiError {
    too_large_or(limit_status(e.status(), &e), e.body_text())
}

/// An edit request from either body type, normalised.
#[derive(Debug)]
pub struct EditInput {
    pub image: ImagePayload,
    pub ops: Option<Vec<serde_json::Value>>,
    pub coords: CoordSystem,
    pub resized: Option<(u32, u32)>,
    pub format: Option<FormatName>,
    pub quality: Option<u8>,
    pub question: Option<String>,
    pub context: Option<String>,
}

impl From<EditRequest> for EditInput {
    fn from(r: EditRequest) -> Self {
        EditInput {
            image: ImagePayload::Text(r.image),
            ops: r.ops,
            coords: r.coords,
            resized: r.resized.map(|[w, h]| (w, h)),
            format: r.format,
            quality: r.quality,
            question: r.question,
            context: r.context,
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for EditInput {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if is_multipart(req.headers()) {
            let multipart = Multipart::from_request(req, state)
                .await
                .map_err(multipart_rejection)?;
            from_multipart(multipart).await
        } else if is_json(req.headers()) {
            let ApiJson(r) = ApiJson::<EditRequest>::from_request(req, state).await?;
            Ok(r.into())
        } else {
            Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json or multipart/form-data".into(),
            ))
        }
    }
}

async fn text_field(field: Field<'_>, name: &str) -> Result<String, ApiError> {
    field.text().await.map_err(|e| {
        if limit_status(e.status(), &e) == StatusCode::PAYLOAD_TOO_LARGE {
            multipart_error(e)
        } else {
            ApiError::invalid_request(
                format!("field `{name}` is not valid text: {}", e.body_text()),
                Some(name),
            )
        }
    })
}

fn parse_text_value<T: DeserializeOwned>(name: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_string()))
        .map_err(|e| ApiError::invalid_request(format!("field `{name}`: {e}"), Some(name)))
}

/// `W,H`, `WxH` or `[W,H]`.
fn parse_size(text: &str) -> Result<(u32, u32), ApiError> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    let parts: Vec<&str> = t.split([',', 'x']).map(str::trim).collect();
    match parts.as_slice() {
        [w, h] => match (w.parse(), h.parse()) {
            (Ok(w), Ok(h)) => Ok((w, h)),
            _ => Err(ApiError::invalid_request(
                format!("field `resized`: expected W,H, got {text:?}"),
                Some("resized"),
            )),
        },
        _ => Err(ApiError::invalid_request(
            format!("field `resized`: expected W,H, got {text:?}"),
            Some("resized"),
        )),
    }
}

async fn from_multipart(mut mp: Multipart) -> Result<EditInput, ApiError> {
    let mut image = None;
    let mut input = EditInput {
        image: ImagePayload::Bytes(Bytes::new()),
        ops: None,
        coords: CoordSystem::default(),
        resized: None,
        format: None,
        quality: None,
        question: None,
        context: None,
    };
    while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" => {
                let declared = field.content_type().map(|c| c.to_ascii_lowercase());
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if let Some(ct) = declared {
                    let textual = ct.starts_with("text/plain") && bytes.starts_with(b"data:");
                    if !(ct.starts_with("image/") || ct == "application/octet-stream" || textual) {
                        return Err(ApiError::InvalidImage(format!(
                            "the image part has Content-Type {ct}, not an image: send image/png, image/jpeg or image/webp"
                        )));
                    }
                }
                image = Some(bytes);
            }
            "ops" => {
                let text = text_field(field, "ops").await?;
                let ops = serde_json::from_str(&text).map_err(|e| ApiError::InvalidJson(format!("field `ops` is not a JSON array of ops: {e}")))?;
                input.ops = Some(ops);
            }
            "coords" => input.coords = parse_text_value("coords", &text_field(field, "coords").await?)?,
            "format" => input.format = Some(parse_text_value("format", &text_field(field, "format").await?)?),
            "resized" => input.resized = Some(parse_size(&text_field(field, "resized").await?)?),
            "quality" => {
                let text = text_field(field, "quality").await?;
                input.quality = Some(text.trim().parse().map_err(|_| {
                    ApiError::invalid_request(format!("field `quality`: expected 1-100, got {text:?}"), Some("quality"))
                })?);
            }
            "question" => input.question = Some(text_field(field, "question").await?),
            "context" => input.context = Some(text_field(field, "context").await?),
            other => {
                return Err(ApiError::invalid_request(
                    format!(
                        "unknown form field `{other}`: expected image, ops, coords, resized, format, quality, question or context"
                    ),
                    Some(other),
                ))
            }
        }
    }
    input.image = ImagePayload::Bytes(image.ok_or_else(|| {
        ApiError::invalid_request("missing form field `image` (the image file)", Some("image"))
    })?);
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("640,480").unwrap(), (640, 480));
        assert_eq!(parse_size("[640, 480]").unwrap(), (640, 480));
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        assert!(parse_size("640").is_err());
    }

    #[test]
    fn json_errors_are_classified() {
        assert_eq!(
            parse_json::<EditRequest>(b"{not json").unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            parse_json::<EditRequest>(b"{\"ops\": []}")
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }
}
