//! A criterion results directory made up for tests, removed when dropped.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

/// A fresh, empty directory under the system's temporary directory, unique to this process
/// and call; it and its contents are removed on drop.
#[derive(Debug)]
pub(crate) struct FakeCriterion(PathBuf);

impl FakeCriterion {
    pub(crate) fn new(name: &str) -> FakeCriterion {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bench-compare-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("create the test directory");
        FakeCriterion(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `relative`, creating its folders.
    pub(crate) fn write(&self, relative: &str, text: &str) {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().expect("a file in a folder")).expect("create folders");
        fs::write(path, text).expect("write");
    }

    /// Writes a benchmark's `new/benchmark.json` and `new/estimates.json` under `folder`.
    pub(crate) fn add_raw(&self, folder: &str, benchmark: &str, estimates: &str) {
        self.write(&format!("{folder}/new/benchmark.json"), benchmark);
        self.write(&format!("{folder}/new/estimates.json"), estimates);
    }

    /// Writes a result as criterion does: `elements` messages per iteration taking `mean_ns`,
    /// with a confidence interval of ±10 % of the mean.
    pub(crate) fn add(
        &self,
        group: &str,
        function: &str,
        value: &str,
        elements: u64,
        mean_ns: f64,
    ) {
        let benchmark = serde_json::json!({
            "group_id": group,
            "function_id": function,
            "value_str": value,
            "throughput": {"Elements": elements},
            "full_id": format!("{group}/{function}/{value}"),
            "directory_name": format!("{}/{function}/{value}", group.replace('/', "_")),
            "title": format!("{group}/{function}/{value}"),
        });
        self.add_raw(
            &format!("{}/{function}/{value}", group.replace('/', "_")),
            &benchmark.to_string(),
            &estimates(mean_ns, mean_ns * 0.9, mean_ns * 1.1),
        );
    }
}

impl Drop for FakeCriterion {
    fn drop(&mut self) {
        // Best effort: a directory left behind in the temporary directory harms nothing.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An `estimates.json` whose mean is `mean_ns` with the interval `low_ns` to `high_ns`.
pub(crate) fn estimates(mean_ns: f64, low_ns: f64, high_ns: f64) -> String {
    let estimate = |point: f64| {
        serde_json::json!({
            "confidence_interval": {
                "confidence_level": 0.95,
                "lower_bound": low_ns,
                "upper_bound": high_ns,
            },
            "point_estimate": point,
            "standard_error": 1.0,
        })
    };
    serde_json::json!({
        "mean": estimate(mean_ns),
        "median": estimate(mean_ns),
        "median_abs_dev": estimate(1.0),
        "slope": null,
        "std_dev": estimate(1.0),
    })
    .to_string()
}
