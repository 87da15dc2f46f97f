//! Two worker processes on one PostgreSQL database (a real server, started for the test).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use support::jobs::*;
use support::postgres::Cluster;

/// The text without ANSI colour sequences (the log writer colours by default).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One step as a worker's log tells it: from "step begins" to "step ends".
#[derive(Debug)]
struct StepSpan {
    job: String,
    worker: String,
    seq: i64,
    begin: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// One worker's steps, from its `step begins` / `step ends` log lines.
fn step_spans(log: &str) -> Vec<StepSpan> {
    let log = plain(log);
    let field = |line: &str, name: &str| -> Option<String> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        let rest = &line[start..];
        Some(rest.split_whitespace().next()?.to_string())
    };
    let mut open: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    let mut spans = Vec::new();
    for line in log.lines() {
        let Some(time) = line
            .split_whitespace()
            .next()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        let (Some(job), Some(seq), Some(worker)) = (
            field(line, "job"),
            field(line, "seq"),
            field(line, "worker"),
        ) else {
            continue;
        };
        let key = (job.clone(), format!("{worker}/{seq}"));
        if line.contains("step begins") {
            open.insert(key, time.with_timezone(&Utc));
        } else if line.contains("step ends")
            && let Some(begin) = open.remove(&key)
        {
            spans.push(StepSpan {
                job,
                worker,
                seq: seq.parse().expect("a step number"),
                begin,
                end: time.with_timezone(&Utc),
            });
        }
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_postgres_queue_and_never_step_one_job_at_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let sandbox = sandbox().await;
    // Every status answer takes 200 ms, and each worker runs one step at a time: neither can
    // take all the work before the other has started. (With fast steps and several at once,
    // one worker could: its engine fetches every due task in batches of ten, and 1 run in
    // about 25 under load left the other worker nothing to do.)
    sandbox.set_faults(report_sandbox::Faults {
        status_5xx: 0.1,
        drop_connection: 0.05,
        truncate_body: 0.05,
        download_cut: 0.1,
        slow: 1.0,
        slow_delay: Duration::from_millis(200),
        ..report_sandbox::Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    for round in 0..4 {
        for (vendor, args) in SUBMITS {
            let out = files.join(format!("{round}-{}.out", vendor.name()));
            bare(&cluster.url)
                .arg("submit")
                .args(*args)
                .args(["--out", out.to_str().unwrap()])
                .assert()
                .success();
        }
    }
    let binary = assert_cmd::cargo::cargo_bin("reports");
    let spawn = |n: usize| {
        let log = std::fs::File::create(dir.path().join(format!("worker-{n}.log"))).unwrap();
        std::process::Command::new(&binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPORTS_DB", &cluster.url)
            .env("REPORTS_LOG", "report_runner::steps=info")
            .envs(worker_env(&sandbox))
            .args([
                "worker",
                "--quiet",
                "--exit-when-idle",
                "--concurrency",
                "1",
            ])
            .args(["--fetch-ms", "100", "--heartbeat-secs", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("a worker starts")
    };
    let workers = vec![spawn(1), spawn(2)];
    let finished = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        workers
            .into_iter()
            .map(|mut child| {
                loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        return status.success();
                    }
                    if std::time::Instant::now() > deadline {
                        let _ = child.kill();
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let jobs = jobs_json(&cluster.url);
    let summary: Vec<String> = jobs
        .iter()
        .map(|j| format!("{} {} {}", j["vendor"], j["state"], j["error"]))
        .collect();
    assert_eq!(
        finished,
        [true, true],
        "both workers drain the queue: {summary:#?}"
    );
    assert_eq!(jobs.len(), 20);
    for job in &jobs {
        verify_done(&sandbox, job);
    }
    assert_distinct_reports(&jobs);
    for (vendor, _) in SUBMITS {
        assert_eq!(sandbox.stats(*vendor).reports_started, 4, "{vendor:?}");
    }

    // Both workers took steps, and no job had two steps under way at once: never one step by
    // two workers at once, and each step begun after the one before it. (A step's "step ends"
    // line comes after its outcome is saved, and the next step may be claimed in between: the
    // job's step counter, which the claim checks, moves only with that save.)
    let mut spans = Vec::new();
    for n in [1, 2] {
        let log = std::fs::read_to_string(dir.path().join(format!("worker-{n}.log"))).unwrap();
        spans.extend(step_spans(&log));
    }
    let workers: std::collections::BTreeSet<_> = spans.iter().map(|s| s.worker.clone()).collect();
    let by_worker: Vec<usize> = workers
        .iter()
        .map(|w| spans.iter().filter(|s| &s.worker == w).count())
        .collect();
    assert_eq!(
        workers.len(),
        2,
        "both workers worked: steps by each {by_worker:?}"
    );
    let mut by_job: HashMap<&str, Vec<_>> = HashMap::new();
    for span in &spans {
        by_job.entry(&span.job).or_default().push(span);
    }
    let mut shared = 0;
    for (job, mut steps) in by_job {
        steps.sort_by_key(|s| (s.seq, s.begin));
        if steps.iter().any(|s| s.worker != steps[0].worker) {
            shared += 1;
        }
        for pair in steps.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            if earlier.seq == later.seq {
                assert!(
                    earlier.end <= later.begin,
                    "job {job}: step {} taken twice at once: {earlier:?} and {later:?}",
                    earlier.seq
                );
            } else {
                assert!(
                    earlier.begin < later.begin,
                    "job {job}: step {} begun before step {}: {earlier:?} and {later:?}",
                    later.seq,
                    earlier.seq
                );
            }
        }
    }
    eprintln!("steps by each worker: {by_worker:?}; {shared} jobs stepped by both");

    // No credential in a dump of the database.
    let dump = cluster.dump();
    assert!(dump.contains("report_jobs"), "the dump holds the jobs");
    for secret in [
        report_sandbox::credentials::OFD_PASSWORD,
        report_sandbox::credentials::DOCSPACE_API_KEY,
        report_sandbox::credentials::EVOVOICE_PASSWORD,
        report_sandbox::credentials::CLOUDBLUE_PASSWORD,
        report_sandbox::credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
        report_sandbox::credentials::METAKOCKA_SECRET_KEY,
    ] {
        assert!(!dump.contains(secret), "the dump holds a credential");
    }
}
