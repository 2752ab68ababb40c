//! Inputs that made the cargo-fuzz targets in `fuzz/` fail, replayed through the very harness
//! the fuzzers run (`fuzz/src/lib.rs`, included below), with the outcome each now gives.
//! Run the fuzzers with `bench/fuzz.sh`; see fuzz/src/lib.rs for what each target checks.

#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod harness;

use etchr_ops::{text, validate, OpsError, Program, RenderOptions};
use harness::Outcome;

/// program_json, crash-571216c4: a 66-digit coordinate parsed to a double whose shortest
/// printed form (`to_json`) read back one ULP off, so a logged program did not replay
/// bit for bit. Fixed by serde_json's `float_roundtrip` (correctly rounded parsing).
#[test]
fn program_json_float_reads_back_exactly() {
    let input = br#"[{"op":"crop","box":[0,333333333333333333333333333333333333333333333333333333333333333330,400,4]},{"op":"zoom","factor":6},{"op":"tiles","rows":2,"cols":3}]"#;
    let outcome = harness::program_json(input);
    // Valid up to the zoom, which would exceed the fuzzing render limit.
    assert!(
        matches!(&outcome, Outcome::Invalid(e) if e.to_string().starts_with("op 1 (zoom): the result would be 384x264")),
        "{outcome:?}"
    );
    let p = Program::from_json(r#"[{"op":"crop","box":[0,3.3333333333333342e65,400,4]}]"#).unwrap();
    assert_eq!(Program::from_json(&p.to_json()).unwrap(), p);
}

/// program_text, crash-9dc6f909: the same one-ULP drift through the text form's numbers.
#[test]
fn program_text_float_reads_back_exactly() {
    let input = b"crop box=5555555550000000001243885561220373615,2,30,40; zoom ";
    let outcome = harness::program_text(input);
    assert!(
        matches!(&outcome, Outcome::Invalid(e) if e.to_string() == "op 1 (zoom): give a factor, or a width and/or height"),
        "{outcome:?}"
    );
    let p = text::parse("crop box=5.555555549999999e36,2,30,40").unwrap();
    assert_eq!(text::parse(&text::to_text(&p)).unwrap(), p);
}

/// program_text, crash-2f052554 (minimised by `cargo fuzz tmin`): a huge zoom factor made the
/// output-size check's `w * h` overflow u64, a panic in debug builds; in release the product
/// wraps, and a wrapped value under the limit would have let the sides saturate to u32::MAX
/// and the resize try to allocate that. Fixed with a saturating product and a per-side bound.
#[test]
fn program_text_huge_zoom_factor_is_refused() {
    let outcome = harness::program_text(b" zoom factor=522222222");
    assert!(
        matches!(&outcome, Outcome::Invalid(e) if e.to_string().starts_with("op 0 (zoom): the result would be 33422222208x25066666656 pixels")),
        "{outcome:?}"
    );
    // The same through the JSON path and with the server's default limits.
    let outcome = harness::program_json(br#"[{"op":"zoom","factor":522222222}]"#);
    assert!(matches!(&outcome, Outcome::Invalid(_)), "{outcome:?}");
    let zoom = |json: &str| Program::from_json(json).unwrap();
    let opts = RenderOptions::default();
    for (w, h, p) in [
        (64, 48, zoom(r#"[{"op":"zoom","factor":1e300}]"#)),
        (1, 20000, zoom(r#"[{"op":"zoom","width":4294967295}]"#)),
        (20000, 1, zoom(r#"[{"op":"zoom","height":4294967295}]"#)),
    ] {
        let e = validate(w, h, &p, &opts).unwrap_err();
        assert!(
            matches!(
                e,
                OpsError::InvalidOp {
                    index: 0,
                    op: "zoom",
                    ..
                }
            ),
            "{e}"
        );
    }
}
