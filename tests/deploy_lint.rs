//! The deployment files (`Dockerfile`, `deploy/docker-compose.yml`, `deploy/k8s/`) checked
//! without a container engine or a cluster.
//!
//! `deploy/lint.sh check` runs hadolint, `docker compose config` and kubernetes-validate from
//! `deploy/.venv` (`deploy/lint.sh install` puts them there). Without them that test prints
//! SKIPPED and passes, unless `ETCHR_REQUIRE_LINTERS=1` (set by `.ci/run`, which installs them)
//! makes it fail. The other tests need nothing but the files: they keep the deployment files
//! consistent with the code (variable names ETCHR reads, drain timings, image targets).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    let path = Path::new(ROOT).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn linters_required() -> bool {
    std::env::var("ETCHR_REQUIRE_LINTERS").is_ok_and(|v| v == "1")
}

#[test]
fn deploy_files_pass_the_linters() {
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("deploy/lint.sh"))
        .arg("check")
        .current_dir(ROOT)
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return skip_or_fail(&format!("cannot run bash: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => println!("{stdout}"),
        // deploy/lint.sh: the tools are not installed.
        Some(2) => skip_or_fail(stderr.trim()),
        code => panic!("deploy/lint.sh check failed ({code:?}):\n{stdout}\n{stderr}"),
    }
}

fn skip_or_fail(why: &str) {
    if linters_required() {
        panic!("ETCHR_REQUIRE_LINTERS=1 but the deploy lints cannot run: {why}");
    }
    eprintln!("SKIPPED: the deploy lints: {why}");
}

/// Every `ETCHR_*` name in `text`.
fn etchr_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("ETCHR_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The variables ETCHR reads: one per key of `config/etchr.toml` (which lists every key), the
/// clap `env = "..."` of `src/main.rs`, and the `&str = "ETCHR_..."` constants of the crates.
fn known_vars() -> BTreeSet<String> {
    let mut known = BTreeSet::new();
    let mut section = String::new();
    for line in read("config/etchr.toml").lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.replace('.', "__").to_ascii_uppercase() + "__";
        } else if let Some((key, _)) = line.split_once(" = ") {
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                known.insert(format!("ETCHR_{section}{}", key.to_ascii_uppercase()));
            }
        }
    }
    for line in read("src/main.rs").lines() {
        if let Some((_, tail)) = line.split_once("env = \"") {
            known.extend(etchr_vars(tail.split('"').next().unwrap_or("")));
        }
    }
    let mut sources = Vec::new();
    rust_files(&Path::new(ROOT).join("crates"), &mut sources);
    for path in sources {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            if let Some((_, tail)) = line.split_once("&str = \"") {
                known.extend(etchr_vars(tail.split('"').next().unwrap_or("")));
            }
        }
    }
    known
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn deploy_files() -> Vec<String> {
    let mut files = vec![
        "Dockerfile".to_string(),
        "deploy/docker-compose.yml".to_string(),
    ];
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let rel = path.strip_prefix(ROOT).expect("under the repo");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    walk(&Path::new(ROOT).join("deploy/k8s"), &mut files);
    files
}

#[test]
fn deploy_files_set_only_variables_etchr_reads() {
    let known = known_vars();
    for needed in ["ETCHR_LISTEN", "ETCHR_UPSTREAM_URL", "ETCHR_API_KEYS"] {
        assert!(known.contains(needed), "{needed} not found among {known:?}");
    }
    let mut unknown = Vec::new();
    for file in deploy_files() {
        for var in etchr_vars(&read(&file)) {
            if !known.contains(&var) {
                unknown.push(format!("{file}: {var}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "variables ETCHR does not read (typo, or a key missing from config/etchr.toml): {unknown:#?}"
    );
}

/// The first number after `key` on a line of `text` (`key: 75`, `key = 5`, `key: "5"`, `70s`).
fn number_after(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|line| {
            let (_, tail) = line.split_once(key)?;
            let digits: String = tail
                .trim_start_matches(|c: char| c == ':' || c == '=' || c == '"' || c.is_whitespace())
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
}

#[test]
fn orchestrators_wait_for_the_drain_before_killing() {
    let defaults = read("config/etchr.toml");
    let configmap = read("deploy/k8s/configmap.yaml");
    // How long in-flight requests may drain after the listener closes: shutdown_drain_secs,
    // or, where there is no such key, the request deadline.
    let setting =
        |key: &str| number_after(&configmap, key).or_else(|| number_after(&defaults, key));
    let drain = setting("shutdown_drain_secs")
        .or_else(|| setting("request_timeout_secs"))
        .expect("request_timeout_secs");

    let grace = number_after(&configmap, "shutdown_grace_secs").expect("configmap grace");
    assert!(
        grace > 0,
        "behind Kubernetes /readyz must fail for a while before closing"
    );
    let deployment = read("deploy/k8s/deployment.yaml");
    let kill_after =
        number_after(&deployment, "terminationGracePeriodSeconds").expect("deployment grace");
    assert!(
        kill_after > grace + drain,
        "terminationGracePeriodSeconds {kill_after} must exceed shutdown_grace_secs {grace} \
         + the drain {drain}"
    );
    for probe in ["path: /healthz", "path: /readyz"] {
        assert!(
            deployment.contains(probe),
            "deployment.yaml lacks a probe on {probe}"
        );
    }

    let compose = read("deploy/docker-compose.yml");
    let grace = number_after(&compose, "ETCHR_SHUTDOWN_GRACE_SECS").expect("compose grace");
    let stop = number_after(&compose, "stop_grace_period").expect("compose stop_grace_period");
    assert!(
        stop > grace + drain,
        "stop_grace_period {stop}s <= {grace} + {drain}"
    );
}

#[test]
fn dockerfile_has_the_cpu_and_cuda_targets_compose_builds() {
    let dockerfile = read("Dockerfile");
    for stage in ["AS build", "AS runtime", "AS build-cuda", "AS runtime-cuda"] {
        assert!(
            dockerfile
                .lines()
                .any(|l| l.starts_with("FROM ") && l.ends_with(stage)),
            "Dockerfile lacks the stage `{stage}`"
        );
    }
    assert!(dockerfile.contains("--features cuda"));
    assert!(dockerfile.contains("ARG CUDA_COMPUTE_CAP=90"));
    // Both images: non-root, with a health check and the same entry point.
    for needle in [
        "USER 10001",
        "HEALTHCHECK ",
        "ENTRYPOINT [\"/usr/local/bin/etchr\"]",
    ] {
        assert_eq!(
            dockerfile.matches(needle).count(),
            2,
            "`{needle}` in each runtime image"
        );
    }
    // A plain `docker build .` keeps giving the CPU image: it is the last stage.
    let last = dockerfile
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert!(last.ends_with("AS runtime"), "last stage: {last}");

    let compose = read("deploy/docker-compose.yml");
    for target in ["target: runtime\n", "target: runtime-cuda\n"] {
        assert!(
            compose.contains(target),
            "compose builds no `{}`",
            target.trim()
        );
    }
}
