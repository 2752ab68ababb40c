//! Extra Stage 1 trajectories from trajectory-log directories (`trajectories.jsonl` plus
//! `images/`, as `etchr-reason` writes them). Read loosely (as JSON values) so the trainer
//! does not depend on the loop crate: from each record, the *first* edit step that carries a
//! program (it was planned on the original image, so its coordinates are the original's) and
//! that `evr` did not judge unhelpful, with the reasoning the planner was given as context.

use anyhow::{Context, Result};
use etchr_model::{program_to_tokens_lossy, EditingModel, Frame, Prepared, TrainExample};
use etchr_ops::{DecodeLimits, Program, Transform};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

/// Counts from reading one log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    pub records: usize,
    pub used: usize,
    /// Records without a usable edit step, or whose line or image could not be read.
    pub skipped: usize,
}

/// Reads the examples of the log in `dir`.
pub fn read_log(dir: &Path, model: &EditingModel) -> Result<(Vec<TrainExample>, LogStats)> {
    let path = dir.join("trajectories.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut stats = LogStats::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        stats.records += 1;
        match example_of(dir, line, model) {
            Ok(Some(e)) => {
                stats.used += 1;
                out.push(e);
            }
            Ok(None) => stats.skipped += 1,
            Err(e) => {
                tracing::warn!(log = %dir.display(), error = %e, "skipping a trajectory record");
                stats.skipped += 1;
            }
        }
    }
    Ok((out, stats))
}

fn example_of(dir: &Path, line: &str, model: &EditingModel) -> Result<Option<TrainExample>> {
    let rec: Value = serde_json::from_str(line)?;
    let question = rec["question"].as_str().context("no question")?.to_string();
    let image = rec["original_image"]
        .as_str()
        .context("no original_image")?;
    let Some(step) = rec["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| !s["program"].is_null())
    else {
        return Ok(None);
    };
    if step["helps"].as_bool() == Some(false) {
        return Ok(None);
    }
    let program: Program = serde_json::from_value(step["program"].clone())?;
    let context = step["reasoning"].as_str().unwrap_or_default().to_string();
    let bytes = std::fs::read(dir.join(image))
        .with_context(|| format!("reading {}", dir.join(image).display()))?;
    let prepared = Prepared::from_encoded(
        &bytes,
        Frame::new(0, 0, Transform::identity()),
        model.config(),
        &DecodeLimits::default(),
    )?;
    let frame = prepared.frame.clone();
    let (tokens, _dropped) = program_to_tokens_lossy(&program, &frame, model.vocab());
    Ok(Some(TrainExample {
        prepared: Arc::new(prepared),
        question,
        context,
        tokens,
        original_size: (frame.view_width, frame.view_height),
        cue_regions: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use etchr_model::ModelConfig;
    use etchr_ops::{encode_image, OutputFormat, RgbImage};

    #[test]
    fn reads_the_first_helpful_edit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        let raw: Vec<u8> = (0..300 * 200 * 3).map(|i| (i % 251) as u8).collect();
        let img = RgbImage::from_raw(300, 200, raw).unwrap();
        std::fs::write(
            dir.path().join("images/a.png"),
            encode_image(&img, OutputFormat::Png).unwrap(),
        )
        .unwrap();
        let good = serde_json::json!({
            "question": "What is the code?",
            "original_image": "images/a.png",
            "steps": [
                {"kind": "upstream", "reasoning": "hmm"},
                {"kind": "edit", "reasoning": "zoom on the label",
                 "program": [{"op": "crop", "box": [10, 20, 110, 90]}, {"op": "zoom", "factor": 2}]}
            ]
        });
        let unhelpful = serde_json::json!({
            "question": "q", "original_image": "images/a.png",
            "steps": [{"kind": "edit", "helps": false, "program": [{"op": "rotate", "angle": 90}]}]
        });
        let missing = serde_json::json!({
            "question": "q", "original_image": "images/missing.png",
            "steps": [{"kind": "edit", "program": [{"op": "rotate", "angle": 90}]}]
        });
        let log = format!("{good}\n{unhelpful}\n{missing}\n\n");
        std::fs::write(dir.path().join("trajectories.jsonl"), log).unwrap();
        let model = EditingModel::new(ModelConfig::tiny(), 0, &Device::Cpu).unwrap();
        let (ex, stats) = read_log(dir.path(), &model).unwrap();
        assert_eq!(
            stats,
            LogStats {
                records: 3,
                used: 1,
                skipped: 2
            }
        );
        assert_eq!(ex[0].context, "zoom on the label");
        assert_eq!(ex[0].original_size, (300, 200));
        assert!(ex[0].tokens.len() >= 4, "{:?}", ex[0].tokens);
        etchr_model::Batch::new(&ex, &model).unwrap();
    }
}
