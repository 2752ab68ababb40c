//! Building upstream messages, and keeping each call within the images-per-call budget.

use etchr_upstream::{Content, ContentPart, Message, Role};

use crate::image::LoopImage;

/// A user message with `text` and images, text first.
pub fn user(text: impl Into<String>, images: &[&LoopImage]) -> Message {
    let mut parts = vec![ContentPart::text(text)];
    parts.extend(images.iter().map(|i| ContentPart::image_url(&*i.data_url)));
    Message::with_content(Role::User, Content::Parts(parts))
}

/// How many image parts `messages` carry.
pub fn count_images(messages: &[Message]) -> usize {
    messages.iter().map(image_parts).sum()
}

fn image_parts(m: &Message) -> usize {
    match &m.content {
        Some(Content::Parts(p)) => p
            .iter()
            .filter(|p| matches!(p, ContentPart::ImageUrl { .. }))
            .count(),
        _ => 0,
    }
}

/// Drops image parts until at most `max` remain (at least one is always kept). The first image
/// (the original) is kept; edited views are dropped oldest first, each replaced by a short note
/// so the conversation still reads sensibly. Returns how many were dropped.
pub fn enforce_image_budget(messages: &mut [Message], max: usize) -> usize {
    let max = max.max(1);
    let mut excess = count_images(messages).saturating_sub(max);
    let mut dropped = 0;
    let mut seen_first = false;
    for m in messages.iter_mut() {
        if excess == 0 {
            break;
        }
        let Some(Content::Parts(parts)) = &mut m.content else {
            continue;
        };
        for p in parts.iter_mut() {
            if excess == 0 {
                break;
            }
            if matches!(p, ContentPart::ImageUrl { .. }) {
                if !seen_first {
                    seen_first = true;
                    continue;
                }
                *p = ContentPart::text(
                    "[an earlier image was omitted to stay within the image budget]",
                );
                excess -= 1;
                dropped += 1;
            }
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Transform;

    #[test]
    fn budget_keeps_the_original_and_the_newest() {
        let img = |v| {
            LoopImage::from_encoded(
                v,
                vec![v as u8; 4],
                "image/png",
                1,
                1,
                Transform::identity(),
            )
        };
        let (a, b, c) = (img(0), img(1), img(2));
        let mut msgs = vec![user("q", &[&a]), user("v1", &[&b]), user("v2", &[&c])];
        assert_eq!(enforce_image_budget(&mut msgs, 2), 1);
        assert_eq!(count_images(&msgs), 2);
        assert_eq!(image_parts(&msgs[0]), 1);
        assert_eq!(image_parts(&msgs[1]), 0);
        assert_eq!(image_parts(&msgs[2]), 1);
    }
}
