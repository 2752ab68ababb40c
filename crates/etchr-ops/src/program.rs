//! Edit programs: the op set and its one JSON form.
//!
//! Every coordinate in a program refers to the *original* image (in whatever convention the
//! caller names, converted to pixels by [`crate::coords`]), even for ops that follow a crop or a
//! rotation: the renderer maps them into the current view through provenance. Stroke widths,
//! radii and font sizes are in output (view) pixels, so they look the same at any zoom.

use crate::geom::{Point, Rect};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An RGB colour. JSON accepts `"#rrggbb"`, `"#rgb"`, a CSS-style name (`"red"`) or `[r, g, b]`,
/// and always writes `"#rrggbb"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ColorRepr", into = "String")]
pub struct Color(pub [u8; 3]);

#[derive(Deserialize)]
#[serde(untagged)]
enum ColorRepr {
    Text(String),
    Rgb([u8; 3]),
}

impl Color {
    pub const RED: Color = Color([230, 25, 25]);
    pub const YELLOW: Color = Color([255, 214, 0]);
    pub const BLACK: Color = Color([0, 0, 0]);
    pub const WHITE: Color = Color([255, 255, 255]);
    pub const CYAN: Color = Color([0, 190, 255]);
    pub const MAGENTA: Color = Color([230, 0, 200]);

    const NAMES: [(&'static str, [u8; 3]); 12] = [
        ("red", [230, 25, 25]),
        ("green", [0, 170, 60]),
        ("blue", [30, 80, 230]),
        ("yellow", [255, 214, 0]),
        ("orange", [255, 140, 0]),
        ("purple", [140, 50, 200]),
        ("magenta", [230, 0, 200]),
        ("cyan", [0, 190, 255]),
        ("black", [0, 0, 0]),
        ("white", [255, 255, 255]),
        ("gray", [128, 128, 128]),
        ("grey", [128, 128, 128]),
    ];

    pub fn parse(s: &str) -> Result<Color, String> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(hex) = t.strip_prefix('#') {
            let digits: Vec<u8> = hex
                .chars()
                .map(|c| c.to_digit(16).map(|d| d as u8))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("invalid colour {s:?}: not hexadecimal"))?;
            return match digits.len() {
                6 => Ok(Color([
                    digits[0] * 16 + digits[1],
                    digits[2] * 16 + digits[3],
                    digits[4] * 16 + digits[5],
                ])),
                3 => Ok(Color([digits[0] * 17, digits[1] * 17, digits[2] * 17])),
                _ => Err(format!("invalid colour {s:?}: expected #rgb or #rrggbb")),
            };
        }
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, rgb)| Color(*rgb))
            .ok_or_else(|| format!("unknown colour {s:?}: use #rrggbb, [r,g,b] or a basic name"))
    }
}

impl TryFrom<ColorRepr> for Color {
    type Error = String;
    fn try_from(r: ColorRepr) -> Result<Self, String> {
        match r {
            ColorRepr::Text(s) => Color::parse(&s),
            ColorRepr::Rgb(rgb) => Ok(Color(rgb)),
        }
    }
}

impl From<Color> for String {
    fn from(c: Color) -> String {
        c.to_string()
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0[0], self.0[1], self.0[2])
    }
}

fn red() -> Color {
    Color::RED
}
fn yellow() -> Color {
    Color::YELLOW
}
fn cyan() -> Color {
    Color::CYAN
}
fn magenta() -> Color {
    Color::MAGENTA
}
fn black() -> Color {
    Color::BLACK
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn white() -> Color {
    Color::WHITE
}
fn three() -> f64 {
    3.0
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// Resampling filter for zoom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    Bilinear,
    /// Catmull-Rom: sharp text without ringing. The default.
    #[default]
    Bicubic,
    Lanczos,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// Mirror left ↔ right.
    #[default]
    Horizontal,
    /// Mirror top ↔ bottom.
    Vertical,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HighlightMode {
    /// Darken everything outside the region.
    #[default]
    Dim,
    /// Blur everything outside the region.
    Blur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnhanceMode {
    /// Stretch around the mean: `amount` is the gain (default 1.5).
    Contrast,
    /// Multiply: `amount` is the gain (default 1.3).
    Brightness,
    /// `255·(v/255)^amount` (default 0.7, brightens shadows).
    Gamma,
    /// Unsharp mask: `amount` is the strength (default 1.0).
    Sharpen,
    /// Per-channel histogram equalisation.
    Equalize,
    Grayscale,
    Invert,
}

impl EnhanceMode {
    pub fn default_amount(self) -> Option<f64> {
        match self {
            EnhanceMode::Contrast => Some(1.5),
            EnhanceMode::Brightness => Some(1.3),
            EnhanceMode::Gamma => Some(0.7),
            EnhanceMode::Sharpen => Some(1.0),
            _ => None,
        }
    }
}

/// One edit operation. JSON: `{"op": "<name>", ...fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Keep only `box`.
    Crop {
        #[serde(rename = "box")]
        region: Rect,
    },
    /// Resize the view by `factor`, or to `width` and/or `height` (one alone keeps the aspect).
    Zoom {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        factor: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        #[serde(default)]
        filter: Filter,
    },
    /// Rotate counter-clockwise by `angle` degrees; right angles are lossless, other angles
    /// expand the canvas and fill the corners with `fill`.
    Rotate {
        angle: f64,
        #[serde(default = "white")]
        fill: Color,
    },
    Flip {
        #[serde(default)]
        axis: Axis,
    },
    /// Outline `box`, with an optional label above it.
    #[serde(rename = "box")]
    DrawBox {
        #[serde(rename = "box")]
        region: Rect,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "three")]
        width: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// The ellipse inscribed in `box`.
    Ellipse {
        #[serde(rename = "box")]
        region: Rect,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "three")]
        width: f64,
        #[serde(default, skip_serializing_if = "is_false")]
        fill: bool,
    },
    Line {
        from: Point,
        to: Point,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "three")]
        width: f64,
    },
    /// A line with an arrowhead at `to`.
    Arrow {
        from: Point,
        to: Point,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "three")]
        width: f64,
    },
    Polyline {
        points: Vec<Point>,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "three")]
        width: f64,
        #[serde(default, skip_serializing_if = "is_false")]
        closed: bool,
    },
    /// A filled dot with a white rim.
    Point {
        at: Point,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "default_radius")]
        radius: f64,
    },
    /// Text whose top-left corner is at `at`.
    Text {
        at: Point,
        text: String,
        #[serde(default = "red")]
        color: Color,
        #[serde(default = "default_font_size")]
        size: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        background: Option<Color>,
    },
    /// Dim or blur everything outside `box`. `amount`: dim fraction (0–1, default 0.6) or blur
    /// sigma in view pixels (default 6).
    Highlight {
        #[serde(rename = "box")]
        region: Rect,
        #[serde(default)]
        mode: HighlightMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<f64>,
    },
    /// Fill `box` with `color`.
    Mask {
        #[serde(rename = "box")]
        region: Rect,
        #[serde(default = "black")]
        color: Color,
    },
    /// A photometric adjustment of the whole view, or of `box` only.
    Enhance {
        mode: EnhanceMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<f64>,
        #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
        region: Option<Rect>,
    },
    /// A `rows × cols` grid whose lines are labelled with original-image pixel coordinates.
    Grid {
        rows: u32,
        cols: u32,
        #[serde(default = "cyan")]
        color: Color,
        #[serde(default = "one")]
        width: f64,
        #[serde(default = "yes")]
        labels: bool,
    },
    /// A ruler between two points, labelled with their distance in original pixels.
    Measure {
        from: Point,
        to: Point,
        #[serde(default = "yellow")]
        color: Color,
        #[serde(default = "two")]
        width: f64,
    },
    /// Split the view into `rows × cols` views (must be the last op).
    Tiles { rows: u32, cols: u32 },
    /// Permute a `rows × cols` grid: output tile `i` (row-major) shows input tile `order[i]`.
    Jigsaw {
        rows: u32,
        cols: u32,
        order: Vec<u32>,
    },
    /// From here on, ops name coordinates in pixels of the view rendered so far instead of the
    /// original's: after a `jigsaw_solve`, `crop` a part of the restored image (in original
    /// pixels, a rectangle of the restored image is scattered over the shuffled tiles). The
    /// views' provenance still maps back to the original.
    Reframe,
    /// Cut each piece's `box` out of the view and paste it, unscaled, with its top-left corner
    /// at `at` (pixels of the new view) on a canvas of `background` just large enough to hold
    /// them all, plus `margin` pixels of `background` on every side; later pieces lie on top.
    /// It lays a long, narrow region out to read at its own scale: a table's key column and the
    /// column asked for, band by band, side by side. (Text detectors miss text that touches
    /// the image's edge: a few pixels of margin keep a small sheet readable.)
    Collage {
        pieces: Vec<Piece>,
        #[serde(default = "white")]
        background: Color,
        #[serde(default, skip_serializing_if = "is_zero")]
        margin: u32,
    },
    /// Find the order that restores a shuffled `rows × cols` grid from edge continuity and
    /// apply it. The repaired program records the order found.
    JigsawSolve {
        rows: u32,
        cols: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<Vec<u32>>,
    },
    /// Tint the free space reachable from `from` (free: anything but dark, unsaturated walls).
    Flood {
        from: Point,
        #[serde(default = "cyan")]
        color: Color,
        #[serde(default = "default_wall_luma")]
        wall_luma: u8,
    },
    /// Draw the shortest path through free space from `from` to `to` (or, when `to` cannot be
    /// reached, to the reachable point nearest it).
    Path {
        from: Point,
        to: Point,
        #[serde(default = "magenta")]
        color: Color,
        #[serde(default = "three")]
        width: f64,
        #[serde(default = "default_wall_luma")]
        wall_luma: u8,
    },
}

fn default_radius() -> f64 {
    6.0
}
fn default_font_size() -> f64 {
    20.0
}
fn one() -> f64 {
    1.0
}
fn two() -> f64 {
    2.0
}
fn yes() -> bool {
    true
}
fn default_wall_luma() -> u8 {
    96
}

impl Op {
    /// The op's name as written in JSON and in the text form.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Crop { .. } => "crop",
            Op::Zoom { .. } => "zoom",
            Op::Rotate { .. } => "rotate",
            Op::Flip { .. } => "flip",
            Op::DrawBox { .. } => "box",
            Op::Ellipse { .. } => "ellipse",
            Op::Line { .. } => "line",
            Op::Arrow { .. } => "arrow",
            Op::Polyline { .. } => "polyline",
            Op::Point { .. } => "point",
            Op::Text { .. } => "text",
            Op::Highlight { .. } => "highlight",
            Op::Mask { .. } => "mask",
            Op::Enhance { .. } => "enhance",
            Op::Grid { .. } => "grid",
            Op::Measure { .. } => "measure",
            Op::Tiles { .. } => "tiles",
            Op::Jigsaw { .. } => "jigsaw",
            Op::JigsawSolve { .. } => "jigsaw_solve",
            Op::Collage { .. } => "collage",
            Op::Reframe => "reframe",
            Op::Flood { .. } => "flood",
            Op::Path { .. } => "path",
        }
    }

    /// Rewrites every box and point of the op, leaving everything else alone. Used to convert
    /// coordinate conventions and to map coordinates between views.
    pub fn map_geometry(
        &mut self,
        map_rect: &dyn Fn(Rect) -> Rect,
        map_point: &dyn Fn(Point) -> Point,
    ) {
        match self {
            Op::Crop { region }
            | Op::DrawBox { region, .. }
            | Op::Ellipse { region, .. }
            | Op::Highlight { region, .. }
            | Op::Mask { region, .. } => *region = map_rect(*region),
            Op::Enhance { region, .. } => {
                if let Some(r) = region {
                    *r = map_rect(*r)
                }
            }
            Op::Line { from, to, .. }
            | Op::Arrow { from, to, .. }
            | Op::Measure { from, to, .. }
            | Op::Path { from, to, .. } => {
                *from = map_point(*from);
                *to = map_point(*to);
            }
            Op::Point { at, .. } | Op::Text { at, .. } => *at = map_point(*at),
            Op::Flood { from, .. } => *from = map_point(*from),
            Op::Polyline { points, .. } => points.iter_mut().for_each(|p| *p = map_point(*p)),
            // `at` is in the collage's pixels, not the frame's: only the boxes map.
            Op::Collage { pieces, .. } => pieces
                .iter_mut()
                .for_each(|p| p.region = map_rect(p.region)),
            Op::Zoom { .. }
            | Op::Rotate { .. }
            | Op::Flip { .. }
            | Op::Grid { .. }
            | Op::Tiles { .. }
            | Op::Jigsaw { .. }
            | Op::JigsawSolve { .. }
            | Op::Reframe => {}
        }
    }

    /// The region this op focuses on, if it names one (used for metrics and random baselines).
    pub fn focus_region(&self) -> Option<Rect> {
        match self {
            Op::Crop { region }
            | Op::DrawBox { region, .. }
            | Op::Ellipse { region, .. }
            | Op::Highlight { region, .. } => Some(*region),
            _ => None,
        }
    }
}

/// One piece of a [`Op::Collage`]: `box` of the view, pasted with its top-left corner at `at`
/// of the collage (in the collage's own pixels, which no coordinate convention rescales).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Piece {
    #[serde(rename = "box")]
    pub region: Rect,
    pub at: Point,
}

/// An edit program: ops applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Program(pub Vec<Op>);

impl Program {
    pub fn ops(&self) -> &[Op] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The region the program singles out, in original pixels (in the reframed view's after a
    /// `reframe`): the last marking op (box,
    /// ellipse, highlight) if there is one, else the first crop. A crop keeps context around
    /// its target, so when a program also marks something, the mark is the more precise answer
    /// to "where did it look".
    pub fn focus(&self) -> Option<Rect> {
        let marked = self.0.iter().rev().find_map(|op| match op {
            Op::DrawBox { region, .. }
            | Op::Ellipse { region, .. }
            | Op::Highlight { region, .. } => Some(*region),
            _ => None,
        });
        marked.or_else(|| self.first_crop())
    }

    /// The region the program's first crop keeps.
    pub fn first_crop(&self) -> Option<Rect> {
        self.0.iter().find_map(|op| match op {
            Op::Crop { region } => Some(*region),
            _ => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn from_json(s: &str) -> Result<Program, serde_json::Error> {
        serde_json::from_str(s)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("programs always serialise")
    }

    /// The same program with every box and point rewritten.
    pub fn map_geometry(
        &self,
        map_rect: &dyn Fn(Rect) -> Rect,
        map_point: &dyn Fn(Point) -> Point,
    ) -> Program {
        let mut p = self.clone();
        p.0.iter_mut()
            .for_each(|op| op.map_geometry(map_rect, map_point));
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_round_trips_and_fills_defaults() {
        let p = Program::from_json(
            r##"[{"op":"crop","box":[10,20,300,400]},{"op":"zoom","factor":2},
                 {"op":"box","box":[1,2,3,4],"color":"blue","label":"Pump 7"},
                 {"op":"enhance","mode":"contrast"},{"op":"jigsaw","rows":2,"cols":2,"order":[1,0,3,2]}]"##,
        )
        .unwrap();
        assert_eq!(p.len(), 5);
        match &p.0[2] {
            Op::DrawBox { color, width, .. } => {
                assert_eq!(*color, Color([30, 80, 230]));
                assert_eq!(*width, 3.0);
            }
            other => panic!("unexpected {other:?}"),
        }
        let again = Program::from_json(&p.to_json()).unwrap();
        assert_eq!(p, again);
    }

    #[test]
    fn unknown_fields_and_ops_are_rejected() {
        assert!(Program::from_json(r#"[{"op":"crop","box":[0,0,1,1],"bogus":1}]"#).is_err());
        assert!(Program::from_json(r#"[{"op":"explode"}]"#).is_err());
        assert!(Program::from_json(r#"[{"op":"crop"}]"#).is_err());
    }

    #[test]
    fn colours_parse() {
        assert_eq!(Color::parse("#fff").unwrap(), Color::WHITE);
        assert_eq!(Color::parse("#FF0000").unwrap(), Color([255, 0, 0]));
        assert!(Color::parse("#12345").is_err());
        assert!(Color::parse("mauve-ish").is_err());
    }

    #[test]
    fn focus_prefers_the_last_mark_over_the_crop() {
        let crop = Rect::new(0.0, 0.0, 100.0, 100.0);
        let mark = Rect::new(40.0, 40.0, 60.0, 50.0);
        let p: Program = serde_json::from_value(serde_json::json!([
            {"op": "crop", "box": [0, 0, 100, 100]},
            {"op": "zoom", "factor": 2},
            {"op": "highlight", "box": [10, 10, 90, 90]},
            {"op": "box", "box": [40, 40, 60, 50]}
        ]))
        .unwrap();
        assert_eq!(p.focus(), Some(mark));
        let only_crop = Program(p.0[..2].to_vec());
        assert_eq!(only_crop.focus(), Some(crop));
        assert_eq!(Program(vec![p.0[1].clone()]).focus(), None);
    }
}
