//! Pass@1 and the paired exact McNemar test.

use serde::{Deserialize, Serialize};

/// Correct out of `n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub n: usize,
    pub correct: usize,
    /// `correct / n` (0 when `n` is 0).
    pub pass_at_1: f64,
}

impl Score {
    pub fn from_outcomes(outcomes: impl IntoIterator<Item = bool>) -> Self {
        let (mut n, mut correct) = (0, 0);
        for ok in outcomes {
            n += 1;
            correct += ok as usize;
        }
        Self {
            n,
            correct,
            pass_at_1: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
        }
    }
}

/// A paired comparison of a condition against `direct` on the same items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Items where `direct` fails and the condition is right (wins).
    pub b: usize,
    /// Items where `direct` is right and the condition fails (losses).
    pub c: usize,
    /// Two-sided exact binomial p-value of `min(b, c)` under `Binomial(b + c, 1/2)`.
    pub p_value: f64,
}

impl McNemar {
    /// From paired outcomes `(direct_correct, condition_correct)`.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let (mut b, mut c) = (0, 0);
        for (d, x) in pairs {
            match (d, x) {
                (false, true) => b += 1,
                (true, false) => c += 1,
                _ => {}
            }
        }
        Self {
            b,
            c,
            p_value: exact_p(b, c),
        }
    }
}

/// Two-sided exact McNemar p-value: `min(1, 2 · P(X ≤ min(b, c)))`, `X ~ Binomial(b + c, 1/2)`.
/// Computed in log space so large discordant counts do not overflow.
pub fn exact_p(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The mean of `values` (0 when empty).
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_mcnemar_matches_known_values() {
        assert_eq!(exact_p(0, 0), 1.0);
        // b=0, c=5: 2 * 0.5^5 = 0.0625.
        assert!((exact_p(0, 5) - 0.0625).abs() < 1e-12);
        // b=1, c=9: 2 * (1 + 10) / 1024.
        assert!((exact_p(9, 1) - 22.0 / 1024.0).abs() < 1e-12);
        assert_eq!(exact_p(4, 4), 1.0);
        assert!(exact_p(0, 200) < 1e-50);
        let m = McNemar::from_pairs([(false, true), (false, true), (true, false), (true, true)]);
        assert_eq!((m.b, m.c), (2, 1));
        assert_eq!(m.p_value, 1.0);
    }

    #[test]
    fn scores_and_summaries() {
        let s = Score::from_outcomes([true, false, true, true]);
        assert_eq!((s.n, s.correct), (4, 3));
        assert!((s.pass_at_1 - 0.75).abs() < 1e-12);
        assert_eq!(Score::from_outcomes([]).pass_at_1, 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(mean(&[1.0, 2.0]), 1.5);
    }
}
