//! The `edit_image` tool offered to the upstream in the `tools` strategy, and the mapping of its
//! arguments from the upstream's native box convention back to original-image pixels.

use etchr_ops::{Adapter, CoordSystem, Point, Program, Rect, Transform};
use etchr_upstream::{BoxConvention, Tool};
use serde::Deserialize;
use serde_json::json;

/// The tool's name.
pub const TOOL_NAME: &str = "edit_image";

/// The tool declaration. `ops` is an etchr edit program (the JSON form, or the compact text form
/// as one string); `image` names which image the boxes refer to.
pub fn edit_image_tool(convention: BoxConvention) -> Tool {
    Tool::function(
        TOOL_NAME,
        format!(
            "Edit an image to look closer: crop, zoom, highlight, draw boxes, enhance contrast, \
             overlay a grid. Boxes are [x1, y1, x2, y2] in the {convention} convention of the \
             image named by `image` (0 = the original). Returns the edited image."
        ),
        json!({
            "type": "object",
            "properties": {
                "image": {"type": "integer", "minimum": 0, "description": "Which image the boxes refer to; 0 is the original."},
                "ops": {
                    "type": "array",
                    "description": "Operations applied in order, e.g. [{\"op\":\"crop\",\"box\":[100,200,400,500]},{\"op\":\"zoom\",\"factor\":2}]",
                    "items": {
                        "type": "object",
                        "properties": {"op": {"type": "string", "enum": [
                            "crop", "zoom", "rotate", "flip", "box", "ellipse", "line", "arrow",
                            "polyline", "point", "text", "highlight", "mask", "enhance", "grid", "measure"
                        ]}},
                        "required": ["op"]
                    }
                }
            },
            "required": ["ops"]
        }),
    )
}

/// The etchr coordinate system matching an upstream's box convention.
pub fn coord_system(convention: BoxConvention) -> CoordSystem {
    match convention {
        BoxConvention::Norm1000 => CoordSystem::Norm1000,
        BoxConvention::Gemini => CoordSystem::Gemini,
        BoxConvention::Pixel => CoordSystem::Pixel,
        BoxConvention::Norm1 => CoordSystem::Norm1,
    }
}

/// Parsed `edit_image` arguments, still in the upstream's convention.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolEdit {
    /// The image the coordinates refer to (0 = original).
    pub image: usize,
    pub program: Program,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpsArg {
    Json(Program),
    Text(String),
}

#[derive(Deserialize)]
struct Args {
    #[serde(default)]
    image: usize,
    ops: OpsArg,
}

/// Parses the arguments string of an `edit_image` call. Also accepts a bare array of ops.
pub fn parse_arguments(arguments: &str) -> Result<ToolEdit, String> {
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    if let Ok(program) = serde_json::from_str::<Program>(arguments) {
        return Ok(ToolEdit { image: 0, program });
    }
    let args: Args = serde_json::from_str(arguments)
        .map_err(|e| format!("edit_image arguments are not a valid edit program: {e}"))?;
    let program = match args.ops {
        OpsArg::Json(p) => p,
        OpsArg::Text(t) => etchr_ops::text::parse(&t).map_err(|e| e.to_string())?,
    };
    if program.is_empty() {
        return Err("edit_image needs at least one op".into());
    }
    Ok(ToolEdit {
        image: args.image,
        program,
    })
}

/// Maps a program written by the upstream on a view into original-image pixels.
///
/// `view_size` is the view's real size; `sent_scale` is `sent / real` for that image as reported
/// by the upstream client (images may be downscaled to fit the provider). Normalised conventions
/// are scale-free; pixel boxes are divided by the scale first. The view's `transform` then maps
/// view pixels to the original, so boxes named on a zoomed view land where they belong.
pub fn to_original(
    program: &Program,
    convention: BoxConvention,
    view_size: (u32, u32),
    sent_scale: (f64, f64),
    transform: &Transform,
) -> Program {
    let adapter = Adapter::new(coord_system(convention), view_size.0, view_size.1, None);
    let (sx, sy) = match convention {
        BoxConvention::Pixel => (sent_scale.0.max(1e-9), sent_scale.1.max(1e-9)),
        _ => (1.0, 1.0),
    };
    let unscale_rect = |r: Rect| Rect::new(r.x0 / sx, r.y0 / sy, r.x1 / sx, r.y1 / sy);
    let unscale_point = |p: Point| Point::new(p.x / sx, p.y / sy);
    program.map_geometry(
        &|r| transform.rect_to_original(&unscale_rect(adapter.box_to_pixels(r.into()))),
        &|p| transform.to_original(unscale_point(adapter.point_to_pixels(p.into()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Op;

    #[test]
    fn norm1000_box_maps_to_pixels() {
        let e = parse_arguments(r#"{"ops":[{"op":"crop","box":[250,500,750,1000]}]}"#).unwrap();
        let p = to_original(
            &e.program,
            BoxConvention::Norm1000,
            (800, 600),
            (0.5, 0.5),
            &Transform::identity(),
        );
        assert_eq!(
            p.0[0],
            Op::Crop {
                region: Rect::new(200.0, 300.0, 600.0, 600.0)
            }
        );
    }

    #[test]
    fn pixel_boxes_undo_the_upstream_resize() {
        let e = parse_arguments(r#"[{"op":"crop","box":[10,10,50,30]}]"#).unwrap();
        let p = to_original(
            &e.program,
            BoxConvention::Pixel,
            (800, 600),
            (0.5, 0.5),
            &Transform::identity(),
        );
        assert_eq!(
            p.0[0],
            Op::Crop {
                region: Rect::new(20.0, 20.0, 100.0, 60.0)
            }
        );
    }

    #[test]
    fn text_form_and_errors() {
        assert_eq!(
            parse_arguments(r#"{"ops":"crop box=0,0,10,10","image":2}"#)
                .unwrap()
                .image,
            2
        );
        assert!(parse_arguments(r#"{"ops":[]}"#).is_err());
        assert!(parse_arguments("not json").is_err());
    }
}
