//! `tests/cron.sh`, the nightly job of an operator, against the sandbox: killed once after the
//! start, run again, run a third time with `--skip-existing`: one report started, one saved.

use std::process::Command;
use std::time::Duration;

use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nightly_run_killed_after_the_start_resumes_the_same_report() {
    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: Duration::from_millis(1500),
        report_size: 4096,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut script = Command::new("sh");
    script
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cron.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPORTS", assert_cmd::cargo::cargo_bin("reports"))
        .env("WORK", work.path())
        .env("OFD_BASE_URL", sandbox.base_url(Vendor::Ofd))
        .env("OFD_LOGIN", c::OFD_LOGIN)
        .env("OFD_PASSWORD", c::OFD_PASSWORD);
    let output = tokio::task::spawn_blocking(move || script.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("already holds the report; skipped"),
        "{stdout}"
    );
    let stats = sandbox.stats(Vendor::Ofd);
    assert_eq!(stats.reports_started, 1, "one report for the night");
    assert_eq!(
        std::fs::metadata(work.path().join("receipts.zip"))
            .unwrap()
            .len(),
        4096
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("ofd.state")).unwrap()).unwrap();
    assert_eq!(state["saved"]["bytes"], 4096);
    // Nothing else is left in the folder: no temporary or partial file.
    let mut names: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ofd.state", "receipts.zip"]);
}
