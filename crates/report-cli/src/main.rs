//! `reports`: run vendors' asynchronous report jobs end to end.

mod cli;
mod dates;
mod demo;
mod failure;
mod jobs;
mod progress;
mod runner;
mod sandbox_cmd;
mod vendors;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.common.verbose);
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
    let verbose = cli.common.verbose > 0;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message(verbose));
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let common = cli.common;
    match cli.command {
        Command::Docspace(command) => jobs::execute(*command, &common).await,
        Command::Evovoice(command) => jobs::execute(*command, &common).await,
        Command::Cloudblue(command) => jobs::execute(*command, &common).await,
        Command::Metakocka(command) => jobs::execute(*command, &common).await,
        Command::Ofd(command) => jobs::execute(*command, &common).await,
        Command::Submit(args) => runner::submit(args, &common).await,
        Command::Worker(args) => runner::worker(args, &common).await,
        Command::Jobs(args) => runner::jobs(args, &common).await,
        Command::Demo(args) => demo::run(args, &common).await,
        Command::Sandbox(args) => sandbox_cmd::run(args).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "reports",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// `-vv` and more turn on the HTTP spans (method, path, status, duration; never secrets).
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 | 1 => "warn",
        2 => "report_core=debug,info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPORTS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
