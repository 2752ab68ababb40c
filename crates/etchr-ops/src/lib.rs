//! ETCHR edit programs and their renderer.
//!
//! This crate knows nothing of HTTP or models: it defines the op language ([`program`]), the
//! coordinate conventions ([`coords`]), provenance ([`provenance`]), the compact text form
//! ([`text`]), image decoding and encoding ([`codec`]) and the deterministic renderer
//! ([`render`]), which also validates and repairs programs.

pub mod codec;
pub mod coords;
pub mod error;
pub mod geom;
pub mod program;
pub mod provenance;
pub mod render;
pub mod text;

pub use codec::{decode_image, encode_image, encode_image_stable, DecodeLimits, OutputFormat};
pub use coords::{Adapter, CoordSystem};
pub use error::OpsError;
pub use geom::{Affine, Point, Rect};
pub use image::RgbImage;
pub use program::{Color, Op, Piece, Program};
pub use provenance::{Step, Transform};
pub use render::{render, resize, validate, RenderOptions, Rendered, View};
