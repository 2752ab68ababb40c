//! What a run records (per item and condition) and the summary computed from it: the schema of
//! `results.json`.

use std::collections::BTreeMap;

use etchr_data::{AnswerFormat, Family};
use serde::{Deserialize, Serialize};

use crate::condition::Condition;
use crate::stats::{mean, median, McNemar, Score};

/// Pass@1's match (BENCHMARK.md: strict string match): both sides trimmed, then compared
/// byte for byte, case-sensitively. Codes are upper-case by construction and the reader
/// upper-cases what it reads, so strictness costs the emulator nothing; a real MLLM that answers
/// a code in lower case is counted wrong here and right in [`matches_loose`].
pub fn matches_strict(answer: &str, gold: &str) -> bool {
    answer.trim() == gold.trim()
}

/// A looser match reported alongside (never in Pass@1): case-insensitive, inner whitespace
/// ignored. The code alphabet has no look-alikes, so case folding cannot merge two codes.
pub fn matches_loose(answer: &str, gold: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_uppercase)
            .collect()
    };
    norm(answer) == norm(gold)
}

/// One image shown to the upstream besides the original (an edited view or a tile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// `gold`, `random`, `tile 3`, `step 1`, ...
    pub label: String,
    /// The program in the compact text form, as rendered (original pixels).
    pub program: String,
    pub width: u32,
    pub height: u32,
    /// Thumbnail path relative to the output directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb: Option<String>,
}

/// One condition's run of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionResult {
    pub condition: Condition,
    /// The extracted answer (the loop's extraction: last `\boxed{}`, then `ANSWER:`, then text).
    pub answer: String,
    /// Strict match: what Pass@1 counts.
    pub correct: bool,
    /// [`matches_loose`].
    pub correct_loose: bool,
    pub calls: usize,
    pub images_sent: usize,
    /// Pixels of every image as the upstream received it (after fitting to its limits), summed
    /// over calls.
    pub pixels_sent: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Time inside upstream calls.
    pub upstream_ms: f64,
    /// The condition's whole time, edits included.
    pub total_ms: f64,
    /// `total_ms - upstream_ms`: what the sidecar (or the harness's edit) added.
    pub added_ms: f64,
    /// The reply the answer came from.
    pub reply: String,
    pub views: Vec<ViewRecord>,
    /// `evr`'s verdict on the edit, where there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_helps: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Set when the condition failed (counted as wrong).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Notes on how the edit was made (e.g. a random program whose maze path was dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// IoU of the first planned program's focus (`Program::focus`: the last box, ellipse or
    /// highlight, else the crop) with the item's gold region; 0 when it singles nothing out.
    /// The planner's counterpart of `etchr train metrics`' one-call IoU, which scores the
    /// model's own decode. Only where the loop planned an edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_focus_iou: Option<f64>,
}

impl ConditionResult {
    /// A run with nothing recorded yet.
    pub fn new(condition: Condition) -> Self {
        Self {
            condition,
            answer: String::new(),
            correct: false,
            correct_loose: false,
            calls: 0,
            images_sent: 0,
            pixels_sent: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            upstream_ms: 0.0,
            total_ms: 0.0,
            added_ms: 0.0,
            reply: String::new(),
            views: Vec::new(),
            edit_helps: None,
            stop_reason: None,
            error: None,
            notes: Vec::new(),
            first_focus_iou: None,
        }
    }

    /// A failed run: counted as wrong, with the reason kept.
    pub fn failed(condition: Condition, error: String, total_ms: f64) -> Self {
        Self {
            error: Some(error),
            total_ms,
            ..Self::new(condition)
        }
    }
}

/// One item and every condition's result on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub id: String,
    pub family: Family,
    pub question: String,
    pub gold: String,
    pub answer_format: AnswerFormat,
    pub small_text: bool,
    pub answer_text_px_at_1024: f64,
    pub width: u32,
    pub height: u32,
    pub gold_program: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb: Option<String>,
    pub results: Vec<ConditionResult>,
}

impl ItemRecord {
    pub fn result(&self, c: Condition) -> Option<&ConditionResult> {
        self.results.iter().find(|r| r.condition == c)
    }
}

/// One condition over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionSummary {
    pub condition: Condition,
    pub overall: Score,
    pub families: BTreeMap<String, Score>,
    /// Against `direct` on the same items (absent for `direct` itself, or without `direct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcnemar: Option<McNemar>,
    /// Per family, against `direct`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcnemar_families: BTreeMap<String, McNemar>,
    /// Loose-match accuracy, for comparison only.
    pub overall_loose: Score,
    pub calls_per_item: f64,
    pub images_per_item: f64,
    pub pixels_per_item: f64,
    pub upstream_ms_mean: f64,
    pub added_ms_mean: f64,
    pub added_ms_median: f64,
    pub errors: usize,
    /// Mean [`ConditionResult::first_focus_iou`] over the items that have one, overall and per
    /// family (absent for conditions that plan no edit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_focus_iou: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub first_focus_iou_families: BTreeMap<String, f64>,
}

/// Run-wide facts, for whoever reads the results later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub upstream: String,
    pub provider: String,
    pub model: String,
    pub strategy: String,
    pub planner: String,
    pub conditions: Vec<Condition>,
    pub items_dir: String,
    pub items: usize,
    pub tile_grid: u32,
    pub max_side: u32,
    pub images_per_call: usize,
    pub seed: u64,
    pub concurrency: usize,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub started: String,
    pub wall_s: f64,
    pub etchr_version: String,
}

/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub meta: Meta,
    pub summary: Vec<ConditionSummary>,
    pub items: Vec<ItemRecord>,
}

/// Summarises every condition in `conditions` over `items`.
pub fn summarise(items: &[ItemRecord], conditions: &[Condition]) -> Vec<ConditionSummary> {
    conditions
        .iter()
        .map(|&c| summarise_one(items, c))
        .collect()
}

fn summarise_one(items: &[ItemRecord], c: Condition) -> ConditionSummary {
    let rows: Vec<(&ItemRecord, &ConditionResult)> = items
        .iter()
        .filter_map(|i| i.result(c).map(|r| (i, r)))
        .collect();
    let mut families: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for (i, r) in &rows {
        families
            .entry(i.family.name().to_string())
            .or_default()
            .push(r.correct);
    }
    let pairs = |fam: Option<Family>| -> Option<McNemar> {
        let pairs: Vec<(bool, bool)> = rows
            .iter()
            .filter(|(i, _)| fam.is_none_or(|f| i.family == f))
            .filter_map(|(i, r)| i.result(Condition::Direct).map(|d| (d.correct, r.correct)))
            .collect();
        (c != Condition::Direct && !pairs.is_empty()).then(|| McNemar::from_pairs(pairs))
    };
    let mut mcnemar_families = BTreeMap::new();
    for f in Family::ALL {
        if let Some(m) = pairs(Some(f)) {
            mcnemar_families.insert(f.name().to_string(), m);
        }
    }
    let mut ious: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, r) in &rows {
        if let Some(iou) = r.first_focus_iou {
            ious.entry(i.family.name().to_string())
                .or_default()
                .push(iou);
        }
    }
    let all_ious: Vec<f64> = ious.values().flatten().copied().collect();
    let n = rows.len().max(1) as f64;
    let added: Vec<f64> = rows.iter().map(|(_, r)| r.added_ms).collect();
    let upstream: Vec<f64> = rows.iter().map(|(_, r)| r.upstream_ms).collect();
    ConditionSummary {
        condition: c,
        overall: Score::from_outcomes(rows.iter().map(|(_, r)| r.correct)),
        overall_loose: Score::from_outcomes(rows.iter().map(|(_, r)| r.correct_loose)),
        families: families
            .into_iter()
            .map(|(k, v)| (k, Score::from_outcomes(v)))
            .collect(),
        mcnemar: pairs(None),
        mcnemar_families,
        calls_per_item: rows.iter().map(|(_, r)| r.calls as f64).sum::<f64>() / n,
        images_per_item: rows.iter().map(|(_, r)| r.images_sent as f64).sum::<f64>() / n,
        pixels_per_item: rows.iter().map(|(_, r)| r.pixels_sent as f64).sum::<f64>() / n,
        upstream_ms_mean: mean(&upstream),
        added_ms_mean: mean(&added),
        added_ms_median: median(&added),
        errors: rows.iter().filter(|(_, r)| r.error.is_some()).count(),
        first_focus_iou: (!all_ious.is_empty()).then(|| mean(&all_ious)),
        first_focus_iou_families: ious.into_iter().map(|(k, v)| (k, mean(&v))).collect(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An item of `family` with the given condition results (tests only).
    pub(crate) fn item_with(family: Family, results: Vec<ConditionResult>) -> ItemRecord {
        ItemRecord {
            id: String::new(),
            family,
            question: String::new(),
            gold: "X".into(),
            answer_format: AnswerFormat::Code,
            small_text: true,
            answer_text_px_at_1024: 5.0,
            width: 10,
            height: 10,
            gold_program: String::new(),
            thumb: None,
            results,
        }
    }

    /// A run of `direct` and `etchr` over `items`, summarised (tests only).
    pub(crate) fn results_with(items: Vec<ItemRecord>) -> Results {
        let meta: Meta = serde_json::from_value(serde_json::json!({
            "upstream": "", "provider": "", "model": "", "strategy": "evr", "planner": "",
            "conditions": ["direct", "etchr"], "items_dir": "", "items": items.len(),
            "tile_grid": 2, "max_side": 1024, "images_per_call": 4, "seed": 0,
            "concurrency": 1, "started": "", "wall_s": 0.0, "etchr_version": ""
        }))
        .unwrap();
        Results {
            meta,
            summary: summarise(&items, &[Condition::Direct, Condition::Etchr]),
            items,
        }
    }

    #[test]
    fn the_first_plans_focus_iou_is_averaged_per_family_over_planned_items() {
        let record = |family: Family, iou: Option<f64>| {
            let mut r = ConditionResult::new(Condition::Etchr);
            r.first_focus_iou = iou;
            item_with(family, vec![r, ConditionResult::new(Condition::Direct)])
        };
        let items = [
            record(Family::Orientation, Some(0.8)),
            record(Family::Orientation, Some(0.2)),
            record(Family::Maze, Some(0.0)),
            record(Family::Maze, None),
        ];
        let s = summarise(&items, &[Condition::Direct, Condition::Etchr]);
        assert_eq!(s[0].first_focus_iou, None);
        assert!(s[0].first_focus_iou_families.is_empty());
        assert!((s[1].first_focus_iou.unwrap() - 1.0 / 3.0).abs() < 1e-9);
        assert!((s[1].first_focus_iou_families["orientation"] - 0.5).abs() < 1e-9);
        assert_eq!(s[1].first_focus_iou_families["maze"], 0.0);
    }

    #[test]
    fn strict_is_trimmed_and_case_sensitive() {
        assert!(matches_strict(" AB3CD \n", "AB3CD"));
        assert!(!matches_strict("ab3cd", "AB3CD"));
        assert!(matches_loose("ab3 cd", "AB3CD"));
        assert!(!matches_strict("19.30", "19.3"));
    }
}
