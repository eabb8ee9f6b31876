//! Prints, for every benchmark group with `framework` and `raw` functions, the framework's
//! throughput as a ratio of the raw client's, from criterion's saved estimates.
//!
//! Usage: `cargo run -p broker-benches --bin bench-ratios [CRITERION_DIR]`; the directory
//! defaults to `$CARGO_TARGET_DIR/criterion` or `target/criterion`.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

/// Mean time per iteration in nanoseconds, and elements per iteration, of one benchmark.
struct Estimate {
    mean_ns: f64,
    elements: Option<f64>,
}

fn read_estimate(dir: &Path) -> Option<Estimate> {
    let estimates: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("new/estimates.json")).ok()?).ok()?;
    let benchmark: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("new/benchmark.json")).ok()?).ok()?;
    Some(Estimate {
        mean_ns: estimates["mean"]["point_estimate"].as_f64()?,
        elements: benchmark["throughput"]["Elements"].as_f64(),
    })
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Criterion stores `<group>/<function>/<parameter>/new/*.json`; a group named `a/b` is
/// stored as `a_b`.
fn collect(root: &Path) -> BTreeMap<(String, String), BTreeMap<String, Estimate>> {
    let mut found = BTreeMap::new();
    for group in subdirs(root) {
        for function in subdirs(&group) {
            for parameter in subdirs(&function) {
                let Some(estimate) = read_estimate(&parameter) else {
                    continue;
                };
                let name = |p: &Path| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                found
                    .entry((name(&group), name(&parameter)))
                    .or_insert_with(BTreeMap::new)
                    .insert(name(&function), estimate);
            }
        }
    }
    found
}

fn per_second(estimate: &Estimate) -> f64 {
    estimate.elements.unwrap_or(1.0) / (estimate.mean_ns / 1e9)
}

fn main() -> ExitCode {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            PathBuf::from(target).join("criterion")
        });
    let found = collect(&root);
    if found.is_empty() {
        eprintln!(
            "no criterion results under {}; run `cargo bench` first",
            root.display()
        );
        return ExitCode::FAILURE;
    }
    println!(
        "{:<28} {:>6} {:>16} {:>16} {:>7}",
        "group", "batch", "framework msg/s", "raw msg/s", "ratio"
    );
    for ((group, parameter), functions) in &found {
        let framework = functions.get("framework").map(per_second);
        let raw = functions.get("raw").map(per_second);
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
        let ratio = match (framework, raw) {
            (Some(f), Some(r)) if r > 0.0 => format!("{:.2}", f / r),
            _ => "-".to_owned(),
        };
        println!(
            "{group:<28} {parameter:>6} {:>16} {:>16} {ratio:>7}",
            show(framework),
            show(raw)
        );
    }
    ExitCode::SUCCESS
}
