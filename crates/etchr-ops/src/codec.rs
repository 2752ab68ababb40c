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
    let img = image::DynamicImage::from_decoder(decoder).map_err(map_decode_err)?;
    Ok(match img {
        image::DynamicImage::ImageRgb8(rgb) => rgb,
        other if other.color().has_alpha() => flatten_on_white(&other.into_rgba8()),
        other => other.into_rgb8(),
    })
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
/// matters more than a few percent of size.
pub fn encode_image(img: &RgbImage, format: OutputFormat) -> Result<Vec<u8>, OpsError> {
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
        // jpeg-encoder's AVX2 path is several times faster than `image`'s encoder; it is
        // limited to 65535 px a side, where `image`'s encoder takes over.
        OutputFormat::Jpeg(q)
            if img.width() <= u16::MAX as u32 && img.height() <= u16::MAX as u32 =>
        {
            let mut enc = jpeg_encoder::Encoder::new(&mut out, q.clamp(1, 100));
            // 4:2:0 like libjpeg's default; the crate would switch to 4:4:4 at quality >= 90.
            enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
            enc.encode(
                img.as_raw(),
                img.width() as u16,
                img.height() as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .map_err(|e| OpsError::Encode(e.to_string()))?;
        }
        OutputFormat::Jpeg(q) => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q.clamp(1, 100));
            img.write_with_encoder(enc)
                .map_err(|e| OpsError::Encode(e.to_string()))?;
        }
    }
    Ok(out)
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

    #[test]
    fn jpeg_round_trips_closely() {
        let img = RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 128])
        });
        let back = decode_image(
            &encode_image(&img, OutputFormat::Jpeg(95)).unwrap(),
            &DecodeLimits::default(),
        )
        .unwrap();
        assert_eq!(back.dimensions(), (40, 30));
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
