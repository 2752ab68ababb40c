//! The op vocabulary: the discrete tokens the decoder's token head chooses from. Coordinates
//! are not in it: boxes and points go through the pointer head, and appear in the decoder's
//! input as the slot tokens [`Sym::SlotBox`] / [`Sym::SlotPoint`] plus the chosen patch's
//! feature.

use crate::config::ModelConfig;
use etchr_ops::program::Axis;

/// One symbol of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sym {
    Pad,
    Bos,
    End,
    Crop,
    Zoom,
    Rotate,
    Flip,
    Box,
    Highlight,
    JigsawSolve,
    Path,
    /// Decoder input for a box chosen by the pointer head (never a token-head output).
    SlotBox,
    /// Decoder input for a point chosen by the pointer head (never a token-head output).
    SlotPoint,
    /// Counter-clockwise quarter turns, 1..=3 (90°, 180°, 270°).
    Quarter(u8),
    FlipAxis(Axis),
    /// A `jigsaw_solve` grid size, 1..=max_grid (rows, then cols).
    Grid(u8),
    /// A zoom-factor bin, `0..zoom_bins`.
    ZoomBin(u16),
}

/// The op symbols, in id order.
pub const OPS: [Sym; 8] = [
    Sym::Crop,
    Sym::Zoom,
    Sym::Rotate,
    Sym::Flip,
    Sym::Box,
    Sym::Highlight,
    Sym::JigsawSolve,
    Sym::Path,
];

const FIXED: u32 = 13; // Pad .. SlotPoint
const QUARTER0: u32 = FIXED;
const AXIS0: u32 = QUARTER0 + 3;
const GRID0: u32 = AXIS0 + 2;

/// Symbol ↔ id, plus the zoom bins.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    zoom_bins: u16,
    zoom_min: f64,
    zoom_max: f64,
    max_grid: u8,
}

impl Vocab {
    pub fn new(cfg: &ModelConfig) -> Self {
        Self {
            zoom_bins: cfg.zoom_bins as u16,
            zoom_min: cfg.zoom_min,
            zoom_max: cfg.zoom_max,
            max_grid: cfg.max_grid as u8,
        }
    }

    fn zoom0(&self) -> u32 {
        GRID0 + self.max_grid as u32
    }

    pub fn size(&self) -> usize {
        (self.zoom0() + self.zoom_bins as u32) as usize
    }

    pub fn max_grid(&self) -> u8 {
        self.max_grid
    }

    pub fn zoom_bins(&self) -> u16 {
        self.zoom_bins
    }

    pub fn id(&self, s: Sym) -> u32 {
        match s {
            Sym::Pad => 0,
            Sym::Bos => 1,
            Sym::End => 2,
            Sym::Crop => 3,
            Sym::Zoom => 4,
            Sym::Rotate => 5,
            Sym::Flip => 6,
            Sym::Box => 7,
            Sym::Highlight => 8,
            Sym::JigsawSolve => 9,
            Sym::Path => 10,
            Sym::SlotBox => 11,
            Sym::SlotPoint => 12,
            Sym::Quarter(q) => QUARTER0 + (q.clamp(1, 3) - 1) as u32,
            Sym::FlipAxis(Axis::Horizontal) => AXIS0,
            Sym::FlipAxis(Axis::Vertical) => AXIS0 + 1,
            Sym::Grid(n) => GRID0 + (n.clamp(1, self.max_grid) - 1) as u32,
            Sym::ZoomBin(b) => self.zoom0() + b.min(self.zoom_bins - 1) as u32,
        }
    }

    pub fn sym(&self, id: u32) -> Option<Sym> {
        Some(match id {
            0 => Sym::Pad,
            1 => Sym::Bos,
            2 => Sym::End,
            3..=10 => OPS[id as usize - 3],
            11 => Sym::SlotBox,
            12 => Sym::SlotPoint,
            i if (QUARTER0..AXIS0).contains(&i) => Sym::Quarter((i - QUARTER0 + 1) as u8),
            i if i == AXIS0 => Sym::FlipAxis(Axis::Horizontal),
            i if i == AXIS0 + 1 => Sym::FlipAxis(Axis::Vertical),
            i if (GRID0..self.zoom0()).contains(&i) => Sym::Grid((i - GRID0 + 1) as u8),
            i if (self.zoom0()..self.size() as u32).contains(&i) => {
                Sym::ZoomBin((i - self.zoom0()) as u16)
            }
            _ => return None,
        })
    }

    /// The factor a zoom bin stands for (log-spaced, so every bin is the same relative step).
    pub fn zoom_factor(&self, bin: u16) -> f64 {
        let t = bin.min(self.zoom_bins - 1) as f64 / (self.zoom_bins - 1) as f64;
        let f = self.zoom_min * (self.zoom_max / self.zoom_min).powf(t);
        // Two decimals, like the generator's gold factors, so text forms stay short.
        (f * 100.0).round() / 100.0
    }

    /// The nearest bin (in log space) to `factor`.
    pub fn zoom_bin(&self, factor: f64) -> u16 {
        let f = factor.clamp(self.zoom_min, self.zoom_max);
        let t = (f / self.zoom_min).ln() / (self.zoom_max / self.zoom_min).ln();
        (t * (self.zoom_bins - 1) as f64).round() as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_dense() {
        let v = Vocab::new(&ModelConfig::default());
        for id in 0..v.size() as u32 {
            let s = v.sym(id).unwrap();
            assert_eq!(v.id(s), id, "{s:?}");
        }
        assert!(v.sym(v.size() as u32).is_none());
    }

    #[test]
    fn zoom_bins_round_trip() {
        let v = Vocab::new(&ModelConfig::default());
        for b in 0..v.zoom_bins() {
            assert_eq!(v.zoom_bin(v.zoom_factor(b)), b);
        }
        assert_eq!(v.zoom_factor(0), 0.25);
        assert_eq!(v.zoom_factor(v.zoom_bins() - 1), 16.0);
    }
}
