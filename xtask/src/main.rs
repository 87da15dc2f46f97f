//! Developer tasks for the workspace. Run through the cargo alias: `cargo xtask <task>`.
//!
//! Tasks:
//! - `codegen [--check] [VENDOR…]`: regenerate `crates/report-<vendor>/src/generated*.rs` from
//!   `specs/<vendor>.yaml`; with `--check`, write nothing and fail when a file is stale.
//! - `ci`: every check CI runs (formatting, fresh generated code, clippy, tests).

mod ci;
mod codegen;
mod kit;
mod spec;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  codegen [--check] [VENDOR...]   generate vendor clients from specs/*.yaml
                                  --check: write nothing, print a diff and fail if stale
  ci                              every CI check: fmt, codegen --check, clippy, tests
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match task.as_str() {
        "codegen" => run_codegen(rest),
        "ci" => ci::run(),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("error: unknown task `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run_codegen(args: &[String]) -> ExitCode {
    let mut mode = codegen::Mode::Write;
    let mut vendors = Vec::new();
    for arg in args {
        match arg.as_str() {
            "--check" => mode = codegen::Mode::Check,
            flag if flag.starts_with('-') => {
                eprintln!("error: unknown flag `{flag}`\n\n{USAGE}");
                return ExitCode::from(2);
            }
            vendor => vendors.push(vendor.to_string()),
        }
    }
    let root = codegen::workspace_root();
    match codegen::run(&root, mode, &vendors) {
        Ok(outcome) => {
            for line in &outcome.messages {
                eprintln!("{line}");
            }
            if outcome.stale.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "error: {} generated file(s) are stale: {}\nrun `cargo xtask codegen` and commit the result",
                    outcome.stale.len(),
                    outcome.stale.join(", ")
                );
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
