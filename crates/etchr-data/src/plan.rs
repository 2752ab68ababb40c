//! What every family shares: the text-size policy (small vs. control items), and the shape of
//! an ideal edit: a crop with context around the target, zoomed until the answer's capitals are
//! about 24 px tall, the result no larger than the reader's 1024 px budget (so it is read at
//! that size) and no thinner than ~700 px (so the reader's OCR does not blow it up).

use crate::rng::Rng;
use etchr_ops::program::Filter;
use etchr_ops::{Color, Op, Rect};

/// The reader's default resolution: images are downscaled to this longest side.
pub const READER_SIDE: f64 = 1024.0;
/// Capitals shorter than this after the downscale are unreadable (`small_text`).
pub const SMALL_CAP_PX: f64 = 7.0;
/// Cap height the gold zoom aims for.
pub const TARGET_CAP_PX: f64 = 24.0;
/// Shortest side a gold result should have. The reader's OCR (rapidocr) scales its detection
/// input up until the short side is 736 px, so a thin, tight crop gets its text blown up
/// several times and split into word fragments — and a multi-word key ("Valve 85") is then
/// never found on one line. Crops therefore keep context around the target.
pub const MIN_RESULT_SHORT: f64 = 700.0;

/// Cap height at the reader's resolution of text whose capitals are `cap` px tall on a
/// `w × h` canvas.
pub fn cap_at_reader(cap: f64, w: u32, h: u32) -> f64 {
    cap * READER_SIDE / w.max(h) as f64
}

/// The size class of an item. Fixed by the index (3 of every 5 small) so any run of items has
/// the intended mix, with the exact size drawn from the item's stream.
pub fn wants_small(index: u64) -> bool {
    index % 5 < 3
}

/// Smallest cap height ever drawn, in original pixels: below ~8 px even the full-resolution
/// image is illegible, and no edit could recover the answer.
pub const MIN_CAP_PX: f64 = 8.0;

/// Small items' answer text at the reader's resolution, in pixels. Measured against the
/// reader emulator (rapidocr): capitals of 4–5.5 px at 1024 are still read about half the
/// time, so small items stay at or under 3.4 px to be reliably unreadable without an edit.
pub const SMALL_RANGE: (f64, f64) = (2.4, 3.4);
/// Controls' answer text at the reader's resolution: comfortably legible.
pub const LARGE_RANGE: (f64, f64) = (8.5, 14.0);

/// The shortest long side for a canvas: small items need at least 2500 px so that their text
/// is under [`SMALL_RANGE`]'s top at 1024 px yet [`MIN_CAP_PX`] tall in the original.
pub fn min_long_side(small: bool) -> u32 {
    if small {
        2500
    } else {
        1600
    }
}

/// The answer's cap height in original pixels for a canvas whose long side is `long`.
pub fn answer_cap(rng: &mut Rng, small: bool, long: f64) -> f64 {
    let at = if small {
        let lo = (MIN_CAP_PX * READER_SIDE / long).clamp(SMALL_RANGE.0, SMALL_RANGE.1);
        rng.uniform(lo, SMALL_RANGE.1)
    } else {
        rng.uniform(LARGE_RANGE.0, LARGE_RANGE.1)
    };
    at * long / READER_SIDE
}

/// The zoom factor that makes `cap`-pixel capitals about [`TARGET_CAP_PX`] tall, reduced so the
/// zoomed `crop` fits [`READER_SIDE`]; two decimals, rounded down.
pub fn zoom_factor(crop: &Rect, cap: f64) -> f64 {
    let side = crop.width().max(crop.height()).max(1.0);
    let f = (TARGET_CAP_PX / cap).min(READER_SIDE / side);
    ((f * 100.0).floor() / 100.0).max(0.01)
}

/// A crop around `focus` with context: a 3-cap margin at least, and big enough that after the
/// zoom to [`TARGET_CAP_PX`] both sides reach [`MIN_RESULT_SHORT`]; centred on the focus and
/// shifted to stay inside the `w × h` canvas.
pub fn context_crop(focus: &Rect, cap: f64, w: u32, h: u32) -> Rect {
    let side = MIN_RESULT_SHORT * cap / TARGET_CAP_PX;
    let cw = (focus.width() + 6.0 * cap).max(side).min(w as f64);
    let ch = (focus.height() + 6.0 * cap).max(side).min(h as f64);
    let c = focus.center();
    let x0 = (c.x - cw / 2.0).clamp(0.0, w as f64 - cw);
    let y0 = (c.y - ch / 2.0).clamp(0.0, h as f64 - ch);
    let r = whole(Rect::new(x0, y0, x0 + cw, y0 + ch));
    Rect::new(
        r.x0.max(0.0),
        r.y0.max(0.0),
        r.x1.min(w as f64),
        r.y1.min(h as f64),
    )
}

pub fn crop(r: Rect) -> Op {
    Op::Crop { region: r }
}

/// Margin between the answer's box and the red outline that marks it, in original pixels.
pub const MARK_MARGIN: f64 = 3.0;

/// The red outline that marks `target` (the item's gold region) in every crop-based gold
/// program: it tells the reader where to look inside the context crop, and it is the program's
/// focus region (`Program::focus`), which the editing model's IoU metric compares with the gold
/// region.
pub fn mark(target: &Rect, w: u32, h: u32) -> Op {
    Op::DrawBox {
        region: crate::draw::expand(*target, MARK_MARGIN, w, h),
        color: Color::RED,
        width: 3.0,
        label: None,
    }
}

pub fn zoom(factor: f64) -> Op {
    Op::Zoom {
        factor: Some(factor),
        width: None,
        height: None,
        filter: Filter::default(),
    }
}

/// Rounds a box to whole pixels (outwards).
pub fn whole(r: Rect) -> Rect {
    Rect::new(r.x0.floor(), r.y0.floor(), r.x1.ceil(), r.y1.ceil())
}

/// `[x0,y0,x1,y1]` with no decimals, for reasoning text.
pub fn fmt_box(r: &Rect) -> String {
    format!("[{:.0},{:.0},{:.0},{:.0}]", r.x0, r.y0, r.x1, r.y1)
}

/// A coarse position name for a point on a `w × h` canvas ("top left", "centre", ...).
pub fn position_name(x: f64, y: f64, w: u32, h: u32) -> &'static str {
    let (u, v) = (x / w as f64, y / h as f64);
    let col = if u < 1.0 / 3.0 {
        0
    } else if u < 2.0 / 3.0 {
        1
    } else {
        2
    };
    let row = if v < 1.0 / 3.0 {
        0
    } else if v < 2.0 / 3.0 {
        1
    } else {
        2
    };
    [
        ["top left", "top centre", "top right"],
        ["middle left", "centre", "middle right"],
        ["bottom left", "bottom centre", "bottom right"],
    ][row][col]
}

/// A canvas size with the long side in `lo..=hi` and an aspect ratio drawn from `aspects`
/// (width / height).
pub fn canvas_size(rng: &mut Rng, lo: u32, hi: u32, aspects: &[f64]) -> (u32, u32) {
    let long = rng.int(lo as i64, hi as i64) as f64;
    let a = *rng.pick(aspects);
    if a >= 1.0 {
        (long as u32, (long / a).round() as u32)
    } else {
        ((long * a).round() as u32, long as u32)
    }
}

/// The sentence about legibility every reasoning chain carries.
pub fn legibility(cap: f64, w: u32, h: u32) -> String {
    let at = cap_at_reader(cap, w, h);
    if at < SMALL_CAP_PX {
        format!(
            "The answer text is about {cap:.0} px tall on a {w}x{h} canvas, only {at:.1} px once the image is scaled to 1024 px: too small to read without zooming."
        )
    } else {
        format!("The answer text is about {cap:.0} px tall, {at:.1} px at 1024 px: legible, but isolating it still removes distractors.")
    }
}
