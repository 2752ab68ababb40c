//! OpenAPI schemas for types owned by `etchr-ops`.
//!
//! The ops crate stays free of HTTP and OpenAPI concerns, so the op language is described here,
//! as a `oneOf` of one object per op. A test deserialises a full example of every described op
//! with the real [`etchr_ops::Op`] type and checks that every real op is described, so this
//! description cannot drift from the code.

use etchr_ops::CoordSystem;
use serde_json::json;
use std::borrow::Cow;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The kinds of value an op field takes.
#[derive(Clone, Copy)]
enum Kind {
    Rect,
    Point,
    Points,
    Number,
    Integer,
    Text,
    Bool,
    Color,
    Choice(&'static [&'static str]),
    Integers,
    /// Collage pieces: `{"box": Rect, "at": [x, y]}`.
    Pieces,
}

struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
    doc: &'static str,
}

const fn req(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        doc,
    }
}

const fn opt(name: &'static str, kind: Kind, doc: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        doc,
    }
}

struct OpDoc {
    name: &'static str,
    doc: &'static str,
    fields: &'static [Field],
}

const COLOR: Field = opt("color", Kind::Color, "Stroke or fill colour.");
const WIDTH: Field = opt(
    "width",
    Kind::Number,
    "Stroke width in output pixels (default 3).",
);
const WALL: Field = opt(
    "wall_luma",
    Kind::Integer,
    "Pixels darker than this (and unsaturated) are walls (default 96).",
);

const OPS: &[OpDoc] = &[
    OpDoc {
        name: "crop",
        doc: "Keep only `box`.",
        fields: &[req("box", Kind::Rect, "Region to keep.")],
    },
    OpDoc {
        name: "zoom",
        doc: "Resize the view by `factor`, or to `width` and/or `height` (one alone keeps the aspect).",
        fields: &[
            opt("factor", Kind::Number, "Scale factor."),
            opt("width", Kind::Integer, "Output width in pixels."),
            opt("height", Kind::Integer, "Output height in pixels."),
            opt(
                "filter",
                Kind::Choice(&["nearest", "bilinear", "bicubic", "lanczos"]),
                "Resampling filter (default bicubic).",
            ),
        ],
    },
    OpDoc {
        name: "rotate",
        doc: "Rotate counter-clockwise; right angles are lossless, other angles expand the canvas.",
        fields: &[
            req("angle", Kind::Number, "Degrees, counter-clockwise."),
            opt("fill", Kind::Color, "Colour of the exposed corners (default white)."),
        ],
    },
    OpDoc {
        name: "flip",
        doc: "Mirror the view.",
        fields: &[opt(
            "axis",
            Kind::Choice(&["horizontal", "vertical"]),
            "horizontal mirrors left-right (default).",
        )],
    },
    OpDoc {
        name: "box",
        doc: "Outline `box`, with an optional label above it.",
        fields: &[
            req("box", Kind::Rect, "Region to outline."),
            COLOR,
            WIDTH,
            opt("label", Kind::Text, "Text drawn above the box."),
        ],
    },
    OpDoc {
        name: "ellipse",
        doc: "The ellipse inscribed in `box`.",
        fields: &[
            req("box", Kind::Rect, "Bounding box of the ellipse."),
            COLOR,
            WIDTH,
            opt("fill", Kind::Bool, "Fill instead of outline."),
        ],
    },
    OpDoc {
        name: "line",
        doc: "A straight line.",
        fields: &[
            req("from", Kind::Point, "Start."),
            req("to", Kind::Point, "End."),
            COLOR,
            WIDTH,
        ],
    },
    OpDoc {
        name: "arrow",
        doc: "A line with an arrowhead at `to`.",
        fields: &[
            req("from", Kind::Point, "Tail."),
            req("to", Kind::Point, "Head."),
            COLOR,
            WIDTH,
        ],
    },
    OpDoc {
        name: "polyline",
        doc: "Connected line segments.",
        fields: &[
            req("points", Kind::Points, "Vertices in order."),
            COLOR,
            WIDTH,
            opt("closed", Kind::Bool, "Join the last point to the first."),
        ],
    },
    OpDoc {
        name: "point",
        doc: "A filled dot with a white rim.",
        fields: &[
            req("at", Kind::Point, "Centre."),
            COLOR,
            opt("radius", Kind::Number, "Radius in output pixels (default 6)."),
        ],
    },
    OpDoc {
        name: "text",
        doc: "Text whose top-left corner is at `at`.",
        fields: &[
            req("at", Kind::Point, "Top-left corner."),
            req("text", Kind::Text, "The text."),
            COLOR,
            opt("size", Kind::Number, "Font size in output pixels (default 20)."),
            opt("background", Kind::Color, "Fill behind the text."),
        ],
    },
    OpDoc {
        name: "highlight",
        doc: "Dim or blur everything outside `box`.",
        fields: &[
            req("box", Kind::Rect, "Region to keep as is."),
            opt("mode", Kind::Choice(&["dim", "blur"]), "dim (default) or blur."),
            opt(
                "amount",
                Kind::Number,
                "Dim fraction 0-1 (default 0.6) or blur sigma in output pixels (default 6).",
            ),
        ],
    },
    OpDoc {
        name: "mask",
        doc: "Fill `box` with `color` (default black).",
        fields: &[req("box", Kind::Rect, "Region to fill."), COLOR],
    },
    OpDoc {
        name: "enhance",
        doc: "A photometric adjustment of the whole view, or of `box` only.",
        fields: &[
            req(
                "mode",
                Kind::Choice(&[
                    "contrast",
                    "brightness",
                    "gamma",
                    "sharpen",
                    "equalize",
                    "grayscale",
                    "invert",
                ]),
                "The adjustment.",
            ),
            opt("amount", Kind::Number, "Strength; the default depends on the mode."),
            opt("box", Kind::Rect, "Limit the adjustment to this region."),
        ],
    },
    OpDoc {
        name: "grid",
        doc: "A rows x cols grid labelled with original-image pixel coordinates.",
        fields: &[
            req("rows", Kind::Integer, "Rows."),
            req("cols", Kind::Integer, "Columns."),
            COLOR,
            opt("width", Kind::Number, "Line width (default 1)."),
            opt("labels", Kind::Bool, "Label the lines (default true)."),
        ],
    },
    OpDoc {
        name: "measure",
        doc: "A ruler between two points, labelled with their distance in original pixels.",
        fields: &[
            req("from", Kind::Point, "Start."),
            req("to", Kind::Point, "End."),
            COLOR,
            opt("width", Kind::Number, "Line width (default 2)."),
        ],
    },
    OpDoc {
        name: "tiles",
        doc: "Split the view into rows x cols views (must be the last op).",
        fields: &[
            req("rows", Kind::Integer, "Rows."),
            req("cols", Kind::Integer, "Columns."),
        ],
    },
    OpDoc {
        name: "jigsaw",
        doc: "Permute a rows x cols grid: output tile i (row-major) shows input tile order[i].",
        fields: &[
            req("rows", Kind::Integer, "Rows."),
            req("cols", Kind::Integer, "Columns."),
            req("order", Kind::Integers, "A permutation of 0..rows*cols."),
        ],
    },
    OpDoc {
        name: "jigsaw_solve",
        doc: "Restore a shuffled rows x cols grid from edge continuity; the repaired program records the order found.",
        fields: &[
            req("rows", Kind::Integer, "Rows."),
            req("cols", Kind::Integer, "Columns."),
            opt("order", Kind::Integers, "Filled in by the renderer."),
        ],
    },
    OpDoc {
        name: "reframe",
        doc: "From here on, ops name coordinates in pixels of the view rendered so far, not of the original (after jigsaw_solve: crop a part of the restored image). Provenance still maps the views back to the original; normalised `coords` conventions keep scaling by the original's size.",
        fields: &[],
    },
    OpDoc {
        name: "collage",
        doc: "Cut each piece's `box` out of the view and paste it unscaled with its top-left corner at `at` on a new canvas of `background` just large enough to hold them all (later pieces on top). Lays a long, narrow region out to read at its own scale, e.g. a table's key column and one data column, band by band, side by side.",
        fields: &[
            req("pieces", Kind::Pieces, "The pieces, 1 to 1024."),
            opt("background", Kind::Color, "Canvas colour (default white)."),
            opt("margin", Kind::Integer, "Pixels of background around the pieces (default 0)."),
        ],
    },
    OpDoc {
        name: "flood",
        doc: "Tint the free space reachable from `from`.",
        fields: &[req("from", Kind::Point, "Seed point."), COLOR, WALL],
    },
    OpDoc {
        name: "path",
        doc: "Draw the shortest path through free space from `from` to `to` (or, when `to` cannot be reached, to the reachable point nearest it).",
        fields: &[
            req("from", Kind::Point, "Start."),
            req("to", Kind::Point, "Goal."),
            COLOR,
            WIDTH,
            WALL,
        ],
    },
];

fn numbers(n: usize, doc: &str) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::Number))
        .min_items(Some(n))
        .max_items(Some(n))
        .description(Some(doc))
}

fn kind_schema(kind: Kind, doc: &str) -> RefOr<Schema> {
    let s: Schema = match kind {
        Kind::Rect => numbers(
            4,
            &format!("{doc} A box [x0, y0, x1, y1] in the request's `coords` convention."),
        )
        .into(),
        Kind::Point => numbers(
            2,
            &format!("{doc} A point [x, y] in the request's `coords` convention."),
        )
        .into(),
        Kind::Points => ArrayBuilder::new()
            .items(numbers(2, "[x, y]"))
            .description(Some(doc))
            .into(),
        Kind::Pieces => ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .property(
                        "box",
                        kind_schema(Kind::Rect, "The part of the view to cut out."),
                    )
                    .required("box")
                    .property(
                        "at",
                        numbers(
                            2,
                            "Where its top-left corner goes, in pixels of the collage (never \
                             rescaled by `coords`).",
                        ),
                    )
                    .required("at"),
            )
            .min_items(Some(1))
            .max_items(Some(1024))
            .description(Some(doc))
            .into(),
        Kind::Integers => ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some(doc))
            .into(),
        Kind::Color => OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "#rrggbb, #rgb or a basic name (red, green, blue, ...)",
                    )),
            )
            .item(
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(0))
                            .maximum(Some(255)),
                    )
                    .min_items(Some(3))
                    .max_items(Some(3)),
            )
            .description(Some(doc))
            .into(),
        Kind::Choice(values) => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .description(Some(doc))
            .into(),
        Kind::Number => ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(doc))
            .into(),
        Kind::Integer => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some(doc))
            .into(),
        Kind::Text => ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(doc))
            .into(),
        Kind::Bool => ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .description(Some(doc))
            .into(),
    };
    RefOr::T(s)
}

fn op_schema(op: &OpDoc) -> Schema {
    let mut o = ObjectBuilder::new()
        .title(Some(op.name))
        .description(Some(op.doc))
        .property(
            "op",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([op.name])),
        )
        .required("op")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for f in op.fields {
        o = o.property(f.name, kind_schema(f.kind, f.doc));
        if f.required {
            o = o.required(f.name);
        }
    }
    o.into()
}

/// Schema marker for one edit op (`{"op": "<name>", ...}`), published as `Op`.
pub struct OpSchema;

impl PartialSchema for OpSchema {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().discriminator(Some(Discriminator::new("op"))).description(Some(
            "One edit operation. Boxes and points are in the request's `coords` convention on the \
             original image (also after crops and zooms); stroke widths and sizes are in output pixels.",
        ));
        for op in OPS {
            one_of = one_of.item(op_schema(op));
        }
        RefOr::T(one_of.into())
    }
}

impl ToSchema for OpSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Op")
    }
}

/// Schema marker for provenance: how a view maps back to the original image.
pub struct TransformSchema;

impl PartialSchema for TransformSchema {
    fn schema() -> RefOr<Schema> {
        let affine = ObjectBuilder::new()
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["affine"])),
            )
            .property(
                "matrix",
                numbers(
                    6,
                    "[a, b, c, d, e, f]: x_prev = a*x + b*y + c, y_prev = d*x + e*y + f",
                ),
            )
            .required("kind")
            .required("matrix");
        let jigsaw = ObjectBuilder::new()
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["jigsaw"])),
            )
            .property("width", ObjectBuilder::new().schema_type(Type::Integer))
            .property("height", ObjectBuilder::new().schema_type(Type::Integer))
            .property("rows", ObjectBuilder::new().schema_type(Type::Integer))
            .property("cols", ObjectBuilder::new().schema_type(Type::Integer))
            .property(
                "order",
                ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Integer)),
            )
            .required("kind");
        let collage = ObjectBuilder::new()
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["collage"])),
            )
            .property(
                "pieces",
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .property("from", numbers(4, "[x0, y0, x1, y1] of the previous frame"))
                            .property("to", numbers(2, "[x, y]: where it lies in this view"))
                            .required("from")
                            .required("to"),
                    )
                    .description(Some(
                        "Each piece shows `from` with its top-left corner at `to`; later pieces \
                         lie on top.",
                    )),
            )
            .required("kind")
            .required("pieces");
        RefOr::T(
            ObjectBuilder::new()
                .description(Some(
                    "Provenance: the chain of steps from this view back to the original image \
                     (step k maps frame k+1 to frame k). Apply them last to first to map a point \
                     on the view to original pixels.",
                ))
                .property(
                    "steps",
                    ArrayBuilder::new()
                        .items(OneOfBuilder::new().item(affine).item(jigsaw).item(collage)),
                )
                .required("steps")
                .into(),
        )
    }
}

impl ToSchema for TransformSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Transform")
    }
}

/// `coords`: the names come from [`CoordSystem::ALL`], so the document follows the code.
pub fn coords_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(CoordSystem::ALL.iter().map(|c| c.name())))
        .default(Some(json!(CoordSystem::default().name())))
        .description(Some(
            "Coordinate convention of the boxes and points in `ops`: pixel [x0,y0,x1,y1]; norm1 \
             (0-1); norm1000 (0-1000, Qwen3-VL); qwen25 (pixels on the Qwen2.5-VL resized input, \
             see `resized`); gemini [ymin,xmin,ymax,xmax] in 0-1000; xywh [x,y,width,height] pixels.",
        ))
        .into()
}

/// A binary file part in a multipart body.
pub fn binary_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .description(Some("The image file (PNG, JPEG or WebP)."))
        .into()
}

/// Schema marker for raw image bytes in a response body.
pub struct BinaryImage;

impl PartialSchema for BinaryImage {
    fn schema() -> RefOr<Schema> {
        RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .description(Some("The encoded image bytes of the first view."))
                .into(),
        )
    }
}

impl ToSchema for BinaryImage {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("BinaryImage")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Op;
    use serde_json::Value;

    fn sample(kind: Kind) -> Value {
        match kind {
            Kind::Rect => json!([1, 2, 30, 40]),
            Kind::Point => json!([5, 6]),
            Kind::Points => json!([[1, 1], [5, 5], [9, 1]]),
            Kind::Number => json!(1.5),
            Kind::Integer => json!(2),
            Kind::Text => json!("label"),
            Kind::Bool => json!(true),
            Kind::Color => json!("#ff8800"),
            Kind::Choice(v) => json!(v[v.len() - 1]),
            Kind::Integers => json!([1, 0, 3, 2]),
            Kind::Pieces => json!([{"box": [1, 2, 30, 40], "at": [0, 0]}]),
        }
    }

    #[test]
    fn every_described_op_and_field_exists() {
        for op in OPS {
            let mut full = serde_json::Map::new();
            let mut minimal = serde_json::Map::new();
            full.insert("op".into(), json!(op.name));
            minimal.insert("op".into(), json!(op.name));
            for f in op.fields {
                full.insert(f.name.into(), sample(f.kind));
                if f.required {
                    minimal.insert(f.name.into(), sample(f.kind));
                }
            }
            for v in [Value::Object(full), Value::Object(minimal)] {
                let parsed: Result<Op, _> = serde_json::from_value(v.clone());
                assert!(
                    parsed.is_ok(),
                    "schema for {} disagrees with Op: {v} -> {parsed:?}",
                    op.name
                );
            }
        }
    }

    #[test]
    fn every_real_op_is_described() {
        // serde lists the known variants in its error for an unknown one.
        let err = serde_json::from_value::<Op>(json!({"op": "__none__"}))
            .unwrap_err()
            .to_string();
        let listed = err.split("expected one of").nth(1).expect(&err);
        let real: Vec<&str> = listed
            .split(',')
            .map(|s| s.trim().trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        assert!(real.len() > 5, "{err}");
        for name in real {
            let name = name.split('`').next().unwrap();
            assert!(
                OPS.iter().any(|o| o.name == name),
                "op `{name}` has no OpenAPI description"
            );
        }
    }
}
