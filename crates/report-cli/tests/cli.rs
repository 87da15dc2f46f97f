//! The `reports` binary, driven as a user would, against the sandbox: every vendor, every
//! exit code of the contract (0 done, 1 failed/cancelled, 2 usage, 3 credentials, 4 transport,
//! vendor error or deadline).

use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

async fn sandbox(fail_reports: bool) -> Sandbox {
    Sandbox::start(SandboxConfig {
        job_duration: Duration::from_millis(300),
        report_size: 4096,
        fail_reports,
        ..SandboxConfig::fast()
    })
    .await
    .expect("sandbox starts")
}

/// `reports` with every vendor's sandbox URL and credentials in its environment, and nothing
/// inherited that could point it elsewhere.
fn reports(sandbox: &Sandbox) -> Command {
    let mut cmd = Command::cargo_bin("reports").expect("the binary is built");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OFD_BASE_URL", sandbox.base_url(Vendor::Ofd))
        .env("OFD_LOGIN", c::OFD_LOGIN)
        .env("OFD_PASSWORD", c::OFD_PASSWORD)
        .env("DOCSPACE_BASE_URL", sandbox.base_url(Vendor::DocSpace))
        .env("DOCSPACE_API_KEY", c::DOCSPACE_API_KEY)
        .env("EVOVOICE_BASE_URL", sandbox.base_url(Vendor::EvoVoice))
        .env("EVOVOICE_USERNAME", c::EVOVOICE_USERNAME)
        .env("EVOVOICE_PASSWORD", c::EVOVOICE_PASSWORD)
        .env("CLOUDBLUE_BASE_URL", sandbox.base_url(Vendor::CloudBlue))
        .env("CLOUDBLUE_USERNAME", c::CLOUDBLUE_USERNAME)
        .env("CLOUDBLUE_PASSWORD", c::CLOUDBLUE_PASSWORD)
        .env("CLOUDBLUE_SUBSCRIPTION_KEY", c::CLOUDBLUE_SUBSCRIPTION_KEY)
        .env("CLOUDBLUE_MARKETPLACE", c::CLOUDBLUE_MARKETPLACE)
        .env("METAKOCKA_BASE_URL", sandbox.base_url(Vendor::MetaKocka))
        .env("METAKOCKA_SECRET_KEY", c::METAKOCKA_SECRET_KEY)
        .env("METAKOCKA_COMPANY_ID", c::METAKOCKA_COMPANY_ID)
        .timeout(Duration::from_secs(60));
    cmd
}

/// Per vendor: the `run` arguments of a small job, and the credential variable to spoil.
const VENDOR_JOBS: &[(Vendor, &[&str], &str)] = &[
    (
        Vendor::DocSpace,
        &[
            "docspace",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--no-debit",
        ],
        "DOCSPACE_API_KEY",
    ),
    (
        Vendor::EvoVoice,
        &[
            "evovoice",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--account-id",
            "acct-1",
        ],
        "EVOVOICE_PASSWORD",
    ),
    (
        Vendor::CloudBlue,
        &[
            "cloudblue",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--format",
            "csv",
        ],
        "CLOUDBLUE_PASSWORD",
    ),
    (
        Vendor::MetaKocka,
        &["metakocka", "run", "--report-id", "149", "--format", "csv"],
        "METAKOCKA_SECRET_KEY",
    ),
    (
        Vendor::Ofd,
        &[
            "ofd",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
        "OFD_PASSWORD",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_runs_end_to_end() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    for (vendor, run_args, _) in VENDOR_JOBS {
        let out = dir.path().join(format!("{}.out", vendor.name()));
        let mut cmd = reports(&sandbox);
        cmd.args(*run_args)
            .args(["--json", "--out", out.to_str().unwrap()]);
        let output = run(cmd).await.success().get_output().clone();
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("JSON on stdout");
        assert_eq!(json["vendor"], vendor.name());
        assert_eq!(json["file"]["bytes"], 4096, "{vendor:?}");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096, "{vendor:?}");
        assert_eq!(sandbox.stats(*vendor).reports_started, 1, "{vendor:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_exits_1_on_a_failed_report_and_3_on_refused_credentials() {
    let failing = sandbox(true).await;
    let dir = tempfile::tempdir().unwrap();
    for (vendor, run_args, secret_var) in VENDOR_JOBS {
        let out = dir.path().join(format!("{}.out", vendor.name()));
        let mut cmd = reports(&failing);
        cmd.args(*run_args)
            .args(["--quiet", "--out", out.to_str().unwrap()]);
        run(cmd).await.code(1);
        assert!(!out.exists(), "{vendor:?}: nothing may be left at --out");

        let mut cmd = reports(&failing);
        cmd.env(secret_var, "spoiled-secret-value")
            .args(*run_args)
            .args(["--quiet", "--out", out.to_str().unwrap()]);
        let assert = run(cmd).await.code(3);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            !stderr.contains("spoiled-secret-value"),
            "{vendor:?} leaked: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_refuses_bad_input_with_exit_2_before_sending() {
    let sandbox = sandbox(false).await;
    let cases: &[&[&str]] = &[
        &[
            "docspace",
            "start",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-01",
        ],
        &[
            "docspace",
            "start",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--no-credit",
            "--no-debit",
        ],
        &[
            "evovoice",
            "start",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-01",
            "--account-id",
            "a",
        ],
        &[
            "evovoice",
            "start",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--account-id",
            "a",
            "--webhook",
            "http://not-https.example/hook",
        ],
        &[
            "evovoice",
            "start",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--account-id",
            "a",
            "--notify",
            "not-an-email",
        ],
        &[
            "cloudblue",
            "start",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--format",
            "pdf",
        ],
        &[
            "cloudblue",
            "start",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-31",
            "--format",
            "csv",
        ],
        &[
            "metakocka",
            "start",
            "--report-id",
            "149",
            "--format",
            "DOCX",
        ],
        &["metakocka", "start", "--report-id", "not-a-number"],
        &[
            "metakocka",
            "start",
            "--report-id",
            "149",
            "--param",
            "ADD_ATT_DATE_MK_DATUM_FROM=2024-01-01",
        ],
        &[
            "metakocka",
            "start",
            "--report-id",
            "149",
            "--param",
            "no-equals-sign",
        ],
    ];
    for case in cases {
        let mut cmd = reports(&sandbox);
        cmd.args(*case);
        let assert = run(cmd).await.code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains("error"), "{case:?}: {stderr}");
    }
    // DocSpace has no default portal.
    let mut cmd = reports(&sandbox);
    cmd.env_remove("DOCSPACE_BASE_URL").args([
        "docspace",
        "start",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-31",
    ]);
    run(cmd)
        .await
        .code(2)
        .stderr(predicate::str::contains("DOCSPACE_BASE_URL"));
    assert!(
        sandbox.requests().is_empty(),
        "nothing may be sent for bad input"
    );
}

const OFD_JOB: &[&str] = &[
    "--from",
    "2024-01-01",
    "--to",
    "2024-01-31",
    "--type",
    "ReceiptReport",
    "--all-kkts",
];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(tail).copied().collect()
}

/// Runs a blocking command while the sandbox keeps serving on the runtime's workers.
async fn run(mut cmd: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the command thread finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofd_run_downloads_the_report() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("receipts.zip");
    let mut cmd = reports(&sandbox);
    cmd.args(args(&["ofd", "run"], OFD_JOB))
        .args(["--out", out.to_str().unwrap(), "--json"]);
    let output = run(cmd).await.success().get_output().clone();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(json["vendor"], "ofd");
    assert_eq!(json["file"]["bytes"], 4096);
    let id = json["id"].as_str().unwrap();
    assert_eq!(
        json["file"]["sha256"].as_str(),
        sandbox.report_sha256(Vendor::Ofd, id).as_deref()
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofd_start_status_wait_download_from_a_ticket_file() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let ticket = dir.path().join("ticket.json");

    let mut start = reports(&sandbox);
    start.args(args(&["ofd", "start"], OFD_JOB));
    let output = run(start).await.success().get_output().clone();
    std::fs::write(&ticket, &output.stdout).unwrap();
    let at_ticket = format!("@{}", ticket.display());

    let mut status = reports(&sandbox);
    status.args(["ofd", "status", "--json", "--ticket", &at_ticket]);
    run(status)
        .await
        .success()
        .stdout(predicate::str::contains(r#""state":"#));
    // `@-`: the ticket from standard input.
    let mut status = reports(&sandbox);
    status
        .args(["ofd", "status", "--json", "--ticket", "@-"])
        .write_stdin(output.stdout.clone());
    run(status)
        .await
        .success()
        .stdout(predicate::str::contains(r#""state":"#));

    let mut wait = reports(&sandbox);
    wait.args(["ofd", "wait", "--quiet", "--ticket", &at_ticket]);
    run(wait).await.success().stdout("ready\n");

    let out = dir.path().join("r.zip");
    let mut download = reports(&sandbox);
    download.args([
        "ofd",
        "download",
        "--quiet",
        "--ticket",
        &at_ticket,
        "--out",
        out.to_str().unwrap(),
    ]);
    run(download)
        .await
        .success()
        .stdout(predicate::str::starts_with("saved "));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);
    // One start for the whole sequence: resuming never starts a second report.
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ofd_cancel() {
    let sandbox = sandbox(false).await;
    let mut start = reports(&sandbox);
    start.args(args(&["ofd", "start"], OFD_JOB));
    let ticket = String::from_utf8(run(start).await.success().get_output().stdout.clone()).unwrap();
    let mut cancel = reports(&sandbox);
    cancel.args(["ofd", "cancel", "--ticket", ticket.trim()]);
    run(cancel).await.success().stdout("cancelled\n");
    // Waiting for a cancelled report exits 1.
    let mut wait = reports(&sandbox);
    wait.args(["ofd", "wait", "--quiet", "--ticket", ticket.trim()]);
    run(wait).await.code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_1_when_the_vendor_reports_failure() {
    let sandbox = sandbox(true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.zip");
    let mut cmd = reports(&sandbox);
    cmd.args(args(&["ofd", "run"], OFD_JOB))
        .args(["--out", out.to_str().unwrap()]);
    run(cmd)
        .await
        .code(1)
        .stderr(predicate::str::contains("the report failed"));
    assert!(
        !out.exists(),
        "nothing is left where the report was expected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_2_for_bad_input_before_any_request() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.zip");
    let out = out.to_str().unwrap();
    let folder_with_slash = format!("{}/", dir.path().display());
    let run_ofd_to = |out: &'static str| {
        vec![
            "ofd",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
        ]
    };
    let folder_with_slash: &'static str = Box::leak(folder_with_slash.into_boxed_str());
    let cases: Vec<Vec<&str>> = vec![
        // --out is a folder, or ends like one
        run_ofd_to(folder_with_slash),
        run_ofd_to("/tmp"),
        // --out in a folder nobody may write to
        run_ofd_to("/proc/r.zip"),
        // a "ticket file" without end: read only up to the ticket limit
        vec!["ofd", "status", "--ticket", "@/dev/zero"],
        // bad periods and zones, and a period with --from
        vec![
            "ofd",
            "start",
            "--period",
            "2024-13",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
        vec![
            "ofd",
            "start",
            "--period",
            "last-month",
            "--tz",
            "Mars/Olympus",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
        vec![
            "ofd",
            "start",
            "--period",
            "yesterday",
            "--from",
            "2024-01-01",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
        // a state file that is not one
        vec![
            "ofd",
            "run",
            "--period",
            "2024-01",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
            "--state-file",
            "/dev/zero",
        ],
        // --to before --from
        vec![
            "ofd",
            "run",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-01",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
        ],
        // not a date
        vec![
            "ofd",
            "run",
            "--from",
            "2024-13-01",
            "--to",
            "2024-01-01",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
        ],
        // unknown report type
        vec![
            "ofd",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--type",
            "NoSuchReport",
            "--all-kkts",
            "--out",
            out,
        ],
        // neither --kkt nor --all-kkts
        vec![
            "ofd",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--type",
            "ReceiptReport",
            "--out",
            out,
        ],
        // a malformed INN
        vec![
            "ofd",
            "start",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--inn",
            "12",
            "--kpp",
            "772501001",
        ],
        // an unreadable ticket
        vec!["ofd", "status", "--ticket", "{not json"],
        // a ticket from another vendor
        vec![
            "ofd",
            "status",
            "--ticket",
            r#"{"version":1,"vendor":"evovoice","id":"x","started_at":"2024-01-01T00:00:00Z"}"#,
        ],
        // the destination folder does not exist
        vec![
            "ofd",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            "/nonexistent/dir/r.zip",
        ],
        // plain http to a non-loopback host
        vec![
            "ofd",
            "start",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-02",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--base-url",
            "http://ofd.example",
        ],
    ];
    for case in cases {
        let mut cmd = reports(&sandbox);
        cmd.args(&case);
        let assert = run(cmd).await.code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains("error"), "{case:?}: {stderr}");
    }
    // Missing credentials.
    let mut cmd = reports(&sandbox);
    cmd.env_remove("OFD_PASSWORD")
        .args(args(&["ofd", "start"], OFD_JOB));
    run(cmd)
        .await
        .code(2)
        .stderr(predicate::str::contains("OFD_PASSWORD"));
    assert!(
        sandbox.requests().is_empty(),
        "nothing may be sent for bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_3_when_credentials_are_rejected() {
    let sandbox = sandbox(false).await;
    let mut cmd = reports(&sandbox);
    cmd.env("OFD_PASSWORD", "wrong-password-123")
        .args(args(&["ofd", "start"], OFD_JOB));
    let assert = run(cmd).await.code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("credentials rejected"), "{stderr}");
    assert!(
        !stderr.contains("wrong-password-123"),
        "the password leaked: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_4_for_transport_errors_and_deadlines() {
    let sandbox = sandbox(false).await;
    // Nothing listens on port 9 of loopback.
    let mut cmd = reports(&sandbox);
    cmd.env("OFD_BASE_URL", "http://127.0.0.1:9")
        .args(args(&["ofd", "start"], OFD_JOB))
        .args(["--timeout", "2"]);
    run(cmd)
        .await
        .code(4)
        .stderr(predicate::str::contains("transport error"));

    // A report slower than the deadline.
    let slow = Sandbox::start(SandboxConfig {
        job_duration: Duration::from_secs(3600),
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = reports(&slow);
    cmd.args(args(&["ofd", "run"], OFD_JOB)).args([
        "--timeout",
        "1",
        "--out",
        dir.path().join("r.zip").to_str().unwrap(),
    ]);
    run(cmd)
        .await
        .code(4)
        .stderr(predicate::str::contains("deadline"));
}

#[test]
fn help_and_completions() {
    let mut help = Command::cargo_bin("reports").unwrap();
    help.arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes"))
        .stdout(predicate::str::contains("reports demo"));
    let mut bash = Command::cargo_bin("reports").unwrap();
    bash.args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_reports"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exit_status_says_pending_ready_or_failed() {
    let sandbox = sandbox(false).await;
    let mut start = reports(&sandbox);
    start.args([
        "ofd",
        "start",
        "--period",
        "2024-01",
        "--tz",
        "Europe/Moscow",
        "--type",
        "ReceiptReport",
        "--all-kkts",
    ]);
    let ticket = String::from_utf8(run(start).await.success().get_output().stdout.clone()).unwrap();
    let status = |extra: &[&str]| {
        let mut cmd = reports(&sandbox);
        cmd.args(["ofd", "status", "--ticket", ticket.trim()])
            .args(extra);
        cmd
    };
    run(status(&["--exit-status"]))
        .await
        .code(5)
        .stdout(predicate::str::starts_with("pending"));
    // Without the flag, pending is a successful answer.
    run(status(&[])).await.success();
    let mut wait = reports(&sandbox);
    wait.args(["ofd", "wait", "-q", "--ticket", ticket.trim()]);
    run(wait).await.success();
    run(status(&["--exit-status", "--json"])).await.success();

    let failing = self::sandbox(true).await;
    let mut start = reports(&failing);
    start.args(args(&["ofd", "start"], OFD_JOB));
    let ticket = String::from_utf8(run(start).await.success().get_output().stdout.clone()).unwrap();
    let mut wait = reports(&failing);
    wait.args(["ofd", "wait", "-q", "--ticket", ticket.trim()]);
    run(wait).await.code(1);
    let mut status = reports(&failing);
    status.args(["ofd", "status", "--exit-status", "--ticket", ticket.trim()]);
    run(status).await.code(1).stderr("");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_existing_with_a_state_file_skips_only_the_same_request() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.zip");
    let state = dir.path().join("state.json");
    let month = |period: &str| {
        let mut cmd = reports(&sandbox);
        cmd.args([
            "ofd",
            "run",
            "--period",
            period,
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ])
        .args(["--skip-existing", "--state-file"])
        .arg(&state)
        .arg("--out")
        .arg(&out);
        cmd
    };
    run(month("2024-01")).await.success();
    run(month("2024-01"))
        .await
        .success()
        .stdout(predicate::str::contains("skipped"));
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 1);
    // Next month, same file: a new report replaces last month's.
    run(month("2024-02"))
        .await
        .success()
        .stdout(predicate::str::starts_with("saved "));
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_finds_what_was_started_and_delete_removes_it() {
    let sandbox = sandbox(false).await;
    let start = |head: &[&str], tail: &[&str]| {
        let mut cmd = reports(&sandbox);
        cmd.args(head).args(tail);
        cmd
    };
    let list = |vendor_args: &[&str], json: bool| {
        let mut cmd = reports(&sandbox);
        cmd.args(vendor_args);
        if json {
            cmd.arg("--json");
        }
        cmd
    };
    for (vendor, start_args, list_args, id_key) in [
        (
            "ofd",
            args(&["ofd", "start"], OFD_JOB),
            vec!["ofd", "list"],
            "Id",
        ),
        (
            "evovoice",
            vec![
                "evovoice",
                "start",
                "--period",
                "2024-01",
                "--account-id",
                c::EVOVOICE_ACCOUNT_ID,
            ],
            vec!["evovoice", "list", "--account-id", c::EVOVOICE_ACCOUNT_ID],
            "id",
        ),
    ] {
        let out = run(start(&start_args, &[]))
            .await
            .success()
            .get_output()
            .clone();
        let ticket: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = ticket["id"].as_str().unwrap().to_string();
        // Plain: one line per report, starting with its id.
        run(list(&list_args, false))
            .await
            .success()
            .stdout(predicate::str::contains(format!("{id}  ")));
        let listed = run(list(&list_args, true))
            .await
            .success()
            .get_output()
            .clone();
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[id_key] == id.as_str()),
            "{vendor}: {listed}"
        );
        let ticket_text = ticket.to_string();
        run(start(&[vendor, "delete", "--ticket", &ticket_text], &[]))
            .await
            .success()
            .stdout("deleted\n");
        let listed = run(list(&list_args, true))
            .await
            .success()
            .get_output()
            .clone();
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        // Gone, or (OFD keeps them a while) marked deleted.
        let status = |r: &serde_json::Value| r.get("Status").or(r.get("status")).cloned();
        assert!(
            !listed
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r[id_key] == id.as_str() && status(r) != Some("Deleted".into())),
            "{vendor}: still listed after delete: {listed}"
        );
    }
    // CloudBlue lists its reports; DocSpace shows the current task; MetaKocka has no list.
    let mut cb = reports(&sandbox);
    cb.args([
        "cloudblue",
        "start",
        "--period",
        "2024-01",
        "--format",
        "csv",
    ]);
    let out = run(cb).await.success().get_output().clone();
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    run(list(&["cloudblue", "list", "--limit", "50"], false))
        .await
        .success()
        .stdout(predicate::str::contains(id));
    let mut mk = reports(&sandbox);
    mk.args(["metakocka", "list"]);
    run(mk).await.code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_attach_follows_the_running_task_instead_of_refusing() {
    let slow = Sandbox::start(SandboxConfig {
        job_duration: Duration::from_secs(3),
        report_size: 4096,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let docspace = |extra: &[&str]| {
        let mut cmd = reports(&slow);
        cmd.args(["docspace", "start", "--period", "2024-01"])
            .args(extra);
        cmd
    };
    let first = run(docspace(&[])).await.success().get_output().clone();
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    // A second start while the first runs is refused, and the error names the way out.
    run(docspace(&[]))
        .await
        .failure()
        .stderr(predicate::str::contains("attach"));
    let attached = run(docspace(&["--attach"]))
        .await
        .success()
        .get_output()
        .clone();
    let attached: serde_json::Value = serde_json::from_slice(&attached.stdout).unwrap();
    assert_eq!(attached["id"], first["id"]);
    let mut list = reports(&slow);
    list.args(["docspace", "list", "--json"]);
    let listed = run(list).await.success().get_output().clone();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], first["id"]);
    assert_eq!(slow.stats(Vendor::DocSpace).reports_started, 1);
}

/// `reports evovoice run --type cdr …`: a report type other than billing runs end to end
/// against the sandbox; an unknown type is a usage error before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evovoice_runs_every_report_type_by_name() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cdr.xlsx");
    let job = [
        "evovoice",
        "run",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-31",
        "--account-id",
        "acct-1",
    ];
    let mut cmd = reports(&sandbox);
    cmd.args(job).args([
        "--type",
        "cdr",
        "--time-zone",
        "Europe/Ljubljana",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let output = run(cmd).await.success().get_output().clone();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    let id = json["id"].as_str().unwrap();
    assert_eq!(
        json["file"]["sha256"].as_str(),
        sandbox.report_sha256(Vendor::EvoVoice, id).as_deref()
    );
    let started = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/reports/cdr"))
        .count();
    assert_eq!(started, 1);

    let before = sandbox.requests().len();
    let mut cmd = reports(&sandbox);
    cmd.args(job)
        .args(["--type", "fax", "--out", out.to_str().unwrap()]);
    run(cmd)
        .await
        .code(2)
        .stderr(predicate::str::contains("unknown EvoVoice report type"));
    assert_eq!(sandbox.requests().len(), before, "nothing was sent");
}

/// `reports demo` runs its five jobs through the durable runner: each row names its job, the
/// job ended `done`, the file matches the sandbox's checksum, and the temporary queue is gone.
#[test]
fn demo_runs_its_jobs_through_the_runner() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let output = Command::cargo_bin("reports")
        .unwrap()
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", tmp.path())
        .args([
            "demo", "--job-ms", "300", "--size", "2048", "--json", "-q", "--dir",
        ])
        .arg(&out)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let vendors: Vec<_> = rows.iter().map(|r| r["vendor"].as_str().unwrap()).collect();
    assert_eq!(
        vendors,
        ["docspace", "evovoice", "cloudblue", "metakocka", "ofd"]
    );
    for row in &rows {
        assert_eq!(row["state"], "done", "{row}");
        assert_eq!(row["verified"], true, "{row}");
        assert_eq!(row["job"].as_str().map(str::len), Some(36), "{row}");
        let file = std::path::Path::new(row["file"].as_str().unwrap());
        assert!(file.starts_with(&out) && file.is_file(), "{row}");
    }
    // Only the output folder is left in the temporary folder: the queue went with the demo.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out"]);
}

/// `reports metakocka export`: one call that answers when the export is done, then the ZIP from
/// its pre-signed link (no credentials there); the request carries the options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metakocka_export_downloads_the_zip() {
    let sandbox = sandbox(false).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.zip");
    let mut cmd = reports(&sandbox);
    cmd.args(["metakocka", "export", "--export-profile", "Izvoz knjiženja"])
        .args(["--export-profile", "Izvoz DDV", "--period", "2024-01"])
        .args(["--utc-offset", "+02:00", "--export-attachment", "--json"])
        .args(["--out", out.to_str().unwrap()]);
    let output = run(cmd).await.success().get_output().clone();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(json["vendor"], "metakocka");
    let id = json["id"].as_str().unwrap();
    assert_eq!(
        json["file"]["sha256"].as_str(),
        sandbox.report_sha256(Vendor::MetaKocka, id).as_deref()
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);
    let requests = sandbox.requests();
    let export = requests
        .iter()
        .find(|r| r.path.ends_with("/accounting_export"))
        .expect("the export was requested");
    let body: serde_json::Value = serde_json::from_str(&export.body).unwrap();
    assert_eq!(
        body["profile_name_list"],
        serde_json::json!(["Izvoz knjiženja", "Izvoz DDV"])
    );
    assert_eq!(body["from_date"], "2024-01-01+02:00");
    assert_eq!(body["to_date"], "2024-01-31+02:00");
    assert_eq!(body["export_attachment"], "true");
    for r in requests.iter().filter(|r| r.origin == "blob") {
        let text = format!("{} {:?} {:?} {}", r.path, r.query, r.headers, r.body);
        assert!(!text.contains(c::METAKOCKA_SECRET_KEY), "{text}");
    }

    // A failed download offers no `download --ticket`: an export's link is not found again.
    let small = dir.path().join("small.zip");
    let mut cmd = reports(&sandbox);
    cmd.args([
        "metakocka",
        "export",
        "--export-profile",
        "P",
        "--period",
        "2024-01",
    ])
    .args(["--max-size", "10", "--out", small.to_str().unwrap()]);
    let failed = run(cmd).await.code(4).get_output().clone();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("larger than the limit"), "{stderr}");
    assert!(!stderr.contains("resume with"), "{stderr}");
    assert!(!small.exists());
}

/// A failed export is the vendor's answer (exit 4, nothing saved, no resume by ticket);
/// an export without a profile is refused before anything is sent (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metakocka_export_failures() {
    let sandbox = sandbox(true).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.zip");
    let mut cmd = reports(&sandbox);
    cmd.args([
        "metakocka",
        "export",
        "--export-profile",
        "P",
        "--period",
        "2024-01",
    ])
    .args(["--out", out.to_str().unwrap()]);
    run(cmd)
        .await
        .code(4)
        .stderr(predicate::str::contains("Export failed"));
    assert!(!out.exists());

    let mut cmd = reports(&sandbox);
    cmd.args(["metakocka", "export", "--period", "2024-01"])
        .args(["--out", out.to_str().unwrap()]);
    run(cmd)
        .await
        .code(2)
        .stderr(predicate::str::contains("--export-profile"));
    let mut cmd = reports(&sandbox);
    cmd.args(["metakocka", "export", "--export-profile", "P"])
        .args(["--from", "2024-02-01", "--to", "2024-01-01"])
        .args(["--out", out.to_str().unwrap()]);
    run(cmd).await.code(2);
    let exports = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/accounting_export"))
        .count();
    assert_eq!(exports, 1, "only the first export was sent");
}
