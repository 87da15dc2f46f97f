//! `report-bench`: benchmarks that print tables, every figure a ratio against a baseline
//! measured in the same run (the machines are noisy).
//!
//! Run in release mode: `cargo run -p report-bench --release -- <polling|download|scale|footprint|runner|soak|all>`.

mod decode;
mod download;
mod engine_floor;
mod fast_vendor;
mod footprint;
mod pg;
mod polling;
mod proc;
mod runner;
mod runner_child;
mod scale;
mod soak;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "report-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Status requests and detection lag per vendor model, in virtual time.
    Polling(polling::Args),
    /// Streaming a large report to disk vs `curl -o` (and a gzip report vs `curl | gzip -d`).
    Download(download::Args),
    /// Thousands of concurrent jobs against the sandbox vs a hand-written reqwest loop.
    Scale(scale::Args),
    /// Where the CPU of one OFD.ru status request goes: decoding paths and sequential polls.
    Decode(decode::Args),
    /// Dependency counts and build times vs a bare progenitor-client + reqwest crate.
    Footprint(footprint::Args),
    /// The durable runner's own cost: queued jobs drained by workers on SQLite and PostgreSQL
    /// vs `Job::wait` in one process.
    Runner(runner::Args),
    /// Jobs arriving for many minutes on a SQLite queue: no stall, RSS and queue depth over time.
    Soak(soak::Args),
    /// Every benchmark above (but the soak), with its default arguments.
    All,
    /// (internal) Runs one download in this process and prints its figures as JSON.
    #[command(hide = true)]
    DownloadChild(download::ChildArgs),
    /// (internal) Runs the client side of the scale benchmark and prints its figures as JSON.
    #[command(hide = true)]
    ScaleChild(scale::ChildArgs),
    /// (internal) A runner worker or the in-process baseline; prints its figures as JSON.
    #[command(hide = true)]
    RunnerChild(runner_child::ChildArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Polling(args) => polling::run(&args).map(|_| ()),
        Command::Download(args) => download::run(&args),
        Command::Scale(args) => scale::run(&args),
        Command::Footprint(args) => footprint::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Runner(args) => runner::run(&args),
        Command::Soak(args) => soak::run(&args),
        Command::All => all(),
        Command::DownloadChild(args) => download::child(&args),
        Command::ScaleChild(args) => scale::child(&args),
        Command::RunnerChild(args) => runner_child::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn all() -> anyhow::Result<()> {
    polling::run(&polling::Args::parse_from(["polling"]))?;
    download::run(&download::Args::parse_from(["download"]))?;
    scale::run(&scale::Args::parse_from(["scale"]))?;
    footprint::run(&footprint::Args::parse_from(["footprint"]))?;
    runner::run(&runner::Args::parse_from(["runner"]))?;
    Ok(())
}

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Logs in to an OFD sandbox with a plain request (the baselines' own login, independent of
/// report-ofd); returns the AuthToken.
pub async fn ofd_login(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let answer: serde_json::Value = http
        .post(format!("{base}/api/Authorization/CreateAuthToken"))
        .json(&serde_json::json!({
            "Login": report_sandbox::credentials::OFD_LOGIN,
            "Password": report_sandbox::credentials::OFD_PASSWORD,
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["AuthToken"]
        .as_str()
        .map(str::to_owned)
        .context("CreateAuthToken answered no AuthToken")
}

/// A plain reqwest client for the benchmarks' own requests (built by report-core, which
/// installs the TLS provider reqwest needs; all requests here go to loopback).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(report_core::__private::build_client(
        &report_core::__private::HttpOptions::default(),
        report_core::__private::Redirects::Any,
        false,
    )?)
}
