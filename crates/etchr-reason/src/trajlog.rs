//! The trajectory log: every run's trace, appended as one JSON line, with its images as files.
//! This is the editing model's training-data format (Stage 1 imitation, Stage 2 RL).
//!
//! Layout of a log directory:
//!
//! ```text
//! trajectories.jsonl        one TrajectoryRecord per line
//! images/<sha256>.<ext>     every original and edited image, content-addressed
//! ```
//!
//! Crash safety: a killed process never leaves a torn record that a reader would take for a real
//! one. Images are written first (temp file, fsync, rename, so an image path either names a whole
//! file or nothing); then the record is appended with a single `write` of the whole line under a
//! lock, and fsynced. A crash mid-write can leave at most a trailing partial line (no newline):
//! [`TrajectoryLog::open`] truncates it, and [`read_records`] ignores it.
//!
//! One process should own a directory (the lock is in-process); appends from several processes
//! still do not interleave within a line on Linux (`O_APPEND`, one write per line), but a torn
//! tail from one of them could be truncated by another's `open`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use etchr_ops::Program;
use serde::{Deserialize, Serialize};

use crate::image::LoopImage;
use crate::reasoner::{ReasonOutcome, Strategy};
use crate::trace::{StepKind, Trace};

pub const LOG_FILE: &str = "trajectories.jsonl";
pub const IMAGE_DIR: &str = "images";
/// Bumped when the record shape changes incompatibly.
pub const RECORD_VERSION: u32 = 1;

/// One training example: a whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryRecord {
    pub version: u32,
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    pub question: String,
    /// Relative to the log directory.
    pub original_image: String,
    pub strategy: Strategy,
    pub planner: String,
    pub steps: Vec<RecordStep>,
    pub answer: String,
    /// The full trace (image paths filled in).
    pub trace: Trace,
}

/// One step, flattened for training: the reasoning that led to it, the program and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordStep {
    pub kind: StepKind,
    /// For upstream calls, the reply; for edits, the reasoning the planner was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Program>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_text: Option<String>,
    /// The edited image, relative to the log directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// `evr`'s verdict on this edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helps: Option<bool>,
}

/// An open trajectory log.
#[derive(Debug)]
pub struct TrajectoryLog {
    dir: PathBuf,
    file: Mutex<File>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TrajectoryLog {
    /// Opens (creating) the log in `dir`, truncating a torn trailing line left by a crash.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(dir.join(IMAGE_DIR))?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(dir.join(LOG_FILE))?;
        repair_tail(&mut file)?;
        Ok(Self {
            dir,
            file: Mutex::new(file),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the run's images, then appends its record. Blocking I/O with fsyncs: call it off the
    /// async runtime.
    pub fn append(&self, outcome: &ReasonOutcome) -> io::Result<TrajectoryRecord> {
        let original = self.store_image(&outcome.original)?;
        let mut paths = Vec::with_capacity(outcome.views.len());
        for v in &outcome.views {
            paths.push(self.store_image(v)?);
        }
        let mut trace = outcome.trace.clone();
        trace.original.path = Some(original.clone());
        for step in &mut trace.steps {
            if let Some(edit) = &mut step.edit {
                edit.image.path = paths.get(edit.view.wrapping_sub(1)).cloned();
            }
        }
        let steps = trace
            .steps
            .iter()
            .map(|s| RecordStep {
                kind: s.kind,
                reasoning: match (&s.call, &s.edit) {
                    (Some(c), _) => Some(c.reply.clone()),
                    (None, Some(e)) => e.context.clone(),
                    _ => s.error.clone(),
                },
                program: s.edit.as_ref().map(|e| e.program.clone()),
                program_text: s.edit.as_ref().map(|e| e.program_text.clone()),
                image: s.edit.as_ref().and_then(|e| e.image.path.clone()),
                planner: s.edit.as_ref().map(|e| e.planner.clone()),
                helps: s.helps,
            })
            .collect();
        let record = TrajectoryRecord {
            version: RECORD_VERSION,
            id: trace.id.clone(),
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            question: trace.question.clone(),
            original_image: original,
            strategy: trace.strategy,
            planner: trace.planner.clone(),
            steps,
            answer: trace.answer.clone(),
            trace,
        };
        let mut line = serde_json::to_vec(&record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.append_line(&line)?;
        Ok(record)
    }

    /// Appends one complete line with a single write, then fsyncs.
    fn append_line(&self, line: &[u8]) -> io::Result<()> {
        let mut file = self
            .file
            .lock()
            .map_err(|_| io::Error::other("trajectory log lock poisoned"))?;
        file.write_all(line)?;
        file.sync_data()
    }

    /// Stores an image under its hash (temp file + fsync + rename); returns its relative path.
    fn store_image(&self, image: &LoopImage) -> io::Result<String> {
        let rel = format!("{IMAGE_DIR}/{}.{}", image.info.sha256, image.extension());
        let path = self.dir.join(&rel);
        if path.exists() {
            return Ok(rel);
        }
        let tmp = self.dir.join(IMAGE_DIR).join(format!(
            ".tmp-{}-{}-{}",
            image.info.sha256,
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&image.bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        if let Ok(d) = File::open(self.dir.join(IMAGE_DIR)) {
            let _ = d.sync_all();
        }
        Ok(rel)
    }
}

/// Cuts a trailing partial line (a crash mid-append) so the next append starts on a fresh line.
fn repair_tail(file: &mut File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut content = Vec::with_capacity(len as usize);
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut content)?;
    if content.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    tracing::warn!(
        dropped_bytes = content.len() - keep,
        "trajectory log ended in a torn record; truncating it"
    );
    file.set_len(keep as u64)?;
    file.sync_all()
}

/// Every complete record of the log in `dir`, in order. A trailing partial line is ignored; a
/// complete line that does not parse is an error.
pub fn read_records(dir: impl AsRef<Path>) -> io::Result<Vec<TrajectoryRecord>> {
    let content = match fs::read(dir.as_ref().join(LOG_FILE)) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let complete = match content.iter().rposition(|&b| b == b'\n') {
        Some(i) => &content[..=i],
        None => return Ok(Vec::new()),
    };
    complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(io::Error::other))
        .collect()
}
