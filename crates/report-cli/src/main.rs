//! `reports`: run vendors' asynchronous report jobs end to end.

mod cli;
mod config;
mod counting;
mod dates;
mod demo;
mod failure;
mod jobs;
mod output;
mod progress;
mod runner;
mod sandbox_cmd;
mod state;
mod stop;
mod suggest;
mod units;
mod vendors;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    if parses_without_profile()
        && let Err(failure) = apply_profile()
    {
        output::stderr_lines(failure.lines(false).iter().map(String::as_str));
        return failure.exit_code();
    }
    let cli = suggest::parse();
    let common = cli.command.common();
    if let Some(path) = &common.log.log_file
        && let Err(e) = output::open_log(path)
    {
        output::stderr_line(&format!("error: --log-file {}: {e}", path.display()));
        return ExitCode::from(2);
    }
    let json_logs =
        matches!(&cli.command, cli::Command::Worker(w) if w.log_format == runner::LogFormat::Json);
    init_tracing(common.log.verbose, common.log.quiet, json_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    let verbose = common.log.verbose > 0;
    let json = common.output.json;
    let result = runtime.block_on(run(cli, common));
    // Tasks still running (an abandoned download) are dropped now, their temporary files with
    // them; a stuck blocking call does not hold the exit up.
    runtime.shutdown_timeout(Duration::from_millis(300));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Errors and the resume line go to stderr in every mode (also with -q); with
            // --json the same failure is one JSON object on stdout.
            output::stderr_lines(failure.lines(verbose).iter().map(String::as_str));
            if json && !matches!(failure, Failure::Printed(_)) {
                jobs::print_json(&failure.to_json());
            }
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli, common: cli::Common) -> Result<(), Failure> {
    match cli.command {
        Command::Vendor(command) => command.execute().await,
        Command::Submit(args) => runner::submit(args, &common).await,
        Command::Worker(args) => runner::worker(args, &common).await,
        Command::Jobs(args) => runner::jobs(args, &common).await,
        Command::Demo(args) => demo::run(args, &common).await,
        Command::Sandbox(args) => sandbox_cmd::run(args).await,
        Command::Completions { shell } => {
            // Into a buffer first: `reports completions bash | head` closes the pipe early, and
            // writing straight to stdout would panic on it.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "reports", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
            Ok(())
        }
    }
}

/// The command line parses (or asks for help) before any profile is applied: a command that
/// takes no `--profile` refuses it as an unknown option, instead of looking for the profile.
fn parses_without_profile() -> bool {
    use clap::error::ErrorKind;
    match <Cli as clap::Parser>::try_parse() {
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ),
    }
}

/// The config file's profile, as defaults in the environment: flags and variables already set
/// win (clap reads both after this).
fn apply_profile() -> Result<(), Failure> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    for (name, value) in config::profile_variables(&args)? {
        if std::env::var_os(&name).is_none() {
            // SAFETY: at the very start of main, before the runtime or any other thread exists.
            unsafe { std::env::set_var(name, value) };
        }
    }
    Ok(())
}

/// `-vv` and more turn on the HTTP spans (method, path, status, duration; never secrets);
/// `-q` leaves errors only. Colours only on a terminal, and never with `NO_COLOR`. `json`:
/// standard error gets one JSON object a line (tracing-subscriber's format), no colours.
fn init_tracing(verbose: u8, quiet: bool, json: bool) {
    let level = match verbose {
        _ if quiet => "error",
        0 | 1 => "warn",
        2 => "report_core=debug,info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPORTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let colour = colour && !json;
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(move || output::CleanWriter::new(std::io::stderr(), colour))
            .with_ansi(colour)
            .with_target(false)
    });
    // JSON escapes control characters itself.
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(true)
    });
    let log_file = output::logging().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(|| output::CleanWriter::new(output::LogWriter, false))
            .with_ansi(false)
            .with_target(false)
    });
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(log_file)
        .init();
}
