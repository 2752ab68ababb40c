use super::*;
use crate::program::{Axis, Filter};
use proptest::prelude::*;

/// Every pixel's colour encodes its own position, so a view pixel tells where it came from.
fn coded(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 256) * 16 + y / 256) as u8,
        ])
    })
}

fn decode_pos(p: &Rgb<u8>) -> (u32, u32) {
    (
        p[0] as u32 + (p[2] as u32 / 16) * 256,
        p[1] as u32 + (p[2] as u32 % 16) * 256,
    )
}

fn prog(json: &str) -> Program {
    Program::from_json(json).unwrap()
}

fn run(img: &RgbImage, json: &str) -> Rendered {
    render(img, &prog(json), &RenderOptions::default()).unwrap()
}

fn err(img: &RgbImage, json: &str) -> String {
    render(img, &prog(json), &RenderOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn crop_is_pixel_exact_and_maps_back() {
    let img = coded(100, 80);
    let r = run(&img, r#"[{"op":"crop","box":[10,20,40,60]}]"#);
    let v = &r.views[0];
    assert_eq!(v.image.dimensions(), (30, 40));
    assert_eq!(decode_pos(v.image.get_pixel(0, 0)), (10, 20));
    assert_eq!(decode_pos(v.image.get_pixel(29, 39)), (39, 59));
    assert_eq!(
        v.transform.to_original(Point::new(5.0, 5.0)),
        Point::new(15.0, 25.0)
    );
}

#[test]
fn nearest_zoom_replicates_pixels() {
    let img = coded(10, 10);
    let r = run(&img, r#"[{"op":"zoom","factor":3,"filter":"nearest"}]"#);
    let v = &r.views[0].image;
    assert_eq!(v.dimensions(), (30, 30));
    for (x, y) in [(0, 0), (2, 2), (3, 0), (29, 29), (14, 7)] {
        assert_eq!(decode_pos(v.get_pixel(x, y)), (x / 3, y / 3));
    }
}

#[test]
fn zoom_by_size_keeps_aspect() {
    let img = coded(40, 20);
    let r = run(&img, r#"[{"op":"zoom","width":100}]"#);
    assert_eq!(r.views[0].image.dimensions(), (100, 50));
    assert!(err(&img, r#"[{"op":"zoom","factor":2,"width":5}]"#).contains("not both"));
    assert!(err(&img, r#"[{"op":"zoom","factor":-1}]"#).contains("op 0 (zoom)"));
    assert!(err(&img, r#"[{"op":"zoom","factor":100000}]"#).contains("at most"));
}

#[test]
fn right_angle_rotations_are_lossless() {
    let img = coded(6, 4);
    let r = run(&img, r#"[{"op":"rotate","angle":90}]"#);
    let v = &r.views[0];
    assert_eq!(v.image.dimensions(), (4, 6));
    // Counter-clockwise: the original top-right corner is now top-left.
    assert_eq!(decode_pos(v.image.get_pixel(0, 0)), (5, 0));
    assert_eq!(decode_pos(v.image.get_pixel(0, 5)), (0, 0));
    let r = run(&img, r#"[{"op":"rotate","angle":-90}]"#);
    assert_eq!(
        r.program.ops()[0],
        Op::Rotate {
            angle: 270.0,
            fill: Color::WHITE
        }
    );
    assert_eq!(decode_pos(r.views[0].image.get_pixel(0, 0)), (0, 3));
}

#[test]
fn arbitrary_rotation_expands_and_maps_the_centre() {
    let img = RgbImage::from_pixel(100, 50, Rgb([0, 0, 255]));
    let r = run(&img, r#"[{"op":"rotate","angle":45,"fill":"white"}]"#);
    let v = &r.views[0];
    assert_eq!(v.image.dimensions(), (107, 107));
    assert_eq!(v.image.get_pixel(53, 53).0, [0, 0, 255]);
    assert_eq!(v.image.get_pixel(0, 0).0, [255, 255, 255]);
    let c = v.transform.to_original(Point::new(53.5, 53.5));
    assert!(
        (c.x - 50.0).abs() < 1.0 && (c.y - 25.0).abs() < 1.0,
        "{c:?}"
    );
}

#[test]
fn box_outline_is_drawn_outside_the_region() {
    let img = RgbImage::from_pixel(50, 50, Rgb([255, 255, 255]));
    let r = run(
        &img,
        r##"[{"op":"box","box":[10,10,20,20],"color":"#ff0000","width":2}]"##,
    );
    let v = &r.views[0].image;
    assert_eq!(v.get_pixel(9, 15).0, [255, 0, 0]);
    assert_eq!(v.get_pixel(8, 15).0, [255, 0, 0]);
    assert_eq!(v.get_pixel(7, 15).0, [255, 255, 255]);
    assert_eq!(v.get_pixel(10, 15).0, [255, 255, 255]);
    assert_eq!(v.get_pixel(15, 20).0, [255, 0, 0]);
}

#[test]
fn ops_after_a_crop_and_zoom_use_original_coordinates() {
    let img = RgbImage::from_pixel(100, 100, Rgb([255, 255, 255]));
    let r = run(
        &img,
        r##"[{"op":"crop","box":[50,50,100,100]},{"op":"zoom","factor":2,"filter":"nearest"},
             {"op":"mask","box":[60,60,70,70],"color":"#000000"}]"##,
    );
    let v = &r.views[0].image;
    // Original (60..70) → view ((60-50)·2 .. (70-50)·2) = 20..40.
    assert_eq!(v.get_pixel(20, 20).0, [0, 0, 0]);
    assert_eq!(v.get_pixel(39, 39).0, [0, 0, 0]);
    assert_eq!(v.get_pixel(40, 40).0, [255, 255, 255]);
    assert_eq!(v.get_pixel(19, 30).0, [255, 255, 255]);
}

#[test]
fn highlight_dims_outside_only() {
    let img = RgbImage::from_pixel(20, 20, Rgb([200, 100, 50]));
    let r = run(
        &img,
        r#"[{"op":"highlight","box":[5,5,10,10],"amount":0.5}]"#,
    );
    let v = &r.views[0].image;
    assert_eq!(v.get_pixel(7, 7).0, [200, 100, 50]);
    assert_eq!(v.get_pixel(0, 0).0, [100, 50, 25]);
    let r = run(
        &img,
        r#"[{"op":"highlight","box":[5,5,10,10],"mode":"blur"}]"#,
    );
    assert_eq!(r.views[0].image.get_pixel(7, 7).0, [200, 100, 50]);
}

#[test]
fn repairs_swap_clamp_and_expand() {
    let img = coded(100, 100);
    let r = run(&img, r#"[{"op":"crop","box":[90,90,-10,80]}]"#);
    assert_eq!(
        r.program.ops()[0],
        Op::Crop {
            region: Rect::new(0.0, 77.0, 90.0, 93.0)
        }
    );
    assert!(r.repairs.iter().any(|m| m.contains("swapped")));
    assert!(r.repairs.iter().any(|m| m.contains("clamped")));
    assert!(r.repairs.iter().any(|m| m.contains("minimum")));
    assert_eq!(r.views[0].image.dimensions(), (90, 16));
    let r = run(&img, r#"[{"op":"crop","box":[50,50,50,50]}]"#);
    assert_eq!(r.views[0].image.dimensions(), (16, 16));
}

#[test]
fn unrepairable_ops_name_their_index() {
    let img = coded(100, 100);
    let e = err(
        &img,
        r#"[{"op":"zoom","factor":2},{"op":"box","box":[500,500,600,600]}]"#,
    );
    assert!(e.starts_with("op 1 (box)"), "{e}");
    let e = err(
        &img,
        r#"[{"op":"crop","box":[0,0,50,50]},{"op":"crop","box":[60,60,90,90]}]"#,
    );
    assert!(e.starts_with("op 1 (crop)"), "{e}");
    let e = err(
        &img,
        r#"[{"op":"jigsaw","rows":2,"cols":2,"order":[0,0,1,2]}]"#,
    );
    assert!(e.contains("permutation"), "{e}");
    let e = err(
        &img,
        r#"[{"op":"tiles","rows":2,"cols":2},{"op":"zoom","factor":2}]"#,
    );
    assert!(e.starts_with("op 1"), "{e}");
    let e = err(&img, r#"[{"op":"text","at":[1,1],"text":""}]"#);
    assert!(e.starts_with("op 0 (text)"), "{e}");
    let many = format!("[{}]", vec![r#"{"op":"flip"}"#; 300].join(","));
    assert!(err(&img, &many).contains("limit"));
}

#[test]
fn non_finite_numbers_are_rejected() {
    let img = coded(10, 10);
    let mut p = prog(r#"[{"op":"crop","box":[0,0,5,5]}]"#);
    p.0[0] = Op::Crop {
        region: Rect::new(0.0, f64::NAN, 5.0, 5.0),
    };
    let e = render(&img, &p, &RenderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("finite"), "{e}");
    p.0[0] = Op::Rotate {
        angle: f64::INFINITY,
        fill: Color::WHITE,
    };
    assert!(render(&img, &p, &RenderOptions::default()).is_err());
}

#[test]
fn tiles_split_into_views_that_map_back() {
    let img = coded(30, 20);
    let r = run(&img, r#"[{"op":"tiles","rows":2,"cols":3}]"#);
    assert_eq!(r.views.len(), 6);
    let last = &r.views[5];
    assert_eq!(last.image.dimensions(), (10, 10));
    assert_eq!(decode_pos(last.image.get_pixel(0, 0)), (20, 10));
    assert_eq!(
        last.transform.to_original(Point::new(0.0, 0.0)),
        Point::new(20.0, 10.0)
    );
}

#[test]
fn jigsaw_solve_restores_and_records_its_order() {
    let img = RgbImage::from_fn(120, 80, |x, y| {
        Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 50 * 5) as u8])
    });
    let shuffled = run(
        &img,
        r#"[{"op":"jigsaw","rows":2,"cols":3,"order":[5,3,1,0,4,2]}]"#,
    );
    let shuffled = &shuffled.views[0].image;
    let r = render(
        shuffled,
        &prog(r#"[{"op":"jigsaw_solve","rows":2,"cols":3}]"#),
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(r.views[0].image, img);
    match &r.program.ops()[0] {
        Op::JigsawSolve { order: Some(o), .. } => assert_eq!(o, &vec![3, 2, 5, 1, 4, 0]),
        other => panic!("{other:?}"),
    }
    // A pixel of the restored view maps back to where it sits in the shuffled input.
    let p = r.views[0].transform.to_original(Point::new(5.0, 5.0)); // restored tile 0 = shuffled tile 3
    assert_eq!(p, Point::new(5.0, 45.0));
}

#[test]
fn after_reframe_a_crop_takes_a_part_of_the_restored_image() {
    // 2×2 tiles of 50×40; shuffled tile i shows original tile order[i].
    let img = coded(100, 80);
    let order = [3, 2, 1, 0];
    let shuffled = run(
        &img,
        &format!(r#"[{{"op":"jigsaw","rows":2,"cols":2,"order":{order:?}}}]"#),
    );
    let shuffled = &shuffled.views[0].image;
    // The restored top half spans shuffled tiles 3 and 2 (bottom row, swapped): without a
    // reframe a crop names shuffled pixels, with one it names restored pixels.
    let top_half = r#"{"op":"crop","box":[20,10,80,30]}"#;
    let with = |reframe: bool| {
        let mid = if reframe { r#"{"op":"reframe"},"# } else { "" };
        let json = format!(
            r#"[{{"op":"jigsaw","rows":2,"cols":2,"order":{order:?}}},{mid}{top_half},{{"op":"zoom","factor":2,"filter":"nearest"}}]"#
        );
        render(shuffled, &prog(&json), &RenderOptions::default()).unwrap()
    };
    let r = with(true);
    let v = &r.views[0];
    assert_eq!(v.image.dimensions(), (120, 40));
    for (x, y) in [(0, 0), (59, 19), (60, 0), (119, 39)] {
        // Restored pixels are the original's: view (x, y) shows original (20 + x/2, 10 + y/2).
        assert_eq!(
            decode_pos(v.image.get_pixel(x, y)),
            (20 + x / 2, 10 + y / 2)
        );
    }
    // The repaired program keeps the crop in the frame it was named in.
    assert_eq!(r.program.ops()[2], prog(&format!("[{top_half}]")).ops()[0]);
    // Provenance still maps back to the shuffled input, piece by piece.
    let restored_tile_0 = v.transform.to_original(Point::new(2.0, 2.0));
    assert_eq!(restored_tile_0, Point::new(71.0, 51.0)); // shuffled tile 3 holds original tile 0
    let restored_tile_1 = v.transform.to_original(Point::new(118.0, 2.0));
    assert_eq!(restored_tile_1, Point::new(29.0, 51.0)); // shuffled tile 2 holds original tile 1
                                                         // Without the reframe the same box is a bounding box of scattered shuffled pieces.
    assert_ne!(with(false).views[0].image.dimensions(), (120, 40));
}

#[test]
fn reframe_after_a_zoom_names_view_pixels() {
    let img = RgbImage::from_pixel(100, 100, Rgb([255, 255, 255]));
    let json = r##"[{"op":"crop","box":[50,50,100,100]},{"op":"zoom","factor":2,"filter":"nearest"},
             {"op":"reframe"},{"op":"mask","box":[20,20,40,40],"color":"#000000"},
             {"op":"measure","from":[0,0],"to":[60,80]}]"##;
    let r = run(&img, json);
    let v = &r.views[0].image;
    assert_eq!(v.get_pixel(20, 20).0, [0, 0, 0]);
    assert_eq!(v.get_pixel(39, 39).0, [0, 0, 0]);
    assert_eq!(v.get_pixel(80, 20).0, [255, 255, 255]);
    // Bounds are the view's: a box past it is clamped to 100 × 100, not to the original.
    let r = run(
        &img,
        r#"[{"op":"zoom","factor":0.5},{"op":"reframe"},{"op":"crop","box":[10,10,90,90]}]"#,
    );
    assert_eq!(r.views[0].image.dimensions(), (40, 40));
    assert_eq!(r.repairs.len(), 1, "{:?}", r.repairs);
    // validate walks the same frames.
    let (vp, _) = validate(100, 100, &prog(json), &RenderOptions::default()).unwrap();
    assert_eq!(vp, run(&img, json).program);
}

#[test]
fn path_follows_free_space_and_stops_nearest_an_unreachable_end() {
    // White room, black wall across the middle with a gap on the right.
    let mut img = RgbImage::from_pixel(60, 60, Rgb([255, 255, 255]));
    for x in 0..50 {
        for y in 28..32 {
            img.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
    let r = run(
        &img,
        r##"[{"op":"path","from":[5,5],"to":[5,55],"color":"#ff00ff","width":1}]"##,
    );
    let v = &r.views[0].image;
    assert!(
        (50..60).any(|x| v.get_pixel(x, 30).0 == [255, 0, 255]),
        "the path goes through the gap"
    );
    for x in 0..50 {
        assert_eq!(v.get_pixel(x, 30).0, [0, 0, 0], "walls stay walls");
    }
    let r = run(&img, r##"[{"op":"flood","from":[5,5],"color":"#00ff00"}]"##);
    assert_ne!(
        r.views[0].image.get_pixel(5, 55).0,
        [255, 255, 255],
        "the gap connects both rooms"
    );
    for x in 50..60 {
        for y in 28..32 {
            img.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
    // Sealed: `to` cannot be reached, so the path runs to the reachable point nearest to it
    // (the wall's edge straight above `to`), never across the wall.
    let r = run(
        &img,
        r##"[{"op":"path","from":[5,5],"to":[5,55],"color":"#ff00ff","width":1}]"##,
    );
    let v = &r.views[0].image;
    assert!(
        (4..=5).any(|x| v.get_pixel(x, 27).0 == [255, 0, 255]),
        "it ends next to the wall"
    );
    for x in 0..60 {
        for y in 32..60 {
            assert_ne!(v.get_pixel(x, y).0, [255, 0, 255], "nothing past the wall");
        }
    }
    // A start inside a thick wall (deeper than the snap radius) cannot be repaired.
    for x in 0..60 {
        for y in 0..28 {
            img.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
    assert!(err(&img, r#"[{"op":"path","from":[30,8],"to":[5,55]}]"#).contains("inside a wall"));
}

#[test]
fn every_drawing_op_renders() {
    let img = RgbImage::from_pixel(200, 150, Rgb([240, 240, 240]));
    let r = run(
        &img,
        r##"[{"op":"ellipse","box":[10,10,60,40]},{"op":"ellipse","box":[70,10,90,40],"fill":true},
             {"op":"line","from":[0,0],"to":[199,149]},{"op":"arrow","from":[10,140],"to":[100,100]},
             {"op":"polyline","points":[[5,5],[50,60],[90,5]],"closed":true},{"op":"point","at":[150,20]},
             {"op":"text","at":[100,60],"text":"Pump 7","background":"yellow"},
             {"op":"box","box":[120,90,180,130],"label":"target"},
             {"op":"enhance","mode":"contrast"},{"op":"enhance","mode":"equalize","box":[0,0,100,100]},
             {"op":"enhance","mode":"sharpen"},{"op":"enhance","mode":"gamma"},
             {"op":"grid","rows":3,"cols":4},{"op":"measure","from":[20,100],"to":[120,100]}]"##,
    );
    assert_ne!(r.views[0].image, img);
    assert!(r.repairs.is_empty(), "{:?}", r.repairs);
}

#[test]
fn validate_agrees_with_render() {
    let img = coded(300, 200);
    let p = prog(
        r#"[{"op":"crop","box":[250,150,20,10]},{"op":"rotate","angle":90},{"op":"zoom","factor":1.5},
             {"op":"box","box":[0,0,400,400]},{"op":"flip","axis":"vertical"},{"op":"crop","box":[40,40,41,41]}]"#,
    );
    let opts = RenderOptions::default();
    let (vp, vr) = validate(300, 200, &p, &opts).unwrap();
    let r = render(&img, &p, &opts).unwrap();
    assert_eq!(vp, r.program);
    assert_eq!(vr, r.repairs);
}

#[test]
fn a_box_named_on_a_nested_zoom_maps_back_exactly() {
    let img = coded(1000, 800);
    let r = run(
        &img,
        r#"[{"op":"crop","box":[200,100,600,500]},{"op":"zoom","factor":2},
            {"op":"crop","box":[300,200,400,300]},{"op":"zoom","factor":4},{"op":"rotate","angle":90}]"#,
    );
    let v = &r.views[0];
    // The whole final view is original [300,200,400,300].
    let full = Rect::full(v.image.width(), v.image.height());
    let back = v.transform.rect_to_original(&full);
    for (a, b) in [
        (back.x0, 300.0),
        (back.y0, 200.0),
        (back.x1, 400.0),
        (back.y1, 300.0),
    ] {
        assert!((a - b).abs() < 1e-9, "{back:?}");
    }
    let m = v.transform.as_affine().unwrap();
    let p = m.apply(Point::new(0.0, 0.0));
    assert!(
        (p.x - 400.0).abs() < 1e-9 && (p.y - 200.0).abs() < 1e-9,
        "{p:?}"
    );
}

#[derive(Debug, Clone)]
enum GeoOp {
    Crop(f64, f64, f64, f64),
    Zoom(u32),
    Rotate(u32),
    Flip(bool),
}

fn geo_op() -> impl Strategy<Value = GeoOp> {
    prop_oneof![
        (0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64, 0.0..1.0f64)
            .prop_map(|(a, b, c, d)| GeoOp::Crop(a, b, c, d)),
        (1u32..4).prop_map(GeoOp::Zoom),
        (0u32..4).prop_map(GeoOp::Rotate),
        any::<bool>().prop_map(GeoOp::Flip),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// For any chain of crops, integer nearest zooms, quarter rotations and flips, every view
    /// pixel is the original pixel that provenance says it came from, and provenance inverts.
    #[test]
    fn provenance_composes_exactly(chain in prop::collection::vec(geo_op(), 1..6), w in 8u32..60, h in 8u32..60) {
        let img = coded(w, h);
        let opts = RenderOptions { min_crop: 1, ..RenderOptions::default() };
        let mut ops = Vec::new();
        for g in &chain {
            ops.push(match *g {
                GeoOp::Crop(a, b, c, d) => {
                    // A crop in original coordinates; it may miss an earlier crop (then the
                    // program is rejected below, which is fine).
                    let x0 = (a * w as f64 * 0.5).floor();
                    let y0 = (b * h as f64 * 0.5).floor();
                    Op::Crop { region: Rect::new(x0, y0, x0 + 4.0 + (c * w as f64 * 0.5).floor(), y0 + 4.0 + (d * h as f64 * 0.5).floor()) }
                }
                GeoOp::Zoom(f) => Op::Zoom { factor: Some(f as f64), width: None, height: None, filter: Filter::Nearest },
                GeoOp::Rotate(q) => Op::Rotate { angle: (q * 90) as f64, fill: Color::WHITE },
                GeoOp::Flip(v) => Op::Flip { axis: if v { Axis::Vertical } else { Axis::Horizontal } },
            });
        }
        let program = Program(ops);
        let Ok(r) = render(&img, &program, &opts) else {
            // A later crop may fall outside an earlier one: that is a rejection, not a bug.
            return Ok(());
        };
        let v = &r.views[0];
        let (vw, vh) = v.image.dimensions();
        for (u, vv) in [(0, 0), (vw - 1, 0), (0, vh - 1), (vw - 1, vh - 1), (vw / 2, vh / 2)] {
            let c = Point::new(u as f64 + 0.5, vv as f64 + 0.5);
            let o = v.transform.to_original(c);
            prop_assert_eq!(decode_pos(v.image.get_pixel(u, vv)), (o.x.floor() as u32, o.y.floor() as u32));
            let back = v.transform.to_view(o);
            prop_assert!((back.x - c.x).abs() < 1e-6 && (back.y - c.y).abs() < 1e-6);
        }
    }
}

#[test]
fn collage_pastes_pieces_unscaled_and_maps_back() {
    let img = coded(200, 100);
    let r = run(
        &img,
        r##"[{"op":"collage","pieces":[
            {"box":[10,20,40,60],"at":[0,0]},
            {"box":[150,50,170,90],"at":[35,5]}],"background":"#000000"}]"##,
    );
    let v = &r.views[0];
    // 30 + 5 of gap + 20 wide; the second piece reaches 5 + 40 down.
    assert_eq!(v.image.dimensions(), (55, 45));
    assert_eq!(decode_pos(v.image.get_pixel(0, 0)), (10, 20));
    assert_eq!(decode_pos(v.image.get_pixel(29, 39)), (39, 59));
    assert_eq!(decode_pos(v.image.get_pixel(35, 5)), (150, 50));
    assert_eq!(*v.image.get_pixel(32, 2), Rgb([0, 0, 0]), "background");
    let t = &v.transform;
    assert_eq!(
        t.to_original(Point::new(36.0, 6.0)),
        Point::new(151.0, 51.0)
    );
    assert_eq!(t.to_view(Point::new(151.0, 51.0)), Point::new(36.0, 6.0));
    // A box over both pieces maps back to the union of their sources...
    let whole = t.rect_to_original(&Rect::full(55, 45));
    assert_eq!(whole, Rect::new(10.0, 20.0, 170.0, 90.0));
    // ...and a box of the original to where its part lies in the collage.
    assert_eq!(
        t.rect_to_view(&Rect::new(150.0, 50.0, 160.0, 60.0)),
        Rect::new(35.0, 5.0, 45.0, 15.0)
    );
}

#[test]
fn a_collage_margin_surrounds_the_pieces_and_round_trips_as_text() {
    let img = coded(200, 100);
    let ops = r##"[{"op":"collage","pieces":[{"box":[10,20,40,60],"at":[0,0]}],"margin":6,
        "background":"#000000"}]"##;
    let r = run(&img, ops);
    let v = &r.views[0];
    assert_eq!(v.image.dimensions(), (42, 52));
    assert_eq!(*v.image.get_pixel(2, 2), Rgb([0, 0, 0]), "margin");
    assert_eq!(*v.image.get_pixel(39, 49), Rgb([0, 0, 0]), "margin");
    assert_eq!(decode_pos(v.image.get_pixel(6, 6)), (10, 20));
    assert_eq!(
        v.transform.to_original(Point::new(7.0, 8.0)),
        Point::new(11.0, 22.0)
    );
    let text = crate::text::to_text(&r.program);
    assert!(text.contains("margin=6"), "{text}");
    assert_eq!(crate::text::parse(&text).unwrap(), r.program);
    // No margin, none written: older programs read the same.
    let plain = run(
        &img,
        r#"[{"op":"collage","pieces":[{"box":[10,20,40,60],"at":[0,0]}]}]"#,
    );
    assert!(!crate::text::to_text(&plain.program).contains("margin"));
}

#[test]
fn collage_later_pieces_lie_on_top_and_bad_ones_are_refused() {
    let img = coded(100, 100);
    let r = run(
        &img,
        r#"[{"op":"collage","pieces":[
            {"box":[0,0,20,20],"at":[0,0]},{"box":[50,50,60,60],"at":[5,5]}]}]"#,
    );
    let v = &r.views[0];
    assert_eq!(decode_pos(v.image.get_pixel(5, 5)), (50, 50));
    assert_eq!(
        v.transform.to_original(Point::new(6.0, 6.0)),
        Point::new(51.0, 51.0)
    );
    assert_eq!(decode_pos(v.image.get_pixel(16, 16)), (16, 16));
    assert!(err(&img, r#"[{"op":"collage","pieces":[]}]"#).contains("1 to 1024 pieces"));
    assert!(err(
        &img,
        r#"[{"op":"collage","pieces":[{"box":[0,0,5,5],"at":[-1,0]}]}]"#
    )
    .contains("at least 0"));
    assert!(err(
        &img,
        r#"[{"op":"collage","pieces":[{"box":[200,200,300,300],"at":[0,0]}]}]"#
    )
    .contains("no area"));
    // A position far off the canvas is a result too large, not an overflow.
    assert!(err(
        &img,
        r#"[{"op":"collage","pieces":[{"box":[0,0,5,5],"at":[1e300,0]}]}]"#
    )
    .contains("at most"));
    // Pieces of a zoomed view keep the view's scale, and the program maps back to the
    // original's pixels.
    let r = run(
        &img,
        r#"[{"op":"crop","box":[10,10,60,60]},{"op":"zoom","factor":2},
            {"op":"collage","pieces":[{"box":[20,20,30,30],"at":[0,0]}]}]"#,
    );
    assert_eq!(r.views[0].image.dimensions(), (20, 20));
    let Op::Collage { pieces, .. } = &r.program.ops()[2] else {
        panic!("{:?}", r.program)
    };
    assert_eq!(pieces[0].region, Rect::new(20.0, 20.0, 30.0, 30.0));
    // The text form carries it both ways.
    let text = crate::text::to_text(&r.program);
    assert_eq!(crate::text::parse(&text).unwrap(), r.program, "{text}");
}
