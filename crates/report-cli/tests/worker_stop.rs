//! A worker told to stop (SIGTERM) while a poll is under way at the sandbox: it finishes the
//! step within its stop grace or abandons it, exits 0 promptly, and the next worker finishes
//! the job at once, with one start at the sandbox and no temporary file.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use report_sandbox::{Faults, Sandbox, Vendor};
use support::jobs::*;

fn worker(sandbox: &Sandbox, db: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("reports"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPORTS_DB", db)
        .envs(worker_env(sandbox))
        // The default lease (60 s) and heartbeat (10 s): a step left held would stall the
        // next worker far beyond the times asserted below.
        .args(["worker", "--quiet", "--fetch-ms", "100"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the child's exit, at most `limit`; its status and how long it took.
fn wait(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, began.elapsed());
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("the worker did not exit within {limit:?}: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary folder with a job database (`jobs.sqlite`) in which one OFD job is queued, its
/// file to go to `files/r.zip`: the folder, the database and `files`.
fn one_queued_job() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let (_, args) = SUBMITS.iter().find(|(v, _)| *v == Vendor::Ofd).unwrap();
    bare(&db)
        .arg("submit")
        .args(*args)
        .args(["--out", files.join("r.zip").to_str().unwrap()])
        .assert()
        .success();
    (dir, db, files)
}

/// Waits until `done` (30 s at most).
async fn until(what: &str, done: impl Fn() -> bool) {
    let began = Instant::now();
    while !done() {
        assert!(began.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends SIGTERM to the worker and waits for its exit (30 s at most): its status and how long
/// it took; it must not have panicked.
async fn stop(mut child: Child) -> (std::process::ExitStatus, Duration) {
    // SAFETY: a plain kill(2) of our own child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    tokio::task::spawn_blocking(move || {
        let waited = wait(&mut child, Duration::from_secs(30));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        waited
    })
    .await
    .unwrap()
}

/// One OFD job; a worker is sent SIGTERM once its first poll is held by the sandbox for
/// `delay`; returns the exit status and how long the worker took to exit.
async fn stop_during_a_slow_poll(
    delay: Duration,
    grace_secs: &str,
) -> (
    Sandbox,
    tempfile::TempDir,
    std::process::ExitStatus,
    Duration,
) {
    let sandbox = sandbox().await;
    sandbox.set_faults(Faults {
        slow: 1.0,
        slow_delay: delay,
        ..Faults::default()
    });
    let (dir, db, _files) = one_queued_job();

    let child = worker(&sandbox, &db, &["--stop-grace-secs", grace_secs])
        .spawn()
        .unwrap();
    // The sandbox counts a slow answer's fault as the request arrives: a poll is under way.
    until("the worker polls", || {
        sandbox.stats(Vendor::Ofd).faults_injected > 0
    })
    .await;
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 1);
    let (status, took) = stop(child).await;
    (sandbox, dir, status, took)
}

/// The next worker drains the queue: in `limit` (far below the 60 s lease), one start in all,
/// the file matches, nothing else in its folder.
async fn next_worker_finishes(sandbox: &Sandbox, dir: &Path, limit: Duration) {
    sandbox.set_faults(Faults::none());
    let db = dir.join("jobs.sqlite");
    let mut next = worker(sandbox, &db, &["--exit-when-idle"]);
    let (status, took) = tokio::task::spawn_blocking(move || {
        let mut child = next.spawn().unwrap();
        wait(&mut child, Duration::from_secs(90))
    })
    .await
    .unwrap();
    assert!(status.success(), "{status}");
    assert!(took < limit, "the next worker took {took:?}");
    let jobs = jobs_json(&db);
    assert_eq!(jobs.len(), 1);
    verify_done(sandbox, &jobs[0]);
    assert_eq!(
        sandbox.stats(Vendor::Ofd).reports_started,
        1,
        "never a second start"
    );
    let left: Vec<_> = std::fs::read_dir(dir.join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["r.zip"], "no temporary file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_poll_longer_than_the_grace_abandons_it_and_exits_promptly() {
    // The poll would take a minute; the grace is one second.
    let (sandbox, dir, status, took) = stop_during_a_slow_poll(Duration::from_secs(60), "1").await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    let jobs = jobs_json(dir.path().join("jobs.sqlite"));
    assert_eq!(jobs[0]["state"], "running", "{}", jobs[0]);
    assert!(jobs[0]["ticket"].is_object(), "the start is kept");
    // Released, the step is taken at once: not after the lease or the engine's heartbeat.
    next_worker_finishes(&sandbox, dir.path(), Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_poll_within_the_grace_lets_it_finish() {
    let (sandbox, dir, status, took) = stop_during_a_slow_poll(Duration::from_secs(2), "30").await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    let jobs = jobs_json(dir.path().join("jobs.sqlite"));
    assert!(
        jobs[0]["polls"].as_u64().unwrap() >= 1,
        "the poll under way was recorded: {}",
        jobs[0]
    );
    next_worker_finishes(&sandbox, dir.path(), Duration::from_secs(15)).await;
}

/// A download the worker is told to stop in, longer than its grace: abandoned, nothing left in
/// the output folder, exit 0; the next worker downloads the file whole, with no second start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_download_abandons_it_and_leaves_no_file() {
    let sandbox = Sandbox::start(report_sandbox::SandboxConfig {
        job_duration: Duration::from_millis(300),
        report_size: 2 * 1024 * 1024,
        ..report_sandbox::SandboxConfig::fast()
    })
    .await
    .unwrap();
    // Two MiB at 256 KiB a second: eight seconds of download.
    sandbox.set_faults(Faults {
        download_bytes_per_sec: 256 * 1024,
        ..Faults::default()
    });
    let (dir, db, files) = one_queued_job();
    let child = worker(&sandbox, &db, &["--stop-grace-secs", "1"])
        .spawn()
        .unwrap();
    until("the worker downloads", || {
        sandbox.stats(Vendor::Ofd).downloads > 0
    })
    .await;
    // A second into the download: part of the file is written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, took) = stop(child).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    let left: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the abandoned download left {left:?}");
    let jobs = jobs_json(&db);
    assert_eq!(jobs[0]["state"], "downloading", "{}", jobs[0]);
    next_worker_finishes(&sandbox, dir.path(), Duration::from_secs(30)).await;
}
