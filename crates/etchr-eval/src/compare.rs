//! Paired comparison of two evaluation runs on the same items (`etchr compare`): the ablation of
//! Stage 1 against Stage 1 + 2, or any two editing models, planners or strategies.
//!
//! Items are matched by id, so both runs must have used the same item set (a `--limit` or
//! `--families` subset is fine: only the items both runs hold are compared, and the table says
//! how many). Per family and overall: Pass@1 of the chosen condition in each run, and the exact
//! McNemar test on the discordant pairs (`b`: items run A got wrong and run B right; `c`: the
//! reverse).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use etchr_data::Family;
use serde::Serialize;

use crate::condition::Condition;
use crate::error::EvalError;
use crate::results::Results;
use crate::stats::{McNemar, Score};

/// `etchr compare`: two `etchr eval` runs, paired item by item.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Run A: an `etchr eval --out` directory (or its results.json).
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// Run B, the same way.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// The condition compared in both runs.
    #[arg(long, default_value = "etchr")]
    pub condition: Condition,
    /// Run A's condition, when it differs (e.g. `direct`).
    #[arg(long)]
    pub condition_a: Option<Condition>,
    /// Run B's condition, when it differs.
    #[arg(long)]
    pub condition_b: Option<Condition>,
    /// Column titles.
    #[arg(long, default_value = "A")]
    pub label_a: String,
    #[arg(long, default_value = "B")]
    pub label_b: String,
    /// Also write the comparison as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Prints the Markdown table (and writes the JSON when asked).
pub fn run_compare(args: CompareArgs) -> Result<Comparison, EvalError> {
    let a = load_results(&args.a)?;
    let b = load_results(&args.b)?;
    let c = compare(
        &a,
        args.condition_a.unwrap_or(args.condition),
        &b,
        args.condition_b.unwrap_or(args.condition),
    )?;
    print!("{}", markdown(&c, &args.label_a, &args.label_b));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&c)?)
            .map_err(|e| EvalError::write(path, e))?;
    }
    Ok(c)
}

/// One row of the comparison (a family, or everything).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedRow {
    pub a: Score,
    pub b: Score,
    /// `b` = A wrong and B right, `c` = A right and B wrong.
    pub mcnemar: McNemar,
}

/// Run A against run B.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub condition_a: Condition,
    pub condition_b: Condition,
    /// Items both runs hold with a result for their condition.
    pub paired: usize,
    /// Items only one of the runs holds (left out).
    pub unpaired: usize,
    pub overall: PairedRow,
    pub families: BTreeMap<String, PairedRow>,
}

/// Reads a run's `results.json` (the directory `etchr eval --out` wrote, or the file itself).
pub fn load_results(path: &Path) -> Result<Results, EvalError> {
    let file = if path.is_dir() {
        path.join("results.json")
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file)
        .map_err(|e| EvalError::Results(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        EvalError::Results(format!(
            "{} is not an eval results.json: {e}",
            file.display()
        ))
    })
}

/// Pairs the items of `a` (condition `ca`) with those of `b` (condition `cb`).
pub fn compare(
    a: &Results,
    ca: Condition,
    b: &Results,
    cb: Condition,
) -> Result<Comparison, EvalError> {
    let in_b: HashMap<&str, _> = b
        .items
        .iter()
        .filter_map(|i| i.result(cb).map(|r| (i.id.as_str(), r.correct)))
        .collect();
    let mut rows: Vec<(Family, bool, bool)> = Vec::new();
    let mut unpaired = 0;
    for item in &a.items {
        match (item.result(ca), in_b.get(item.id.as_str())) {
            (Some(ra), Some(&ok_b)) => rows.push((item.family, ra.correct, ok_b)),
            _ => unpaired += 1,
        }
    }
    let paired_ids = rows.len();
    unpaired += in_b.len().saturating_sub(paired_ids);
    if rows.is_empty() {
        return Err(EvalError::Results(format!(
            "the two runs share no item with a `{ca}` result in A and a `{cb}` result in B"
        )));
    }
    let row = |fam: Option<Family>| -> PairedRow {
        let sel: Vec<(bool, bool)> = rows
            .iter()
            .filter(|(f, _, _)| fam.is_none_or(|x| *f == x))
            .map(|&(_, x, y)| (x, y))
            .collect();
        PairedRow {
            a: Score::from_outcomes(sel.iter().map(|p| p.0)),
            b: Score::from_outcomes(sel.iter().map(|p| p.1)),
            mcnemar: McNemar::from_pairs(sel.iter().copied()),
        }
    };
    let families = Family::ALL
        .into_iter()
        .filter(|f| rows.iter().any(|(x, _, _)| x == f))
        .map(|f| (f.name().to_string(), row(Some(f))))
        .collect();
    Ok(Comparison {
        condition_a: ca,
        condition_b: cb,
        paired: paired_ids,
        unpaired,
        overall: row(None),
        families,
    })
}

fn pct(s: &Score) -> String {
    if s.n == 0 {
        "–".into()
    } else {
        format!("{:.0} % ({}/{})", 100.0 * s.pass_at_1, s.correct, s.n)
    }
}

/// The comparison as a Markdown table, one row per family and one overall.
pub fn markdown(c: &Comparison, label_a: &str, label_b: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| family | {label_a} ({}) | {label_b} ({}) | B − A, points | b / c | p (exact McNemar) |",
        c.condition_a, c.condition_b
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let line = |out: &mut String, name: &str, r: &PairedRow| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {:+.0} | {} / {} | {} |",
            pct(&r.a),
            pct(&r.b),
            100.0 * (r.b.pass_at_1 - r.a.pass_at_1),
            r.mcnemar.b,
            r.mcnemar.c,
            crate::table::p_value(r.mcnemar.p_value)
        );
    };
    for (name, r) in &c.families {
        line(&mut out, name, r);
    }
    line(&mut out, "**overall**", &c.overall);
    let _ = writeln!(
        out,
        "\n{} paired items{}; b = items {label_a} got wrong and {label_b} right, c = the reverse.",
        c.paired,
        if c.unpaired > 0 {
            format!(" ({} held by only one run, left out)", c.unpaired)
        } else {
            String::new()
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ConditionResult, ItemRecord};

    fn item(id: &str, family: Family, results: &[(Condition, bool)]) -> ItemRecord {
        let results = results
            .iter()
            .map(|&(c, ok)| {
                let mut r = ConditionResult::new(c);
                r.correct = ok;
                r
            })
            .collect();
        ItemRecord {
            id: id.into(),
            ..crate::results::tests::item_with(family, results)
        }
    }

    fn run(items: Vec<ItemRecord>) -> Results {
        Results {
            summary: Vec::new(),
            ..crate::results::tests::results_with(items)
        }
    }

    #[test]
    fn pairs_by_id_and_counts_discordant_items() {
        use Condition::{Direct, Etchr};
        use Family::{Chart, Maze};
        let a = run(vec![
            item("c1", Chart, &[(Etchr, false), (Direct, false)]),
            item("c2", Chart, &[(Etchr, true)]),
            item("m1", Maze, &[(Etchr, false)]),
            item("m2", Maze, &[(Etchr, false)]),
            item("only-a", Maze, &[(Etchr, true)]),
        ]);
        let b = run(vec![
            item("m2", Maze, &[(Etchr, true)]),
            item("m1", Maze, &[(Etchr, true)]),
            item("c2", Chart, &[(Etchr, false)]),
            item("c1", Chart, &[(Etchr, true)]),
            item("only-b", Chart, &[(Etchr, true)]),
        ]);
        let c = compare(&a, Etchr, &b, Etchr).unwrap();
        assert_eq!((c.paired, c.unpaired), (4, 2));
        assert_eq!((c.overall.mcnemar.b, c.overall.mcnemar.c), (3, 1));
        assert_eq!((c.overall.a.correct, c.overall.b.correct), (1, 3));
        let maze = c.families["maze"];
        assert_eq!((maze.mcnemar.b, maze.mcnemar.c, maze.a.n), (2, 0, 2));
        assert!((maze.mcnemar.p_value - 0.5).abs() < 1e-12);
        let md = markdown(&c, "Stage 1", "Stage 1 + 2");
        assert!(
            md.contains("| maze | 0 % (0/2) | 100 % (2/2) | +100 | 2 / 0 | 0.5000 |"),
            "{md}"
        );
        assert!(md.contains("2 held by only one run"), "{md}");

        // Another condition of the same run: etchr against that run's direct.
        let same = compare(&a, Direct, &a, Etchr).unwrap();
        assert_eq!(same.paired, 1);
        assert_eq!((same.overall.mcnemar.b, same.overall.mcnemar.c), (0, 0));
    }

    #[test]
    fn runs_without_common_items_are_an_error() {
        let a = run(vec![item("x", Family::Chart, &[(Condition::Etchr, true)])]);
        let b = run(vec![item("y", Family::Chart, &[(Condition::Etchr, true)])]);
        let e = compare(&a, Condition::Etchr, &b, Condition::Etchr).unwrap_err();
        assert!(e.to_string().contains("share no item"), "{e}");
    }
}
