//! Seeded initialisation. candle's CPU initialisers draw from a thread RNG that cannot be
//! seeded, so tests could not pin outputs; we draw every value from our own xorshift and
//! create the variables from those vectors, in construction order.

use crate::error::{ModelError, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;

/// xorshift64*: tiny, fast and reproducible on every platform.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so seeds 0, 1, 2 ... give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
}

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Zeros,
    Ones,
    /// Normal with this standard deviation, truncated at 2σ (no outliers in tiny models).
    Normal(f64),
}

/// Creates the model's variables in a [`VarMap`], seeded. Loading builds the same map (seed 0)
/// and then overwrites every variable from the file, so names and shapes are checked once.
pub struct Params<'a> {
    varmap: &'a VarMap,
    rng: XorShift,
    device: Device,
}

impl<'a> Params<'a> {
    pub fn new(varmap: &'a VarMap, seed: u64, device: &Device) -> Self {
        Self {
            varmap,
            rng: XorShift::new(seed),
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A new variable named `name`, returned as the tensor the modules compute with (it shares
    /// storage with the variable, so optimiser updates and loads are seen by the model).
    pub fn get(&mut self, name: &str, dims: &[usize], init: Init) -> Result<Tensor> {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => (0..n)
                .map(|_| {
                    let mut z = self.rng.normal();
                    while z.abs() > 2.0 {
                        z = self.rng.normal();
                    }
                    (z * std) as f32
                })
                .collect(),
        };
        let var = Var::from_vec(values, dims, &self.device)?;
        debug_assert_eq!(var.dtype(), DType::F32);
        let tensor = var.as_tensor().clone();
        let mut data = self.varmap.data().lock().expect("varmap lock poisoned");
        if data.insert(name.to_string(), var).is_some() {
            return Err(ModelError::Weights(format!(
                "parameter {name} defined twice"
            )));
        }
        Ok(tensor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_reproducible_and_roughly_normal() {
        let (mut a, mut b) = (XorShift::new(7), XorShift::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut r = XorShift::new(1);
        let xs: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
