//! The results as Markdown tables: printed at the end of a run, written to `results.md`, and
//! pasted into `bench/RESULTS.md`.

use std::fmt::Write as _;

use etchr_data::Family;

use crate::results::{ConditionSummary, Results};

fn pct(correct: usize, n: usize) -> String {
    if n == 0 {
        "–".into()
    } else {
        format!("{:.0} % ({correct}/{n})", 100.0 * correct as f64 / n as f64)
    }
}

pub(crate) fn p_value(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The families present in the run, in the canonical order.
fn families(summary: &[ConditionSummary]) -> Vec<Family> {
    Family::ALL
        .into_iter()
        .filter(|f| summary.iter().any(|s| s.families.contains_key(f.name())))
        .collect()
}

/// Pass@1 per family and overall, McNemar against direct, cost and latency per item.
pub fn markdown(results: &Results) -> String {
    let s = &results.summary;
    let fams = families(s);
    let mut out = String::new();
    let _ = write!(out, "| condition |");
    for f in &fams {
        let _ = write!(out, " {} |", f.name());
    }
    let _ = writeln!(
        out,
        " **overall** | vs direct: b / c, p | calls / item | images / item | Mpx / item | added ms (mean / median) | errors |"
    );
    let _ = write!(out, "|---|");
    for _ in &fams {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out, "---:|---:|---:|---:|---:|---:|---:|");
    for c in s {
        let _ = write!(out, "| {} |", c.condition);
        for f in &fams {
            let sc = c.families.get(f.name()).copied().unwrap_or_default();
            let _ = write!(out, " {} |", pct(sc.correct, sc.n));
        }
        let m = match &c.mcnemar {
            Some(m) => format!("{} / {}, p = {}", m.b, m.c, p_value(m.p_value)),
            None => "–".into(),
        };
        let _ = writeln!(
            out,
            " **{}** | {} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} | {} |",
            pct(c.overall.correct, c.overall.n),
            m,
            c.calls_per_item,
            c.images_per_item,
            c.pixels_per_item / 1e6,
            c.added_ms_mean,
            c.added_ms_median,
            c.errors
        );
    }
    out
}

/// Per family: McNemar b / c / p of each condition against direct.
pub fn mcnemar_by_family(results: &Results) -> String {
    let s = &results.summary;
    let fams = families(s);
    let mut out = String::new();
    let _ = write!(out, "| vs direct (b / c, p) |");
    for f in &fams {
        let _ = write!(out, " {} |", f.name());
    }
    let _ = writeln!(out);
    let _ = write!(out, "|---|");
    for _ in &fams {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out);
    for c in s.iter().filter(|c| !c.mcnemar_families.is_empty()) {
        let _ = write!(out, "| {} |", c.condition);
        for f in &fams {
            match c.mcnemar_families.get(f.name()) {
                Some(m) => {
                    let _ = write!(out, " {} / {}, p = {} |", m.b, m.c, p_value(m.p_value));
                }
                None => {
                    let _ = write!(out, " – |");
                }
            }
        }
        let _ = writeln!(out);
    }
    out
}

/// Per family: the mean IoU of the first planned program's focus with the gold region, for the
/// conditions that planned one. Empty when none did.
pub fn focus_iou_by_family(results: &Results) -> String {
    let s = &results.summary;
    let planned: Vec<&ConditionSummary> =
        s.iter().filter(|c| c.first_focus_iou.is_some()).collect();
    if planned.is_empty() {
        return String::new();
    }
    let fams = families(s);
    let mut out = String::new();
    let _ = write!(out, "| first plan's focus IoU |");
    for f in &fams {
        let _ = write!(out, " {} |", f.name());
    }
    let _ = writeln!(out, " **overall** |");
    let _ = write!(out, "|---|");
    for _ in &fams {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out, "---:|");
    for c in planned {
        let _ = write!(out, "| {} |", c.condition);
        for f in &fams {
            match c.first_focus_iou_families.get(f.name()) {
                Some(iou) => {
                    let _ = write!(out, " {iou:.2} |");
                }
                None => {
                    let _ = write!(out, " – |");
                }
            }
        }
        let _ = writeln!(out, " **{:.2}** |", c.first_focus_iou.unwrap_or_default());
    }
    out
}
