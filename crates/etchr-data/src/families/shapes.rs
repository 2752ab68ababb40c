//! Filled shapes for the fine-grained family, named so questions can cite them.

use crate::draw::Canvas;
use std::f64::consts::PI;

pub const SHAPES: &[&str] = &["circle", "square", "triangle", "diamond", "hexagon", "star"];

/// Draws shape `name` centred at `(cx, cy)` with radius `r`.
pub fn draw(c: &mut Canvas, name: &str, cx: f64, cy: f64, r: f64, colour: [u8; 3]) {
    let poly = |n: usize, rot: f64, radii: &[f64]| -> Vec<(f64, f64)> {
        (0..n)
            .map(|k| {
                let a = rot + 2.0 * PI * k as f64 / n as f64;
                let rr = r * radii[k % radii.len()];
                (cx + rr * a.cos(), cy + rr * a.sin())
            })
            .collect()
    };
    match name {
        "circle" => c.fill_circle(cx, cy, r, colour),
        "square" => c.fill_polygon(&poly(4, PI / 4.0, &[1.0]), colour),
        "triangle" => c.fill_polygon(&poly(3, -PI / 2.0, &[1.0]), colour),
        "diamond" => c.fill_polygon(&poly(4, 0.0, &[1.0]), colour),
        "hexagon" => c.fill_polygon(&poly(6, 0.0, &[1.0]), colour),
        _ => c.fill_polygon(&poly(10, -PI / 2.0, &[1.0, 0.45]), colour),
    }
}
