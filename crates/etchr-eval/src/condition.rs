//! The benchmark's conditions (BENCHMARK.md, "Conditions to report").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One way of showing an item to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The upstream alone, `[original]` + question: the baseline every other condition is
    /// tested against.
    Direct,
    /// Through the sidecar's loop (`Reasoner`), with the chosen strategy and planner.
    Etchr,
    /// The gold program rendered, `[original, edited]`: the ceiling an editor can reach.
    Oracle,
    /// The gold program moved to a seeded random place, `[original, edited]`: shows that *where*
    /// the edit lands matters, not merely that an extra image was sent.
    Random,
    /// A question-blind grid of crops, `[original, tile_1..k]`: a strong baseline at an equal
    /// per-image budget.
    Tiles,
}

impl Condition {
    pub const ALL: [Condition; 5] = [
        Condition::Direct,
        Condition::Etchr,
        Condition::Oracle,
        Condition::Random,
        Condition::Tiles,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Direct => "direct",
            Condition::Etchr => "etchr",
            Condition::Oracle => "oracle",
            Condition::Random => "random",
            Condition::Tiles => "tiles",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Condition::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown condition {s:?}: use direct, etchr, oracle, random or tiles")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Condition::ALL {
            assert_eq!(c.as_str().parse::<Condition>().unwrap(), c);
        }
        assert_eq!(" Oracle ".parse::<Condition>().unwrap(), Condition::Oracle);
        assert!("magic".parse::<Condition>().is_err());
    }
}
