//! The `taskoverflow` binary; everything lives in the library's `cli` module.

use std::process::ExitCode;

use clap::Parser;
use taskoverflow::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(Cli::parse()).await
}
