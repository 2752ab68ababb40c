//! Decoding with limits against decompression bombs, and encoding.

use crate::error::OpsError;
use image::{ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;

/// Limits applied before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted `width × height`.
    pub max_pixels: u64,
    /// Largest accepted side, in pixels.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_side: 20_000,
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    /// JPEG at the given quality (1–100).
    Jpeg(u8),
}

impl OutputFormat {
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg(_) => "image/jpeg",
        }
    }
}

/// The format of `bytes` from its magic number, if it is one we decode.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP) => Some(f),
        _ => None,
    }
}

/// Decodes PNG, JPEG or WebP into RGB (alpha is composited on white), refusing images over
/// `limits` from their header alone, before allocating pixels.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, OpsError> {
    let format = sniff_format(bytes).ok_or_else(|| {
        OpsError::Decode("unrecognised format: expected PNG, JPEG or WebP".to_string())
    })?;
    Ok(match decode_dynamic(bytes, format, limits)? {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        other if other.color().has_alpha() => flatten_on_white(&other.into_rgba8()),
        other => other.into_rgb8(),
    })
}

/// Decodes `bytes` of `format` as they are (alpha kept), under the same limits as
/// [`decode_image`]: refused from the header alone when over them.
pub fn decode_dynamic(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<image::DynamicImage, OpsError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    // Room for the decoded RGBA buffer plus the decoder's own scratch space.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(64 << 20));
    // Reading the header under the allocation limit only: the side limits would make the
    // decoder refuse an oversized header with a generic error, and `check_size` gives the
    // precise one (413 `image_too_large` rather than 400 `invalid_image`).
    reader.limits(lim.clone());
    let mut decoder = reader.into_decoder().map_err(map_decode_err)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    decoder.set_limits(lim).map_err(map_decode_err)?;
    image::DynamicImage::from_decoder(decoder).map_err(map_decode_err)
}

fn check_size(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), OpsError> {
    if width == 0 || height == 0 {
        return Err(OpsError::Empty { width, height });
    }
    let pixels = width as u64 * height as u64;
    if pixels > limits.max_pixels || width > limits.max_side || height > limits.max_side {
        return Err(OpsError::TooLarge {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

fn map_decode_err(e: image::ImageError) -> OpsError {
    match e {
        image::ImageError::Limits(l) => {
            OpsError::Decode(format!("image exceeds decoding limits: {l}"))
        }
        other => OpsError::Decode(other.to_string()),
    }
}

fn flatten_on_white(rgba: &image::RgbaImage) -> RgbImage {
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p[3] as u32;
        for c in 0..3 {
            o[c] = ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

/// Encodes `img`. PNG uses fast deflate: these images are sent onwards at once, so encode time
/// matters more than a few percent of size. JPEG goes through libjpeg-turbo when built with the
/// `turbojpeg` feature, so its bytes depend on the build: see [`encode_image_stable`].
pub fn encode_image(img: &RgbImage, format: OutputFormat) -> Result<Vec<u8>, OpsError> {
    encode_with(img, format, cfg!(feature = "turbojpeg"))
}

/// Like [`encode_image`], but the bytes are the same in every build (JPEG always through the
/// pure-Rust encoder): for data sets that must regenerate byte for byte, such as the benchmark
/// set and training data.
pub fn encode_image_stable(img: &RgbImage, format: OutputFormat) -> Result<Vec<u8>, OpsError> {
    encode_with(img, format, false)
}

fn encode_with(img: &RgbImage, format: OutputFormat, turbo: bool) -> Result<Vec<u8>, OpsError> {
    let mut out = Vec::with_capacity(img.as_raw().len() / 4);
    match format {
        OutputFormat::Png => {
            let enc = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            img.write_with_encoder(enc)
                .map_err(|e| OpsError::Encode(e.to_string()))?;
        }
        OutputFormat::Jpeg(q) => encode_jpeg(img, q.clamp(1, 100), turbo, &mut out)?,
    }
    Ok(out)
}

/// JPEG at quality `q`, 4:2:0 like libjpeg's default. With `turbo` (and the `turbojpeg`
/// feature), libjpeg-turbo; otherwise jpeg-encoder (whose AVX2 path is several times faster than
/// `image`'s encoder). Both are limited to 65535 px a side, where `image`'s encoder takes over.
fn encode_jpeg(img: &RgbImage, q: u8, turbo: bool, out: &mut Vec<u8>) -> Result<(), OpsError> {
    if img.width() > u16::MAX as u32 || img.height() > u16::MAX as u32 {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(out, q);
        return img
            .write_with_encoder(enc)
            .map_err(|e| OpsError::Encode(e.to_string()));
    }
    #[cfg(feature = "turbojpeg")]
    if turbo {
        *out = encode_jpeg_turbo(img, q)?;
        return Ok(());
    }
    #[cfg(not(feature = "turbojpeg"))]
    let _ = turbo;
    encode_jpeg_rust(img, q, out)
}

fn encode_jpeg_rust(img: &RgbImage, q: u8, out: &mut Vec<u8>) -> Result<(), OpsError> {
    let mut enc = jpeg_encoder::Encoder::new(out, q);
    // The crate would switch to 4:4:4 at quality >= 90.
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(
        img.as_raw(),
        img.width() as u16,
        img.height() as u16,
        jpeg_encoder::ColorType::Rgb,
    )
    .map_err(|e| OpsError::Encode(e.to_string()))
}

#[cfg(feature = "turbojpeg")]
fn encode_jpeg_turbo(img: &RgbImage, q: u8) -> Result<Vec<u8>, OpsError> {
    let err = |e: turbojpeg::Error| OpsError::Encode(e.to_string());
    let mut compressor = turbojpeg::Compressor::new().map_err(err)?;
    compressor.set_quality(q as i32).map_err(err)?;
    compressor
        .set_subsamp(turbojpeg::Subsamp::Sub2x2)
        .map_err(err)?;
    let width = img.width() as usize;
    compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: img.as_raw().as_slice(),
            width,
            pitch: width * 3,
            height: img.height() as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(w: u32, h: u32) -> Vec<u8> {
        encode_image(
            &RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30])),
            OutputFormat::Png,
        )
        .unwrap()
    }

    #[test]
    fn png_round_trips() {
        let img = decode_image(&png_of(7, 5), &DecodeLimits::default()).unwrap();
        assert_eq!(img.dimensions(), (7, 5));
        assert_eq!(img.get_pixel(3, 3).0, [10, 20, 30]);
    }

    /// Encodes a gradient of odd size (not a multiple of the 16-px MCU) and checks the
    /// decoded pixels stay close.
    fn assert_jpeg_close(encode: impl Fn(&RgbImage) -> Vec<u8>) {
        let img = RgbImage::from_fn(41, 31, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 128])
        });
        let back = decode_image(&encode(&img), &DecodeLimits::default()).unwrap();
        assert_eq!(back.dimensions(), (41, 31));
        let err: i32 = img
            .as_raw()
            .iter()
            .zip(back.as_raw())
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(err < 16, "max channel error {err}");
    }

    #[test]
    fn jpeg_round_trips_closely() {
        assert_jpeg_close(|img| encode_image(img, OutputFormat::Jpeg(95)).unwrap());
    }

    #[test]
    fn stable_jpeg_round_trips_closely_and_does_not_depend_on_the_build() {
        assert_jpeg_close(|img| encode_image_stable(img, OutputFormat::Jpeg(95)).unwrap());
        let img = RgbImage::from_fn(33, 17, |x, y| image::Rgb([x as u8 * 7, y as u8 * 9, 50]));
        let mut rust = Vec::new();
        encode_jpeg_rust(&img, 90, &mut rust).unwrap();
        assert_eq!(
            encode_image_stable(&img, OutputFormat::Jpeg(90)).unwrap(),
            rust
        );
    }

    #[cfg(feature = "turbojpeg")]
    #[test]
    fn libjpeg_turbo_round_trips_closely() {
        assert_jpeg_close(|img| encode_jpeg_turbo(img, 95).unwrap());
    }

    #[test]
    fn limits_apply_before_decoding() {
        let lim = DecodeLimits {
            max_pixels: 30,
            max_side: 100,
        };
        assert!(matches!(
            decode_image(&png_of(7, 5), &lim),
            Err(OpsError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_truncation_are_decode_errors() {
        assert!(matches!(
            decode_image(b"not an image", &DecodeLimits::default()),
            Err(OpsError::Decode(_))
        ));
        let png = png_of(64, 64);
        assert!(matches!(
            decode_image(&png[..png.len() / 2], &DecodeLimits::default()),
            Err(OpsError::Decode(_))
        ));
    }
}
