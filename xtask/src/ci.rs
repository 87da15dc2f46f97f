//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure, within a
//! time budget: a check still running when the budget is spent (a test that hangs) is killed
//! with everything it started, and the run fails saying so, instead of running into CI's own
//! limit without a word.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

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

/// The whole run's budget, unless `CI_BUDGET_MINUTES` says otherwise: CI allows 25 minutes
/// on a 2-core machine, and a clean run takes about 8 to 12.
const DEFAULT_BUDGET: Duration = Duration::from_secs(23 * 60);

pub fn run() -> ExitCode {
    let root = crate::codegen::workspace_root();
    let budget = match std::env::var("CI_BUDGET_MINUTES") {
        Ok(minutes) => match minutes.parse::<f64>() {
            Ok(m) if m > 0.0 && m.is_finite() => Duration::from_secs_f64(m * 60.0),
            _ => {
                eprintln!("==> FAILED: CI_BUDGET_MINUTES={minutes:?} is not a number of minutes");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => DEFAULT_BUDGET,
    };
    let started = Instant::now();
    for (what, program, args) in STEPS {
        eprintln!("==> {what}: {program} {}", args.join(" "));
        let step = Instant::now();
        // A process group of its own, so that a kill reaches the test binaries and the
        // database servers they started.
        let child = Command::new(program)
            .args(*args)
            .current_dir(&root)
            .process_group(0)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                eprintln!("==> FAILED: {what}: cannot run {program}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < budget => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Ok(None) => {
                    eprintln!(
                        "==> FAILED: {what}: still running when the budget of {:.1} minutes was \
                         spent (after {:.0?} of this check); killed",
                        budget.as_secs_f64() / 60.0,
                        step.elapsed()
                    );
                    kill_group(child.id());
                    let _ = child.wait();
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("==> FAILED: {what}: cannot wait for {program}: {e}");
                    kill_group(child.id());
                    return ExitCode::FAILURE;
                }
            }
        };
        if status.success() {
            eprintln!("==> {what}: ok ({:.0?})", step.elapsed());
        } else {
            eprintln!("==> FAILED: {what} ({status})");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("==> all checks passed in {:.0?}", started.elapsed());
    ExitCode::SUCCESS
}

/// Kills process group `leader` (the check and all it started).
fn kill_group(leader: u32) {
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .status();
    if !killed.is_ok_and(|s| s.success()) {
        eprintln!("==> could not kill process group {leader}; some processes may remain");
    }
}
