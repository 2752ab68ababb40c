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

/// A table's header row and alignment row: `first`, one column per family, then `tail`, all
/// but the first right-aligned.
fn header(out: &mut String, first: &str, fams: &[Family], tail: &[&str]) {
    let names = fams.iter().map(|f| f.name()).chain(tail.iter().copied());
    let _ = write!(out, "| {first} |");
    for name in names {
        let _ = write!(out, " {name} |");
    }
    let _ = write!(out, "\n|---|");
    for _ in 0..fams.len() + tail.len() {
        let _ = write!(out, "---:|");
    }
    let _ = writeln!(out);
}

/// Pass@1 per family and overall, McNemar against direct, cost and latency per item.
pub fn markdown(results: &Results) -> String {
    let s = &results.summary;
    let fams = families(s);
    let mut out = String::new();
    header(
        &mut out,
        "condition",
        &fams,
        &[
            "**overall**",
            "vs direct: b / c, p",
            "calls / item",
            "images / item",
            "Mpx / item",
            "added ms (mean / median)",
            "errors",
        ],
    );
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
    header(&mut out, "vs direct (b / c, p)", &fams, &[]);
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
    header(&mut out, "first plan's focus IoU", &fams, &["**overall**"]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Condition;
    use crate::results::tests::{item_with, results_with};
    use crate::results::ConditionResult;

    #[test]
    fn tables_have_a_column_per_family_and_the_focus_table_only_planned_conditions() {
        let item = |family, iou| {
            let mut etchr = ConditionResult::new(Condition::Etchr);
            etchr.correct = true;
            etchr.first_focus_iou = Some(iou);
            item_with(family, vec![ConditionResult::new(Condition::Direct), etchr])
        };
        let results = results_with(vec![
            item(Family::Maze, 0.25),
            item(Family::Orientation, 0.5),
        ]);
        let md = markdown(&results);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| condition | maze | orientation | **overall** | vs direct: b / c, p | calls / item \
             | images / item | Mpx / item | added ms (mean / median) | errors |"
        );
        assert_eq!(lines[1], format!("|---|{}", "---:|".repeat(9)));
        assert!(lines[3].starts_with("| etchr | 100 % (1/1) | 100 % (1/1) | **100 % (2/2)** |"));
        let by_family = mcnemar_by_family(&results);
        assert!(by_family
            .starts_with("| vs direct (b / c, p) | maze | orientation |\n|---|---:|---:|\n"));
        assert_eq!(
            focus_iou_by_family(&results),
            "| first plan's focus IoU | maze | orientation | **overall** |\n\
             |---|---:|---:|---:|\n\
             | etchr | 0.25 | 0.50 | **0.38** |\n"
        );
    }
}
