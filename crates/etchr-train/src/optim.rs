//! AdamW with its moments in the open (so checkpoints carry them), and global-norm gradient
//! clipping. candle-nn's `AdamW` keeps its moments private, so a resumed run would restart them.

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices only (not to biases and norm gains).
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// AdamW over every variable of a `VarMap`, in name order.
pub struct AdamW {
    slots: Vec<Slot>,
    /// Updates made so far (the bias-correction step count).
    pub t: u64,
    pub params: AdamWParams,
}

impl AdamW {
    pub fn new(varmap: &VarMap, params: AdamWParams) -> Result<Self> {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        drop(data);
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = named
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = var.as_tensor().zeros_like()?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            t: 0,
            params,
        })
    }

    /// The variables, in the optimiser's (name) order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.slots.iter().map(|s| (s.name.as_str(), &s.var))
    }

    /// One update with learning rate `lr`, the gradients first multiplied by `grad_scale`
    /// (the clipping factor). Variables without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.t += 1;
        let p = self.params;
        let bc1 = 1.0 - p.beta1.powi(self.t as i32);
        let bc2 = 1.0 - p.beta2.powi(self.t as i32);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            // A gradient can carry the backprop graph of the step that made it (a weight's
            // gradient is computed from the activations, which track their ops); moments
            // computed from it would chain every step's graph to the next and keep them all
            // alive. Detached, each step's graph is freed with its gradients.
            let g = if grad_scale == 1.0 {
                g.detach()
            } else {
                (g * grad_scale)?.detach()
            };
            s.m = ((&s.m * p.beta1)? + (&g * (1.0 - p.beta1))?)?.detach();
            s.v = ((&s.v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?.detach();
            let m_hat = (&s.m / bc1)?;
            let v_hat = (&s.v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
            let theta = s.var.as_tensor();
            let decayed = if p.weight_decay > 0.0 && theta.rank() >= 2 {
                (theta * (1.0 - lr * p.weight_decay))?
            } else {
                theta.clone()
            };
            s.var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Writes the moments (`m.NAME`, `v.NAME`) as safetensors.
    pub fn save_moments(&self, path: &Path) -> Result<()> {
        let mut map = HashMap::new();
        for s in &self.slots {
            map.insert(format!("m.{}", s.name), s.m.clone());
            map.insert(format!("v.{}", s.name), s.v.clone());
        }
        candle_core::safetensors::save(&map, path)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Restores the moments written by [`AdamW::save_moments`] and the step count `t`.
    pub fn load_moments(&mut self, path: &Path, t: u64, device: &Device) -> Result<()> {
        let map = candle_core::safetensors::load(path, device)
            .with_context(|| format!("reading {}", path.display()))?;
        for s in &mut self.slots {
            for (prefix, slot) in [("m", &mut s.m), ("v", &mut s.v)] {
                let key = format!("{prefix}.{}", s.name);
                let t = map
                    .get(&key)
                    .with_context(|| format!("{} lacks {key}", path.display()))?;
                anyhow::ensure!(
                    t.dims() == slot.dims(),
                    "{key}: {:?} in the checkpoint, {:?} in the model",
                    t.dims(),
                    slot.dims()
                );
                *slot = t.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}

/// The global L2 norm of the gradients of `vars`.
pub fn grad_norm<'a>(grads: &GradStore, vars: impl IntoIterator<Item = &'a Var>) -> Result<f64> {
    let mut sum = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    Ok(sum.sqrt())
}

/// The factor that brings a gradient of global norm `norm` down to at most `max_norm`
/// (1 when it already is, or when clipping is off: `max_norm ≤ 0`).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::Init;

    #[test]
    fn clipping_bounds_the_norm() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let a = vm
            .get((3, 4), "a", Init::Const(1.0), DType::F32, &dev)
            .unwrap();
        let b = vm.get(5, "b", Init::Const(-2.0), DType::F32, &dev).unwrap();
        // d/dx of 50·Σx² is 100·x: a large gradient.
        let loss = ((a.sqr().unwrap().sum_all().unwrap() + b.sqr().unwrap().sum_all().unwrap())
            .unwrap()
            * 50.0)
            .unwrap();
        let grads = loss.backward().unwrap();
        let opt = AdamW::new(&vm, AdamWParams::default()).unwrap();
        let norm = grad_norm(&grads, opt.vars().map(|(_, v)| v)).unwrap();
        let expect = (12.0f64 * 100.0 * 100.0 + 5.0 * 200.0 * 200.0).sqrt();
        assert!((norm - expect).abs() / expect < 1e-5, "{norm} vs {expect}");
        let s = clip_scale(norm, 1.0);
        // The clipped gradient's norm.
        let mut sum = 0.0;
        for (_, v) in opt.vars() {
            let g = (grads.get(v.as_tensor()).unwrap() * s).unwrap();
            sum += g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64;
        }
        assert!(sum.sqrt() <= 1.0 + 1e-5, "clipped norm {}", sum.sqrt());
        assert!(sum.sqrt() > 0.99);
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert_eq!(clip_scale(10.0, 0.0), 1.0);
    }

    #[test]
    fn the_moments_keep_no_step_graph_alive() {
        // Two layers: the second weight's gradient is computed from the first layer's
        // activations, which track their ops.
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let w1 = vm
            .get((3, 3), "w1", Init::Const(0.5), DType::F32, &dev)
            .unwrap();
        let w2 = vm
            .get((3, 1), "w2", Init::Const(0.5), DType::F32, &dev)
            .unwrap();
        let x = Tensor::ones((2, 3), DType::F32, &dev).unwrap();
        let mut opt = AdamW::new(&vm, AdamWParams::default()).unwrap();
        for _ in 0..2 {
            let h = x.matmul(&w1).unwrap().relu().unwrap();
            let loss = h.matmul(&w2).unwrap().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 1e-2, 1.0).unwrap();
        }
        for s in &opt.slots {
            assert!(
                !s.m.track_op() && !s.v.track_op(),
                "{} keeps a graph",
                s.name
            );
        }
    }

    #[test]
    fn adamw_first_step_moves_by_lr() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let a = vm.get(4, "a", Init::Const(1.0), DType::F32, &dev).unwrap();
        let loss = (&a * 3.0).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(&vm, AdamWParams::default()).unwrap();
        opt.step(&grads, 0.1, 1.0).unwrap();
        // Bias-corrected first step: m̂/√v̂ = sign(g), no decay on a vector.
        let v: Vec<f32> = a.to_vec1().unwrap();
        for x in v {
            assert!((x - 0.9).abs() < 1e-5, "{x}");
        }
        assert_eq!(opt.t, 1);
    }
}
