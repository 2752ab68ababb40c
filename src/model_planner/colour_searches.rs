//! The colour searches of the images being planned, kept while each image lives.
//!
//! One plan asks where the things of the question's colour are several times (the thing the
//! quoted key is read on, the cue kept in view, the best guess, a maze's start), and `evr` asks
//! again for each candidate it plans, each time on the same shared image. The search reads
//! every pixel (about 70 ms at 12 MP, bench/RESULTS.md), so it runs once per image and colour.
//!
//! An entry names its image by a `Weak` of the image's `Arc`: while the entry is kept the
//! allocation cannot be reused for another image, and an image behind an `Arc` that has a
//! `Weak` cannot be changed in place (`Arc::get_mut` refuses). The pixels themselves go when the
//! request drops its image; the entry is then dead and is the first to be dropped.

use etchr_ops::render::{all_colour_regions, at_most_colour_regions, MAX_COLOUR_REGIONS};
use etchr_ops::render::{ColourRegion, NamedColour};
use etchr_ops::RgbImage;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Searches kept: a few per request in flight (one image, one or two colours each).
const KEPT: usize = 64;

struct Search {
    image: Weak<RgbImage>,
    colour: NamedColour,
    regions: Arc<[ColourRegion]>,
}

/// Oldest first.
static KEPT_SEARCHES: Mutex<VecDeque<Search>> = Mutex::new(VecDeque::new());

/// `etchr_ops::render::colour_regions` of `image`, searched once per image and colour.
pub(super) fn colour_regions(image: &Arc<RgbImage>, colour: NamedColour) -> Vec<ColourRegion> {
    colour_regions_up_to(image, colour, MAX_COLOUR_REGIONS)
}

/// `etchr_ops::render::colour_regions_up_to` of `image`, searched once per image and colour.
pub(super) fn colour_regions_up_to(
    image: &Arc<RgbImage>,
    colour: NamedColour,
    most: usize,
) -> Vec<ColourRegion> {
    let all = kept(image, colour).unwrap_or_else(|| {
        // Searched outside the lock, so that other requests' plans go on meanwhile (a request
        // plans its candidates one after another, so one image is not searched twice at once).
        let regions: Arc<[ColourRegion]> = all_colour_regions(image, colour).into();
        keep(image, colour, Arc::clone(&regions));
        regions
    });
    at_most_colour_regions(all.to_vec(), most)
}

fn kept(image: &Arc<RgbImage>, colour: NamedColour) -> Option<Arc<[ColourRegion]>> {
    let searches = KEPT_SEARCHES.lock().unwrap_or_else(PoisonError::into_inner);
    searches
        .iter()
        .find(|s| s.colour == colour && std::ptr::eq(s.image.as_ptr(), Arc::as_ptr(image)))
        .map(|s| Arc::clone(&s.regions))
}

fn keep(image: &Arc<RgbImage>, colour: NamedColour, regions: Arc<[ColourRegion]>) {
    let mut searches = KEPT_SEARCHES.lock().unwrap_or_else(PoisonError::into_inner);
    searches.retain(|s| s.image.strong_count() > 0);
    while searches.len() >= KEPT {
        searches.pop_front();
    }
    searches.push_back(Search {
        image: Arc::downgrade(image),
        colour,
        regions,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A 900 × 600 grey board with `n` (at most 6) outlined pink tags in a row.
    fn board(n: u32) -> Arc<RgbImage> {
        let mut img = RgbImage::from_pixel(900, 600, Rgb([226, 228, 226]));
        for k in 0..n {
            let (x0, y0) = (50 + k * 120, 80);
            for y in y0..y0 + 24 {
                for x in x0..x0 + 80 {
                    let edge = x == x0 || y == y0 || x == x0 + 79 || y == y0 + 23;
                    let c = if edge { [50, 50, 50] } else { [246, 190, 212] };
                    img.put_pixel(x, y, Rgb(c));
                }
            }
        }
        Arc::new(img)
    }

    #[test]
    fn a_kept_search_answers_as_the_search_for_every_limit() {
        let image = board(3);
        let pink = NamedColour::in_text("the pink tag").unwrap();
        for most in [2, 3, 12, 32] {
            let direct = etchr_ops::render::colour_regions_up_to(&image, pink, most);
            assert_eq!(
                colour_regions_up_to(&image, pink, most),
                direct,
                "at most {most}"
            );
        }
        assert_eq!(colour_regions_up_to(&image, pink, 3).len(), 3);
        assert!(colour_regions_up_to(&image, pink, 2).is_empty());
        assert_eq!(
            colour_regions(&image, pink),
            etchr_ops::render::colour_regions(&image, pink)
        );
    }

    #[test]
    fn a_search_is_kept_for_its_image_and_colour_only_and_keeps_no_pixels() {
        let image = board(2);
        let pink = NamedColour::in_text("the pink tag").unwrap();
        let blue = NamedColour::in_text("the blue tag").unwrap();
        assert!(kept(&image, pink).is_none());
        let found = colour_regions(&image, pink);
        assert_eq!(found.len(), 2);
        assert_eq!(kept(&image, pink).as_deref(), Some(&found[..]));
        assert!(
            kept(&image, blue).is_none(),
            "another colour is searched anew"
        );
        let same_pixels = Arc::new(RgbImage::clone(&image));
        assert!(
            kept(&same_pixels, pink).is_none(),
            "another image is searched anew"
        );
        // Only a weak reference is kept: the request's image is still its own to drop.
        assert_eq!(Arc::strong_count(&image), 1);
        let gone = Arc::downgrade(&image);
        drop(image);
        assert_eq!(gone.strong_count(), 0);
    }
}
