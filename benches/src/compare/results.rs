//! Criterion's saved results, read back into one [`Measurement`] per benchmark.
//!
//! Criterion keeps each benchmark's latest run in `<dir>/.../new/benchmark.json` (its names)
//! beside `new/estimates.json` (its timing). Names are read from the JSON, never from the
//! folder names, which criterion shortens and strips of `/`.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, btree_map::Entry},
    fmt, fs, io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde_json::Value;

/// One benchmark's latest result: which backend, operation, function and case it measured,
/// and how many messages per second it moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The group name's part before its first `/`, e.g. `redis`.
    pub backend: String,
    /// The group name's part after its first `/`, e.g. `publish`.
    pub operation: String,
    /// Criterion's function name: `framework`, `raw`, or any other contender.
    pub function: String,
    /// Messages per call, from the parameter's part before `x`.
    pub batch: u64,
    /// Size of each message, from the parameter's part after `x`.
    pub payload: Payload,
    /// Messages per second.
    pub rate: Rate,
    /// When criterion wrote `benchmark.json`, where the file system says.
    pub modified: Option<SystemTime>,
}

impl Measurement {
    /// The row this measurement belongs to: every function measured on the same backend,
    /// operation, batch and payload shares it.
    #[must_use]
    pub fn case(&self) -> Case {
        Case {
            backend: self.backend.clone(),
            operation: self.operation.clone(),
            batch: self.batch,
            payload: self.payload.clone(),
        }
    }
}

/// What one row of the comparison measures. Its order is the report's order: backends and
/// operations as [`backend_rank`] and [`operation_rank`] give them, then payload, then batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Backend, as in [`Measurement::backend`].
    pub backend: String,
    /// Operation, as in [`Measurement::operation`].
    pub operation: String,
    /// Messages per call.
    pub batch: u64,
    /// Size of each message.
    pub payload: Payload,
}

impl Ord for Case {
    fn cmp(&self, other: &Self) -> Ordering {
        backend_rank(&self.backend)
            .cmp(&backend_rank(&other.backend))
            .then_with(|| operation_rank(&self.operation).cmp(&operation_rank(&other.operation)))
            .then_with(|| self.payload.cmp(&other.payload))
            .then_with(|| self.batch.cmp(&other.batch))
    }
}

impl PartialOrd for Case {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The backends in the order the report lists them; any other backend follows, by name.
pub const BACKENDS: [&str; 7] = [
    "memory", "redis", "postgres", "amqp", "sqs", "sqs-fifo", "kafka",
];

/// The operations in the order the report lists them; any other operation follows, by name.
pub const OPERATIONS: [&str; 3] = ["publish", "consume_ack", "end_to_end"];

/// A sort key putting the backends of [`BACKENDS`] first, in that order, then the others by
/// name.
#[must_use]
pub fn backend_rank(name: &str) -> (usize, &str) {
    rank(&BACKENDS, name)
}

/// A sort key putting the operations of [`OPERATIONS`] first, in that order, then the others
/// by name.
#[must_use]
pub fn operation_rank(name: &str) -> (usize, &str) {
    rank(&OPERATIONS, name)
}

fn rank<'a>(known: &[&str], name: &'a str) -> (usize, &'a str) {
    let position = known.iter().position(|k| *k == name);
    (
        position.unwrap_or(known.len()),
        if position.is_some() { "" } else { name },
    )
}

/// Messages per second: the mean, and the range criterion's confidence interval of the mean
/// time gives (`low <= mean <= high` unless criterion's own figures disagree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// From the mean time per iteration.
    pub mean: f64,
    /// From the upper bound of the mean time; equal to `mean` when criterion gave no bound.
    pub low: f64,
    /// From the lower bound of the mean time; equal to `mean` when criterion gave no bound.
    pub high: f64,
}

/// The size of each message a benchmark sent, from the text after `x` in its parameter.
///
/// Ordered smallest first: sizes with a known unit by bytes, then sizes in units this report
/// does not know by their text, then [`Payload::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Payload {
    /// A size such as `100B` or `10KiB`, and the number of bytes it means.
    Sized {
        /// Bytes per message (`KiB` is 1024 bytes, `KB` 1000).
        bytes: u64,
        /// The text as the benchmark wrote it.
        label: String,
    },
    /// A size whose unit this report does not know, kept as written.
    Other(String),
    /// The parameter named only a batch size, as benchmarks did before payloads varied.
    Unknown,
}

impl Payload {
    /// Reads `100B`, `10KiB`, `1MB` and the like; a number without a unit is bytes. Anything
    /// else is kept as [`Payload::Other`].
    #[must_use]
    pub fn parse(text: &str) -> Payload {
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let scale: Option<u64> = match unit {
            "" | "B" => Some(1),
            "KiB" => Some(1 << 10),
            "MiB" => Some(1 << 20),
            "GiB" => Some(1 << 30),
            "kB" | "KB" => Some(1_000),
            "MB" => Some(1_000_000),
            "GB" => Some(1_000_000_000),
            _ => None,
        };
        match (number.parse::<u64>(), scale) {
            (Ok(n), Some(scale)) => n.checked_mul(scale).map_or_else(
                || Payload::Other(text.to_owned()),
                |bytes| Payload::Sized {
                    bytes,
                    label: text.to_owned(),
                },
            ),
            _ => Payload::Other(text.to_owned()),
        }
    }
}

impl fmt::Display for Payload {
    /// The size as the benchmark wrote it; `?` for [`Payload::Unknown`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Sized { label, .. } | Payload::Other(label) => f.write_str(label),
            Payload::Unknown => f.write_str("?"),
        }
    }
}

/// Reads a criterion parameter: `<batch>x<payload>` such as `10x100B`, or a bare batch size
/// such as `10` (payload [`Payload::Unknown`]).
///
/// # Errors
/// When the text before `x` (or the whole text, without `x`) is not a whole number.
pub fn parse_parameter(value: &str) -> Result<(u64, Payload), String> {
    let (batch, payload) = match value.split_once('x') {
        Some((batch, payload)) => (batch, Payload::parse(payload)),
        None => (value, Payload::Unknown),
    };
    let batch = batch
        .parse()
        .map_err(|_| format!("parameter `{value}` is not <batch>x<payload>"))?;
    Ok((batch, payload))
}

/// A benchmark folder left out of the report, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The folder holding `new/`, relative to the directory read.
    pub path: PathBuf,
    /// What was missing or not understood.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// Everything found under a criterion directory.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// One per benchmark, in no particular order; never two of the same function and case.
    pub measurements: Vec<Measurement>,
    /// Folders with a `new/benchmark.json` that gave no measurement, and results superseded
    /// by a newer one of the same function and case.
    pub skipped: Vec<Skipped>,
}

/// Reads every `new/benchmark.json` (with its `new/estimates.json`) under `root`, at any
/// depth. A result that cannot be read or understood is listed in [`Results::skipped`]
/// instead; when two folders hold the same function and case, the newer file wins and the
/// other is listed as skipped. Symbolic links are not followed.
///
/// # Errors
/// Only when `root` itself cannot be listed.
pub fn read(root: &Path) -> io::Result<Results> {
    fs::read_dir(root)?;
    let mut folders = Vec::new();
    find_benchmarks(root, &mut folders);
    folders.sort();

    let mut results = Results::default();
    // Keyed by case and function; the value keeps the folder to name if it is superseded.
    let mut newest: BTreeMap<(Case, String), (PathBuf, Measurement)> = BTreeMap::new();
    for folder in folders {
        let path = folder.strip_prefix(root).unwrap_or(&folder).to_path_buf();
        let measurement = match read_benchmark(&folder) {
            Ok(measurement) => measurement,
            Err(reason) => {
                results.skipped.push(Skipped { path, reason });
                continue;
            }
        };
        let key = (measurement.case(), measurement.function.clone());
        match newest.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert((path, measurement));
            }
            Entry::Occupied(mut entry) => {
                let (path, older) = if measurement.modified > entry.get().1.modified {
                    entry.insert((path, measurement))
                } else {
                    (path, measurement)
                };
                results.skipped.push(Skipped {
                    path,
                    reason: format!(
                        "a newer result of {}/{} {} {}x{} is shown",
                        older.backend, older.operation, older.function, older.batch, older.payload
                    ),
                });
            }
        }
    }
    results.measurements = newest.into_values().map(|(_, m)| m).collect();
    Ok(results)
}

/// Collects the folders under `dir` that hold `new/benchmark.json`.
fn find_benchmarks(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            continue;
        }
        let path = entry.path();
        if entry.file_name() == "new" {
            if path.join("benchmark.json").is_file() {
                found.push(dir.to_path_buf());
            }
        } else {
            find_benchmarks(&path, found);
        }
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{name} is not JSON: {e}"))
}

/// Reads one benchmark folder (the one holding `new/`).
fn read_benchmark(folder: &Path) -> Result<Measurement, String> {
    let benchmark_path = folder.join("new/benchmark.json");
    let benchmark = read_json(&benchmark_path)?;
    let estimates = read_json(&folder.join("new/estimates.json"))?;

    let group = benchmark["group_id"]
        .as_str()
        .ok_or("benchmark.json has no group_id")?;
    let (backend, operation) = group
        .split_once('/')
        .ok_or_else(|| format!("group `{group}` is not <backend>/<operation>"))?;
    let function = benchmark["function_id"]
        .as_str()
        .ok_or("benchmark.json has no function_id")?;
    let value = benchmark["value_str"]
        .as_str()
        .ok_or("benchmark.json has no value_str (batch and payload)")?;
    let (batch, payload) = parse_parameter(value)?;
    let throughput = &benchmark["throughput"];
    let elements = throughput["Elements"]
        .as_f64()
        .or_else(|| throughput["ElementsAndBytes"]["elements"].as_f64())
        .ok_or("throughput is not a number of messages (Elements)")?;

    let mean = &estimates["mean"];
    let mean_ns = mean["point_estimate"]
        .as_f64()
        .ok_or("estimates.json has no mean point_estimate")?;
    if !(mean_ns.is_finite() && mean_ns > 0.0) {
        return Err(format!("mean time {mean_ns} ns is not positive"));
    }
    let per_second = |ns: f64| elements / (ns / 1e9);
    let bound = |name: &str| {
        mean["confidence_interval"][name]
            .as_f64()
            .filter(|ns| ns.is_finite() && *ns > 0.0)
            .unwrap_or(mean_ns)
    };
    let rate = Rate {
        mean: per_second(mean_ns),
        low: per_second(bound("upper_bound")),
        high: per_second(bound("lower_bound")),
    };

    Ok(Measurement {
        backend: backend.to_owned(),
        operation: operation.to_owned(),
        function: function.to_owned(),
        batch,
        payload,
        rate,
        modified: fs::metadata(&benchmark_path)
            .and_then(|m| m.modified())
            .ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::testing::{FakeCriterion, estimates};

    #[test]
    fn parameter_gives_batch_and_payload() {
        assert_eq!(
            parse_parameter("10x100B"),
            Ok((
                10,
                Payload::Sized {
                    bytes: 100,
                    label: "100B".into()
                }
            ))
        );
        assert_eq!(
            parse_parameter("100x10KiB").map(|(_, p)| p),
            Ok(Payload::Sized {
                bytes: 10 * 1024,
                label: "10KiB".into()
            })
        );
        assert_eq!(parse_parameter("10"), Ok((10, Payload::Unknown)));
        assert_eq!(
            parse_parameter("1x3 lines"),
            Ok((1, Payload::Other("3 lines".into())))
        );
        assert!(parse_parameter("ten").is_err());
        assert!(parse_parameter("x100B").is_err());
    }

    #[test]
    fn payloads_order_by_bytes_then_unknown_units_then_unknown() {
        let mut payloads: Vec<Payload> = ["10KiB", "1MB", "100B", "2 pages", "1KB"]
            .into_iter()
            .map(Payload::parse)
            .chain([Payload::Unknown])
            .collect();
        payloads.sort();
        let labels: Vec<String> = payloads.iter().map(ToString::to_string).collect();
        assert_eq!(labels, ["100B", "1KB", "10KiB", "1MB", "2 pages", "?"]);
    }

    #[test]
    fn known_backends_come_first_in_their_order_then_others_by_name() {
        let mut names = ["zeromq", "kafka", "memory", "sqs", "nats", "redis"];
        names.sort_by_key(|n| backend_rank(n));
        assert_eq!(names, ["memory", "redis", "sqs", "kafka", "nats", "zeromq"]);
    }

    #[test]
    fn measurement_has_rate_and_its_range_from_criterion_estimates() {
        let dir = FakeCriterion::new("rate");
        // 1000 messages in 2 ms, interval 1.6 to 2.5 ms.
        dir.add_raw(
            "redis_publish/framework/10x100B",
            r#"{"group_id":"redis/publish","function_id":"framework","value_str":"10x100B",
                "throughput":{"Elements":1000}}"#,
            &estimates(2e6, 1.6e6, 2.5e6),
        );

        let results = read(dir.path()).expect("read");

        assert!(results.skipped.is_empty(), "{:?}", results.skipped);
        let [m] = results.measurements.as_slice() else {
            panic!("one measurement, got {:?}", results.measurements);
        };
        assert_eq!(
            (m.backend.as_str(), m.operation.as_str()),
            ("redis", "publish")
        );
        assert_eq!((m.function.as_str(), m.batch), ("framework", 10));
        assert_eq!(m.payload.to_string(), "100B");
        assert!((m.rate.mean - 500_000.0).abs() < 1e-6, "{:?}", m.rate);
        assert!((m.rate.low - 400_000.0).abs() < 1e-6, "{:?}", m.rate);
        assert!((m.rate.high - 625_000.0).abs() < 1e-6, "{:?}", m.rate);
        assert!(m.modified.is_some());
    }

    #[test]
    fn unreadable_results_are_skipped_with_a_reason() {
        let dir = FakeCriterion::new("skips");
        dir.add("memory/publish", "framework", "1x100B", 1000, 1e6);
        dir.add_raw("broken/framework/1", "{not json", &estimates(1e6, 1e6, 1e6));
        dir.add_raw(
            "nogroup/framework/1",
            r#"{"group_id":"nogroup","function_id":"framework","value_str":"1",
                "throughput":{"Elements":1}}"#,
            &estimates(1e6, 1e6, 1e6),
        );
        dir.add_raw(
            "bytes/framework/1",
            r#"{"group_id":"a/b","function_id":"framework","value_str":"1",
                "throughput":{"Bytes":100}}"#,
            &estimates(1e6, 1e6, 1e6),
        );
        dir.add_raw(
            "noestimates/framework/1",
            r#"{"group_id":"a/b","function_id":"framework","value_str":"1",
                "throughput":{"Elements":1}}"#,
            "{}",
        );

        let results = read(dir.path()).expect("read");

        assert_eq!(results.measurements.len(), 1);
        let mut reasons: Vec<String> = results.skipped.iter().map(ToString::to_string).collect();
        reasons.sort();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(reasons[0].contains("broken") && reasons[0].contains("not JSON"));
        assert!(reasons[1].contains("bytes") && reasons[1].contains("Elements"));
        assert!(reasons[2].contains("noestimates") && reasons[2].contains("point_estimate"));
        assert!(reasons[3].contains("nogroup") && reasons[3].contains("<backend>/<operation>"));
    }

    #[test]
    fn reports_and_baselines_are_not_results() {
        let dir = FakeCriterion::new("layout");
        dir.add("memory/publish", "raw", "1x100B", 1000, 1e6);
        dir.write("report/index.html", "<html></html>");
        dir.write("memory_publish/raw/1x100B/base/benchmark.json", "{}");
        dir.write("memory_publish/raw/1x100B/report/index.html", "");

        let results = read(dir.path()).expect("read");

        assert_eq!(results.measurements.len(), 1);
        assert!(results.skipped.is_empty(), "{:?}", results.skipped);
    }

    #[test]
    fn of_two_folders_with_the_same_benchmark_the_newer_is_shown() {
        let dir = FakeCriterion::new("duplicates");
        dir.add("redis/publish", "raw", "1x100B", 10, 1e6);
        let benchmark = r#"{"group_id":"redis/publish","function_id":"raw","value_str":"1x100B",
                "throughput":{"Elements":10}}"#;
        dir.add_raw("stale/raw/1x100B", benchmark, &estimates(2e6, 2e6, 2e6));
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(dir.path().join("stale/raw/1x100B/new/benchmark.json"))
            .and_then(|f| f.set_modified(hour_ago))
            .expect("age the stale result");

        let results = read(dir.path()).expect("read");

        let [m] = results.measurements.as_slice() else {
            panic!("one measurement, got {:?}", results.measurements);
        };
        assert!(
            (m.rate.mean - 10_000.0).abs() < 1e-6,
            "the newer rate: {:?}",
            m.rate
        );
        let [skipped] = results.skipped.as_slice() else {
            panic!("one skipped, got {:?}", results.skipped);
        };
        assert!(skipped.path.starts_with("stale"), "{skipped}");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = FakeCriterion::new("missing");
        assert!(read(&dir.path().join("nothing here")).is_err());
    }
}
