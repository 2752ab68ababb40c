//! Building blocks written from candle primitives that all have a backward pass.
//!
//! In candle 0.11 the fused `softmax_last_dim`, `layer_norm` / `LayerNorm::forward`,
//! `rms_norm`, the `rope` family and `sdpa` have no backward and silently stop gradients, so
//! training uses the explicit forms here. Inference (`fused = true`) may use the fused softmax
//! and layer norm, which a test checks against the explicit ones.

use crate::config::Activation;
use crate::init::{Init, Params};
use crate::ops::MaskedSoftmax;
use candle_core::{Result, Tensor, D};
use std::sync::Arc;

/// Additive mask value: large enough that `exp` underflows to 0, finite so `0 · mask` is 0.
pub const NEG: f64 = -1e9;

/// `softmax` over the last dim: `exp(x - max) / Σ exp(x - max)`, the max detached (it only
/// keeps `exp` in range and cancels in the gradient).
pub fn softmax(x: &Tensor, fused: bool) -> Result<Tensor> {
    if fused {
        return candle_nn::ops::softmax_last_dim(x);
    }
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// `log softmax` over the last dim, differentiable.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// `1 / (1 + e^-x)`, differentiable.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    (x.neg()?.exp()? + 1.0)?.recip()
}

/// `log(1 + e^x)`, differentiable and stable for large `|x|`: `max(x, 0) + log(1 + e^-|x|)`.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// `y = x Wᵀ + b` over the last dim of any-rank `x`.
#[derive(Debug, Clone)]
pub struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// Weights `N(0, gain/√in)`, bias zero.
    pub fn new(
        p: &mut Params,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        gain: f64,
    ) -> crate::error::Result<Self> {
        let w = p.get(
            &format!("{name}.weight"),
            &[d_out, d_in],
            Init::Normal(gain / (d_in as f64).sqrt()),
        )?;
        let b = if bias {
            Some(p.get(&format!("{name}.bias"), &[d_out], Init::Zeros)?)
        } else {
            None
        };
        Ok(Self { w, b })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d_in = *dims.last().expect("rank >= 1");
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let y = x.reshape((rows, d_in))?.matmul(&self.w.t()?)?;
        let y = match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().expect("rank >= 1") = self.w.dim(0)?;
        y.reshape(out)
    }
}

#[derive(Debug, Clone)]
pub struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(p: &mut Params, name: &str, d: usize) -> crate::error::Result<Self> {
        Ok(Self {
            w: p.get(&format!("{name}.weight"), &[d], Init::Ones)?,
            b: p.get(&format!("{name}.bias"), &[d], Init::Zeros)?,
            eps: 1e-5,
        })
    }

    pub fn forward(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        if x.device().is_cpu() {
            // One parallel pass each way, with a backward pass (see `ops`).
            return x.contiguous()?.apply_op3(
                &self.w,
                &self.b,
                crate::ops::LayerNormOp {
                    eps: self.eps as f32,
                },
            );
        }
        if fused {
            return candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps as f32);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        xc.broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.w)?
            .broadcast_add(&self.b)
    }
}

/// Splits `[B, T, H·dh]` into `[B, H, T, dh]` (contiguous, for batched matmuls).
fn heads(x: &Tensor, h: usize) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    x.reshape((b, t, h, d / h))?.transpose(1, 2)?.contiguous()
}

/// `[B, H, T, dh]` back to `[B, T, H·dh]`.
fn merge(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, dh) = x.dims4()?;
    x.transpose(1, 2)?.reshape((b, t, h * dh))
}

/// An additive attention mask.
#[derive(Debug, Clone)]
pub struct AttnMask {
    /// Broadcastable to the scores `[B, H, T, S]`.
    pub tensor: Tensor,
    /// The same mask as one value per (batch, key), `[B·S]`, when it is a key-padding mask:
    /// the fused CPU softmax applies it without materialising the broadcast.
    pub keys: Option<Arc<Vec<f32>>>,
}

/// `softmax(q kᵀ / √dh + mask) v` on `[B, H, T, dh]` heads.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&AttnMask>,
    fused: bool,
) -> Result<Tensor> {
    let dh = q.dim(D::Minus1)?;
    let q = (q * (1.0 / (dh as f64).sqrt()))?;
    let scores = q.matmul(&k.t()?)?;
    let probs = if scores.device().is_cpu() {
        // One fused pass each way, with a backward pass (see `ops`).
        let (_, h, t, _) = scores.dims4()?;
        match mask {
            Some(AttnMask {
                keys: Some(keys), ..
            }) => scores.contiguous()?.apply_op1(MaskedSoftmax {
                mask: Some(keys.clone()),
                rows_per_batch: h * t,
            })?,
            Some(m) => scores.broadcast_add(&m.tensor)?.apply_op1(MaskedSoftmax {
                mask: None,
                rows_per_batch: 1,
            })?,
            None => scores.contiguous()?.apply_op1(MaskedSoftmax {
                mask: None,
                rows_per_batch: 1,
            })?,
        }
    } else {
        let scores = match mask {
            Some(m) => scores.broadcast_add(&m.tensor)?,
            None => scores,
        };
        softmax(&scores, fused)?
    };
    probs.matmul(v)
}

/// Multi-head self-attention with one fused QKV projection.
#[derive(Debug, Clone)]
pub struct SelfAttention {
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    pub fn new(
        p: &mut Params,
        name: &str,
        d: usize,
        heads: usize,
        out_gain: f64,
    ) -> crate::error::Result<Self> {
        Ok(Self {
            qkv: Linear::new(p, &format!("{name}.qkv"), d, 3 * d, true, 1.0)?,
            out: Linear::new(p, &format!("{name}.out"), d, d, true, out_gain)?,
            heads,
        })
    }

    pub fn forward(&self, x: &Tensor, mask: Option<&AttnMask>, fused: bool) -> Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        let qkv = self.qkv.forward(x)?;
        let q = heads(&qkv.narrow(D::Minus1, 0, d)?, self.heads)?;
        let k = heads(&qkv.narrow(D::Minus1, d, d)?, self.heads)?;
        let v = heads(&qkv.narrow(D::Minus1, 2 * d, d)?, self.heads)?;
        self.out.forward(&merge(&attend(&q, &k, &v, mask, fused)?)?)
    }
}

/// Keys and values of a memory, projected once per decoder layer and reused at every step.
#[derive(Debug, Clone)]
pub struct KeyValues {
    k: Tensor,
    v: Tensor,
}

/// Multi-head cross-attention from queries to a memory.
#[derive(Debug, Clone)]
pub struct CrossAttention {
    q: Linear,
    kv: Linear,
    out: Linear,
    heads: usize,
}

impl CrossAttention {
    pub fn new(
        p: &mut Params,
        name: &str,
        d: usize,
        heads: usize,
        out_gain: f64,
    ) -> crate::error::Result<Self> {
        Ok(Self {
            q: Linear::new(p, &format!("{name}.q"), d, d, true, 1.0)?,
            kv: Linear::new(p, &format!("{name}.kv"), d, 2 * d, true, 1.0)?,
            out: Linear::new(p, &format!("{name}.out"), d, d, true, out_gain)?,
            heads,
        })
    }

    pub fn key_values(&self, memory: &Tensor) -> Result<KeyValues> {
        let d = memory.dim(D::Minus1)?;
        let kv = self.kv.forward(memory)?;
        Ok(KeyValues {
            k: heads(&kv.narrow(D::Minus1, 0, d)?, self.heads)?,
            v: heads(&kv.narrow(D::Minus1, d, d)?, self.heads)?,
        })
    }

    pub fn forward(
        &self,
        x: &Tensor,
        kv: &KeyValues,
        mask: Option<&AttnMask>,
        fused: bool,
    ) -> Result<Tensor> {
        let q = heads(&self.q.forward(x)?, self.heads)?;
        self.out
            .forward(&merge(&attend(&q, &kv.k, &kv.v, mask, fused)?)?)
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    up: Linear,
    down: Linear,
    act: Activation,
}

impl Mlp {
    pub fn new(
        p: &mut Params,
        name: &str,
        d: usize,
        hidden: usize,
        act: Activation,
        out_gain: f64,
    ) -> crate::error::Result<Self> {
        Ok(Self {
            up: Linear::new(p, &format!("{name}.up"), d, hidden, true, 1.0)?,
            down: Linear::new(p, &format!("{name}.down"), hidden, d, true, out_gain)?,
            act,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.up.forward(x)?;
        let h = match self.act {
            Activation::Relu => h.relu()?,
            Activation::Gelu => h.gelu()?,
        };
        self.down.forward(&h)
    }
}

/// A pre-norm transformer encoder layer.
#[derive(Debug, Clone)]
pub struct EncoderBlock {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    mlp: Mlp,
}

impl EncoderBlock {
    pub fn new(p: &mut Params, name: &str, cfg: &crate::ModelConfig) -> crate::error::Result<Self> {
        let d = cfg.d_model;
        // Residual branches start small (GPT-2 style) so a deep stack begins near identity.
        let g = 1.0 / (2.0 * (cfg.encoder_layers + cfg.decoder_layers) as f64).sqrt();
        Ok(Self {
            ln1: LayerNorm::new(p, &format!("{name}.ln1"), d)?,
            attn: SelfAttention::new(p, &format!("{name}.attn"), d, cfg.heads, g)?,
            ln2: LayerNorm::new(p, &format!("{name}.ln2"), d)?,
            mlp: Mlp::new(
                p,
                &format!("{name}.mlp"),
                d,
                d * cfg.mlp_ratio,
                cfg.activation,
                g,
            )?,
        })
    }

    pub fn forward(&self, x: &Tensor, mask: Option<&AttnMask>, fused: bool) -> Result<Tensor> {
        let x = (x + self
            .attn
            .forward(&self.ln1.forward(x, fused)?, mask, fused)?)?;
        &x + self.mlp.forward(&self.ln2.forward(&x, fused)?)?
    }
}

/// A pre-norm decoder layer: causal self-attention, cross-attention to the encoder, MLP.
#[derive(Debug, Clone)]
pub struct DecoderBlock {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    cross: CrossAttention,
    ln3: LayerNorm,
    mlp: Mlp,
}

impl DecoderBlock {
    pub fn new(p: &mut Params, name: &str, cfg: &crate::ModelConfig) -> crate::error::Result<Self> {
        let d = cfg.d_model;
        let g = 1.0 / (2.0 * (cfg.encoder_layers + cfg.decoder_layers) as f64).sqrt();
        Ok(Self {
            ln1: LayerNorm::new(p, &format!("{name}.ln1"), d)?,
            attn: SelfAttention::new(p, &format!("{name}.attn"), d, cfg.heads, g)?,
            ln2: LayerNorm::new(p, &format!("{name}.ln2"), d)?,
            cross: CrossAttention::new(p, &format!("{name}.cross"), d, cfg.heads, g)?,
            ln3: LayerNorm::new(p, &format!("{name}.ln3"), d)?,
            mlp: Mlp::new(
                p,
                &format!("{name}.mlp"),
                d,
                d * cfg.mlp_ratio,
                cfg.activation,
                g,
            )?,
        })
    }

    pub fn key_values(&self, memory: &Tensor) -> Result<KeyValues> {
        self.cross.key_values(memory)
    }

    pub fn forward(
        &self,
        x: &Tensor,
        causal: &AttnMask,
        kv: &KeyValues,
        memory_mask: &AttnMask,
        fused: bool,
    ) -> Result<Tensor> {
        let x = (x + self
            .attn
            .forward(&self.ln1.forward(x, fused)?, Some(causal), fused)?)?;
        let x = (&x
            + self
                .cross
                .forward(&self.ln2.forward(&x, fused)?, kv, Some(memory_mask), fused)?)?;
        &x + self.mlp.forward(&self.ln3.forward(&x, fused)?)?
    }
}

/// `[T, T]` additive causal mask.
pub fn causal_mask(t: usize, device: &candle_core::Device) -> Result<AttnMask> {
    let m: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { NEG as f32 } else { 0.0 })
        .collect();
    Ok(AttnMask {
        tensor: Tensor::from_vec(m, (t, t), device)?,
        keys: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn explicit_and_fused_ops_agree() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (2, 5, 7), &dev).unwrap();
        let a = softmax(&x, false).unwrap();
        let b = softmax(&x, true).unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
        let varmap = candle_nn::VarMap::new();
        let mut p = Params::new(&varmap, 3, &dev);
        let ln = LayerNorm::new(&mut p, "ln", 7).unwrap();
        let a = ln.forward(&x, false).unwrap();
        let b = ln.forward(&x, true).unwrap();
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "{diff}");
        let ls = log_softmax(&x).unwrap().exp().unwrap();
        let sm = softmax(&x, false).unwrap();
        let diff = (ls - sm)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn explicit_softmax_and_layer_norm_pass_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap()).unwrap();
        let w = Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap();
        let y = (softmax(x.as_tensor(), false).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = y.backward().unwrap();
        let gx = g
            .get(x.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gx > 0.0);
        // The fused one really does stop gradients (why the explicit one exists).
        let y = (softmax(x.as_tensor(), true).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = y.backward().unwrap();
        assert!(g.get(x.as_tensor()).is_none());
    }
}
