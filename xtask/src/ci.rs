//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// (what, program, arguments)
const STEPS: &[(&str, &str, &[&str])] = &[
    ("formatting", "cargo", &["fmt", "--all", "--check"]),
    (
        "generated code is fresh",
        "cargo",
        &["xtask", "codegen", "--check"],
    ),
    (
        "clippy",
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    ),
    ("tests", "cargo", &["test", "--workspace", "--locked"]),
];

pub fn run() -> ExitCode {
    let root = crate::codegen::workspace_root();
    let started = Instant::now();
    for (what, program, args) in STEPS {
        eprintln!("==> {what}: {program} {}", args.join(" "));
        let step = Instant::now();
        let status = Command::new(program)
            .args(*args)
            .current_dir(&root)
            .status();
        match status {
            Ok(s) if s.success() => {
                eprintln!("==> {what}: ok ({:.0?})", step.elapsed());
            }
            Ok(s) => {
                eprintln!("==> FAILED: {what} ({s})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("==> FAILED: {what}: cannot run {program}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("==> all checks passed in {:.0?}", started.elapsed());
    ExitCode::SUCCESS
}
