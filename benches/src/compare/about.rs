//! When the results were measured and on what machine, for the header of a saved report.
//! It names the CPUs only: no host name, user or path.

use std::{fs, time::SystemTime};

use chrono::{DateTime, Utc};

use super::results::Measurement;

/// The date and machine a report names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// E.g. `2 CPUs (AMD EPYC)`.
    pub machine: String,
}

impl About {
    /// The date of the newest result in `measurements` (today when no file time is known)
    /// and this machine's CPUs.
    #[must_use]
    pub fn of(measurements: &[Measurement]) -> About {
        let newest = measurements.iter().filter_map(|m| m.modified).max();
        About {
            date: date(newest.unwrap_or_else(SystemTime::now)),
            machine: this_machine(),
        }
    }
}

/// The UTC calendar date of `time`, as `YYYY-MM-DD`.
#[must_use]
pub fn date(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).format("%Y-%m-%d").to_string()
}

/// This machine's CPUs from `/proc/cpuinfo`, or only their number (from the standard
/// library) where that file cannot be read or understood.
fn this_machine() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| describe_cpus(&text))
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| cpu_count(n.get()))
        })
        .unwrap_or_else(|| "an unknown machine".to_owned())
}

/// Describes the processors listed in the text of `/proc/cpuinfo`: their number and each
/// distinct model name, e.g. `2 CPUs (AMD EPYC)`; `None` when it lists no processor.
#[must_use]
pub fn describe_cpus(cpuinfo: &str) -> Option<String> {
    let mut count = 0;
    let mut models: Vec<&str> = Vec::new();
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => count += 1,
            "model name" => {
                let model = value.trim();
                if !model.is_empty() && !models.contains(&model) {
                    models.push(model);
                }
            }
            _ => {}
        }
    }
    (count > 0).then(|| {
        if models.is_empty() {
            cpu_count(count)
        } else {
            format!("{} ({})", cpu_count(count), models.join(" + "))
        }
    })
}

fn cpu_count(n: usize) -> String {
    if n == 1 {
        "1 CPU".to_owned()
    } else {
        format!("{n} CPUs")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn cpus_are_counted_and_their_model_named_once() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\n\
                       processor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n";
        assert_eq!(describe_cpus(cpuinfo).as_deref(), Some("2 CPUs (AMD EPYC)"));
    }

    #[test]
    fn cpus_without_a_model_name_are_only_counted() {
        let cpuinfo = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\n";
        assert_eq!(describe_cpus(cpuinfo).as_deref(), Some("1 CPU"));
        assert_eq!(describe_cpus(""), None);
    }

    #[test]
    fn date_is_the_utc_day() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_688_000 + 86_399);
        assert_eq!(date(time), "2026-12-08");
    }

    #[test]
    fn the_date_is_that_of_the_newest_result() {
        use crate::compare::results::{Payload, Rate};
        let at = |secs: u64| Measurement {
            backend: "memory".into(),
            operation: "publish".into(),
            function: "raw".into(),
            batch: 1,
            payload: Payload::Unknown,
            rate: Rate {
                mean: 1.0,
                low: 1.0,
                high: 1.0,
            },
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        };
        let about = About::of(&[at(1_796_688_000), at(86_400), at(0)]);
        assert_eq!(about.date, "2026-12-08");
        assert!(!about.machine.contains('/'), "no path: {}", about.machine);
    }
}
