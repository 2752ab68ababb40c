//! The fuzz harnesses for `etchr-ops`, one function per cargo-fuzz target.
//!
//! Each function takes the fuzzer's bytes, drives one public entry point the way the server does,
//! and panics when a property fails; errors the crate reports are fine and are returned so that
//! `crates/etchr-ops/tests/fuzz_regressions.rs` (which includes this file with `#[path]`) can
//! replay saved inputs through exactly this code and check the error they now give.
//!
//! Dependencies: `etchr_ops` and `serde_json` only, so the file compiles in both places.

use etchr_ops::coords::qwen25_resize;
use etchr_ops::{
    decode_image, render, text, validate, Adapter, CoordSystem, DecodeLimits, OpsError, Point,
    Program, Rect, RenderOptions, RgbImage,
};

/// The fixed image programs are rendered on.
pub const WIDTH: u32 = 64;
pub const HEIGHT: u32 = 48;

/// Render limits tight enough that one input renders in milliseconds.
pub fn render_options() -> RenderOptions {
    RenderOptions {
        max_ops: 16,
        max_output_pixels: 256 * 256,
        min_crop: 16,
    }
}

/// Decode limits for the `decode` target (run under `-rss_limit_mb=1024`).
pub fn decode_limits() -> DecodeLimits {
    DecodeLimits {
        max_pixels: 4_000_000,
        max_side: 8192,
    }
}

/// A gradient with dark walls every 16 px, so `flood` and `path` have something to work on.
pub fn test_image() -> RgbImage {
    let mut raw = Vec::with_capacity((WIDTH * HEIGHT * 3) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let wall = x % 16 == 15 && y % 12 != 3 || y % 12 == 11 && x % 16 != 5;
            raw.extend(if wall {
                [20, 20, 20]
            } else {
                [(x * 4) as u8, (y * 5) as u8, 160]
            });
        }
    }
    RgbImage::from_raw(WIDTH, HEIGHT, raw).expect("the buffer matches the size")
}

/// What became of one program input.
#[derive(Debug)]
pub enum Outcome {
    /// Not a program: the parser's message.
    Unparsed(String),
    /// A program, refused by validation (and by the renderer, with the same error).
    Invalid(OpsError),
    /// Valid, but the renderer refused it (only ops that need pixels to decide may do that).
    RenderFailed(OpsError),
    /// Rendered into this many views.
    Rendered(usize),
}

/// `program_json`: the bytes as the server reads an `ops` array (each element deserialised on its
/// own, as `etchr-server`'s `engine::parse_program` does), also through `Program::from_json`,
/// converted from a coordinate system chosen by the input's length, validated and rendered.
pub fn program_json(data: &[u8]) -> Outcome {
    let direct = std::str::from_utf8(data)
        .map_err(|e| e.to_string())
        .and_then(|s| Program::from_json(s).map_err(|e| e.to_string()));
    let values: Vec<serde_json::Value> = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => return Outcome::Unparsed(e.to_string()),
    };
    if values.len() > render_options().max_ops {
        return Outcome::Unparsed(format!("{} ops", values.len()));
    }
    let mut ops = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        match serde_json::from_value(value) {
            Ok(op) => ops.push(op),
            Err(e) => return Outcome::Unparsed(format!("op {index}: {e}")),
        }
    }
    let program = Program(ops);
    if let Ok(p) = &direct {
        assert_eq!(p, &program, "from_json and the per-op path disagree");
    }
    check_serialisations(&program);
    let system = CoordSystem::ALL[data.len() % CoordSystem::ALL.len()];
    let pixels = Adapter::new(system, WIDTH, HEIGHT, None).program_to_pixels(&program);
    run_program(&pixels)
}

/// `program_text`: the compact text form, parsed, round-tripped, validated and rendered.
pub fn program_text(data: &[u8]) -> Outcome {
    let Ok(s) = std::str::from_utf8(data) else {
        return Outcome::Unparsed("not UTF-8".into());
    };
    let program = match text::parse(s) {
        Ok(p) => p,
        Err(e) => return Outcome::Unparsed(e.to_string()),
    };
    check_serialisations(&program);
    if program.len() > render_options().max_ops {
        return Outcome::Unparsed(format!("{} ops", program.len()));
    }
    run_program(&program)
}

/// Both serialisations give the program back exactly.
fn check_serialisations(program: &Program) {
    let json = program.to_json();
    let back = Program::from_json(&json).unwrap_or_else(|e| panic!("to_json {json:?}: {e}"));
    assert_eq!(
        &back, program,
        "JSON round trip changed the program: {json}"
    );
    let t = text::to_text(program);
    let back = text::parse(&t).unwrap_or_else(|e| panic!("to_text {t:?} does not parse: {e}"));
    assert_eq!(&back, program, "text round trip changed the program: {t}");
}

/// Validates and renders a pixel program; validation and rendering must agree, and the repaired
/// program must validate again unchanged (it is what traces log and training replays).
fn run_program(program: &Program) -> Outcome {
    let opts = render_options();
    let validated = validate(WIDTH, HEIGHT, program, &opts);
    let rendered = render(&test_image(), program, &opts);
    match (validated, rendered) {
        (Err(v), Err(r)) => {
            assert_eq!(v.to_string(), r.to_string(), "validate and render disagree");
            Outcome::Invalid(v)
        }
        (Err(v), Ok(_)) => panic!("validate refused ({v}) what render accepted"),
        (Ok(_), Err(r)) => {
            let pixel_dependent = program
                .ops()
                .iter()
                .any(|op| matches!(op.name(), "jigsaw_solve" | "path" | "flood" | "tiles"));
            assert!(
                pixel_dependent,
                "render refused ({r}) what validate accepted"
            );
            Outcome::RenderFailed(r)
        }
        (Ok((repaired, _)), Ok(out)) => {
            assert!(!out.views.is_empty());
            for v in &out.views {
                let (w, h) = v.image.dimensions();
                assert!(w > 0 && h > 0, "an empty view");
                assert!((w as u64) * (h as u64) <= opts.max_output_pixels);
            }
            for (name, p) in [("validate", &repaired), ("render", &out.program)] {
                let (again, repairs) = validate(WIDTH, HEIGHT, p, &opts).unwrap_or_else(|e| {
                    panic!("the program {name} repaired is refused on replay: {e}\n{p:?}")
                });
                assert_eq!(
                    &again, p,
                    "re-validating {name}'s repaired program changed it"
                );
                assert!(
                    repairs.is_empty(),
                    "{name}'s repaired program needs repairs: {repairs:?}"
                );
            }
            Outcome::Rendered(out.views.len())
        }
    }
}

/// `decode`: arbitrary bytes through `decode_image` with small limits.
pub fn decode(data: &[u8]) -> Result<(u32, u32), OpsError> {
    let limits = decode_limits();
    let img = decode_image(data, &limits)?;
    let (w, h) = img.dimensions();
    assert!(w > 0 && h > 0 && w <= limits.max_side && h <= limits.max_side);
    assert!(w as u64 * h as u64 <= limits.max_pixels);
    assert_eq!(img.as_raw().len(), w as usize * h as usize * 3);
    Ok((w, h))
}

/// Reads the fuzzer's bytes as fixed-size fields; missing bytes read as zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    /// Any f64, NaN and infinities included, or (by the flag byte) a "reasonable" one.
    fn f64(&mut self) -> f64 {
        let raw = f64::from_le_bytes(self.take());
        if self.u8() & 1 == 0 {
            raw
        } else {
            // Plain numbers in a few thousand either way, where real boxes live.
            (self.u32() as i32) as f64 / 65536.0
        }
    }
}

/// Coordinates of this magnitude and images up to this side are "real"; beyond, only the
/// absence of panics is checked (products of huge numbers may overflow to infinity).
const REAL_COORD: f64 = 1e9;
const REAL_SIDE: u32 = 1 << 20;

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * scale.max(1.0)
}

/// `coords`: an adapter for a fuzzed system, image size and model-input size; boxes and points
/// mapped to pixels and back. Checks: no panics; finite outputs for finite, real-sized inputs;
/// both round trips within a relative 1e-9; Qwen2.5-VL resize sizes are positive multiples of 28.
pub fn coords(data: &[u8]) {
    let mut b = Bytes(data);
    let system = CoordSystem::ALL[b.u8() as usize % CoordSystem::ALL.len()];
    let (width, height) = (b.u32(), b.u32());
    let resized = match b.u8() % 3 {
        0 => None,
        1 => Some((b.u32(), b.u32())),
        _ => Some(qwen25_resize(b.u32(), b.u32())),
    };
    let (rw, rh) = qwen25_resize(width, height);
    if width.max(height) <= REAL_SIDE {
        assert!(
            rw >= 28 && rh >= 28,
            "qwen25_resize({width}, {height}) = {rw}x{rh}"
        );
        assert!(
            rw % 28 == 0 && rh % 28 == 0,
            "qwen25_resize({width}, {height}) = {rw}x{rh}"
        );
        // Qwen2.5-VL itself refuses aspect ratios over 200; within them the area stays in bounds.
        let (w, h) = (width.max(1) as f64, height.max(1) as f64);
        if w.max(h) / w.min(h) <= 200.0 {
            let area = rw as f64 * rh as f64;
            assert!(
                (56.0 * 56.0..=16384.0 * 28.0 * 28.0).contains(&area),
                "qwen25_resize({width}, {height}) = {rw}x{rh}"
            );
        }
    }
    let a = Adapter::new(system, width, height, resized);
    let values: [f64; 4] = [b.f64(), b.f64(), b.f64(), b.f64()];
    let point = [b.f64(), b.f64()];

    // Whatever the input, no panics.
    let r = a.box_to_pixels(values);
    let back = a.box_from_pixels(r);
    let p = a.point_to_pixels(point);
    let pback = a.point_from_pixels(p);
    let pixel_box = Rect::new(values[0], values[1], values[2], values[3]);
    let from = a.box_from_pixels(pixel_box);
    let to = a.box_to_pixels(from);
    let pt = Point::new(point[0], point[1]);
    let pfrom = a.point_from_pixels(pt);
    let pto = a.point_to_pixels(pfrom);

    let real_size = width >= 1
        && height >= 1
        && width <= REAL_SIDE
        && height <= REAL_SIDE
        && resized.is_none_or(|(w, h)| w >= 1 && h >= 1 && w <= REAL_SIDE && h <= REAL_SIDE);
    let real = |v: &[f64]| v.iter().all(|x| x.is_finite() && x.abs() <= REAL_COORD);
    if !real_size {
        return;
    }
    let scale = |v: &[f64]| {
        v.iter()
            .fold(width.max(height) as f64, |m, x| m.max(x.abs()))
            * 1000.0
    };
    if real(&values) {
        let s = scale(&values);
        let out: [f64; 4] = r.into();
        assert!(
            out.iter().all(|x| x.is_finite()),
            "{system:?} {values:?} -> {out:?}"
        );
        for (u, v) in back.iter().zip(values) {
            assert!(
                close(*u, v, s),
                "{system:?} {width}x{height} {resized:?}: {values:?} -> {out:?} -> {back:?}"
            );
        }
        let to: [f64; 4] = to.into();
        assert!(from.iter().all(|x| x.is_finite()), "{system:?} {from:?}");
        for (u, v) in to.iter().zip(values) {
            assert!(
                close(*u, v, s),
                "{system:?} {width}x{height} {resized:?}: {values:?} -> {from:?} -> {to:?}"
            );
        }
    }
    if real(&point) {
        let s = scale(&point);
        assert!(p.is_finite() && pfrom.iter().all(|x| x.is_finite()));
        for (u, v) in pback.iter().zip(point) {
            assert!(
                close(*u, v, s),
                "{system:?}: {point:?} -> {p:?} -> {pback:?}"
            );
        }
        for (u, v) in [pto.x, pto.y].iter().zip(point) {
            assert!(
                close(*u, v, s),
                "{system:?}: {point:?} -> {pfrom:?} -> {pto:?}"
            );
        }
    }
}
