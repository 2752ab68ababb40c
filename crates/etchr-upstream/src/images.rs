//! Fitting images to what an upstream accepts.
//!
//! A request that carries a 24-megapixel PNG to a provider that takes 7 MB fails with an opaque
//! 400 after a long upload. Fitting here first — downscale to the pixel and side limits, re-encode
//! to an accepted format, lower JPEG quality and then size until the bytes fit — turns that into a
//! request that works. Images already within limits are passed through byte-for-byte (decode once,
//! encode once: never re-encode needlessly).
//!
//! Resizing changes what the model sees, so every fitted image reports its scale ([`ImageFit`]):
//! for pixel-convention upstreams the loop must map boxes back through it.

use std::io::Cursor;

use base64::Engine as _;
use image::{DynamicImage, ImageFormat};

use crate::error::{ErrorKind, UpstreamError};
use crate::profile::ImageLimits;
use crate::types::{ChatRequest, Content, ContentPart};
pub use etchr_ops::codec::DecodeLimits;

/// What happened to one image of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFit {
    /// Index of the message in `messages`.
    pub message: usize,
    /// Index of the part in that message's content.
    pub part: usize,
    /// Width and height of the image received (`None` for URLs passed through unseen).
    pub original: Option<(u32, u32)>,
    /// Width and height of the image sent.
    pub sent: Option<(u32, u32)>,
    /// Whether the bytes sent differ from the bytes received.
    pub reencoded: bool,
    /// Whether a remote URL was fetched and inlined.
    pub fetched: bool,
}

impl ImageFit {
    /// `sent / original` along x and y (1.0 when unchanged or unknown).
    pub fn scale(&self) -> (f64, f64) {
        match (self.original, self.sent) {
            (Some((ow, oh)), Some((sw, sh))) if ow > 0 && oh > 0 => {
                (sw as f64 / ow as f64, sh as f64 / oh as f64)
            }
            _ => (1.0, 1.0),
        }
    }
}

/// An image after fitting.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedImage {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub original: (u32, u32),
    pub reencoded: bool,
}

impl FittedImage {
    /// The image as a `data:` URL.
    pub fn to_data_url(&self) -> String {
        data_url(self.format, &self.bytes)
    }
}

/// Encodes bytes as a `data:<mime>;base64,` URL.
pub fn data_url(format: ImageFormat, bytes: &[u8]) -> String {
    format!(
        "data:{};base64,{}",
        format.to_mime_type(),
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Decodes a base64 `data:` URL into its bytes.
pub fn parse_data_url(url: &str) -> Result<Vec<u8>, UpstreamError> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| UpstreamError::invalid_request("not a data: URL"))?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| UpstreamError::invalid_request("malformed data: URL (no comma)"))?;
    if !meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) {
        return Err(UpstreamError::invalid_request(
            "image data: URLs must be base64-encoded",
        ));
    }
    // Clients sometimes wrap base64 at 76 columns; tolerate whitespace.
    let cleaned: String = payload
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| {
            UpstreamError::invalid_request(format!("image data: URL is not valid base64: {e}"))
        })
}

/// Makes `bytes` fit `limits`, returning them untouched when they already do. An image that
/// must be re-encoded is decoded only within `decode` (checked from its header first, then
/// enforced on the decoder's allocations): a small file that inflates to gigabytes is refused.
pub fn fit_image(
    bytes: &[u8],
    limits: &ImageLimits,
    decode: &DecodeLimits,
) -> Result<FittedImage, UpstreamError> {
    let format = image::guess_format(bytes)
        .map_err(|_| UpstreamError::invalid_request("image is not in a recognised format"))?;
    let (w, h) = image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| UpstreamError::invalid_request(format!("cannot read image header: {e}")))?;
    let fits_pixels = (w as u64) * (h as u64) <= limits.max_pixels && w.max(h) <= limits.max_side;
    if limits.accepts(format) && fits_pixels && bytes.len() <= limits.max_bytes {
        return Ok(FittedImage {
            bytes: bytes.to_vec(),
            format,
            width: w,
            height: h,
            original: (w, h),
            reencoded: false,
        });
    }
    let img = etchr_ops::codec::decode_dynamic(bytes, format, decode).map_err(|e| match e {
        etchr_ops::OpsError::TooLarge { .. } => UpstreamError::new(
            ErrorKind::ImageTooLarge,
            format!("the image must be re-encoded for this upstream, but it is not decoded: {e}"),
        ),
        e => UpstreamError::invalid_request(format!("cannot decode image: {e}")),
    })?;
    fit_decoded(img, (w, h), limits)
}

/// Downscales and re-encodes a decoded image until it fits.
fn fit_decoded(
    img: DynamicImage,
    original: (u32, u32),
    limits: &ImageLimits,
) -> Result<FittedImage, UpstreamError> {
    let (w, h) = original;
    let mut scale = 1.0f64
        .min((limits.max_pixels as f64 / (w as f64 * h as f64)).sqrt())
        .min(limits.max_side as f64 / w.max(h) as f64);
    let keep_alpha = img.color().has_alpha() && limits.accepts(ImageFormat::Png);
    let candidates = output_formats(limits, keep_alpha)?;
    // Without alpha to keep, every output is RGB: convert once (not per candidate encoding)
    // and resample with the renderer's SIMD resizer (fast_image_resize).
    let rgb = (!keep_alpha).then(|| img.to_rgb8());
    // Each round tries every candidate encoding, then shrinks by 3/4; 12 rounds reach ~3 %.
    for _ in 0..12 {
        let (nw, nh) = (
            ((w as f64 * scale).floor() as u32).max(1),
            ((h as f64 * scale).floor() as u32).max(1),
        );
        let resized = match &rgb {
            Some(rgb) if (nw, nh) == (w, h) => DynamicImage::ImageRgb8(rgb.clone()),
            Some(rgb) => DynamicImage::ImageRgb8(etchr_ops::resize(
                rgb,
                nw,
                nh,
                etchr_ops::program::Filter::Bilinear,
            )),
            None if (nw, nh) == (w, h) => img.clone(),
            None => img.resize_exact(nw, nh, image::imageops::FilterType::Triangle),
        };
        for &(format, quality) in &candidates {
            let bytes = encode(&resized, format, quality)?;
            if bytes.len() <= limits.max_bytes {
                return Ok(FittedImage {
                    bytes,
                    format,
                    width: nw,
                    height: nh,
                    original,
                    reencoded: true,
                });
            }
        }
        scale *= 0.75;
    }
    Err(UpstreamError::invalid_request(format!(
        "image of {w}x{h} cannot be fitted under {} bytes",
        limits.max_bytes
    )))
}

/// Encodings to try, best-looking first: PNG for images with transparency, then JPEG at falling
/// quality (compact for photographs), then whatever lossless format is accepted.
fn output_formats(
    limits: &ImageLimits,
    keep_alpha: bool,
) -> Result<Vec<(ImageFormat, u8)>, UpstreamError> {
    let mut out = Vec::new();
    if keep_alpha {
        out.push((ImageFormat::Png, 0));
    }
    if limits.accepts(ImageFormat::Jpeg) {
        out.extend([90, 75, 60].map(|q| (ImageFormat::Jpeg, q)));
    }
    if !keep_alpha && limits.accepts(ImageFormat::Png) {
        out.push((ImageFormat::Png, 0));
    }
    if out.is_empty() {
        return Err(UpstreamError::config(
            "the upstream accepts neither PNG nor JPEG images",
        ));
    }
    Ok(out)
}

fn encode(img: &DynamicImage, format: ImageFormat, quality: u8) -> Result<Vec<u8>, UpstreamError> {
    let err = |e: String| UpstreamError::invalid_request(format!("cannot encode image: {e}"));
    if format == ImageFormat::Jpeg {
        // etchr-ops' encoder: jpeg-encoder's SIMD path, or libjpeg-turbo with the `turbojpeg`
        // feature, several times faster than `image`'s own.
        let jpeg = etchr_ops::OutputFormat::Jpeg(quality);
        let rgb = match img.as_rgb8() {
            Some(rgb) => std::borrow::Cow::Borrowed(rgb),
            None => std::borrow::Cow::Owned(img.to_rgb8()),
        };
        return etchr_ops::encode_image(&rgb, jpeg).map_err(|e| err(e.to_string()));
    }
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), format)
        .map_err(|e| err(e.to_string()))?;
    Ok(buf)
}

/// Fits every inline (`data:`) image of `req` in place and reports what changed. Remote URLs are
/// left alone and reported as unseen; see [`needs_inlining`] for providers that refuse them.
/// CPU-heavy: call from a blocking thread.
pub fn fit_request(
    req: &mut ChatRequest,
    limits: &ImageLimits,
    decode: &DecodeLimits,
) -> Result<Vec<ImageFit>, UpstreamError> {
    let mut fits = Vec::new();
    for (mi, msg) in req.messages.iter_mut().enumerate() {
        let Some(Content::Parts(parts)) = &mut msg.content else {
            continue;
        };
        for (pi, part) in parts.iter_mut().enumerate() {
            let ContentPart::ImageUrl { image_url } = part else {
                continue;
            };
            if !image_url.url.starts_with("data:") {
                fits.push(ImageFit {
                    message: mi,
                    part: pi,
                    original: None,
                    sent: None,
                    reencoded: false,
                    fetched: false,
                });
                continue;
            }
            let bytes = parse_data_url(&image_url.url)?;
            let fitted = fit_image(&bytes, limits, decode).map_err(|e| UpstreamError {
                message: format!("message {mi}, part {pi}: {}", e.message),
                ..e
            })?;
            if fitted.reencoded {
                image_url.url = fitted.to_data_url();
            }
            fits.push(ImageFit {
                message: mi,
                part: pi,
                original: Some(fitted.original),
                sent: Some((fitted.width, fitted.height)),
                reencoded: fitted.reencoded,
                fetched: false,
            });
        }
    }
    Ok(fits)
}

/// The `(message, part, url)` of every remote image URL a provider that takes no URLs would refuse.
pub fn needs_inlining(req: &ChatRequest, limits: &ImageLimits) -> Vec<(usize, usize, String)> {
    if limits.accepts_urls {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (mi, msg) in req.messages.iter().enumerate() {
        if let Some(Content::Parts(parts)) = &msg.content {
            for (pi, part) in parts.iter().enumerate() {
                if let ContentPart::ImageUrl { image_url } = part {
                    let u = &image_url.url;
                    if u.starts_with("http://") || u.starts_with("https://") {
                        out.push((mi, pi, u.clone()));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Provider;
    use crate::types::{Message, Role};

    /// A noisy image compresses badly, so byte limits really bite.
    fn noisy_png(w: u32, h: u32) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(7);
        let img = image::RgbImage::from_fn(w, h, |_, _| {
            image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
        });
        let mut buf = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut buf), ImageFormat::Png)
            .unwrap();
        buf
    }

    /// The renderer's default decode limits.
    fn dl() -> DecodeLimits {
        DecodeLimits::default()
    }

    fn limits(max_bytes: usize, max_pixels: u64, max_side: u32) -> ImageLimits {
        ImageLimits {
            max_bytes,
            max_pixels,
            max_side,
            formats: vec![ImageFormat::Png, ImageFormat::Jpeg],
            accepts_urls: false,
        }
    }

    #[test]
    fn small_images_pass_through_untouched() {
        let png = noisy_png(32, 16);
        let f = fit_image(&png, &limits(1 << 20, 10_000, 100), &dl()).unwrap();
        assert!(!f.reencoded);
        assert_eq!(f.bytes, png);
        assert_eq!((f.width, f.height), (32, 16));
    }

    #[test]
    fn oversize_pixels_are_downscaled_keeping_aspect() {
        let png = noisy_png(400, 200);
        let f = fit_image(&png, &limits(10 << 20, 20_000, 1000), &dl()).unwrap();
        assert!(f.reencoded);
        assert!((f.width as u64) * (f.height as u64) <= 20_000);
        assert_eq!(f.width, 2 * f.height);
        assert_eq!(f.original, (400, 200));
        let decoded = image::load_from_memory(&f.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (f.width, f.height));
    }

    #[test]
    fn oversize_bytes_are_reencoded_under_the_limit() {
        let png = noisy_png(300, 300);
        assert!(png.len() > 200_000);
        let f = fit_image(&png, &limits(40_000, 1 << 30, 10_000), &dl()).unwrap();
        assert!(f.bytes.len() <= 40_000, "{} bytes", f.bytes.len());
        assert_eq!(f.format, ImageFormat::Jpeg);
        let side = fit_image(&png, &limits(10 << 20, 1 << 30, 120), &dl()).unwrap();
        assert!(side.width <= 120 && side.height <= 120);
    }

    #[test]
    fn unaccepted_formats_are_converted() {
        let png = noisy_png(20, 20);
        let only_jpeg = ImageLimits {
            formats: vec![ImageFormat::Jpeg],
            ..limits(1 << 20, 1 << 20, 1000)
        };
        let f = fit_image(&png, &only_jpeg, &dl()).unwrap();
        assert_eq!(f.format, ImageFormat::Jpeg);
        assert!(fit_image(b"not an image", &only_jpeg, &dl()).is_err());
    }

    #[test]
    fn images_over_the_decode_limits_are_refused_from_their_header() {
        // Within the decode limits, a 400 × 200 image that must shrink is decoded and fitted;
        // under tighter ones (or a shorter side limit) it is refused before decoding, with the
        // size in the message, while an image that already fits passes without being decoded.
        let png = noisy_png(400, 200);
        let small = limits(10 << 20, 20_000, 1000);
        assert!(fit_image(&png, &small, &dl()).is_ok());
        for decode in [
            DecodeLimits {
                max_pixels: 79_999,
                ..dl()
            },
            DecodeLimits {
                max_side: 399,
                ..dl()
            },
        ] {
            let err = fit_image(&png, &small, &decode).unwrap_err();
            assert_eq!(err.kind, ErrorKind::ImageTooLarge);
            assert!(err.message.contains("400x200"), "{}", err.message);
            assert!(!err.should_fall_back() && !err.is_retryable());
        }
        let roomy = limits(10 << 20, 1 << 20, 1000);
        let tight = DecodeLimits {
            max_pixels: 1,
            max_side: 1,
        };
        assert!(!fit_image(&png, &roomy, &tight).unwrap().reencoded);
    }

    #[test]
    fn requests_are_fitted_in_place_and_report_scale() {
        let png = noisy_png(4000, 1000);
        let mut req = ChatRequest::new(
            "m",
            vec![
                Message::text(Role::System, "be brief"),
                Message::user_with_image("what?", data_url(ImageFormat::Png, &png)),
                Message::user_with_image("and?", "https://example.com/a.png"),
            ],
        );
        let gemini = Provider::Gemini.image_limits();
        let fits = fit_request(&mut req, &gemini, &dl()).unwrap();
        assert_eq!(fits.len(), 2);
        assert!(fits[0].reencoded && fits[0].message == 1 && fits[0].part == 1);
        let (sx, _) = fits[0].scale();
        assert!(sx <= 3072.0 / 4000.0 + 1e-9);
        let Some(Content::Parts(parts)) = &req.messages[1].content else {
            panic!()
        };
        let ContentPart::ImageUrl { image_url } = &parts[1] else {
            panic!()
        };
        assert!(image_url.url.starts_with("data:image/"));
        let bytes = parse_data_url(&image_url.url).unwrap();
        assert!(bytes.len() <= gemini.max_bytes);
        assert_eq!(
            needs_inlining(&req, &gemini),
            vec![(2, 1, "https://example.com/a.png".to_string())]
        );
        assert!(needs_inlining(&req, &Provider::Openai.image_limits()).is_empty());
    }

    #[test]
    fn data_urls_parse_strictly() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AAEC").unwrap(),
            vec![0, 1, 2]
        );
        assert_eq!(
            parse_data_url("data:image/png;base64,AA\nEC").unwrap(),
            vec![0, 1, 2]
        );
        assert!(parse_data_url("data:image/png,AAEC").is_err());
        assert!(parse_data_url("https://x").is_err());
    }
}
