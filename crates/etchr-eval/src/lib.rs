//! The offline benchmark harness (`etchr eval`, spec: `shared/BENCHMARK.md`).
//!
//! Items written by `etchr gen-data` go to an upstream under several conditions — `direct`,
//! `etchr` (the loop), `oracle` (the gold edit), `random` (the gold edit moved elsewhere) and
//! `tiles` (a question-blind grid) — through the real upstream client and loop code, so the same
//! command measures the reader emulator today and vLLM, DashScope, Gemini or Kimi given a URL
//! and a key. It reports Pass@1 per family with an exact McNemar test against `direct`, the calls
//! and pixels each condition spends, and the latency the sidecar adds, as a table, `results.json`
//! and a browsable `report.html`.
//!
//! The editing model is pluggable: [`run_eval_with_planner`] takes any [`Planner`]; the `etchr`
//! binary passes the editing model it ships (`etchr eval --planner model`, the default) or none
//! (`--planner tile-search`: the loop's question-blind `TileSearch` fallback).

mod args;
pub mod compare;
pub mod condition;
pub mod edits;
mod error;
pub mod harness;
pub mod html;
pub mod prepare;
pub mod results;
pub mod stats;
pub mod table;
pub mod thumbs;

pub use args::EvalArgs;
pub use condition::Condition;
pub use error::EvalError;
pub use results::Results;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etchr_data::{read_set, Family, Item};
use etchr_reason::{LoopConfig, Planner, Reasoner, Strategy};
use etchr_upstream::UpstreamConfig;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::harness::{Harness, HarnessOptions};
use crate::prepare::EditKnobs;
use crate::results::{summarise, ItemRecord, Meta};
use crate::thumbs::Thumbs;

/// `etchr eval` as the CLI runs it: the loop plans with its fallback planner.
pub fn run_eval(args: EvalArgs) -> Result<Results, EvalError> {
    run_eval_with_planner(args, None)
}

/// Selects the items: `--families`, then the first `--limit` of each family, in set order.
pub fn select_items(
    items: Vec<Item>,
    families: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<Item>, EvalError> {
    let wanted: Option<Vec<Family>> = match families {
        None => None,
        Some(s) if s.trim().is_empty() || s.trim() == "all" => None,
        Some(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| f.parse::<Family>().map_err(EvalError::Args))
                .collect::<Result<_, _>>()?,
        ),
    };
    let mut taken = std::collections::HashMap::<Family, usize>::new();
    Ok(items
        .into_iter()
        .filter(|i| wanted.as_ref().is_none_or(|w| w.contains(&i.family)))
        .filter(|i| {
            let n = taken.entry(i.family).or_default();
            *n += 1;
            limit.is_none_or(|l| *n <= l)
        })
        .collect())
}

/// `etchr eval` with an editing model (or any planner) for the `etchr` condition.
pub fn run_eval_with_planner(
    args: EvalArgs,
    planner: Option<Arc<dyn Planner>>,
) -> Result<Results, EvalError> {
    let strategy: Strategy = args
        .strategy
        .parse()
        .map_err(|e| EvalError::Args(format!("--strategy: {e}")))?;
    if args.concurrency == 0 || args.tile_grid == 0 || args.images_per_call < 2 {
        return Err(EvalError::Args(
            "--concurrency and --tile-grid must be at least 1, --images-per-call at least 2".into(),
        ));
    }
    if args.max_side < 16 || args.deadline_secs.is_nan() || args.deadline_secs <= 0.0 {
        return Err(EvalError::Args(
            "--max-side must be at least 16 and --deadline-secs positive".into(),
        ));
    }
    let mut args = args;
    let mut seen = Vec::new();
    args.conditions.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    if args.conditions.is_empty() {
        return Err(EvalError::Args("--conditions: none given".into()));
    }
    let all = read_set(&args.items).map_err(EvalError::Items)?;
    let items = select_items(all, args.families.as_deref(), args.limit)?;
    if items.is_empty() {
        return Err(EvalError::Args(format!(
            "no items selected from {}",
            args.items.display()
        )));
    }

    let mut upstream =
        UpstreamConfig::from_url(&args.upstream, &args.provider, args.upstream_key.as_deref())?;
    upstream.model = args.model.clone();
    let planner_name = match (strategy, &planner) {
        (Strategy::Tools, _) => "upstream_tools".to_string(),
        (_, Some(p)) => p.name().to_string(),
        (_, None) => "tile_search".to_string(),
    };
    let deadline = Duration::from_secs_f64(args.deadline_secs);
    let mut params = Map::new();
    params.insert("temperature".into(), Value::from(args.temperature));
    if let Some(m) = args.max_tokens {
        params.insert("max_tokens".into(), Value::from(m));
    }
    let opts = HarnessOptions {
        items_dir: args.items.clone(),
        conditions: args.conditions.clone(),
        strategy,
        max_steps: args.max_steps,
        model: args.model.clone(),
        params,
        knobs: EditKnobs {
            tile_grid: args.tile_grid,
            max_side: args.max_side,
            seed: args.seed,
        },
        images_per_call: args.images_per_call,
        deadline,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| EvalError::write(&args.out, e))?;
    let thumbs = Thumbs {
        out_dir: args.out.clone(),
        side: args.thumb_side,
    };

    let started_at = utc_now();
    let t0 = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(EvalError::Runtime)?;
    let records = runtime.block_on(async {
        if upstream.model.is_none() && upstream.provider == etchr_upstream::Provider::Vllm {
            let model = discover_model(&upstream).await?;
            tracing::info!(%model, "no --model: using the upstream's first listed model");
            upstream.model = Some(model);
        }
        let backend = etchr_upstream::build(&upstream)?;
        let config = LoopConfig {
            deadline,
            ..LoopConfig::default()
        };
        let mut reasoner = Reasoner::new(backend.clone(), config);
        if let Some(p) = planner {
            reasoner = reasoner.with_planner(p);
        }
        let harness = Harness::new(backend, reasoner, opts, thumbs);
        Ok::<_, EvalError>(run_all(&harness, items.clone(), &args).await)
    })?;
    let served_model = upstream.model.clone();
    runtime.shutdown_timeout(Duration::from_secs(5));

    let summary = summarise(&records, &args.conditions);
    let results = Results {
        meta: Meta {
            upstream: args.upstream.clone(),
            provider: args.provider.clone(),
            model: served_model.unwrap_or_default(),
            strategy: strategy.to_string(),
            planner: planner_name,
            conditions: args.conditions.clone(),
            items_dir: args.items.display().to_string(),
            items: records.len(),
            tile_grid: args.tile_grid,
            max_side: args.max_side,
            images_per_call: args.images_per_call,
            seed: args.seed,
            concurrency: args.concurrency,
            started: started_at,
            wall_s: t0.elapsed().as_secs_f64(),
            etchr_version: env!("CARGO_PKG_VERSION").to_string(),
        },
        summary,
        items: records,
    };
    write_outputs(&results, &args.out)?;
    println!("{}", table::markdown(&results));
    print!("{}", table::focus_iou_by_family(&results));
    println!(
        "{} items in {:.0} s; wrote {}/results.json, results.md and report.html",
        results.meta.items,
        results.meta.wall_s,
        args.out.display()
    );
    Ok(results)
}

/// A vLLM-style server serves one model and names it at `GET /models`: with no `--model`, that
/// is the one to ask (the reader emulator works the same way).
pub async fn discover_model(upstream: &UpstreamConfig) -> Result<String, EvalError> {
    let base = upstream.resolved_base_url()?;
    let url = format!("{}/models", base.trim_end_matches('/'));
    let client = etchr_upstream::http_client()?;
    let mut req = client.get(&url).timeout(Duration::from_secs(30));
    if let Some(key) = upstream.resolved_key() {
        req = req.bearer_auth(key.expose());
    }
    let no_model = |why: String| {
        EvalError::Args(format!(
            "no --model given and {url} did not name one ({why}); pass --model"
        ))
    };
    let resp = req.send().await.map_err(|e| no_model(e.to_string()))?;
    let body: Value = resp.json().await.map_err(|e| no_model(e.to_string()))?;
    body["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| no_model("an empty list".into()))
}

/// Runs the items, `concurrency` at a time, with a progress bar over item × condition.
async fn run_all(harness: &Harness, items: Vec<Item>, args: &EvalArgs) -> Vec<ItemRecord> {
    let total = (items.len() * args.conditions.len()) as u64;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} item×condition, eta {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut set = tokio::task::JoinSet::new();
    for (k, item) in items.into_iter().enumerate() {
        let (h, sem, bar) = (harness.clone(), sem.clone(), bar.clone());
        set.spawn(async move {
            let _permit = sem
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            bar.set_message(item.id.clone());
            let rec = h.run_item(item, |_| bar.inc(1)).await;
            (k, rec)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => out.push(x),
            Err(e) => tracing::error!(error = %e, "an item's task failed"),
        }
    }
    bar.finish_and_clear();
    out.sort_by_key(|(k, _)| *k);
    out.into_iter().map(|(_, r)| r).collect()
}

/// `results.json`, `results.md` and `report.html` in `out`.
pub fn write_outputs(results: &Results, out: &std::path::Path) -> Result<(), EvalError> {
    let write = |name: &str, bytes: Vec<u8>| {
        let p = out.join(name);
        std::fs::write(&p, bytes).map_err(|e| EvalError::write(p, e))
    };
    write("results.json", serde_json::to_vec_pretty(results)?)?;
    let md = format!(
        "{}\n{}\n{}",
        table::markdown(results),
        table::mcnemar_by_family(results),
        table::focus_iou_by_family(results)
    );
    write("results.md", md.into_bytes())?;
    write("report.html", html::report(results).into_bytes())?;
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (no date crate for one line of output).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + (m <= 2) as i64;
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
