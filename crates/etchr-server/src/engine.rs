//! One edit, start to finish, with no HTTP in sight: decode once, plan or convert the program,
//! render, encode once. The HTTP handler runs it on a blocking thread; `etchr edit` runs it
//! directly, so the CLI and the API cannot disagree.

use crate::error::ApiError;
use crate::planner::{PlanRequest, Planner};
use crate::types::Timings;
use base64::engine::general_purpose::{PAD, PAD_INDIFFERENT};
use base64::engine::Simd;
use base64::Engine as _;
use bytes::Bytes;
use etchr_ops::{
    decode_image, encode_image, render, Adapter, CoordSystem, DecodeLimits, Op, OutputFormat,
    Program, RenderOptions, Transform,
};
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

/// Standard alphabet, padding optional on input: clients differ.
static B64_DECODE: LazyLock<Simd> = LazyLock::new(|| Simd::standard(PAD_INDIFFERENT));
static B64_ENCODE: LazyLock<Simd> = LazyLock::new(|| Simd::standard(PAD));

/// The image as it arrived.
#[derive(Debug, Clone)]
pub enum ImagePayload {
    /// A data URL or bare base64 (JSON bodies).
    Text(String),
    /// Raw file bytes (multipart bodies, the CLI).
    Bytes(Bytes),
}

/// Where the program comes from.
pub enum ProgramSource {
    /// Explicit ops, in the request's coordinate convention.
    Ops(Program),
    /// Ask the planner.
    Plan {
        planner: Arc<dyn Planner>,
        question: String,
        context: Option<String>,
    },
}

/// Everything one edit needs.
pub struct EditJob {
    pub image: ImagePayload,
    pub program: ProgramSource,
    pub coords: CoordSystem,
    pub resized: Option<(u32, u32)>,
    pub format: OutputFormat,
    /// Encode every view, or only the first (raw-bytes responses send one image).
    pub all_views: bool,
    pub limits: DecodeLimits,
    pub render: RenderOptions,
}

/// One encoded output view.
pub struct EncodedView {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub transform: Transform,
}

/// The result of an edit. `timings.total` is left for the caller to fill in.
pub struct EditOutcome {
    pub views: Vec<EncodedView>,
    /// The repaired program, in original-image pixels.
    pub program: Program,
    pub repairs: Vec<String>,
    pub timings: Timings,
    pub format: OutputFormat,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Runs one edit. CPU-heavy: call it off the async runtime.
pub fn execute(job: EditJob) -> Result<EditOutcome, ApiError> {
    let mut timings = Timings::default();

    let t = Instant::now();
    let bytes = payload_bytes(&job.image)?;
    // Shared: a planner hands it to the editing model without copying it.
    let original = Arc::new(decode_image(&bytes, &job.limits)?);
    drop(bytes);
    timings.decode = ms(t);
    let (width, height) = original.dimensions();

    let pixels = match job.program {
        ProgramSource::Ops(program) => {
            Adapter::new(job.coords, width, height, job.resized).program_to_pixels(&program)
        }
        ProgramSource::Plan {
            planner,
            question,
            context,
        } => {
            let t = Instant::now();
            let program = planner.plan(&PlanRequest {
                image: &original,
                transform: &Transform::identity(),
                original_size: (width, height),
                question: &question,
                context: context.as_deref(),
                step: 0,
                avoid: &[],
            })?;
            timings.plan = Some(ms(t));
            program
        }
    };

    let t = Instant::now();
    let rendered = render(&original, &pixels, &job.render)?;
    timings.render = ms(t);

    let t = Instant::now();
    let take = if job.all_views {
        rendered.views.len()
    } else {
        1
    };
    let views = rendered
        .views
        .into_iter()
        .take(take)
        .map(|v| {
            Ok(EncodedView {
                bytes: encode_image(&v.image, job.format)?,
                width: v.image.width(),
                height: v.image.height(),
                transform: v.transform,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    timings.encode = ms(t);

    if views.is_empty() {
        return Err(ApiError::Internal("the renderer returned no view".into()));
    }
    Ok(EditOutcome {
        views,
        program: rendered.program,
        repairs: rendered.repairs,
        timings,
        format: job.format,
    })
}

/// A `data:` URL for encoded image bytes.
pub fn data_url(bytes: &[u8], format: OutputFormat) -> String {
    let mime = format.mime();
    let mut s = String::with_capacity(bytes.len() * 4 / 3 + mime.len() + 16);
    s.push_str("data:");
    s.push_str(mime);
    s.push_str(";base64,");
    B64_ENCODE.encode_string(bytes, &mut s);
    s
}

/// The image bytes of a payload: data URL or bare base64 decoded, raw bytes passed through.
pub fn payload_bytes(payload: &ImagePayload) -> Result<Cow<'_, [u8]>, ApiError> {
    match payload {
        ImagePayload::Text(s) => decode_text_image(s).map(Cow::Owned),
        ImagePayload::Bytes(b) if b.starts_with(b"data:") => {
            let s = std::str::from_utf8(b).map_err(|_| {
                ApiError::InvalidImage("the image data URL is not valid UTF-8".into())
            })?;
            decode_text_image(s).map(Cow::Owned)
        }
        ImagePayload::Bytes(b) => Ok(Cow::Borrowed(b.as_ref())),
    }
}

fn decode_text_image(text: &str) -> Result<Vec<u8>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::InvalidImage("the image field is empty".into()));
    }
    let data = if let Some(rest) = text.strip_prefix("data:") {
        let (header, data) = rest.split_once(',').ok_or_else(|| {
            ApiError::InvalidImage("malformed data URL: expected data:<mime>;base64,<data>".into())
        })?;
        let mut params = header.split(';');
        let mime = params.next().unwrap_or("").trim().to_ascii_lowercase();
        if !mime.starts_with("image/") {
            let shown = if mime.is_empty() {
                "no media type".to_string()
            } else {
                mime
            };
            return Err(ApiError::InvalidImage(format!(
                "the data URL has {shown}, not an image: send image/png, image/jpeg or image/webp"
            )));
        }
        if !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
            return Err(ApiError::InvalidImage(
                "the data URL must be base64-encoded (data:<mime>;base64,<data>)".into(),
            ));
        }
        data
    } else if text.starts_with("http://") || text.starts_with("https://") {
        return Err(ApiError::InvalidImage(
            "image URLs are not fetched: send the image as a data URL, base64 or a multipart file"
                .into(),
        ));
    } else {
        text
    };
    // Some clients wrap base64 at 76 columns.
    let data: Cow<'_, str> = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(data.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(data)
    };
    B64_DECODE
        .decode(data.as_bytes())
        .map_err(|e| ApiError::InvalidImage(format!("the image is not valid base64: {e}")))
}

/// Turns raw JSON ops into a program, reporting the first bad op by index. Checks the length
/// first so an oversized program is refused before any op is parsed.
pub fn parse_program(ops: Vec<serde_json::Value>, max_ops: usize) -> Result<Program, ApiError> {
    if ops.len() > max_ops {
        return Err(ApiError::InvalidProgram {
            message: format!(
                "the program has {} ops, over the limit of {max_ops}",
                ops.len()
            ),
            param: Some("ops".into()),
        });
    }
    let mut out = Vec::with_capacity(ops.len());
    for (index, value) in ops.into_iter().enumerate() {
        let name = value
            .get("op")
            .and_then(|v| v.as_str())
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        let op: Op = serde_json::from_value(value).map_err(|e| ApiError::InvalidProgram {
            message: format!("op {index}{name}: {e}"),
            param: Some(format!("ops[{index}]")),
        })?;
        out.push(op);
    }
    Ok(Program(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_urls_and_bare_base64_decode() {
        let b = B64_ENCODE.encode(b"\x89PNG....");
        for text in [
            format!("data:image/png;base64,{b}"),
            b.clone(),
            format!("  {b}\n"),
        ] {
            assert_eq!(decode_text_image(&text).unwrap(), b"\x89PNG....");
        }
        let wrapped = format!("data:image/png;base64,{}\n{}", &b[..4], &b[4..]);
        assert_eq!(decode_text_image(&wrapped).unwrap(), b"\x89PNG....");
        let unpadded = b.trim_end_matches('=');
        assert_eq!(decode_text_image(unpadded).unwrap(), b"\x89PNG....");
    }

    #[test]
    fn bad_payloads_say_why() {
        let err = |s: &str| decode_text_image(s).unwrap_err().to_string();
        assert!(err("data:text/plain;base64,aGk=").contains("text/plain"));
        assert!(err("data:image/png,rawtext").contains("base64"));
        assert!(err("not base64!!").contains("base64"));
        assert!(err("https://example.com/a.png").contains("not fetched"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn bad_ops_are_reported_by_index() {
        let ops = vec![
            json!({"op": "crop", "box": [0, 0, 5, 5]}),
            json!({"op": "zoom", "factor": "big"}),
        ];
        let e = parse_program(ops, 10).unwrap_err();
        assert!(e.to_string().starts_with("op 1 (zoom):"), "{e}");
        assert_eq!(e.param().as_deref(), Some("ops[1]"));
        let e = parse_program(vec![json!({}); 3], 2).unwrap_err();
        assert!(e.to_string().contains("limit of 2"), "{e}");
    }
}
