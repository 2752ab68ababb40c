//! An optional convolutional stem beside the linear patch embedding (`ModelConfig::conv_stem`).
//!
//! A linear patch embedding sees a 16 px patch as one vector: "this patch holds some brown"
//! and "this patch holds a triangle" are not linear features of the pixels, so the encoder has
//! to build them from the mixed patch vectors, which a small model on little data is slow to
//! do. Early convolutions are the known remedy (Xiao et al., 2021, "Early convolutions help
//! transformers see better"). The stem cuts the image into 4 px cells, embeds each with a ReLU,
//! runs one 3 × 3 convolution over the cell grid (a 12 px receptive field: one small shape
//! whichever patch boundary it straddles), and maps each patch's 4 × 4 cells to the model
//! width. Everything is matmuls over reshaped views (no `conv2d`), so the backward pass is as
//! cheap as the forward. The output map is zero-initialised: growing trained weights into a
//! stem starts from the same function.

use crate::config::ModelConfig;
use crate::encoder::neighbourhoods;
use crate::init::Params;
use crate::nn::Linear;
use candle_core::{Result, Tensor};

/// Side of one stem cell in pixels.
pub const STEM_CELL: usize = 4;

#[derive(Debug, Clone)]
pub struct ConvStem {
    /// `[cell² · 3 → C]`: one cell's pixels to C channels.
    cell: Linear,
    /// `[9 · C → C]`: the 3 × 3 convolution over the cell grid.
    conv: Linear,
    /// `[(patch / cell)² · C → d]`: a patch's cells to one token; zero-initialised.
    out: Linear,
    grid: usize,
    /// Cells per patch side.
    cells: usize,
    channels: usize,
}

impl ConvStem {
    pub fn new(p: &mut Params, cfg: &ModelConfig) -> crate::error::Result<Self> {
        let c = cfg.conv_stem;
        let cells = cfg.patch_size / STEM_CELL;
        // ReLU layers get He gain √2 so the activations neither vanish nor blow up.
        let he = std::f64::consts::SQRT_2;
        Ok(Self {
            cell: Linear::new(p, "enc.stem.cell", STEM_CELL * STEM_CELL * 3, c, true, he)?,
            conv: Linear::new(p, "enc.stem.conv", 9 * c, c, true, he)?,
            out: Linear::new(
                p,
                "enc.stem.out",
                cells * cells * c,
                cfg.d_model,
                false,
                0.0,
            )?,
            grid: cfg.grid(),
            cells,
            channels: c,
        })
    }

    /// `[B, N, patch_dim]` patches (patch-major, each row-major over its pixels, RGB innermost)
    /// → `[B, N, d]` to add to the patch embedding.
    pub fn forward(&self, patches: &Tensor) -> Result<Tensor> {
        let side = self.grid * self.cells;
        let h = self.cell.forward(&self.to_cells(patches)?)?.relu()?;
        // A residual convolution: each cell also sees the 3 × 3 cells around it.
        let h = (&h + self.conv.forward(&neighbourhoods(&h, side)?)?.relu()?)?;
        self.out.forward(&self.to_patches(&h)?)
    }

    /// `[B, N, patch_dim]` → `[B, side², cell² · 3]`: the image's cells, row-major over the
    /// whole image (not over each patch), so the convolution sees across patch boundaries.
    fn to_cells(&self, patches: &Tensor) -> Result<Tensor> {
        let b = patches.dim(0)?;
        let (g, q, s) = (self.grid, self.cells, STEM_CELL);
        // (b, grid row, grid col, cell row, pixel row, cell col, pixel col · rgb)
        // → (b, grid row, cell row, grid col, cell col, pixel row, pixel col · rgb).
        patches
            .reshape(vec![b, g, g, q, s, q, s * 3])?
            .permute(vec![0, 1, 3, 2, 5, 4, 6])?
            .contiguous()?
            .reshape((b, g * q * g * q, s * s * 3))
    }

    /// `[B, side², C]` cell features → `[B, N, cells² · C]`: each patch's cells, row-major.
    fn to_patches(&self, h: &Tensor) -> Result<Tensor> {
        let b = h.dim(0)?;
        let (g, q, c) = (self.grid, self.cells, self.channels);
        h.reshape(vec![b, g, q, g, q, c])?
            .permute(vec![0, 1, 3, 2, 4, 5])?
            .contiguous()?
            .reshape((b, g * g, q * q * c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::Params;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn cells_follow_the_image_grid_and_return_to_their_patches() {
        let cfg = ModelConfig {
            conv_stem: 2,
            ..ModelConfig::tiny()
        };
        let varmap = VarMap::new();
        let stem = ConvStem::new(&mut Params::new(&varmap, 0, &Device::Cpu), &cfg).unwrap();
        // Red is the pixel's image column, green its image row (patch-major input).
        let (g, ps, n, pd) = (
            cfg.grid(),
            cfg.patch_size,
            cfg.num_patches(),
            cfg.patch_dim(),
        );
        let mut patches = vec![0f32; n * pd];
        for (k, patch) in patches.chunks_mut(pd).enumerate() {
            for (i, px) in patch.chunks_mut(3).enumerate() {
                px[0] = ((k % g) * ps + i % ps) as f32;
                px[1] = ((k / g) * ps + i / ps) as f32;
            }
        }
        let x = Tensor::from_vec(patches, (1, n, pd), &Device::Cpu).unwrap();
        let cells = stem.to_cells(&x).unwrap().to_vec3::<f32>().unwrap();
        let side = g * ps / STEM_CELL;
        // Cell (row 7, col 5) holds image rows 28..32 and columns 20..24, row-major.
        let cell = &cells[0][7 * side + 5];
        for (i, px) in cell.chunks(3).enumerate() {
            assert_eq!(px[0], (20 + i % STEM_CELL) as f32);
            assert_eq!(px[1], (28 + i / STEM_CELL) as f32);
        }
        // Patch k gets back its own cells: the first channel of each is its cell's red sum.
        let sums = Tensor::from_vec(
            cells[0]
                .iter()
                .flat_map(|c| [c.iter().step_by(3).sum::<f32>(), 0.0])
                .collect::<Vec<_>>(),
            (1, side * side, 2),
            &Device::Cpu,
        )
        .unwrap();
        let per_patch = stem.to_patches(&sums).unwrap().to_vec3::<f32>().unwrap();
        let q = ps / STEM_CELL;
        for (k, patch) in per_patch[0].iter().enumerate() {
            for (j, red) in patch.iter().step_by(2).enumerate() {
                let col = (k % g) * q + j % q;
                let cols: f32 = (0..STEM_CELL).map(|i| (col * STEM_CELL + i) as f32).sum();
                assert_eq!(*red, STEM_CELL as f32 * cols, "patch {k}, cell {j}");
            }
        }
        // The zero-initialised output adds nothing until trained.
        let out = stem.forward(&x).unwrap();
        assert_eq!(out.dims(), &[1, n, cfg.d_model]);
        let total: f32 = out.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert_eq!(total, 0.0);
    }

    #[test]
    fn the_convolution_sees_across_patch_boundaries_and_no_further() {
        let cfg = ModelConfig {
            conv_stem: 16,
            ..ModelConfig::tiny()
        };
        let varmap = VarMap::new();
        let stem = ConvStem::new(&mut Params::new(&varmap, 3, &Device::Cpu), &cfg).unwrap();
        let out = &varmap.data().lock().unwrap()["enc.stem.out.weight"];
        out.set(&Tensor::ones(out.dims(), candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        let (n, pd, ps) = (cfg.num_patches(), cfg.patch_dim(), cfg.patch_size);
        let run = |patches: Vec<f32>| {
            let x = Tensor::from_vec(patches, (1, n, pd), &Device::Cpu).unwrap();
            stem.forward(&x)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap()
                .remove(0)
        };
        let texture: Vec<f32> = (0..n * pd)
            .map(|i| (i * 7 % 11) as f32 / 10.0 - 0.5)
            .collect();
        let base = run(texture.clone());
        // Brighten the rightmost pixel column of patch 0: its own token changes, and so does
        // patch 1's (its first cell is that column's neighbour), but not patch 2's.
        let mut edge = texture;
        for row in 0..ps {
            let at = (row * ps + ps - 1) * 3;
            edge[at..at + 3].fill(0.9);
        }
        let after = run(edge);
        let moved = |k: usize| -> f32 {
            base[k]
                .iter()
                .zip(&after[k])
                .map(|(a, b)| (a - b).abs())
                .sum()
        };
        assert!(
            moved(0) > 0.0 && moved(1) > 0.0,
            "{} {}",
            moved(0),
            moved(1)
        );
        assert_eq!(moved(2), 0.0);
    }
}
