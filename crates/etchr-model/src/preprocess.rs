//! From image bytes to the model's input: decode (JPEGs at a reduced DCT scale, which skips
//! most of the decoding work for large photos), letterbox to a square keeping the aspect, and
//! cut into patches laid out for the patch-embedding matmul. Also the coordinate maps between
//! the letterboxed input and the view.

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::tokens::Frame;
use etchr_ops::{DecodeLimits, OpsError, Point, Rect, RgbImage};
use fast_image_resize::{
    images::Image as FirImage, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};

/// Where a `src_w × src_h` view sits inside the square `size × size` input: scaled so its long
/// side fills the square, centred, the rest padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub size: u32,
    pub new_w: u32,
    pub new_h: u32,
    pub pad_x: u32,
    pub pad_y: u32,
}

impl Letterbox {
    pub fn new(src_w: u32, src_h: u32, size: u32) -> Self {
        let (w, h) = (src_w.max(1) as f64, src_h.max(1) as f64);
        let s = size as f64 / w.max(h);
        let new_w = ((w * s).round() as u32).clamp(1, size);
        let new_h = ((h * s).round() as u32).clamp(1, size);
        Self {
            src_w: src_w.max(1),
            src_h: src_h.max(1),
            size,
            new_w,
            new_h,
            pad_x: (size - new_w) / 2,
            pad_y: (size - new_h) / 2,
        }
    }

    // Per-axis scales: the rounded content size makes x and y differ slightly, and using the
    // exact ratio per axis keeps the round trip exact.
    fn sx(&self) -> f64 {
        self.new_w as f64 / self.src_w as f64
    }

    fn sy(&self) -> f64 {
        self.new_h as f64 / self.src_h as f64
    }

    /// View pixels → input pixels.
    pub fn to_input(&self, p: Point) -> Point {
        Point::new(
            p.x * self.sx() + self.pad_x as f64,
            p.y * self.sy() + self.pad_y as f64,
        )
    }

    /// Input pixels → view pixels.
    pub fn to_view(&self, p: Point) -> Point {
        Point::new(
            (p.x - self.pad_x as f64) / self.sx(),
            (p.y - self.pad_y as f64) / self.sy(),
        )
    }

    pub fn rect_to_input(&self, r: &Rect) -> Rect {
        let (a, b) = (
            self.to_input(Point::new(r.x0, r.y0)),
            self.to_input(Point::new(r.x1, r.y1)),
        );
        Rect::new(a.x, a.y, b.x, b.y)
    }

    pub fn rect_to_view(&self, r: &Rect) -> Rect {
        let (a, b) = (
            self.to_view(Point::new(r.x0, r.y0)),
            self.to_view(Point::new(r.x1, r.y1)),
        );
        Rect::new(a.x, a.y, b.x, b.y)
    }

    /// The part of the input the image covers (the rest is padding).
    pub fn content(&self) -> Rect {
        Rect::new(
            self.pad_x as f64,
            self.pad_y as f64,
            (self.pad_x + self.new_w) as f64,
            (self.pad_y + self.new_h) as f64,
        )
    }
}

/// One image ready for the model: patches plus everything needed to map the model's
/// coordinates back to the original image.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `num_patches × patch_dim` values in `[-1, 1]`, patch-major (row-major over the grid),
    /// each patch row-major over its pixels, RGB innermost. Padding is 0 (mid grey).
    pub patches: Vec<f32>,
    pub letterbox: Letterbox,
    /// The view the model saw and its map back to the original.
    pub frame: Frame,
}

impl Prepared {
    /// Prepares a decoded view. `frame` must describe `view` (its size and transform).
    pub fn from_image(view: &RgbImage, frame: Frame, cfg: &ModelConfig) -> Result<Self> {
        check_frame(view.width(), view.height(), &frame)?;
        let lb = Letterbox::new(view.width(), view.height(), cfg.image_size as u32);
        let small = resize(
            view.as_raw(),
            view.width(),
            view.height(),
            lb.new_w,
            lb.new_h,
        );
        Ok(Self {
            patches: patchify(&small, &lb, cfg),
            letterbox: lb,
            frame,
        })
    }

    /// Prepares encoded bytes (PNG, JPEG, WebP). JPEGs are decoded at the smallest DCT scale
    /// (1/8, 1/4, 1/2) that still covers the model input, which is several times faster than a
    /// full decode of a large photo. `frame.view_*` is filled in from the header.
    pub fn from_encoded(
        bytes: &[u8],
        mut frame: Frame,
        cfg: &ModelConfig,
        limits: &DecodeLimits,
    ) -> Result<Self> {
        let size = cfg.image_size as u32;
        if let Some((w, h, rgb, dw, dh)) = decode_jpeg_scaled(bytes, size, limits)? {
            frame.view_width = w;
            frame.view_height = h;
            let lb = Letterbox::new(w, h, size);
            let small = resize(&rgb, dw, dh, lb.new_w, lb.new_h);
            return Ok(Self {
                patches: patchify(&small, &lb, cfg),
                letterbox: lb,
                frame,
            });
        }
        let img = etchr_ops::decode_image(bytes, limits)?;
        frame.view_width = img.width();
        frame.view_height = img.height();
        Self::from_image(&img, frame, cfg)
    }
}

fn check_frame(w: u32, h: u32, frame: &Frame) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(OpsError::Empty {
            width: w,
            height: h,
        }
        .into());
    }
    if (frame.view_width, frame.view_height) != (w, h) {
        return Err(ModelError::Input(format!(
            "the frame says the view is {}x{} but the image is {w}x{h}",
            frame.view_width, frame.view_height
        )));
    }
    Ok(())
}

/// `(width, height, rgb, decoded_w, decoded_h)` for a baseline/progressive RGB or grey JPEG;
/// `None` for anything else (the caller falls back to the general decoder).
#[allow(clippy::type_complexity)]
fn decode_jpeg_scaled(
    bytes: &[u8],
    size: u32,
    limits: &DecodeLimits,
) -> Result<Option<(u32, u32, Vec<u8>, u32, u32)>> {
    if etchr_ops::codec::sniff_format(bytes) != Some(image::ImageFormat::Jpeg) {
        return Ok(None);
    }
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    if dec.read_info().is_err() {
        return Ok(None); // let the general decoder produce the error message
    }
    let Some(info) = dec.info() else {
        return Ok(None);
    };
    let (w, h) = (info.width as u32, info.height as u32);
    let pixels = w as u64 * h as u64;
    if w == 0 || h == 0 {
        return Err(OpsError::Empty {
            width: w,
            height: h,
        }
        .into());
    }
    if pixels > limits.max_pixels || w > limits.max_side || h > limits.max_side {
        return Err(OpsError::TooLarge {
            width: w,
            height: h,
            pixels,
            limit: limits.max_pixels,
        }
        .into());
    }
    let lb = Letterbox::new(w, h, size);
    let (rw, rh) = (lb.new_w.min(u16::MAX as u32), lb.new_h.min(u16::MAX as u32));
    let format = info.pixel_format;
    if !matches!(
        format,
        jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
    ) {
        return Ok(None);
    }
    let Ok((dw, dh)) = dec.scale(rw as u16, rh as u16) else {
        return Ok(None);
    };
    let Ok(data) = dec.decode() else {
        return Ok(None);
    };
    let (dw, dh) = (dw as u32, dh as u32);
    let rgb = match format {
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => data,
    };
    if rgb.len() != (dw * dh * 3) as usize {
        return Ok(None);
    }
    Ok(Some((w, h, rgb, dw, dh)))
}

/// Bilinear (antialiased) resize of an RGB buffer; a copy when the size already matches.
fn resize(src: &[u8], w: u32, h: u32, nw: u32, nh: u32) -> Vec<u8> {
    if (w, h) == (nw, nh) {
        return src.to_vec();
    }
    let src = fast_image_resize::images::ImageRef::new(w, h, src, PixelType::U8x3)
        .expect("an RGB buffer is a valid U8x3 image");
    let mut dst = FirImage::new(nw, nh, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut dst,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .expect("same pixel type on both sides");
    dst.into_vec()
}

/// Writes the `new_w × new_h` content into its place in the padded square, patch-major.
fn patchify(content: &[u8], lb: &Letterbox, cfg: &ModelConfig) -> Vec<f32> {
    let (p, g, pd) = (cfg.patch_size, cfg.grid(), cfg.patch_dim());
    let lut: Vec<f32> = (0..256).map(|v| v as f32 / 127.5 - 1.0).collect();
    let mut out = vec![0f32; cfg.num_patches() * pd];
    let (nw, nh) = (lb.new_w as usize, lb.new_h as usize);
    for y in 0..nh {
        let iy = y + lb.pad_y as usize;
        let (row, py) = (iy / p, iy % p);
        let src_row = &content[y * nw * 3..(y + 1) * nw * 3];
        for x in 0..nw {
            let ix = x + lb.pad_x as usize;
            let (col, px) = (ix / p, ix % p);
            let base = (row * g + col) * pd + (py * p + px) * 3;
            let s = &src_row[x * 3..x * 3 + 3];
            out[base] = lut[s[0] as usize];
            out[base + 1] = lut[s[1] as usize];
            out[base + 2] = lut[s[2] as usize];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Transform;

    #[test]
    fn letterbox_round_trips_and_centres() {
        for (w, h) in [(2048, 2048), (4000, 1500), (300, 1000), (7, 3), (1, 1000)] {
            let lb = Letterbox::new(w, h, 256);
            assert!(lb.new_w == 256 || lb.new_h == 256);
            let c = lb.content();
            assert!(c.x0 >= 0.0 && c.x1 <= 256.0 && c.y0 >= 0.0 && c.y1 <= 256.0);
            for p in [
                Point::new(0.0, 0.0),
                Point::new(w as f64, h as f64),
                Point::new(w as f64 * 0.3, h as f64 * 0.7),
            ] {
                let q = lb.to_view(lb.to_input(p));
                assert!((q.x - p.x).abs() < 1e-6 && (q.y - p.y).abs() < 1e-6);
            }
            // The view's corners land on the content's corners.
            let full = lb.rect_to_input(&Rect::full(w, h));
            assert!((full.x0 - c.x0).abs() < 1e-9 && (full.y1 - c.y1).abs() < 1e-9);
        }
    }

    #[test]
    fn patches_hold_the_content_and_padding_is_zero() {
        let cfg = ModelConfig::tiny(); // 64 px, 16 px patches
        let img = RgbImage::from_pixel(128, 64, image::Rgb([255, 0, 0]));
        let frame = Frame::new(128, 64, Transform::identity());
        let p = Prepared::from_image(&img, frame, &cfg).unwrap();
        assert_eq!((p.letterbox.new_w, p.letterbox.new_h), (64, 32));
        assert_eq!(p.letterbox.pad_y, 16);
        let pd = cfg.patch_dim();
        // Row 0 of the grid is padding, row 1 content (red = [1, -1, -1]).
        assert!(p.patches[..4 * pd].iter().all(|&v| v == 0.0));
        assert_eq!(&p.patches[4 * pd..4 * pd + 3], &[1.0, -1.0, -1.0]);
    }

    #[test]
    fn jpeg_fast_path_matches_the_general_decoder_closely() {
        let cfg = ModelConfig::tiny();
        let img = RgbImage::from_fn(640, 480, |x, y| {
            image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x + y) / 5) as u8])
        });
        let jpeg = etchr_ops::encode_image(&img, etchr_ops::OutputFormat::Jpeg(95)).unwrap();
        let frame = Frame::new(0, 0, Transform::identity());
        let fast =
            Prepared::from_encoded(&jpeg, frame.clone(), &cfg, &DecodeLimits::default()).unwrap();
        assert_eq!((fast.frame.view_width, fast.frame.view_height), (640, 480));
        let decoded = etchr_ops::decode_image(&jpeg, &DecodeLimits::default()).unwrap();
        let slow =
            Prepared::from_image(&decoded, Frame::new(640, 480, Transform::identity()), &cfg)
                .unwrap();
        assert_eq!(fast.letterbox, slow.letterbox);
        let mean_abs: f32 = fast
            .patches
            .iter()
            .zip(&slow.patches)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / fast.patches.len() as f32;
        assert!(mean_abs < 0.03, "{mean_abs}");
    }
}
