//! What a user of gh, aws or kubectl expects of a command line: suggestions for typos, help that
//! documents its environment (snapshots), secrets from files or stdin, `--out -`, `--log-file`,
//! a broken pipe that is not a panic.

use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

/// `reports` with a clean environment.
fn reports() -> Command {
    let mut cmd = Command::cargo_bin("reports").expect("the binary is built");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .timeout(Duration::from_secs(60));
    cmd
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        job_duration: Duration::from_millis(200),
        report_size: 4096,
        ..SandboxConfig::fast()
    })
    .await
    .expect("sandbox starts")
}

const OFD_RUN: &[&str] = &[
    "ofd",
    "run",
    "--period",
    "2024-01",
    "--type",
    "ReceiptReport",
    "--all-kkts",
];

/// `reports ofd run` against the sandbox, without the password (each test brings its own).
fn ofd_run(sandbox: &Sandbox) -> Command {
    let mut cmd = reports();
    cmd.env("OFD_BASE_URL", sandbox.base_url(Vendor::Ofd))
        .env("OFD_LOGIN", c::OFD_LOGIN)
        .args(OFD_RUN);
    cmd
}

async fn run(mut cmd: Command) -> assert_cmd::assert::Assert {
    tokio::task::spawn_blocking(move || cmd.assert())
        .await
        .expect("the command thread finishes")
}

#[test]
fn typos_get_a_suggestion_at_their_level() {
    reports()
        .arg("odf")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'ofd'"));
    reports()
        .args(["ofd", "rn"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'run'"));
}

#[test]
fn help_is_a_snapshot_and_documents_the_environment() {
    let help = |args: &[&str]| {
        // No terminal on any stream (clap also measures stdin's), so the width is the same
        // everywhere.
        let output = reports().args(args).write_stdin("").output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let top = help(&["--help"]);
    assert!(
        top.contains("REPORTS_LOG") && top.contains("_FILE"),
        "{top}"
    );
    insta::assert_snapshot!("help", top);
    insta::assert_snapshot!("help_ofd", help(&["ofd", "--help"]));
    insta::assert_snapshot!("help_ofd_run", help(&["ofd", "run", "--help"]));
    // Secret values never show, even when set; other values show only when set.
    let mut cmd = reports();
    cmd.env("OFD_PASSWORD", "hunter2-secret")
        .env("OFD_BASE_URL", "https://ofd.example")
        .args(["ofd", "--help"]);
    cmd.assert()
        .success()
        .stdout(predicate::str::contains("hunter2-secret").not())
        .stdout(predicate::str::contains("OFD_BASE_URL=https://ofd.example"));
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("reports"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -0`: the reader is gone before the script is written.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn the_insecure_http_refusal_names_the_flag() {
    reports()
        .args(OFD_RUN)
        .args(["--out", "r.zip", "--login", "l", "--password", "p"])
        .args(["--base-url", "http://ofd.example"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--allow-insecure-http"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_var_file_or_stdin_never_echoed() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("ofd-password");
    std::fs::write(&secret, format!("{}\n", c::OFD_PASSWORD)).unwrap();
    let out = dir.path().join("a.zip");

    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD_FILE", &secret).arg("--out").arg(&out);
    run(cmd).await.success();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);

    let out = dir.path().join("b.zip");
    let mut cmd = ofd_run(&sandbox);
    cmd.args(["--password-stdin", "-q"])
        .arg("--out")
        .arg(&out)
        .write_stdin(format!("{}\n", c::OFD_PASSWORD));
    run(cmd).await.success();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);

    // A missing secret file is named, and nothing is sent.
    let started = sandbox.stats(Vendor::Ofd).reports_started;
    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD_FILE", dir.path().join("missing"))
        .arg("--out")
        .arg(dir.path().join("c.zip"));
    run(cmd)
        .await
        .code(2)
        .stderr(predicate::str::contains("OFD_PASSWORD_FILE"));
    // A wrong secret from a file is refused without being echoed.
    std::fs::write(&secret, "wrong-secret-from-file\n").unwrap();
    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD_FILE", &secret)
        .arg("--out")
        .arg(dir.path().join("d.zip"));
    run(cmd)
        .await
        .code(3)
        .stderr(predicate::str::contains("wrong-secret-from-file").not());
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_dash_streams_the_report_to_stdout_and_log_file_keeps_timestamped_lines() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("reports.log");
    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD", c::OFD_PASSWORD)
        .args(["--out", "-", "--log-file"])
        .arg(&log);
    let output = run(cmd).await.success().get_output().clone();
    assert_eq!(output.stdout.len(), 4096, "the report, and nothing else");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("wrote 4096 bytes to standard output"),
        "{stderr}"
    );

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("ticket: {"), "{log}");
    assert!(log.contains("wrote 4096 bytes"), "{log}");
    for line in log.lines() {
        let stamp = line.split(' ').next().unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "a line without a timestamp: {line}"
        );
    }
    // `--out -` and `--json` would mix on stdout.
    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD", c::OFD_PASSWORD)
        .args(["--out", "-", "--json"]);
    run(cmd).await.code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_refuses_a_larger_report_and_leaves_nothing() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.zip");
    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD", c::OFD_PASSWORD)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .args(["--max-size", "1K", "--out"])
        .arg(&out);
    let assert = run(cmd).await.code(4);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("resume with: reports ofd download"),
        "{stderr}"
    );
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != "cache")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // Within the limit (sizes with units), the report is saved.
    let mut cmd = ofd_run(&sandbox);
    cmd.env("OFD_PASSWORD", c::OFD_PASSWORD)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .args(["--max-size", "500M", "--out"])
        .arg(&out);
    run(cmd).await.success();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_of_the_config_file_give_the_connection() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("ofd-password");
    std::fs::write(&secret, c::OFD_PASSWORD).unwrap();
    let profile = |name: &str| {
        format!(
            "[profiles.{name}.ofd]\nbase_url = \"{}\"\nlogin = \"{}\"\npassword_file = \"{}\"\n",
            sandbox.base_url(Vendor::Ofd),
            c::OFD_LOGIN,
            secret.display()
        )
    };
    // The default file and profile: $XDG_CONFIG_HOME/reports/config.toml, [profiles.default].
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    std::fs::write(dir.path().join("reports/config.toml"), profile("default")).unwrap();
    let mut cmd = reports();
    cmd.env("XDG_CONFIG_HOME", dir.path())
        .args(OFD_RUN)
        .arg("--out")
        .arg(dir.path().join("a.zip"));
    run(cmd).await.success();

    // --config and --profile.
    let config = dir.path().join("other.toml");
    std::fs::write(&config, profile("nightly")).unwrap();
    let mut cmd = reports();
    cmd.args(OFD_RUN)
        .arg("--config")
        .arg(&config)
        .args(["--profile", "nightly", "--out"])
        .arg(dir.path().join("b.zip"));
    run(cmd).await.success();
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 2);

    // An unknown profile is a usage error.
    let mut cmd = reports();
    cmd.args(OFD_RUN)
        .arg("--config")
        .arg(&config)
        .args(["--profile", "daily", "--out"])
        .arg(dir.path().join("c.zip"));
    run(cmd)
        .await
        .code(2)
        .stderr(predicate::str::contains("no profile `daily`"));
}

/// `reports sandbox --port PORT` serves on PORT and the next five ports, in the order the help
/// names, so the printed base URLs stay valid across restarts; a port in use is a clear error.
#[test]
fn the_sandbox_serves_on_fixed_ports_when_asked() {
    use std::io::{BufRead, BufReader};
    // A free run of six ports: probe with real binds, then release them.
    let base = (0..50)
        .find_map(|_| {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
            let base = probe.local_addr().ok()?.port().checked_sub(6)?;
            drop(probe);
            let held: Vec<_> = (0..6u16)
                .map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)))
                .collect::<Result<_, _>>()
                .ok()?;
            drop(held);
            Some(base)
        })
        .expect("a free run of six loopback ports");
    let mut server = std::process::Command::new(assert_cmd::cargo::cargo_bin("reports"))
        .args(["sandbox", "--port", &base.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(server.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.starts_with("# OFD demo account"))
        .collect();
    let text = lines.join("\n");
    for (offset, variable) in [(0, "DOCSPACE_BASE_URL"), (4, "OFD_BASE_URL")] {
        let expected = format!("{variable}=http://127.0.0.1:{}", base + offset);
        assert!(text.contains(&expected), "{expected} in:\n{text}");
    }
    assert!(text.contains("stay valid after a restart"), "{text}");

    // The same ports while the first sandbox serves: refused, naming the cause.
    reports()
        .args(["sandbox", "--port", &base.to_string()])
        .timeout(Duration::from_secs(10))
        .assert()
        .code(4)
        .stderr(predicate::str::contains("cannot start the sandbox"));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Each command offers only the options it uses: one that would do nothing there is refused
/// (exit 2, naming it), and still works where it does something.
#[test]
fn options_that_do_nothing_for_a_command_are_refused_there() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let refused: &[&[&str]] = &[
        &["completions", "bash", "--json"],
        &["completions", "bash", "--quiet"],
        &["sandbox", "--timeout", "5s"],
        &["sandbox", "--password-stdin"],
        &["demo", "--password-stdin"],
        &["demo", "--allow-insecure-http"],
        &["demo", "--profile", "nightly"],
        &["jobs", "--timeout", "5s"],
        &["jobs", "--allow-insecure-http"],
        &["worker", "--json"],
        &["worker", "--password-stdin"],
        &["submit", "ofd", "--password-stdin"],
        &["submit", "ofd", "--timeout", "5s"],
        &["submit", "ofd", "--allow-insecure-http"],
    ];
    for args in refused {
        let option = args.iter().find(|a| a.starts_with('-')).unwrap();
        reports()
            .env("REPORTS_DB", &db)
            .args(*args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "unexpected argument '{option}'"
            )));
    }
    // Where they work: `jobs --json` prints JSON, a worker takes a deadline, a profile file and
    // the insecure opt-in; a vendor's command takes them all.
    reports()
        .env("REPORTS_DB", &db)
        .args(["jobs", "--json", "-q"])
        .assert()
        .success()
        .stdout("[]\n");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    reports()
        .env("REPORTS_DB", &db)
        .args(["worker", "--exit-when-idle", "--quiet", "--timeout", "5s"])
        .args([
            "--allow-insecure-http",
            "--config",
            config.to_str().unwrap(),
        ])
        .assert()
        .success();
    reports()
        .args([
            "ofd",
            "status",
            "--json",
            "--timeout",
            "5s",
            "--password-stdin",
        ])
        .args(["--allow-insecure-http", "--ticket", "not json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unexpected argument").not());
}
