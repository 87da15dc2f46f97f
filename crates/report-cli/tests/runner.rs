//! `reports submit | worker | jobs` against the sandbox, driven as a user would.

mod support;

use std::time::Duration;

use report_sandbox::Vendor;
use support::jobs::*;

#[test]
fn submit_validates_like_run_and_queues_nothing_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let out = dir.path().join("r.out");
    let out = out.to_str().unwrap();
    let bad: &[&[&str]] = &[
        &[
            "ofd",
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
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "Nope",
            "--all-kkts",
            "--out",
            out,
        ],
        &[
            "docspace",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--out",
            "/no/such/folder/x",
        ],
        &[
            "evovoice",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--out",
            out,
        ],
        &[
            "cloudblue",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--format",
            "pdf",
            "--out",
            out,
        ],
        &["metakocka", "--format", "csv", "--out", out],
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
        // Credentials have no place in a submit.
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
            "--password",
            "x",
        ],
        &["nosuchvendor", "--out", out],
    ];
    for args in bad {
        bare(&db).arg("submit").args(*args).assert().code(2);
    }
    assert!(jobs_json(&db).is_empty(), "nothing queued");

    // Good input needs no credentials and prints the id.
    let out = bare(&db)
        .arg("submit")
        .args(SUBMITS[4].1)
        .args([
            "--out",
            dir.path().join("ofd.zip").to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["state"], "queued");
    let jobs = jobs_json(&db);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], answer["id"]);
    assert_eq!(jobs[0]["vendor"], "ofd");
}

#[test]
fn a_database_that_cannot_be_opened_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing-folder").join("jobs.sqlite");
    bare(&db).arg("jobs").assert().code(2);
    bare(&db)
        .args(["worker", "--exit-when-idle"])
        .assert()
        .code(2);
    let out = dir.path().join("r.out");
    bare(&db)
        .arg("submit")
        .args(SUBMITS[4].1)
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_jobs_of_every_vendor_are_run_by_a_worker() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    // Every vendor, and three DocSpace jobs on one connection: one after another, none refused.
    let mut submits: Vec<&(Vendor, &[&str])> = SUBMITS.iter().collect();
    submits.push(&SUBMITS[0]);
    submits.push(&SUBMITS[0]);
    for (i, (vendor, args)) in submits.iter().enumerate() {
        let out = files.join(format!("{i}-{}.out", vendor.name()));
        bare(&db)
            .arg("submit")
            .args(*args)
            .args(["--out", out.to_str().unwrap()])
            .assert()
            .success();
    }
    let env = worker_env(&sandbox);
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || {
        bare(&db2)
            .envs(env)
            .args(["worker", "--exit-when-idle", "--quiet", "--fetch-ms", "100"])
            .assert()
            .success();
    })
    .await
    .unwrap();

    let jobs = jobs_json(&db);
    assert_eq!(jobs.len(), 7);
    for job in &jobs {
        verify_done(&sandbox, job);
    }
    assert_distinct_reports(&jobs);
    for (vendor, _) in SUBMITS {
        let submitted = submits.iter().filter(|(v, _)| v == vendor).count() as u64;
        assert_eq!(
            sandbox.stats(*vendor).reports_started,
            submitted,
            "{vendor:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&files).unwrap().count(),
        7,
        "no temporary file left"
    );

    // `jobs show` tells everything; the database holds no credential.
    let id = jobs[0]["id"].as_str().unwrap();
    let show = bare(&db).args(["jobs", "show", id]).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["sha256"], jobs[0]["sha256"]);
    bare(&db)
        .args(["jobs", "show", "no-such-id"])
        .assert()
        .code(2);
    assert_no_credentials(dir.path());
}

/// Random moments: a small xorshift seeded from the clock (printed, to replay a failure).
struct Dice(u64);

impl Dice {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_moments_lose_no_job_and_start_none_twice() {
    let began = std::time::Instant::now();
    // Reports take 3 s: longer than a killed worker's lease (2 s) runs out. DocSpace
    // reconciles a cut start with the user's current task: running, it is ours; finished, it
    // is ours only if its file names our period (every task of a user has one id), and a
    // finished task of our period cannot be told from an older one (that job would fail
    // "start outcome unknown", as documented). With 0.3 s reports and one period for every
    // job, a kill between its POST and the saved ticket failed a DocSpace job about one run
    // in three.
    let sandbox = report_sandbox::Sandbox::start(report_sandbox::SandboxConfig {
        job_duration: Duration::from_secs(3),
        report_size: 4096,
        ..report_sandbox::SandboxConfig::fast()
    })
    .await
    .expect("sandbox starts");
    // ≈ 20 % of status requests faulted, 10 % of downloads cut.
    sandbox.set_faults(report_sandbox::Faults {
        status_5xx: 0.06,
        status_429: 0.04,
        retry_after_secs: 1,
        drop_connection: 0.05,
        truncate_body: 0.05,
        download_cut: 0.1,
        ..report_sandbox::Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut submitted = 0;
    for round in 0..4 {
        for (vendor, args) in SUBMITS {
            let out = files.join(format!("{round}-{}.out", vendor.name()));
            // DocSpace's jobs ask for a month each, as nightly jobs of one connection do: a
            // worker taking over a cut start can then tell the previous job's finished task
            // from its own (its file names its period).
            let (from, to) = (
                format!("2024-0{}-01", round + 1),
                format!("2024-0{}-28", round + 1),
            );
            let args: Vec<&str> = match vendor {
                Vendor::DocSpace => vec!["docspace", "--from", &from, "--to", &to, "--no-debit"],
                _ => args.to_vec(),
            };
            bare(&db)
                .arg("submit")
                .args(&args)
                .args(["--out", out.to_str().unwrap()])
                .assert()
                .success();
            submitted += 1;
        }
    }
    assert_eq!(submitted, 20);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill moments seed: {seed}");
    let mut dice = Dice(seed);
    let binary = assert_cmd::cargo::cargo_bin("reports");
    let worker = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(&binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPORTS_DB", &db)
            .envs(worker_env(&sandbox))
            .args([
                "worker",
                "--quiet",
                "--concurrency",
                "8",
                "--fetch-ms",
                "100",
            ])
            .args(["--lease-secs", "2", "--heartbeat-secs", "1"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    let mut kills = 0;
    while kills < 8 {
        let mut child = worker(&[]).spawn().expect("the worker starts");
        tokio::time::sleep(Duration::from_millis(dice.between(500, 2500))).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    let mut last = worker(&["--exit-when-idle"]);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = last.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let jobs = jobs_json(&db);
    let summary: Vec<String> = jobs
        .iter()
        .map(|j| format!("{} {} {}", j["vendor"], j["state"], j["error"]))
        .collect();
    assert!(
        status.is_some_and(|s| s.success()),
        "the last worker drains the queue in time: {summary:#?}"
    );
    assert_eq!(jobs.len(), 20);
    for job in &jobs {
        verify_done(&sandbox, job);
    }
    assert_distinct_reports(&jobs);
    for (vendor, _) in SUBMITS {
        assert_eq!(
            sandbox.stats(*vendor).reports_started,
            4,
            "one start per job: {vendor:?}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 20);
    let faults: u64 = Vendor::ALL
        .iter()
        .map(|v| sandbox.stats(*v).faults_injected)
        .sum();
    eprintln!(
        "20 jobs, {kills} kills, {faults} faults injected, {:.1} s",
        began.elapsed().as_secs_f64()
    );
    assert!(faults > 0);
    assert_no_credentials(dir.path());
}

#[test]
fn a_bad_schedule_file_is_exit_2_and_sigterm_stops_a_worker_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let config = dir.path().join("schedules.toml");
    std::fs::write(
        &config,
        "[[schedule]]\nname = 'x'\nvendor = 'ofd'\ncron = '0 0 6 * * *'\nperiod = 'yesterday'\n\
         options = ['--from', '{from}', '--to', '{to}', '--type', 'Nope', '--all-kkts']\n\
         out = '/tmp/x-{from}.zip'\n",
    )
    .unwrap();
    bare(&db)
        .args(["worker", "--config", config.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "schedule `x`: unknown report type",
        ));

    let mut worker = std::process::Command::new(assert_cmd::cargo::cargo_bin("reports"))
        .env_clear()
        .env("REPORTS_DB", &db)
        .args(["worker", "--quiet"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let pid = worker.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let began = std::time::Instant::now();
    loop {
        if let Some(status) = worker.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "the worker stops on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /metrics` over a plain socket.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    socket.read_to_string(&mut text).ok()?;
    Some(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_prometheus_metrics() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    for (vendor, args) in &SUBMITS[1..3] {
        let out = dir.path().join(format!("{}.out", vendor.name()));
        bare(&db)
            .arg("submit")
            .args(*args)
            .args(["--out", out.to_str().unwrap()])
            .assert()
            .success();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut worker = std::process::Command::new(assert_cmd::cargo::cargo_bin("reports"))
        .env_clear()
        .env("REPORTS_DB", &db)
        .envs(worker_env(&sandbox))
        .args(["worker", "--quiet", "--fetch-ms", "100"])
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .spawn()
        .unwrap();
    let expected = [
        "reports_jobs{vendor=\"evovoice\",state=\"done\"} 1",
        "reports_jobs{vendor=\"cloudblue\",state=\"done\"} 1",
        "reports_starts_total{vendor=\"evovoice\"} 1",
        "reports_starts_total{vendor=\"cloudblue\"} 1",
    ];
    let began = std::time::Instant::now();
    // The jobs gauge is refreshed every 2 s: a scrape right after the last job is done may
    // still show it running, so wait for a scrape that shows them all done.
    let text = loop {
        let done = jobs_json(&db).iter().all(|j| j["state"] == "done");
        let scraped = scrape(port);
        if done && let Some(text) = scraped.filter(|t| expected.iter().all(|l| t.contains(l))) {
            break text;
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "jobs and metrics in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    worker.kill().unwrap();
    worker.wait().unwrap();
    for line in expected {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    for name in [
        "reports_polls_total",
        "reports_bytes_downloaded_total",
        "reports_scheduling_lag_seconds",
        "reports_detection_lag_seconds_count{vendor=\"evovoice\"} 1",
        "reports_detection_lag_seconds_count{vendor=\"cloudblue\"} 1",
    ] {
        assert!(text.contains(name), "`{name}` missing from:\n{text}");
    }
}

/// `worker --log-format json`: standard error is JSON lines only (a collector parses each),
/// with the worker's start and a failed job's warning and its fields.
#[test]
fn a_worker_logs_json_lines_with_log_format_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    bare(&db)
        .arg("submit")
        .args(SUBMITS[4].1)
        .args(["--out", dir.path().join("ofd.zip").to_str().unwrap()])
        .assert()
        .success();
    let id = jobs_json(&db)[0]["id"].as_str().unwrap().to_string();
    // No OFD credentials in the worker's environment: the job fails with a warning.
    let out = bare(&db)
        .args(["worker", "--exit-when-idle", "--log-format", "json"])
        .env("REPORTS_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().map(str::to_string);
    assert!(
        lines
            .iter()
            .any(|l| message(l).as_deref() == Some("worker started") && l["level"] == "INFO"),
        "{stderr}"
    );
    let failed = lines
        .iter()
        .find(|l| message(l).as_deref() == Some("job failed"))
        .unwrap_or_else(|| panic!("no failure logged: {stderr}"));
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["fields"]["job"], id.as_str());
    assert_eq!(failed["fields"]["vendor"], "ofd");
}
