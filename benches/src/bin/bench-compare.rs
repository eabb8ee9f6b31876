//! Prints one table of every backend's throughput from criterion's saved results: for each
//! broker, operation, payload and batch size, the framework's and the raw client's messages
//! per second (and any other function's) and the framework's rate as a ratio of each. It can
//! also write the table as markdown and draw it as an SVG chart.
//!
//! Usage: `cargo run -p broker-benches --bin bench-compare [-- [CRITERION_DIR]
//! [--markdown FILE] [--svg FILE]]`; the directory defaults to `$CARGO_TARGET_DIR/criterion`
//! or `target/criterion`. Results that cannot be read are named on stderr and left out; the
//! exit status is non-zero when no result is found or a file cannot be written.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use broker_benches::compare::{about::About, chart, results, table::Table};

const USAGE: &str = "usage: bench-compare [CRITERION_DIR] [--markdown FILE] [--svg FILE]";

/// What the command line asks for.
#[derive(Debug, Default)]
struct Options {
    dir: Option<PathBuf>,
    markdown: Option<PathBuf>,
    svg: Option<PathBuf>,
    help: bool,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => {
                options.help = true;
                continue;
            }
            "--markdown" => &mut options.markdown,
            "--svg" => &mut options.svg,
            _ if flag.starts_with('-') => return Err(format!("unknown option `{arg}`")),
            _ if options.dir.is_none() => {
                options.dir = Some(PathBuf::from(arg));
                continue;
            }
            _ => return Err(format!("a second directory `{arg}`")),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("`{flag}` needs a file name"))?;
        *slot = Some(PathBuf::from(value));
    }
    Ok(options)
}

fn default_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
    PathBuf::from(target).join("criterion")
}

/// Reports on stderr whether `what` was written to `path`; `true` when it was.
fn report_written(path: &Path, what: &str, written: std::io::Result<()>) -> bool {
    match written {
        Ok(()) => {
            eprintln!("wrote the {what} to {}", path.display());
            true
        }
        Err(e) => {
            eprintln!(
                "bench-compare: cannot write the {what} to {}: {e}",
                path.display()
            );
            false
        }
    }
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bench-compare: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let dir = options.dir.unwrap_or_else(default_dir);
    let results = match results::read(&dir) {
        Ok(results) => results,
        Err(e) => {
            eprintln!(
                "bench-compare: cannot read {}: {e}; run `cargo bench` first or name the \
                 criterion directory",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    for skipped in &results.skipped {
        eprintln!("skipped {skipped}");
    }
    let table = Table::new(&results.measurements);
    if table.is_empty() {
        eprintln!(
            "bench-compare: no criterion results under {}; run `cargo bench` first",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    print!("{}", table.text());

    let about = About::of(&results.measurements);
    let mut ok = true;
    if let Some(path) = &options.markdown {
        let written = std::fs::write(path, table.markdown(&about));
        ok &= report_written(path, "markdown table", written);
    }
    if let Some(path) = &options.svg {
        let written = chart::write_svg(&table, &about, path);
        ok &= report_written(path, "chart", written);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, String> {
        parse(line.split_whitespace().map(String::from))
    }

    #[test]
    fn directory_and_both_outputs_in_any_order() {
        let options = args("--svg c.svg results --markdown=t.md").expect("parse");
        assert_eq!(options.dir, Some(PathBuf::from("results")));
        assert_eq!(options.markdown, Some(PathBuf::from("t.md")));
        assert_eq!(options.svg, Some(PathBuf::from("c.svg")));
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(args("--markdown").is_err());
        assert!(args("--png x").is_err());
        assert!(args("one two").is_err());
        assert!(args("-h").expect("parse").help);
    }
}
