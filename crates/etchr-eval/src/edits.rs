//! The edits of the `random` and `tiles` conditions. Pure functions of the item and a seed, so a
//! rerun sends byte-identical images (and the reader's cache hits).

use std::cell::RefCell;

use etchr_data::rng::Rng;
use etchr_ops::{Op, Point, Program, Rect};

/// A stable 64-bit hash of a string (FNV-1a), to derive per-item seeds from ids.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The bounding box of every box and point the program names, if it names any.
pub fn geometry_bounds(program: &Program) -> Option<Rect> {
    let acc: RefCell<Option<Rect>> = RefCell::new(None);
    let add = |r: Rect| {
        let mut a = acc.borrow_mut();
        *a = Some(match *a {
            Some(b) => b.union(&r),
            None => r,
        });
    };
    program.map_geometry(
        &|r| {
            add(r.normalized());
            r
        },
        &|p| {
            add(Rect::new(p.x, p.y, p.x, p.y));
            p
        },
    );
    acc.into_inner()
}

/// The gold program with all its geometry translated by one seeded random offset that keeps it
/// inside the `width × height` image: the same kind and size of edit, somewhere else.
/// Non-geometric ops (zoom factors, rotations, flips, jigsaw orders) are kept as they are.
/// `attempt` varies the offset when a translated program cannot render (a maze path that starts
/// inside a wall).
pub fn random_program(
    gold: &Program,
    width: u32,
    height: u32,
    seed: u64,
    item_id: &str,
    attempt: u32,
) -> Program {
    let Some(b) = geometry_bounds(gold) else {
        return gold.clone();
    };
    let mut rng = Rng::new(seed ^ fnv1a(item_id) ^ (attempt as u64).wrapping_mul(0x9E37));
    let (dx, dy) = match whole_image_jigsaw(gold) {
        // After a permutation of the whole image, a crop is only a crop if it stays on the
        // tile grid: one straddling tiles maps back to scattered pieces, and the renderer then
        // takes their bounding box (most of the image). Move by whole tiles.
        Some((rows, cols)) => {
            let (sx, sy) = (width as f64 / cols as f64, height as f64 / rows as f64);
            let kx = rng.range((-b.x0 / sx).ceil(), ((width as f64 - b.x1) / sx).floor());
            let ky = rng.range((-b.y0 / sy).ceil(), ((height as f64 - b.y1) / sy).floor());
            (kx.round() * sx, ky.round() * sy)
        }
        None => (
            rng.range(-b.x0, width as f64 - b.x1).round(),
            rng.range(-b.y0, height as f64 - b.y1).round(),
        ),
    };
    gold.map_geometry(
        &|r| Rect::new(r.x0 + dx, r.y0 + dy, r.x1 + dx, r.y1 + dy),
        &|p| Point {
            x: p.x + dx,
            y: p.y + dy,
        },
    )
}

/// The grid of a `jigsaw` / `jigsaw_solve` op that applies to the whole original (no crop
/// before it).
fn whole_image_jigsaw(program: &Program) -> Option<(u32, u32)> {
    for op in program.ops() {
        match op {
            Op::Crop { .. } => return None,
            Op::Jigsaw { rows, cols, .. } | Op::JigsawSolve { rows, cols, .. } => {
                return Some(((*rows).max(1), (*cols).max(1)))
            }
            _ => {}
        }
    }
    None
}

/// [`random_program`] without the ops that need particular pixels under them (maze `path` and
/// `flood`): the last resort when no translated offset renders.
pub fn without_pixel_bound_ops(program: &Program) -> Program {
    Program(
        program
            .0
            .iter()
            .filter(|op| !matches!(op, Op::Path { .. } | Op::Flood { .. }))
            .cloned()
            .collect(),
    )
}

/// The `tiles` condition's programs: a `grid × grid` split of the original, each tile widened by
/// an eighth of its size on every side (an object on a border is whole in some tile, as in the
/// loop's `TileSearch`), then resized so its longest side is `max_side` — the same per-image
/// budget the oracle's view gets (gold views are made to fit 1024 px). Row-major order.
pub fn tile_programs(width: u32, height: u32, grid: u32, max_side: u32) -> Vec<Program> {
    let grid = grid.max(1);
    let (w, h) = (width as f64, height as f64);
    let (tw, th) = (w / grid as f64, h / grid as f64);
    let (mx, my) = if grid > 1 {
        (tw / 8.0, th / 8.0)
    } else {
        (0.0, 0.0)
    };
    let mut out = Vec::new();
    for row in 0..grid {
        for col in 0..grid {
            let (c, r) = (col as f64, row as f64);
            let region = Rect::new(
                (c * tw - mx).max(0.0).round(),
                (r * th - my).max(0.0).round(),
                ((c + 1.0) * tw + mx).min(w).round(),
                ((r + 1.0) * th + my).min(h).round(),
            );
            let (rw, rh) = (region.width(), region.height());
            let mut ops = vec![Op::Crop { region }];
            let resize = if rw >= rh {
                (Some(max_side), None)
            } else {
                (None, Some(max_side))
            };
            if (rw.max(rh) - max_side as f64).abs() >= 1.0 {
                ops.push(Op::Zoom {
                    factor: None,
                    width: resize.0,
                    height: resize.1,
                    filter: Default::default(),
                });
            }
            out.push(Program(ops));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gold() -> Program {
        Program::from_json(
            r#"[{"op":"path","from":[100,100],"to":[300,400]},
                {"op":"crop","box":[250,380,350,420]},
                {"op":"zoom","factor":3}]"#,
        )
        .unwrap()
    }

    #[test]
    fn random_keeps_size_and_kind_and_stays_inside() {
        let g = gold();
        let b = geometry_bounds(&g).unwrap();
        assert_eq!(b, Rect::new(100.0, 100.0, 350.0, 420.0));
        let mut moved = 0;
        for attempt in 0..20 {
            let r = random_program(&g, 2000, 1500, 7, "maze-1-00003", attempt);
            assert_eq!(r.len(), g.len());
            let rb = geometry_bounds(&r).unwrap();
            assert!((rb.width() - b.width()).abs() < 1e-9);
            assert!((rb.height() - b.height()).abs() < 1e-9);
            assert!(rb.x0 >= 0.0 && rb.y0 >= 0.0 && rb.x1 <= 2000.0 && rb.y1 <= 1500.0);
            assert!(matches!(r.0[2], Op::Zoom { factor: Some(f), .. } if f == 3.0));
            moved += (rb != b) as usize;
        }
        assert!(moved >= 18);
        // Seeded: the same inputs give the same program.
        assert_eq!(
            random_program(&g, 2000, 1500, 7, "x", 0),
            random_program(&g, 2000, 1500, 7, "x", 0)
        );
        assert_eq!(without_pixel_bound_ops(&g).len(), 2);
    }

    #[test]
    fn random_jigsaw_crops_move_by_whole_tiles() {
        let g = Program::from_json(
            r#"[{"op":"jigsaw","rows":4,"cols":8,"order":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31]},
                {"op":"crop","box":[1482,987,2470,1974]},{"op":"zoom","factor":1.03}]"#,
        )
        .unwrap();
        for attempt in 0..10 {
            let r = random_program(&g, 3952, 3948, 1, "jigsaw-1-00000", attempt);
            let b = geometry_bounds(&r).unwrap();
            assert_eq!(b.x0 % 494.0, 0.0, "{b:?}");
            assert_eq!(b.y0 % 987.0, 0.0, "{b:?}");
            assert!(b.x1 <= 3952.0 && b.y1 <= 3948.0);
        }
    }

    #[test]
    fn tiles_cover_the_image_and_fit_the_budget() {
        let t = tile_programs(4000, 3000, 2, 1024);
        assert_eq!(t.len(), 4);
        match (&t[0].0[0], &t[0].0[1]) {
            (Op::Crop { region }, Op::Zoom { width, height, .. }) => {
                assert_eq!(*region, Rect::new(0.0, 0.0, 2250.0, 1688.0));
                assert_eq!((*width, *height), (Some(1024), None));
            }
            other => panic!("{other:?}"),
        }
        match &t[3].0[0] {
            Op::Crop { region } => assert_eq!(*region, Rect::new(1750.0, 1313.0, 4000.0, 3000.0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(tile_programs(800, 600, 1, 1024).len(), 1);
    }
}
