//! The comparison across brokers: one row per backend, operation, payload and batch, with
//! each function's rate and the framework's rate as a ratio of every other function's.

use std::collections::BTreeMap;

use super::{
    about::About,
    results::{Case, Measurement, Rate},
};

/// The function measuring this project's code.
pub const FRAMEWORK: &str = "framework";
/// The function driving the broker's client library directly.
pub const RAW: &str = "raw";

/// One case and the rate of every function measured on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What was measured.
    pub case: Case,
    /// Messages per second, by function name.
    pub rates: BTreeMap<String, Rate>,
}

impl Row {
    /// The rate of `function`, if it was measured on this case.
    #[must_use]
    pub fn rate(&self, function: &str) -> Option<Rate> {
        self.rates.get(function).copied()
    }

    /// The framework's mean rate divided by `other`'s; `None` when either is missing or
    /// `other`'s is zero.
    #[must_use]
    pub fn ratio_to(&self, other: &str) -> Option<f64> {
        let framework = self.rate(FRAMEWORK)?.mean;
        let other = self.rate(other)?.mean;
        (other > 0.0).then(|| framework / other)
    }
}

/// Rows in the report's order (see [`Case`]'s `Ord`), and the functions they have.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    functions: Vec<String>,
    rows: Vec<Row>,
}

impl Table {
    /// Groups measurements by case. A function measured twice on one case keeps the later
    /// measurement in `measurements`' order ([`super::results::read`] never gives two).
    #[must_use]
    pub fn new(measurements: &[Measurement]) -> Table {
        let mut rows: BTreeMap<Case, BTreeMap<String, Rate>> = BTreeMap::new();
        let mut others: Vec<String> = Vec::new();
        for m in measurements {
            rows.entry(m.case())
                .or_default()
                .insert(m.function.clone(), m.rate);
            if m.function != FRAMEWORK && m.function != RAW && !others.contains(&m.function) {
                others.push(m.function.clone());
            }
        }
        others.sort();
        Table {
            functions: [FRAMEWORK.to_owned(), RAW.to_owned()]
                .into_iter()
                .chain(others)
                .collect(),
            rows: rows
                .into_iter()
                .map(|(case, rates)| Row { case, rates })
                .collect(),
        }
    }

    /// `true` when there are no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, sorted by backend, operation, payload, then batch.
    #[must_use]
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The columns of rates: `framework` and `raw` always, in that order, then any other
    /// function found, by name.
    #[must_use]
    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    /// The functions the framework is compared with: every function but `framework`.
    pub fn baselines(&self) -> impl Iterator<Item = &str> {
        self.functions
            .iter()
            .map(String::as_str)
            .filter(|f| *f != FRAMEWORK)
    }

    /// The header and the cells of every row, and which columns hold numbers.
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>, Vec<bool>) {
        let mut header: Vec<String> = ["broker", "operation", "batch", "payload"]
            .map(String::from)
            .to_vec();
        let mut numeric = vec![false, false, true, false];
        for function in &self.functions {
            header.push(format!("{function} msg/s"));
            numeric.push(true);
        }
        for baseline in self.baselines() {
            header.push(format!("{FRAMEWORK}/{baseline}"));
            numeric.push(true);
        }
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![
                    row.case.backend.clone(),
                    row.case.operation.clone(),
                    row.case.batch.to_string(),
                    row.case.payload.to_string(),
                ];
                for function in &self.functions {
                    cells.push(row.rate(function).map_or_else(|| "-".to_owned(), rate_cell));
                }
                for baseline in self.baselines() {
                    cells.push(
                        row.ratio_to(baseline)
                            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
                    );
                }
                cells
            })
            .collect();
        (header, rows, numeric)
    }

    /// The table as aligned plain text, one line per row after a header line, each line
    /// ending in a newline. Text columns are left-aligned, numbers right-aligned; a missing
    /// rate or ratio shows as `-`.
    #[must_use]
    pub fn text(&self) -> String {
        let (header, rows, numeric) = self.cells();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&header).chain(&rows) {
            let padded: Vec<String> = line
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((cell, &width), &numeric)| {
                    if numeric {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            out.push_str(padded.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// The table as a GitHub markdown table after one line naming the results' date and the
    /// machine. The same inputs give the same text.
    #[must_use]
    pub fn markdown(&self, about: &About) -> String {
        let (header, rows, numeric) = self.cells();
        let mut out = format!(
            "Criterion results of {} on {}: messages per second, the mean ± half its \
             confidence interval; ratios compare means.\n\n",
            about.date, about.machine
        );
        let line = |cells: &[String]| {
            let escaped: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", escaped.join(" | "))
        };
        out.push_str(&line(&header));
        let rule: Vec<String> = numeric
            .iter()
            .map(|&n| if n { "---:" } else { "---" }.to_owned())
            .collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for row in &rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// A rate and its spread: `12,345 ±4%`, the spread being half the range of
/// [`Rate::low`] to [`Rate::high`] relative to the mean (`±<1%` below one percent), left out
/// when the range is empty.
fn rate_cell(rate: Rate) -> String {
    let spread = (rate.high - rate.low) / 2.0 / rate.mean * 100.0;
    let number = format_rate(rate.mean);
    if !(spread.is_finite() && spread > 0.0) {
        number
    } else if spread < 1.0 {
        format!("{number} ±<1%")
    } else {
        format!("{number} ±{spread:.0}%")
    }
}

/// Messages per second for people: whole numbers with thousands separators from 100 up,
/// three significant digits below.
#[must_use]
pub fn format_rate(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    if value < 10.0 {
        return format!("{value:.2}");
    }
    if value < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{value:.0}");
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{results::read, testing::FakeCriterion};

    /// Two brokers, written out of order, with raw missing on one row and a third function.
    fn sample() -> FakeCriterion {
        let dir = FakeCriterion::new("table");
        // 1000 messages per iteration: 1 ms is 1,000,000 msg/s.
        dir.add("redis/publish", "framework", "10x100B", 1000, 2e6);
        dir.add("redis/publish", "raw", "10x100B", 1000, 1.6e6);
        dir.add("redis/publish", "framework", "1x100B", 1000, 10e6);
        dir.add("redis/publish", "raw", "1x100B", 1000, 8e6);
        dir.add("redis/end_to_end", "framework", "1x100B", 1000, 20e6);
        dir.add("redis/consume_ack", "framework", "1x100B", 1000, 5e6);
        dir.add("redis/consume_ack", "omniqueue", "1x100B", 1000, 10e6);
        dir.add("redis/publish", "framework", "1x10KiB", 1000, 40e6);
        dir.add("zeromq/publish", "framework", "1x100B", 1000, 1e6);
        dir.add("memory/publish", "framework", "100x100B", 1000, 1e5);
        dir.add("memory/publish", "raw", "100x100B", 1000, 0.5e5);
        dir
    }

    fn table() -> Table {
        let dir = sample();
        let results = read(dir.path()).expect("read");
        assert!(results.skipped.is_empty(), "{:?}", results.skipped);
        Table::new(&results.measurements)
    }

    fn about() -> About {
        About {
            date: "2026-12-08".into(),
            machine: "2 CPUs (Example CPU)".into(),
        }
    }

    #[test]
    fn rows_sort_by_broker_operation_payload_then_batch() {
        let table = table();
        let order: Vec<String> = table
            .rows()
            .iter()
            .map(|r| {
                let c = &r.case;
                format!("{} {} {} {}", c.backend, c.operation, c.payload, c.batch)
            })
            .collect();
        assert_eq!(
            order,
            [
                "memory publish 100B 100",
                "redis publish 100B 1",
                "redis publish 100B 10",
                "redis publish 10KiB 1",
                "redis consume_ack 100B 1",
                "redis end_to_end 100B 1",
                "zeromq publish 100B 1",
            ]
        );
    }

    #[test]
    fn extra_functions_get_their_own_column_after_framework_and_raw() {
        let table = table();
        assert_eq!(table.functions(), ["framework", "raw", "omniqueue"]);
        assert_eq!(table.baselines().collect::<Vec<_>>(), ["raw", "omniqueue"]);
    }

    #[test]
    fn ratio_is_framework_over_the_other_and_missing_without_both() {
        let table = table();
        let row = |backend: &str, operation: &str, batch: u64| {
            table
                .rows()
                .iter()
                .find(|r| {
                    r.case.backend == backend
                        && r.case.operation == operation
                        && r.case.batch == batch
                })
                .expect("row")
        };
        let publish_10 = row("redis", "publish", 10);
        assert!((publish_10.rate(FRAMEWORK).expect("framework").mean - 500_000.0).abs() < 1e-6);
        assert!((publish_10.ratio_to(RAW).expect("ratio") - 0.8).abs() < 1e-9);
        assert!((row("memory", "publish", 100).ratio_to(RAW).expect("ratio") - 0.5).abs() < 1e-9);
        let consume = row("redis", "consume_ack", 1);
        assert_eq!(consume.ratio_to(RAW), None);
        assert!((consume.ratio_to("omniqueue").expect("ratio") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn text_table_is_aligned_with_rates_and_ratios() {
        let dir = FakeCriterion::new("text");
        dir.add("redis/publish", "framework", "1x100B", 1000, 10e6);
        dir.add("redis/publish", "raw", "1x100B", 1000, 8e6);
        dir.add("memory/publish", "framework", "10x100B", 1000, 1e6);
        let table = Table::new(&read(dir.path()).expect("read").measurements);

        let text = table.text();

        let expected = [
            "broker  operation  batch  payload  framework msg/s     raw msg/s  framework/raw",
            "memory  publish       10  100B      1,000,000 ±10%             -              -",
            "redis   publish        1  100B        100,000 ±10%  125,000 ±10%           0.80",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "\n{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn text_table_has_a_column_and_a_ratio_per_extra_function() {
        let text = table().text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + table().rows().len(), "{text}");
        assert!(
            lines[0].ends_with("omniqueue msg/s  framework/raw  framework/omniqueue"),
            "{text}"
        );
        // redis consume_ack 1: framework 200,000, omniqueue 100,000, no raw.
        let consume = lines
            .iter()
            .find(|l| l.contains("consume_ack"))
            .expect("row");
        assert!(consume.contains("100,000 ±10%"), "{consume}");
        let cells: Vec<&str> = consume.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 2..], ["-", "2.00"], "{consume}");
    }

    #[test]
    fn markdown_has_a_dated_header_and_one_table_row_per_row() {
        let table = table();
        let markdown = table.markdown(&about());
        let lines: Vec<&str> = markdown.lines().collect();
        assert!(lines[0].contains("2026-12-08"), "{markdown}");
        assert!(lines[0].contains("2 CPUs (Example CPU)"), "{markdown}");
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "| broker | operation | batch | payload | framework msg/s | raw msg/s | \
             omniqueue msg/s | framework/raw | framework/omniqueue |"
        );
        assert_eq!(lines[3], "|---|---|---:|---|---:|---:|---:|---:|---:|");
        assert_eq!(
            lines[5],
            "| redis | publish | 1 | 100B | 100,000 ±10% | 125,000 ±10% | - | 0.80 | - |"
        );
        assert_eq!(lines.len(), 4 + table.rows().len());
        assert_eq!(markdown, table.markdown(&about()), "deterministic");
    }

    #[test]
    fn markdown_escapes_pipes_in_names() {
        let dir = FakeCriterion::new("pipes");
        dir.add("a|b/publish", "framework", "1x100B", 10, 1e6);
        let table = Table::new(&read(dir.path()).expect("read").measurements);
        assert!(table.markdown(&about()).contains("| a\\|b | publish |"));
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(format_rate(1_234_567.4), "1,234,567");
        assert_eq!(format_rate(100.0), "100");
        assert_eq!(format_rate(999.6), "1,000");
        assert_eq!(format_rate(42.26), "42.3");
        assert_eq!(format_rate(4.56789), "4.57");
        assert_eq!(format_rate(f64::NAN), "-");
    }
}
