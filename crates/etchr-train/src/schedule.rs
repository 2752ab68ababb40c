//! Learning-rate schedule: linear warmup, then a cosine decay to `min_lr`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub base_lr: f64,
    /// The floor the cosine decays to (reached at `total_steps`).
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
}

impl Schedule {
    /// The learning rate for the update made at `step` (0-based): `base_lr · (step + 1) / warmup`
    /// during warmup, then `min_lr + (base_lr − min_lr) · (1 + cos(π · progress)) / 2`, and
    /// `min_lr` from `total_steps` on.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps);
        if span == 0 || step >= self.total_steps {
            return self.min_lr;
        }
        let progress = (step - self.warmup_steps) as f64 / span as f64;
        self.min_lr
            + (self.base_lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule {
            base_lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert!((s.lr(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr(4) - 5e-4).abs() < 1e-12);
        assert!((s.lr(9) - 1e-3).abs() < 1e-12);
        assert!((s.lr(10) - 1e-3).abs() < 1e-12);
        // Halfway through the cosine: the midpoint of base and min.
        assert!((s.lr(60) - 5.5e-4).abs() < 1e-12);
        assert!((s.lr(110) - 1e-4).abs() < 1e-12);
        assert!((s.lr(1000) - 1e-4).abs() < 1e-12);
        for k in 10..110 {
            assert!(s.lr(k + 1) <= s.lr(k), "monotone after warmup at {k}");
        }
        let none = Schedule {
            warmup_steps: 0,
            ..s
        };
        assert!((none.lr(0) - 1e-3).abs() < 1e-12);
    }
}
