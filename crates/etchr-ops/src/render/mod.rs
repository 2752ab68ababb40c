//! The deterministic renderer. It walks a program op by op, repairing each op against the
//! current view (clamping, swapping, expanding) or rejecting it with its index and the reason,
//! then applying it. [`validate`] runs the same walk without pixels, so the two can never
//! disagree about what a program means.

mod bars;
mod colour;
mod draw;
mod glyphs;
mod jigsaw;
mod maze;
mod pixels;
mod table;
mod text_lines;

pub use bars::{bar_charts, BarChart};
pub use colour::{
    all_regions_of as all_colour_regions, at_most as at_most_colour_regions,
    regions_of as colour_regions, regions_up_to as colour_regions_up_to, ColourRegion, NamedColour,
    MAX_REGIONS as MAX_COLOUR_REGIONS,
};
pub use glyphs::{
    line_glyphs, line_glyphs_cut, Cut, Glyph, GLYPH_FEATURES, GLYPH_SIDE, PLACEMENT_FEATURES,
};
pub use jigsaw::{
    detect_grid as jigsaw_grid, inverse as jigsaw_inverse, permute as jigsaw_permute,
    solve as jigsaw_solve,
};
pub use maze::{exit_from as maze_exit, nearest_marker as maze_marker};
pub use pixels::{luma, resize};
pub use table::{ruled_tables, Table};
pub use text_lines::{short_text_lines, text_lines, TextLines};

use crate::error::OpsError;
use crate::geom::{Affine, Point, Rect};
use crate::program::{Color, EnhanceMode, HighlightMode, Op, Piece, Program};
use crate::provenance::{Moved, Step, Transform};
use image::{imageops, Rgb, RgbImage};
use pixels::PixelBox;
use std::borrow::Cow;
use std::cell::Cell;
use std::time::Instant;

/// Limits that keep any program cheap enough to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Most ops in one program.
    pub max_ops: usize,
    /// Largest view any op may produce (zoom, rotation).
    pub max_output_pixels: u64,
    /// Crops smaller than this many pixels on a side are expanded around their centre.
    pub min_crop: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            max_ops: 256,
            max_output_pixels: 50_000_000,
            min_crop: 16,
        }
    }
}

/// One output image and its map back to the original.
#[derive(Debug, Clone)]
pub struct View {
    pub image: RgbImage,
    pub transform: Transform,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    /// One view, or one per tile when the program ends with `tiles`.
    pub views: Vec<View>,
    /// The program as rendered: repaired, in original pixels (after a `reframe`, in the pixels
    /// of the view it reframed to), with solved jigsaw orders.
    pub program: Program,
    /// What was repaired, one line per repair, naming the op.
    pub repairs: Vec<String>,
    /// Time spent in the ops themselves, in milliseconds.
    pub op_ms: f64,
}

/// Renders `program` (in original pixels until a `reframe`) on `original`.
pub fn render(
    original: &RgbImage,
    program: &Program,
    opts: &RenderOptions,
) -> Result<Rendered, OpsError> {
    let start = Instant::now();
    let mut canvas = Canvas::new(
        Some(Cow::Borrowed(original)),
        original.width(),
        original.height(),
        opts,
    );
    let repaired = canvas.run(program)?;
    let repairs = std::mem::take(&mut canvas.repairs);
    Ok(Rendered {
        views: canvas.finish(),
        program: repaired,
        repairs,
        op_ms: start.elapsed().as_secs_f64() * 1e3,
    })
}

/// Checks and repairs `program` for a `width × height` image without touching pixels.
/// Returns the repaired program and the repairs made. Ops that need pixels to decide
/// (`jigsaw_solve` without an order, whether a `path` exists) are accepted as written.
pub fn validate(
    width: u32,
    height: u32,
    program: &Program,
    opts: &RenderOptions,
) -> Result<(Program, Vec<String>), OpsError> {
    let mut canvas = Canvas::new(None, width, height, opts);
    let repaired = canvas.run(program)?;
    Ok((repaired, canvas.repairs))
}

struct Canvas<'a> {
    image: Option<Cow<'a, RgbImage>>,
    width: u32,
    height: u32,
    /// The current view back to the original: the views' provenance.
    transform: Transform,
    /// The current view back to the frame ops name coordinates in: `transform` until a
    /// `reframe`, after it only the steps since.
    frame: Transform,
    opts: &'a RenderOptions,
    repairs: Vec<String>,
    tiles: Option<(u32, u32)>,
}

fn rgb(c: Color) -> Rgb<u8> {
    Rgb(c.0)
}

impl<'a> Canvas<'a> {
    fn new(
        image: Option<Cow<'a, RgbImage>>,
        width: u32,
        height: u32,
        opts: &'a RenderOptions,
    ) -> Self {
        Self {
            image,
            width,
            height,
            transform: Transform::identity(),
            frame: Transform::identity(),
            opts,
            repairs: Vec::new(),
            tiles: None,
        }
    }

    fn run(&mut self, program: &Program) -> Result<Program, OpsError> {
        if program.len() > self.opts.max_ops {
            return Err(OpsError::InvalidProgram(format!(
                "the program has {} ops; the limit is {}",
                program.len(),
                self.opts.max_ops
            )));
        }
        if self.width == 0 || self.height == 0 {
            return Err(OpsError::Empty {
                width: self.width,
                height: self.height,
            });
        }
        let mut out = Vec::with_capacity(program.len());
        for (index, op) in program.ops().iter().enumerate() {
            if self.tiles.is_some() {
                return Err(OpsError::op(
                    index,
                    op.name(),
                    "no op may follow `tiles`: it must be the last op",
                ));
            }
            check_finite(index, op)?;
            out.push(self.apply(index, op)?);
        }
        Ok(Program(out))
    }

    /// The output views. Consumes the canvas so the last view's pixels move out uncopied.
    fn finish(self) -> Vec<View> {
        let image = self
            .image
            .expect("finish is only called when rendering pixels");
        match self.tiles {
            None => vec![View {
                image: image.into_owned(),
                transform: self.transform,
            }],
            Some((rows, cols)) => {
                let (tw, th) = (self.width / cols, self.height / rows);
                let mut views = Vec::with_capacity((rows * cols) as usize);
                for r in 0..rows {
                    for c in 0..cols {
                        // The last row and column take the remainder so no pixel is lost.
                        let w = if c + 1 == cols {
                            self.width - c * tw
                        } else {
                            tw
                        };
                        let h = if r + 1 == rows {
                            self.height - r * th
                        } else {
                            th
                        };
                        views.push(View {
                            image: pixels::crop(&image, (c * tw, r * th, w, h)),
                            transform: self.transform.then(Step::Affine {
                                matrix: Affine::translate((c * tw) as f64, (r * th) as f64),
                            }),
                        });
                    }
                }
                views
            }
        }
    }

    fn note(&mut self, index: usize, op: &str, what: impl AsRef<str>) {
        self.repairs
            .push(format!("op {index} ({op}): {}", what.as_ref()));
    }

    /// The part of the frame the ops name coordinates in (the original, or the view at the
    /// last `reframe`) that the current view shows.
    fn visible(&self) -> Rect {
        self.frame
            .rect_to_original(&Rect::full(self.width, self.height))
    }

    fn repair_box(&mut self, index: usize, op: &'static str, r: Rect) -> Result<Rect, OpsError> {
        let n = r.normalized();
        if n != r {
            self.note(index, op, "swapped reversed corners");
        }
        let visible = self.visible();
        let Some(clamped) = n.intersect(&visible) else {
            // A degenerate box inside the image is expanded by crops; drawing ops need area.
            let inside = n.x0 >= visible.x0
                && n.x1 <= visible.x1
                && n.y0 >= visible.y0
                && n.y1 <= visible.y1;
            if inside && op == "crop" {
                return Ok(n);
            }
            return Err(OpsError::op(
                index,
                op,
                format!(
                    "box {:?} has no area inside the visible image {:?}",
                    <[f64; 4]>::from(n),
                    <[f64; 4]>::from(visible)
                ),
            ));
        };
        if clamped != n {
            self.note(index, op, "box clamped to the image bounds");
        }
        Ok(clamped)
    }

    fn repair_point(&mut self, index: usize, op: &'static str, p: Point) -> Point {
        let v = self.visible();
        let q = Point::new(p.x.clamp(v.x0, v.x1), p.y.clamp(v.y0, v.y1));
        if q != p {
            self.note(index, op, "point clamped to the image bounds");
        }
        q
    }

    fn repair_stroke(&mut self, index: usize, op: &'static str, w: f64, lo: f64, hi: f64) -> f64 {
        let c = w.clamp(lo, hi);
        if c != w {
            self.note(index, op, format!("width {w} clamped to {c}"));
        }
        c
    }

    /// Integer view pixels covered by an original-pixel box, clipped to the view.
    fn view_pixels(&self, r: &Rect) -> PixelBox {
        let v = self.frame.rect_to_view(r);
        let clip = |a: f64, max: u32| a.round().clamp(0.0, max as f64) as u32;
        let (x0, y0) = (clip(v.x0, self.width), clip(v.y0, self.height));
        let (x1, y1) = (clip(v.x1, self.width), clip(v.y1, self.height));
        (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
    }

    fn img(&mut self) -> Option<&mut RgbImage> {
        self.image.as_mut().map(|c| c.to_mut())
    }

    fn set_view(&mut self, image: Option<RgbImage>, width: u32, height: u32, step: Step) {
        if let Some(i) = image {
            self.image = Some(Cow::Owned(i));
        }
        self.width = width;
        self.height = height;
        self.frame = self.frame.then(step.clone());
        self.transform = self.transform.then(step);
    }

    fn check_output(&self, index: usize, op: &'static str, w: u64, h: u64) -> Result<(), OpsError> {
        // Saturating: a huge zoom factor makes `w * h` overflow (a panic in debug builds; in
        // release a wrapped product could pass and the sides then saturate to u32::MAX).
        let too_large = w > u32::MAX as u64
            || h > u32::MAX as u64
            || w.saturating_mul(h) > self.opts.max_output_pixels;
        if w == 0 || h == 0 || too_large {
            return Err(OpsError::op(
                index,
                op,
                format!(
                    "the result would be {w}x{h} pixels; views must be non-empty and at most {} pixels",
                    self.opts.max_output_pixels
                ),
            ));
        }
        Ok(())
    }

    fn check_grid(
        &self,
        index: usize,
        op: &'static str,
        rows: u32,
        cols: u32,
        max_cells: u32,
        min_tile: u32,
    ) -> Result<(), OpsError> {
        if rows == 0 || cols == 0 || rows.saturating_mul(cols) > max_cells {
            return Err(OpsError::op(
                index,
                op,
                format!("a {rows}x{cols} grid is not allowed: rows and cols must be at least 1 with at most {max_cells} cells"),
            ));
        }
        if self.width / cols < min_tile || self.height / rows < min_tile {
            return Err(OpsError::op(
                index,
                op,
                format!(
                    "a {rows}x{cols} grid on a {}x{} view leaves tiles under {min_tile} px",
                    self.width, self.height
                ),
            ));
        }
        Ok(())
    }

    /// Draws the outline of an original-pixel box on the view: an axis-aligned frame when the
    /// view is axis-aligned, else the mapped quadrilateral.
    fn outline(&mut self, r: &Rect, width: f64, color: Rgb<u8>) -> Rect {
        let aligned = self.frame.is_axis_aligned();
        let view = self.frame.rect_to_view(r);
        let corners = r.corners().map(|p| self.frame.to_view(p));
        if let Some(img) = self.img() {
            if aligned {
                draw::outline_rect(img, view.x0, view.y0, view.x1, view.y1, width, color);
            } else {
                draw::polyline(img, &corners, true, width, color);
            }
        }
        view
    }

    fn apply(&mut self, index: usize, op: &Op) -> Result<Op, OpsError> {
        let name = op.name();
        let mut out = op.clone();
        match &mut out {
            Op::Crop { region } => {
                let r = self.repair_box(index, name, *region)?;
                let (mut x, mut y, mut w, mut h) = self.view_pixels(&r);
                let min = self.opts.min_crop;
                if w < min.min(self.width) || h < min.min(self.height) {
                    let grow = |pos: u32, len: u32, full: u32| {
                        let want = len.max(min.min(full));
                        let centre = pos as i64 + len as i64 / 2;
                        let start =
                            (centre - want as i64 / 2).clamp(0, (full - want) as i64) as u32;
                        (start, want)
                    };
                    (x, w) = grow(x, w, self.width);
                    (y, h) = grow(y, h, self.height);
                    self.note(
                        index,
                        name,
                        format!("expanded to the {min} px minimum crop"),
                    );
                }
                let view_box = Rect::new(x as f64, y as f64, (x + w) as f64, (y + h) as f64);
                *region = self.frame.rect_to_original(&view_box);
                let image = self.image.as_ref().map(|i| pixels::crop(i, (x, y, w, h)));
                self.set_view(
                    image,
                    w,
                    h,
                    Step::Affine {
                        matrix: Affine::translate(x as f64, y as f64),
                    },
                );
            }
            Op::Zoom {
                factor,
                width,
                height,
                filter,
            } => {
                let (w, h) = (self.width as f64, self.height as f64);
                let (nw, nh) = match (*factor, *width, *height) {
                    (Some(f), None, None) if f > 0.0 => {
                        ((w * f).round().max(1.0), (h * f).round().max(1.0))
                    }
                    (Some(f), None, None) => {
                        return Err(OpsError::op(
                            index,
                            name,
                            format!("factor must be positive, got {f}"),
                        ))
                    }
                    (None, Some(nw), None) => (nw as f64, (h * nw as f64 / w).round().max(1.0)),
                    (None, None, Some(nh)) => ((w * nh as f64 / h).round().max(1.0), nh as f64),
                    (None, Some(nw), Some(nh)) => (nw as f64, nh as f64),
                    (None, None, None) => {
                        return Err(OpsError::op(
                            index,
                            name,
                            "give a factor, or a width and/or height",
                        ))
                    }
                    _ => {
                        return Err(OpsError::op(
                            index,
                            name,
                            "give either a factor or a target size, not both",
                        ))
                    }
                };
                self.check_output(index, name, nw as u64, nh as u64)?;
                let (nw, nh) = (nw as u32, nh as u32);
                let filter = *filter;
                let image = self
                    .image
                    .as_ref()
                    .map(|i| pixels::resize(i, nw, nh, filter));
                self.set_view(
                    image,
                    nw,
                    nh,
                    Step::Affine {
                        matrix: Affine::scale(w / nw as f64, h / nh as f64),
                    },
                );
            }
            Op::Rotate { angle, fill } => {
                let a = angle.rem_euclid(360.0);
                let quarter = (a / 90.0).round();
                let (w, h) = (self.width as f64, self.height as f64);
                if (a - quarter * 90.0).abs() < 1e-6 {
                    let q = quarter as u32 % 4;
                    *angle = (q * 90) as f64;
                    let (matrix, nw, nh) = match q {
                        0 => (Affine::IDENTITY, w, h),
                        1 => (
                            Affine {
                                a: 0.0,
                                b: -1.0,
                                c: w,
                                d: 1.0,
                                e: 0.0,
                                f: 0.0,
                            },
                            h,
                            w,
                        ),
                        2 => (
                            Affine {
                                a: -1.0,
                                b: 0.0,
                                c: w,
                                d: 0.0,
                                e: -1.0,
                                f: h,
                            },
                            w,
                            h,
                        ),
                        _ => (
                            Affine {
                                a: 0.0,
                                b: 1.0,
                                c: 0.0,
                                d: -1.0,
                                e: 0.0,
                                f: h,
                            },
                            h,
                            w,
                        ),
                    };
                    let image = self.image.as_ref().map(|i| pixels::rotate_quarter(i, q));
                    self.set_view(image, nw as u32, nh as u32, Step::Affine { matrix });
                } else {
                    *angle = a;
                    let (s, c) = a.to_radians().sin_cos();
                    let nw = (w * c.abs() + h * s.abs() - 1e-9).ceil();
                    let nh = (w * s.abs() + h * c.abs() - 1e-9).ceil();
                    self.check_output(index, name, nw as u64, nh as u64)?;
                    // Visual counter-clockwise rotation about the centres, in y-down coordinates.
                    let (cx, cy, ncx, ncy) = (w / 2.0, h / 2.0, nw / 2.0, nh / 2.0);
                    let matrix = Affine {
                        a: c,
                        b: -s,
                        c: cx - c * ncx + s * ncy,
                        d: s,
                        e: c,
                        f: cy - s * ncx - c * ncy,
                    };
                    let fill = rgb(*fill);
                    let image = self
                        .image
                        .as_ref()
                        .map(|i| pixels::warp(i, nw as u32, nh as u32, &matrix, fill));
                    self.set_view(image, nw as u32, nh as u32, Step::Affine { matrix });
                }
            }
            Op::Flip { axis } => {
                let (w, h) = (self.width as f64, self.height as f64);
                let matrix = match axis {
                    crate::program::Axis::Horizontal => Affine {
                        a: -1.0,
                        c: w,
                        ..Affine::IDENTITY
                    },
                    crate::program::Axis::Vertical => Affine {
                        e: -1.0,
                        f: h,
                        ..Affine::IDENTITY
                    },
                };
                let axis = *axis;
                let image = self.image.as_ref().map(|i| pixels::flip(i, axis));
                self.set_view(image, self.width, self.height, Step::Affine { matrix });
            }
            Op::DrawBox {
                region,
                color,
                width,
                label,
            } => {
                *region = self.repair_box(index, name, *region)?;
                *width = self.repair_stroke(index, name, *width, 1.0, 100.0);
                if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
                    return Err(OpsError::op(
                        index,
                        name,
                        "label is longer than 200 characters",
                    ));
                }
                let (c, stroke) = (rgb(*color), *width);
                let view = self.outline(region, stroke, c);
                if let (Some(text), Some(img)) = (
                    label.as_deref().filter(|t| !t.is_empty()),
                    self.image.as_mut(),
                ) {
                    let size = (stroke * 4.0).clamp(14.0, 48.0);
                    let (_, th) = draw::text_size(text, size);
                    let pad = (size * 0.2).max(2.0);
                    let above = view.y0 - stroke - th as f64 - 2.0 * pad;
                    let y = if above >= 0.0 {
                        above + pad
                    } else {
                        view.y0 + pad
                    };
                    draw::text(
                        img.to_mut(),
                        Point::new(view.x0 - stroke + pad, y),
                        text,
                        size,
                        draw::contrasting(c),
                        Some(c),
                    );
                }
            }
            Op::Ellipse {
                region,
                color,
                width,
                fill,
            } => {
                *region = self.repair_box(index, name, *region)?;
                *width = self.repair_stroke(index, name, *width, 1.0, 100.0);
                let view = self.frame.rect_to_view(region);
                let (c, stroke, fill) = (rgb(*color), *width, *fill);
                if let Some(img) = self.img() {
                    let ring = if fill { 0.0 } else { stroke };
                    draw::fill_ellipse_ring(
                        img,
                        view.center(),
                        view.width() / 2.0,
                        view.height() / 2.0,
                        ring,
                        c,
                    );
                }
            }
            Op::Line {
                from,
                to,
                color,
                width,
            }
            | Op::Arrow {
                from,
                to,
                color,
                width,
            } => {
                *from = self.repair_point(index, name, *from);
                *to = self.repair_point(index, name, *to);
                *width = self.repair_stroke(index, name, *width, 1.0, 100.0);
                let (a, b) = (self.frame.to_view(*from), self.frame.to_view(*to));
                let (c, stroke) = (rgb(*color), *width);
                let arrow = matches!(op, Op::Arrow { .. });
                if let Some(img) = self.img() {
                    if arrow {
                        draw::arrow(img, a, b, stroke, c);
                    } else {
                        draw::thick_line(img, a, b, stroke, c);
                    }
                }
            }
            Op::Polyline {
                points,
                color,
                width,
                closed,
            } => {
                if points.len() < 2 || points.len() > 10_000 {
                    return Err(OpsError::op(
                        index,
                        name,
                        format!("needs 2 to 10000 points, got {}", points.len()),
                    ));
                }
                for p in points.iter_mut() {
                    *p = self.repair_point(index, name, *p);
                }
                *width = self.repair_stroke(index, name, *width, 1.0, 100.0);
                let pts: Vec<Point> = points.iter().map(|p| self.frame.to_view(*p)).collect();
                let (c, stroke, closed) = (rgb(*color), *width, *closed);
                if let Some(img) = self.img() {
                    draw::polyline(img, &pts, closed, stroke, c);
                }
            }
            Op::Point { at, color, radius } => {
                *at = self.repair_point(index, name, *at);
                *radius = self.repair_stroke(index, name, *radius, 1.0, 200.0);
                let (p, c, r) = (self.frame.to_view(*at), rgb(*color), *radius);
                if let Some(img) = self.img() {
                    draw::fill_circle(img, p, r + (r / 4.0).max(1.0), Rgb([255, 255, 255]));
                    draw::fill_circle(img, p, r, c);
                }
            }
            Op::Text {
                at,
                text,
                color,
                size,
                background,
            } => {
                let chars = text.chars().count();
                if chars == 0 || chars > 500 {
                    return Err(OpsError::op(
                        index,
                        name,
                        format!("text must have 1 to 500 characters, got {chars}"),
                    ));
                }
                *at = self.repair_point(index, name, *at);
                *size = self.repair_stroke(index, name, *size, 6.0, 400.0);
                let (p, c, s, bg) = (
                    self.frame.to_view(*at),
                    rgb(*color),
                    *size,
                    background.map(rgb),
                );
                if let Some(img) = self.img() {
                    draw::text(img, p, text, s, c, bg);
                }
            }
            Op::Highlight {
                region,
                mode,
                amount,
            } => {
                *region = self.repair_box(index, name, *region)?;
                let a = match (*mode, *amount) {
                    (HighlightMode::Dim, None) => 0.6,
                    (HighlightMode::Blur, None) => 6.0,
                    (HighlightMode::Dim, Some(a)) if (0.0..=1.0).contains(&a) => a,
                    (HighlightMode::Blur, Some(a)) if a > 0.0 && a <= 200.0 => a,
                    (m, Some(a)) => {
                        return Err(OpsError::op(
                            index,
                            name,
                            format!("amount {a} is out of range for {m:?}: dim takes 0 to 1, blur a sigma in (0, 200]"),
                        ))
                    }
                };
                let inside = self.view_pixels(region);
                let mode = *mode;
                if let Some(img) = self.img() {
                    match mode {
                        HighlightMode::Dim => pixels::dim_outside(img, inside, a),
                        HighlightMode::Blur => {
                            let mut blurred = pixels::blur(img, a);
                            pixels::copy_region(&mut blurred, img, inside);
                            *img = blurred;
                        }
                    }
                }
            }
            Op::Mask { region, color } => {
                *region = self.repair_box(index, name, *region)?;
                let aligned = self.frame.is_axis_aligned();
                let view = self.frame.rect_to_view(region);
                let corners = region.corners().map(|p| self.frame.to_view(p));
                let c = rgb(*color);
                if let Some(img) = self.img() {
                    if aligned {
                        draw::fill_rect(img, view.x0, view.y0, view.x1, view.y1, c);
                    } else {
                        draw::fill_convex(img, &corners, c);
                    }
                }
            }
            Op::Enhance {
                mode,
                amount,
                region,
            } => {
                let a = match (mode.default_amount(), *amount) {
                    (None, _) => 0.0,
                    (Some(d), None) => d,
                    (Some(_), Some(a)) => a,
                };
                let ok = match mode {
                    EnhanceMode::Contrast | EnhanceMode::Brightness => a > 0.0 && a <= 10.0,
                    EnhanceMode::Gamma => (0.05..=10.0).contains(&a),
                    EnhanceMode::Sharpen => (0.0..=10.0).contains(&a),
                    _ => true,
                };
                if !ok {
                    return Err(OpsError::op(
                        index,
                        name,
                        format!("amount {a} is out of range for {mode:?}"),
                    ));
                }
                let area = match region {
                    Some(r) => {
                        *r = self.repair_box(index, name, *r)?;
                        self.view_pixels(r)
                    }
                    None => (0, 0, self.width, self.height),
                };
                let mode = *mode;
                if let Some(img) = self.img() {
                    if area.2 > 0 && area.3 > 0 {
                        pixels::enhance(img, area, mode, a);
                    }
                }
            }
            Op::Grid {
                rows,
                cols,
                color,
                width,
                labels,
            } => {
                self.check_grid(index, name, *rows, *cols, 10_000, 1)?;
                if *rows > 100 || *cols > 100 {
                    return Err(OpsError::op(
                        index,
                        name,
                        "rows and cols must be at most 100",
                    ));
                }
                *width = self.repair_stroke(index, name, *width, 1.0, 20.0);
                self.draw_grid(*rows, *cols, rgb(*color), *width, *labels);
            }
            Op::Measure {
                from,
                to,
                color,
                width,
            } => {
                *from = self.repair_point(index, name, *from);
                *to = self.repair_point(index, name, *to);
                *width = self.repair_stroke(index, name, *width, 1.0, 50.0);
                let (a, b) = (self.frame.to_view(*from), self.frame.to_view(*to));
                let dist = self
                    .transform
                    .to_original(a)
                    .distance(self.transform.to_original(b));
                let (c, stroke) = (rgb(*color), *width);
                if let Some(img) = self.img() {
                    draw::thick_line(img, a, b, stroke, c);
                    let len = a.distance(b).max(1e-9);
                    let (nx, ny) = (-(b.y - a.y) / len, (b.x - a.x) / len);
                    let tick = (stroke * 4.0).max(8.0);
                    for p in [a, b] {
                        let (p0, p1) = (
                            Point::new(p.x - nx * tick, p.y - ny * tick),
                            Point::new(p.x + nx * tick, p.y + ny * tick),
                        );
                        draw::thick_line(img, p0, p1, stroke, c);
                    }
                    let label = format!("{dist:.0} px");
                    let mid = Point::new(
                        (a.x + b.x) / 2.0 + nx * tick * 1.5,
                        (a.y + b.y) / 2.0 + ny * tick * 1.5,
                    );
                    draw::text(img, mid, &label, 16.0, draw::contrasting(c), Some(c));
                }
            }
            Op::Tiles { rows, cols } => {
                self.check_grid(index, name, *rows, *cols, 256, 1)?;
                self.tiles = Some((*rows, *cols));
            }
            Op::Jigsaw { rows, cols, order } => {
                self.check_grid(index, name, *rows, *cols, 64, 2)?;
                check_permutation(index, name, order, *rows * *cols)?;
                self.apply_jigsaw(*rows, *cols, order.clone());
            }
            Op::JigsawSolve { rows, cols, order } => {
                self.check_grid(index, name, *rows, *cols, 64, 2)?;
                let found = match (order.as_ref(), self.image.as_ref()) {
                    (Some(o), _) => {
                        check_permutation(index, name, o, *rows * *cols)?;
                        o.clone()
                    }
                    (None, Some(img)) => jigsaw::solve(img, *rows, *cols),
                    (None, None) => (0..*rows * *cols).collect(),
                };
                if self.image.is_some() {
                    *order = Some(found.clone());
                }
                self.apply_jigsaw(*rows, *cols, found);
            }
            Op::Collage {
                pieces,
                background,
                margin,
            } => self.apply_collage(index, name, pieces, rgb(*background), *margin)?,
            Op::Reframe => self.frame = Transform::identity(),
            Op::Flood {
                from,
                color,
                wall_luma,
            } => {
                *from = self.repair_point(index, name, *from);
                let p = self.frame.to_view(*from);
                let (w, h, c, wall) = (self.width, self.height, rgb(*color), *wall_luma);
                if let Some(img) = self.img() {
                    let free = maze::free_mask(img, wall);
                    let start = maze::snap(&free, w, h, p.x, p.y).ok_or_else(|| {
                        OpsError::op(index, name, "the start point lies inside a wall")
                    })?;
                    let reach = maze::flood(&free, w, h, start);
                    pixels::tint(img, &reach, c, 0.45);
                }
            }
            Op::Path {
                from,
                to,
                color,
                width,
                wall_luma,
            } => {
                *from = self.repair_point(index, name, *from);
                *to = self.repair_point(index, name, *to);
                *width = self.repair_stroke(index, name, *width, 1.0, 50.0);
                let (a, b) = (self.frame.to_view(*from), self.frame.to_view(*to));
                let (w, h, c, stroke, wall) =
                    (self.width, self.height, rgb(*color), *width, *wall_luma);
                if let Some(img) = self.img() {
                    let free = maze::free_mask(img, wall);
                    let snap = |p: Point, what: &str| {
                        maze::snap(&free, w, h, p.x, p.y).ok_or_else(|| {
                            OpsError::op(
                                index,
                                name,
                                format!("the {what} point lies inside a wall"),
                            )
                        })
                    };
                    let s = snap(a, "from")?;
                    // `to` on a wall or in a region `from` cannot reach (an editor's guess at
                    // an exit): the path runs to the reachable point nearest to it, so it
                    // always shows where the start's corridors lead.
                    let t = maze::snap(&free, w, h, b.x, b.y);
                    let path = maze::path_toward(&free, w, h, s, t, (b.x, b.y));
                    let pts: Vec<Point> = path.into_iter().map(|(x, y)| Point::new(x, y)).collect();
                    draw::polyline(img, &pts, false, stroke, c);
                }
            }
        }
        Ok(out)
    }

    fn apply_jigsaw(&mut self, rows: u32, cols: u32, order: Vec<u32>) {
        let image = self
            .image
            .as_ref()
            .map(|i| jigsaw::permute(i, rows, cols, &order));
        let step = Step::Jigsaw {
            width: self.width,
            height: self.height,
            rows,
            cols,
            order,
        };
        self.set_view(image, self.width, self.height, step);
    }

    /// Most pieces in one collage: a table laid out in bands needs a few dozen, a sheet of a
    /// page's text lines a few hundred; the cap keeps a hostile program cheap to check.
    const MAX_PIECES: usize = 1024;

    fn apply_collage(
        &mut self,
        index: usize,
        name: &'static str,
        pieces: &mut [Piece],
        background: Rgb<u8>,
        margin: u32,
    ) -> Result<(), OpsError> {
        if pieces.is_empty() || pieces.len() > Self::MAX_PIECES {
            return Err(OpsError::op(
                index,
                name,
                format!(
                    "a collage needs 1 to {} pieces, not {}",
                    Self::MAX_PIECES,
                    pieces.len()
                ),
            ));
        }
        let mut moved = Vec::with_capacity(pieces.len());
        let (mut w, mut h) = (0u64, 0u64);
        for piece in pieces.iter_mut() {
            if piece.at.x < 0.0 || piece.at.y < 0.0 {
                return Err(OpsError::op(
                    index,
                    name,
                    format!(
                        "piece at ({}, {}): collage positions are at least 0",
                        piece.at.x, piece.at.y
                    ),
                ));
            }
            let r = self.repair_box(index, name, piece.region)?;
            let (x, y, pw, ph) = self.view_pixels(&r);
            if pw == 0 || ph == 0 {
                return Err(OpsError::op(
                    index,
                    name,
                    "a piece covers no whole pixel of the view",
                ));
            }
            let from = Rect::new(x as f64, y as f64, (x + pw) as f64, (y + ph) as f64);
            piece.region = self.frame.rect_to_original(&from);
            piece.at = Point::new(piece.at.x.round(), piece.at.y.round());
            let to = Point::new(piece.at.x + margin as f64, piece.at.y + margin as f64);
            // Saturating: a huge `at` must be refused by `check_output`, not overflow.
            w = w.max((to.x as u64).saturating_add(pw as u64));
            h = h.max((to.y as u64).saturating_add(ph as u64));
            moved.push(Moved { from, to });
        }
        let (w, h) = (
            w.saturating_add(margin as u64),
            h.saturating_add(margin as u64),
        );
        self.check_output(index, name, w, h)?;
        let image = self.image.as_ref().map(|src| {
            let mut out = RgbImage::from_pixel(w as u32, h as u32, background);
            for m in &moved {
                let (x, y) = (m.from.x0 as u32, m.from.y0 as u32);
                let (pw, ph) = (m.from.width() as u32, m.from.height() as u32);
                let part = imageops::crop_imm(src.as_ref(), x, y, pw, ph);
                imageops::replace(&mut out, &*part, m.to.x as i64, m.to.y as i64);
            }
            out
        });
        self.set_view(image, w as u32, h as u32, Step::Collage { pieces: moved });
        Ok(())
    }

    fn draw_grid(&mut self, rows: u32, cols: u32, c: Rgb<u8>, width: f64, labels: bool) {
        let (w, h) = (self.width as f64, self.height as f64);
        let label_of = |t: &Transform, a: Point, b: Point| {
            let (oa, ob) = (t.to_original(a), t.to_original(b));
            if (oa.x - ob.x).abs() < 0.5 {
                format!("x={:.0}", oa.x)
            } else if (oa.y - ob.y).abs() < 0.5 {
                format!("y={:.0}", oa.y)
            } else {
                format!("({:.0},{:.0})", oa.x, oa.y)
            }
        };
        let mut lines = Vec::new();
        for i in 1..cols {
            let x = (i as f64 * w / cols as f64).round();
            lines.push((
                Point::new(x, 0.0),
                Point::new(x, h),
                label_of(&self.transform, Point::new(x, 0.0), Point::new(x, h)),
            ));
        }
        for j in 1..rows {
            let y = (j as f64 * h / rows as f64).round();
            lines.push((
                Point::new(0.0, y),
                Point::new(w, y),
                label_of(&self.transform, Point::new(0.0, y), Point::new(w, y)),
            ));
        }
        let Some(img) = self.img() else { return };
        for (a, b, _) in &lines {
            draw::thick_line(img, *a, *b, width, c);
        }
        if labels {
            let size = (w.min(h) / 40.0).clamp(10.0, 24.0);
            for (a, b, text) in &lines {
                let at = if a.x == b.x {
                    Point::new(a.x + 3.0, 3.0)
                } else {
                    Point::new(3.0, a.y + 3.0)
                };
                draw::text(img, at, text, size, draw::contrasting(c), Some(c));
            }
        }
    }
}

fn check_permutation(
    index: usize,
    op: &'static str,
    order: &[u32],
    n: u32,
) -> Result<(), OpsError> {
    let mut seen = vec![false; n as usize];
    let ok = order.len() == n as usize
        && order.iter().all(|&o| {
            let fresh = (o as usize) < seen.len() && !seen[o as usize];
            if fresh {
                seen[o as usize] = true;
            }
            fresh
        });
    if ok {
        Ok(())
    } else {
        Err(OpsError::op(
            index,
            op,
            format!(
                "order must be a permutation of 0..{} (each tile exactly once)",
                n
            ),
        ))
    }
}

fn check_finite(index: usize, op: &Op) -> Result<(), OpsError> {
    let finite = Cell::new(true);
    let mut probe = op.clone();
    probe.map_geometry(
        &|r| {
            if !r.is_finite() {
                finite.set(false);
            }
            r
        },
        &|p| {
            if !p.is_finite() {
                finite.set(false);
            }
            p
        },
    );
    let scalars_ok = match op {
        Op::Zoom { factor, .. } => factor.is_none_or(f64::is_finite),
        Op::Rotate { angle, .. } => angle.is_finite(),
        Op::DrawBox { width, .. }
        | Op::Ellipse { width, .. }
        | Op::Line { width, .. }
        | Op::Arrow { width, .. }
        | Op::Polyline { width, .. }
        | Op::Grid { width, .. }
        | Op::Measure { width, .. }
        | Op::Path { width, .. } => width.is_finite(),
        Op::Point { radius, .. } => radius.is_finite(),
        Op::Text { size, .. } => size.is_finite(),
        Op::Highlight { amount, .. } | Op::Enhance { amount, .. } => {
            amount.is_none_or(f64::is_finite)
        }
        Op::Collage { pieces, .. } => pieces.iter().all(|p| p.at.is_finite()),
        _ => true,
    };
    if finite.get() && scalars_ok {
        Ok(())
    } else {
        Err(OpsError::op(
            index,
            op.name(),
            "every coordinate and number must be finite",
        ))
    }
}

#[cfg(test)]
mod tests;
