//! Fused CPU kernels **with** a backward pass, for the one tensor that dominates a training
//! step: the attention scores (`B·H·T·S` values, 22 M at batch 32 with 416 tokens). Written
//! from primitives, a masked softmax is ~6 element-wise passes forward and ~10 backward over
//! that tensor, all single-threaded in candle; this op is one parallel pass each way, and
//! folds in the key-padding mask. (candle's own fused softmax has no backward at all.)
//! On other devices [`crate::nn`] falls back to the primitive form.

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;
use std::sync::Arc;

/// `softmax(x + mask)` over the last dim. `mask`, when given, holds one additive value per
/// (batch, key): `[B·S]`, and `rows_per_batch` rows of `x` share each batch's mask.
pub struct MaskedSoftmax {
    pub mask: Option<Arc<Vec<f32>>>,
    pub rows_per_batch: usize,
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        bail!("{what}: f32 only")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{what}: contiguous input only")
    };
    Ok(&data[a..b])
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "etchr-masked-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(storage, layout, self.name())?;
        let s = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        if let Some(m) = &self.mask {
            let rows = x.len() / s;
            if self.rows_per_batch == 0 || m.len() != rows / self.rows_per_batch * s {
                bail!(
                    "{}: mask of {} values for {rows} rows of {s}",
                    self.name(),
                    m.len()
                );
            }
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(s)
            .zip(x.par_chunks(s))
            .enumerate()
            .for_each(|(r, (o, xi))| {
                match &self.mask {
                    Some(m) => {
                        let mb = &m[(r / self.rows_per_batch) * s..][..s];
                        o.iter_mut()
                            .zip(xi.iter().zip(mb))
                            .for_each(|(o, (x, m))| *o = x + m);
                    }
                    None => o.copy_from_slice(xi),
                }
                let max = o.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for v in o.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|v| *v *= inv);
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.contiguous()?;
        let y = res.contiguous()?;
        Ok(Some(g.apply_op2_no_bwd(&y, &SoftmaxBackward)?))
    }
}

/// `dx = y ⊙ (g − Σ g⊙y)` row by row.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "etchr-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous(s1, l1, self.name())?;
        let y = contiguous(s2, l2, self.name())?;
        if g.len() != y.len() {
            bail!("{}: shape mismatch", self.name());
        }
        let s = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(s)
            .zip(g.par_chunks(s).zip(y.par_chunks(s)))
            .for_each(|(o, (g, y))| {
                let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                o.iter_mut()
                    .zip(g.iter().zip(y))
                    .for_each(|(o, (g, y))| *o = y * (g - dot));
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Layer norm over the last dim, `(x − μ)/σ · w + b`, with a backward pass for all three
/// inputs. Inputs must be contiguous f32 (the caller makes them so).
pub struct LayerNormOp {
    pub eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "etchr-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let w = contiguous(s2, l2, self.name())?;
        let b = contiguous(s3, l3, self.name())?;
        let d = w.len();
        if d == 0 || b.len() != d || x.len() % d != 0 {
            bail!("{}: shape mismatch", self.name());
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .for_each(|(o, x)| {
                let mean = x.iter().sum::<f32>() / d as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for i in 0..d {
                    o[i] = (x[i] - mean) * inv * w[i] + b[i];
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let rows = x.elem_count() / d;
        let all = grad.contiguous()?.apply_op3_no_bwd(
            &x.contiguous()?,
            &w.contiguous()?,
            &LayerNormBackward { eps: self.eps },
        )?;
        let dx = all.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dw = all.get(rows)?;
        let db = all.get(rows + 1)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// `[rows + 2, d]`: `dx` for every row, then `dw`, then `db`.
struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "etchr-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous(s1, l1, self.name())?;
        let x = contiguous(s2, l2, self.name())?;
        let w = contiguous(s3, l3, self.name())?;
        let d = w.len();
        if d == 0 || g.len() != x.len() || x.len() % d != 0 {
            bail!("{}: shape mismatch", self.name());
        }
        let rows = x.len() / d;
        let eps = self.eps;
        let mut out = vec![0f32; (rows + 2) * d];
        let (dx, params) = out.split_at_mut(rows * d);
        let (dw, db) = dx
            .par_chunks_mut(d)
            .zip(g.par_chunks(d).zip(x.par_chunks(d)))
            .fold(
                || (vec![0f32; d], vec![0f32; d]),
                |(mut dw, mut db), (o, (g, x))| {
                    let mean = x.iter().sum::<f32>() / d as f32;
                    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                    let inv = 1.0 / (var + eps).sqrt();
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for i in 0..d {
                        let xh = (x[i] - mean) * inv;
                        let gw = g[i] * w[i];
                        m1 += gw;
                        m2 += gw * xh;
                        dw[i] += g[i] * xh;
                        db[i] += g[i];
                    }
                    let (m1, m2) = (m1 / d as f32, m2 / d as f32);
                    for i in 0..d {
                        let xh = (x[i] - mean) * inv;
                        o[i] = inv * (g[i] * w[i] - m1 - xh * m2);
                    }
                    (dw, db)
                },
            )
            .reduce(
                || (vec![0f32; d], vec![0f32; d]),
                |(mut a, mut b), (c, e)| {
                    a.iter_mut().zip(&c).for_each(|(a, c)| *a += c);
                    b.iter_mut().zip(&e).for_each(|(b, e)| *b += e);
                    (a, b)
                },
            );
        params[..d].copy_from_slice(&dw);
        params[d..].copy_from_slice(&db);
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn primitive(x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let x = match mask {
            Some(m) => x.broadcast_add(m).unwrap(),
            None => x.clone(),
        };
        let max = x.max_keepdim(D::Minus1).unwrap().detach();
        let e = x.broadcast_sub(&max).unwrap().exp().unwrap();
        e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
    }

    #[test]
    fn masked_softmax_matches_primitives_forward_and_backward() {
        let dev = Device::Cpu;
        let (b, h, t, s) = (2, 3, 4, 5);
        let x = Var::from_tensor(&Tensor::randn(0f32, 2.0, (b, h, t, s), &dev).unwrap()).unwrap();
        let mvals: Vec<f32> = (0..b * s)
            .map(|i| if i % 4 == 3 { -1e9 } else { 0.0 })
            .collect();
        let mt = Tensor::from_vec(mvals.clone(), (b, 1, 1, s), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (b, h, t, s), &dev).unwrap();
        let op = MaskedSoftmax {
            mask: Some(Arc::new(mvals)),
            rows_per_batch: h * t,
        };
        let fast = x.as_tensor().apply_op1(op).unwrap();
        let slow = primitive(x.as_tensor(), Some(&mt));
        let diff = (&fast - &slow).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
        let gf = (fast * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (slow * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let (gf, gs) = (
            gf.get(x.as_tensor()).unwrap(),
            gs.get(x.as_tensor()).unwrap(),
        );
        let diff = (gf - gs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    #[test]
    fn layer_norm_matches_primitives_forward_and_backward() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0.5f32, 2.0, (3, 4, 8), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 8, &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, 8, &dev).unwrap()).unwrap();
        let r = Tensor::randn(0f32, 1.0, (3, 4, 8), &dev).unwrap();
        let fast = x
            .as_tensor()
            .apply_op3(w.as_tensor(), b.as_tensor(), LayerNormOp { eps: 1e-5 })
            .unwrap();
        let xs = x.as_tensor();
        let mean = xs.mean_keepdim(D::Minus1).unwrap();
        let xc = xs.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let slow = xc
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        let max = |t: Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(max((&fast - &slow).unwrap()) < 1e-5);
        let gf = (fast * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gs = (slow * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            let d = (gf.get(v.as_tensor()).unwrap() - gs.get(v.as_tensor()).unwrap()).unwrap();
            assert!(max(d) < 1e-4);
        }
    }
}
