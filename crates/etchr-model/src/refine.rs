//! Coarse-to-fine planning. At 256 px a 3000 px page is shrunk 12×, so a label a few dozen
//! pixels tall is a fraction of one patch: the first plan can find the neighbourhood but not
//! the box. [`refine_view`] cuts the view a second call should look at — the first plan's crop,
//! widened to twice its size — and the second call (trained on such views, see
//! `etchr-train`'s `--views-per-item`) places the program precisely. Its coordinates map back
//! through the view's transform like any progressive step.

use etchr_ops::{render, Op, Program, Rect, RenderOptions, RgbImage, Transform};

/// The view is refined only when the first plan's crop covers less than this share of it:
/// a crop that already fills most of the view would gain nothing from a second look.
pub const REFINE_MAX_AREA_SHARE: f64 = 0.25;
/// The refined view's side, as a multiple of the crop's longer side (the training views are
/// 1.3–3.5× the gold edit's extent).
pub const REFINE_SCALE: f64 = 2.0;

/// The zoomed view for a second, refining call, or `None` when `program` has no crop, the crop
/// already fills the view, or the view's transform is not axis-aligned.
///
/// `image` is the view the first plan was made on, `transform` its map back to the original, and
/// `program` the first plan (original pixels). Returns the refined view and ITS map back to the
/// original (ready for `PlanInput::on_view`).
pub fn refine_view(
    image: &RgbImage,
    transform: &Transform,
    program: &Program,
) -> Option<(RgbImage, Transform)> {
    if !transform.is_axis_aligned() {
        return None;
    }
    let crop = program.first_crop()?;
    let (w, h) = (image.width() as f64, image.height() as f64);
    let v = transform.rect_to_view(&crop);
    if v.area() <= 0.0 || v.area() > REFINE_MAX_AREA_SHARE * w * h {
        return None;
    }
    let side = v.width().max(v.height()) * REFINE_SCALE;
    let (rw, rh) = (side.min(w), side.min(h));
    let c = v.center();
    let x0 = (c.x - rw / 2.0).clamp(0.0, w - rw).floor();
    let y0 = (c.y - rh / 2.0).clamp(0.0, h - rh).floor();
    let region = Rect::new(x0, y0, (x0 + rw).ceil().min(w), (y0 + rh).ceil().min(h));
    let rendered = render(
        image,
        &Program(vec![Op::Crop { region }]),
        &RenderOptions::default(),
    )
    .ok()?;
    let view = rendered.views.into_iter().next()?;
    Some((view.image, transform.compose(&view.transform)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Step;

    fn crop(x0: f64, y0: f64, x1: f64, y1: f64) -> Program {
        Program(vec![Op::Crop {
            region: Rect::new(x0, y0, x1, y1),
        }])
    }

    #[test]
    fn a_small_crop_gives_a_view_twice_its_size_that_maps_back() {
        let img = RgbImage::new(1000, 800);
        let (view, t) = refine_view(
            &img,
            &Transform::identity(),
            &crop(400.0, 300.0, 500.0, 350.0),
        )
        .expect("refined");
        assert_eq!((view.width(), view.height()), (200, 200));
        let back = t.rect_to_original(&Rect::full(view.width(), view.height()));
        assert_eq!(back, Rect::new(350.0, 225.0, 550.0, 425.0));
    }

    #[test]
    fn views_compose_with_an_earlier_zoom() {
        // The first plan was made on a 2x zoom of the original's left half.
        let img = RgbImage::new(1000, 1600);
        let earlier = Transform::identity().then(Step::Affine {
            matrix: etchr_ops::Affine::scale(0.5, 0.5),
        });
        let (view, t) =
            refine_view(&img, &earlier, &crop(100.0, 100.0, 150.0, 150.0)).expect("refined");
        assert_eq!((view.width(), view.height()), (200, 200));
        let back = t.rect_to_original(&Rect::full(view.width(), view.height()));
        assert_eq!(back, Rect::new(75.0, 75.0, 175.0, 175.0));
    }

    #[test]
    fn no_refinement_without_a_small_crop() {
        let img = RgbImage::new(1000, 800);
        let id = Transform::identity();
        assert!(refine_view(&img, &id, &Program(vec![])).is_none());
        assert!(refine_view(&img, &id, &crop(0.0, 0.0, 900.0, 700.0)).is_none());
    }
}
