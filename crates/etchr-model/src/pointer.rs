//! Coordinates through the pointer head: a box or point token ↔ (the patch holding its centre,
//! the sub-patch offset, `log2` of its size in patch units), on the letterboxed input.
//! The same two functions serve training targets and decoding, so they cannot disagree.

use crate::config::ModelConfig;
use crate::preprocess::Letterbox;
use crate::tokens::{Frame, Token, BINS};
use etchr_ops::{Point, Rect};

/// Smallest regressed size: 1/64 of a patch.
pub const LOG2_MIN: f32 = -6.0;

/// Largest regressed size: twice the input side.
pub fn log2_max(cfg: &ModelConfig) -> f32 {
    (cfg.grid() as f32).log2() + 1.0
}

/// The pointer target of a coordinate token: `(patch, [dx, dy, log2 w, log2 h])`, sizes 0 for
/// points. `None` for symbols.
pub fn encode_slot(
    tok: &Token,
    lb: &Letterbox,
    frame: &Frame,
    cfg: &ModelConfig,
) -> Option<(usize, [f32; 4])> {
    let p = cfg.patch_size as f64;
    let (centre, size) = match tok {
        Token::Box(b) => {
            let r = lb.rect_to_input(&frame.bins_rect(*b).normalized());
            (r.center(), Some((r.width(), r.height())))
        }
        Token::Point(b) => (lb.to_input(frame.bins_point(*b)), None),
        Token::Sym(_) => return None,
    };
    let g = cfg.grid();
    let (u, v) = (centre.x / p, centre.y / p);
    let col = (u.floor().max(0.0) as usize).min(g - 1);
    let row = (v.floor().max(0.0) as usize).min(g - 1);
    let hi = log2_max(cfg);
    let l2 = |s: f64| ((s.max(1e-6) / p).log2() as f32).clamp(LOG2_MIN, hi);
    let (lw, lh) = size.map_or((0.0, 0.0), |(w, h)| (l2(w), l2(h)));
    Some((
        row * g + col,
        [
            (u - col as f64).clamp(0.0, 1.0) as f32,
            (v - row as f64).clamp(0.0, 1.0) as f32,
            lw,
            lh,
        ],
    ))
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The token for a pointer choice: `patch` and the regression head's raw output (offsets
/// before their sigmoid). The result is clipped to `clip` (view pixels: what the program
/// still shows) and boxes keep at least one bin of width and height.
pub fn decode_slot(
    patch: usize,
    raw: [f32; 4],
    point: bool,
    lb: &Letterbox,
    frame: &Frame,
    cfg: &ModelConfig,
    clip: &Rect,
) -> Token {
    let (g, p) = (cfg.grid(), cfg.patch_size as f64);
    let (row, col) = (patch / g, patch % g);
    let content = lb.content();
    let cx = ((col as f64 + sigmoid(raw[0]) as f64) * p).clamp(content.x0, content.x1);
    let cy = ((row as f64 + sigmoid(raw[1]) as f64) * p).clamp(content.y0, content.y1);
    let view = Rect::full(frame.view_width, frame.view_height);
    let clip = clip.intersect(&view).unwrap_or(view);
    let c = lb.to_view(Point::new(cx, cy));
    let c = Point::new(c.x.clamp(clip.x0, clip.x1), c.y.clamp(clip.y0, clip.y1));
    if point {
        return Token::Point(frame.point_bins(c));
    }
    let hi = log2_max(cfg);
    let w = p * 2f64.powf(raw[2].clamp(LOG2_MIN, hi) as f64);
    let h = p * 2f64.powf(raw[3].clamp(LOG2_MIN, hi) as f64);
    let ci = lb.to_input(c);
    let r = lb.rect_to_view(&Rect::new(
        ci.x - w / 2.0,
        ci.y - h / 2.0,
        ci.x + w / 2.0,
        ci.y + h / 2.0,
    ));
    let r = r.intersect(&clip).unwrap_or(Rect::new(c.x, c.y, c.x, c.y));
    let mut b = frame.rect_bins(&r);
    for (lo, hi) in [(0, 2), (1, 3)] {
        if b[hi] <= b[lo] {
            if b[lo] >= BINS - 1 {
                b[lo] = BINS - 2;
            }
            b[hi] = b[lo] + 1;
        }
    }
    Token::Box(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Transform;

    fn logit(p: f32) -> f32 {
        (p / (1.0 - p)).ln()
    }

    #[test]
    fn pointer_choice_maps_to_original_pixels() {
        // 2048 x 1024 original, 256 px input: scale 1/8, padded 64 px top and bottom.
        let cfg = ModelConfig::default();
        let frame = Frame::identity(2048, 1024);
        let lb = Letterbox::new(2048, 1024, 256);
        assert_eq!((lb.pad_x, lb.pad_y), (0, 64));
        // Patch (row 6, col 3): input [48, 96) x [96, 112); offset 0.5, 0.25 → (56, 100) in
        // the input → view (448, 288). Size: 2 patches wide (32 px → 256 px), 1 patch high.
        let patch = 6 * cfg.grid() + 3;
        let t = decode_slot(
            patch,
            [logit(0.5), logit(0.25), 1.0, 0.0],
            false,
            &lb,
            &frame,
            &cfg,
            &Rect::full(2048, 1024),
        );
        let r = frame.bins_original_rect(match t {
            Token::Box(b) => b,
            _ => panic!(),
        });
        let tol = 2048.0 / 1000.0 + 1e-9;
        let want = Rect::new(448.0 - 128.0, 288.0 - 64.0, 448.0 + 128.0, 288.0 + 64.0);
        for (a, b) in [
            (r.x0, want.x0),
            (r.y0, want.y0),
            (r.x1, want.x1),
            (r.y1, want.y1),
        ] {
            assert!((a - b).abs() <= tol, "{r:?} vs {want:?}");
        }
        // And back to the same pointer target.
        let (k, geo) = encode_slot(&t, &lb, &frame, &cfg).unwrap();
        assert_eq!(k, patch);
        assert!((geo[0] - 0.5).abs() < 0.05 && (geo[1] - 0.25).abs() < 0.05);
        assert!(
            (geo[2] - 1.0).abs() < 0.05 && geo[3].abs() < 0.05,
            "{geo:?}"
        );
    }

    #[test]
    fn points_and_boxes_round_trip_through_the_pointer() {
        let cfg = ModelConfig::default();
        for (w, h) in [(2048u32, 2048u32), (3000, 1000), (640, 1900)] {
            let frame = Frame::new(w, h, Transform::identity());
            let lb = Letterbox::new(w, h, 256);
            let full = Rect::full(w, h);
            for b in [
                [100u16, 200, 300, 260],
                [0, 0, 999, 999],
                [500, 500, 501, 501],
            ] {
                let t = Token::Box(b);
                let (k, geo) = encode_slot(&t, &lb, &frame, &cfg).unwrap();
                let raw = [
                    logit(geo[0].clamp(1e-4, 1.0 - 1e-4)),
                    logit(geo[1].clamp(1e-4, 1.0 - 1e-4)),
                    geo[2],
                    geo[3],
                ];
                let Token::Box(back) = decode_slot(k, raw, false, &lb, &frame, &cfg, &full) else {
                    panic!()
                };
                for i in 0..4 {
                    assert!(
                        (back[i] as i32 - b[i] as i32).abs() <= 1,
                        "{b:?} → {back:?}"
                    );
                }
            }
            let t = Token::Point([123, 877]);
            let (k, geo) = encode_slot(&t, &lb, &frame, &cfg).unwrap();
            let raw = [
                logit(geo[0].clamp(1e-4, 1.0 - 1e-4)),
                logit(geo[1].clamp(1e-4, 1.0 - 1e-4)),
                0.0,
                0.0,
            ];
            let Token::Point(back) = decode_slot(k, raw, true, &lb, &frame, &cfg, &full) else {
                panic!()
            };
            assert!((back[0] as i32 - 123).abs() <= 1 && (back[1] as i32 - 877).abs() <= 1);
        }
    }
}
