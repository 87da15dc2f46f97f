//! The runner against a scripted in-process vendor and a real SQLite file: jobs run to the
//! end, a start is never repeated, cancel works, and the database holds no credential.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use report_core::{
    Artifact, Download, Progress, ReportAdapter, Result, SecretString, Started, Status, Ticket,
    WaitPolicy,
};
use report_runner::{
    Claim, JobState, Limits, NewJob, Registry, StepTask, Store, TaskRetention, Worker,
    WorkerOptions, idle,
};
use sha2::{Digest, Sha256};

const SECRET: &str = "s3cr3t-api-key-never-stored";

/// A vendor whose reports are ready after two polls; it counts starts and may be told to
/// hang in a start (a worker killed mid-request) or to list its reports.
#[derive(Default)]
struct Vendor {
    starts: AtomicU32,
    polls: Mutex<HashMap<String, u32>>,
    cancels: AtomicU32,
    hang_in_start: bool,
    /// The report is started, but the start's answer is lost on the way (a transport error).
    lose_answer: bool,
    can_list: bool,
    started: Mutex<Vec<(String, DateTime<Utc>)>>,
    /// Like DocSpace: a start is refused while another report is running.
    one_task: bool,
    running: Mutex<std::collections::HashSet<String>>,
    /// The runner's limits for this vendor, and how long a start or poll takes.
    limits: Option<Limits>,
    busy: Duration,
    /// Starts and polls under way now, and the most of each seen at once.
    starting: Gauge,
    polling: Gauge,
    /// Polls after which a report is ready (two if zero), and when each poll came.
    ready_at_poll: u32,
    poll_times: Mutex<Vec<(String, DateTime<Utc>)>>,
    /// Looking for a started report fails with a 502 this many times first.
    find_fails: AtomicU32,
    /// Downloads begun, and whether they hang (a worker killed mid-download).
    downloads: AtomicU32,
    hang_in_download: bool,
}

/// Operations under way and the most at once.
#[derive(Default)]
struct Gauge {
    now: AtomicU32,
    most: AtomicU32,
}

impl Gauge {
    /// Counts one operation lasting `busy`.
    async fn during(&self, busy: Duration) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(busy).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Adapter {
    vendor: Arc<Vendor>,
    _key: SecretString,
}

fn content(id: &str) -> Vec<u8> {
    format!("report {id}\n").repeat(1000).into_bytes()
}

impl ReportAdapter for Adapter {
    type Request = String;

    fn vendor(&self) -> &'static str {
        "fake"
    }

    async fn start(&self, request: &String) -> Result<Started> {
        self.vendor.starting.during(self.vendor.busy).await;
        if self.vendor.one_task && !self.vendor.running.lock().unwrap().is_empty() {
            return Err(report_core::Error::JobFailed {
                vendor: "fake",
                code: Some("TaskAlreadyRunning".into()),
                message: "one task per user".into(),
            });
        }
        let n = self.vendor.starts.fetch_add(1, Ordering::SeqCst);
        let id = format!("{request}-{n}");
        self.vendor.running.lock().unwrap().insert(id.clone());
        self.vendor
            .started
            .lock()
            .unwrap()
            .push((request.clone(), Utc::now()));
        if self.vendor.hang_in_start {
            futures::future::pending::<()>().await;
        }
        if self.vendor.lose_answer {
            return Err(report_core::Error::Transport {
                operation: "start".into(),
                maybe_sent: true,
                source: "connection closed before message completed".into(),
            });
        }
        Ok(Started {
            ticket: Ticket::new("fake", id, Utc::now()),
            status: None,
        })
    }

    async fn find_started(&self, request: &String, since: DateTime<Utc>) -> Result<Option<Ticket>> {
        if !self.vendor.can_list {
            return Err(report_core::Error::Unsupported {
                vendor: "fake",
                operation: "find_started",
            });
        }
        let fail = self
            .vendor
            .find_fails
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(report_core::Error::Api {
                vendor: "fake",
                status: Some(502),
                code: None,
                message: "Bad Gateway".into(),
                request_id: None,
                retry_after: None,
            });
        }
        let started = self.vendor.started.lock().unwrap();
        let n = started
            .iter()
            .position(|(r, at)| r == request && *at >= since - chrono::Duration::seconds(1));
        Ok(n.map(|n| Ticket::new("fake", format!("{request}-{n}"), Utc::now())))
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        self.vendor.polling.during(self.vendor.busy).await;
        self.vendor
            .poll_times
            .lock()
            .unwrap()
            .push((ticket.id.clone(), Utc::now()));
        let mut polls = self.vendor.polls.lock().unwrap();
        let n = polls.entry(ticket.id.clone()).or_default();
        *n += 1;
        Ok(if *n < self.vendor.ready_at_poll.max(2) {
            Status::Pending(Progress {
                fraction: Some(0.5),
                ..Progress::state("running")
            })
        } else {
            self.vendor.running.lock().unwrap().remove(&ticket.id);
            Status::Ready(Artifact {
                url: format!("http://127.0.0.1/{}", ticket.id),
                ..Artifact::default()
            })
        })
    }

    async fn cancel(&self, _: &Ticket) -> Result<()> {
        self.vendor.cancels.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        self.vendor.downloads.fetch_add(1, Ordering::SeqCst);
        if self.vendor.hang_in_download {
            futures::future::pending::<()>().await;
        }
        let id = artifact.url.rsplit('/').next().unwrap().to_string();
        let body = content(&id)[offset as usize..].to_vec();
        Ok(Download {
            file_name: None,
            content_type: None,
            total_size: Some(body.len() as u64 + offset),
            offset,
            compression: report_core::Compression::None,
            body: Box::pin(futures::stream::iter([Ok(Bytes::from(body))])),
        })
    }
}

fn registry(vendor: Arc<Vendor>) -> Registry {
    let mut registry = Registry::new();
    if vendor.one_task {
        registry.one_job_per_connection("fake");
    }
    if let Some(limits) = vendor.limits {
        registry.limit("fake", limits);
    }
    registry.register(
        "fake",
        move |connection: &str| {
            if connection != "main" {
                return Err(format!("no credentials for `{connection}`"));
            }
            Ok(Adapter {
                vendor: vendor.clone(),
                _key: SecretString::from(SECRET),
            })
        },
        |request: &serde_json::Value| {
            request["name"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "no name".to_string())
        },
    );
    registry
}

fn options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        lease: Duration::from_secs(1),
        fetch_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        policy: WaitPolicy::default()
            .with_backoff(Duration::from_millis(10), Duration::from_millis(10))
            .with_deadline(Some(Duration::from_secs(30))),
    }
}

async fn submit(store: &Store, dir: &Path, name: &str) -> String {
    store
        .submit(NewJob {
            vendor: "fake".into(),
            connection: "main".into(),
            request: serde_json::json!({ "name": name }),
            out: dir.join(format!("{name}.txt")).display().to_string(),
        })
        .await
        .unwrap()
        .id
}

async fn drain(store: &Store, vendor: Arc<Vendor>) {
    drain_with(store, vendor, options()).await;
}

/// Runs a worker with `options` until nothing is queued or in progress (30 s at most).
async fn drain_with(store: &Store, vendor: Arc<Vendor>, options: WorkerOptions) {
    let worker = Worker::new(store.clone(), registry(vendor), options);
    tokio::time::timeout(
        Duration::from_secs(30),
        worker.run_until(idle(store.clone(), Duration::from_millis(50))),
    )
    .await
    .expect("the queue drains in time")
    .unwrap();
}

fn db(dir: &Path) -> String {
    dir.join("jobs.sqlite").display().to_string()
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_run_to_done_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(submit(&store, &out, &format!("r{i}")).await);
    }
    assert_eq!(store.unfinished().await.unwrap(), 6);
    let vendor = Arc::new(Vendor::default());
    drain(&store, vendor.clone()).await;

    assert_eq!(vendor.starts.load(Ordering::SeqCst), 6, "one start per job");
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{job:?}");
        let path = PathBuf::from(&job.out);
        assert_eq!(job.sha256.as_deref(), Some(sha256(&path).as_str()));
        assert_eq!(job.bytes, Some(std::fs::metadata(&path).unwrap().len()));
        assert!(job.polls >= 2, "polled one step at a time: {}", job.polls);
        assert!(job.ticket.is_some() && job.finished_at.is_some() && job.started_at.is_some());
    }
    assert_eq!(
        files(&out).len(),
        6,
        "no temporary file left: {:?}",
        files(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cut_off_by_a_crash_is_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let id = submit(&store, dir.path(), "lost").await;

    // A worker dies in the middle of the start request.
    let hanging = Arc::new(Vendor {
        hang_in_start: true,
        ..Vendor::default()
    });
    let worker = Worker::new(store.clone(), registry(hanging.clone()), options());
    let run = tokio::spawn(worker.run_until(futures::future::pending()));
    while hanging.starts.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    let _ = run.await;
    let job = store.get(&id).await.unwrap().unwrap();
    assert!(job.start_intent_at.is_some() && job.ticket.is_none());

    // The next worker cannot ask this vendor what was started: it fails the job clearly.
    let vendor = Arc::new(Vendor::default());
    drain(&store, vendor.clone()).await;
    let job = store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .starts_with("start outcome unknown"),
        "{job:?}"
    );
    assert_eq!(
        vendor.starts.load(Ordering::SeqCst),
        0,
        "never a second start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_cut_off_by_a_crash_is_found_where_the_vendor_lists_reports() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let id = submit(&store, dir.path(), "found").await;
    let vendor = Arc::new(Vendor {
        hang_in_start: true,
        can_list: true,
        ..Vendor::default()
    });
    let worker = Worker::new(store.clone(), registry(vendor.clone()), options());
    let run = tokio::spawn(worker.run_until(futures::future::pending()));
    while vendor.starts.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    let _ = run.await;

    // The same vendor (it keeps its reports), no longer hanging.
    let vendor = Arc::new(Vendor {
        can_list: true,
        started: Mutex::new(vendor.started.lock().unwrap().clone()),
        starts: AtomicU32::new(vendor.starts.load(Ordering::SeqCst)),
        ..Vendor::default()
    });
    drain(&store, vendor.clone()).await;
    let job = store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.ticket.unwrap().id, "found-0");
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 1, "one start in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_answer_was_lost_is_reconciled_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let found = submit(&store, dir.path(), "listed").await;
    // A vendor that lists its reports: the lost start's report is adopted.
    let listing = Arc::new(Vendor {
        lose_answer: true,
        can_list: true,
        ..Vendor::default()
    });
    drain(&store, listing.clone()).await;
    let job = store.get(&found).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(job.ticket.unwrap().id, "listed-0");
    assert_eq!(listing.starts.load(Ordering::SeqCst), 1, "one start in all");

    // The vendor cannot be asked for a moment (two 502s): asked again, not failed.
    let flaky = submit(&store, dir.path(), "flaky").await;
    let listing = Arc::new(Vendor {
        lose_answer: true,
        can_list: true,
        find_fails: AtomicU32::new(2),
        ..Vendor::default()
    });
    drain(&store, listing.clone()).await;
    let job = store.get(&flaky).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(listing.starts.load(Ordering::SeqCst), 1, "one start in all");
    assert_eq!(listing.find_fails.load(Ordering::SeqCst), 0);

    // A vendor that cannot list: the job fails clearly, never started twice.
    let unknown = submit(&store, dir.path(), "unlisted").await;
    let blind = Arc::new(Vendor {
        lose_answer: true,
        ..Vendor::default()
    });
    drain(&store, blind.clone()).await;
    let job = store.get(&unknown).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .starts_with("start outcome unknown"),
        "{job:?}"
    );
    assert_eq!(
        blind.starts.load(Ordering::SeqCst),
        1,
        "never a second start"
    );
}

/// A download's folder is read for a killed download's temporary file only when the step is
/// taken over from a worker that did not give it back: a folder of thousands of reports is not
/// read at every download, and a first download leaves files that are not its own alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_download_taken_over_looks_for_a_killed_downloads_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let first = submit(&store, dir.path(), "first").await;
    let not_ours = dir.path().join(".first.txt.a1b2c3.part");
    std::fs::write(&not_ours, "someone else's").unwrap();
    drain(&store, Arc::new(Vendor::default())).await;
    assert_eq!(
        store.get(&first).await.unwrap().unwrap().state,
        JobState::Done
    );
    assert!(not_ours.exists(), "a first download removes nothing");

    // A job reaches its download (the worker stopped there gives the step back cleanly)...
    let cut = submit(&store, dir.path(), "cut").await;
    let hanging = Arc::new(Vendor {
        hang_in_download: true,
        ..Vendor::default()
    });
    let worker =
        Worker::new(store.clone(), registry(hanging.clone()), options()).stop_grace(Duration::ZERO);
    let run = tokio::spawn(worker.run_until(futures::future::pending()));
    while hanging.downloads.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.abort();
    let _ = run.await;
    let record = store.get(&cut).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Downloading);
    let step = StepTask {
        job: cut.clone(),
        seq: record.seq,
    };
    // ...and a worker SIGKILLed in that download: it held the step and left its file.
    let mut claimed = store
        .claim(&step, "killed", Duration::from_millis(300))
        .await;
    for _ in 0..250 {
        if matches!(claimed, Ok(Claim::Claimed { .. })) {
            break;
        }
        // The stopped worker's release may still be on its way.
        tokio::time::sleep(Duration::from_millis(20)).await;
        claimed = store
            .claim(&step, "killed", Duration::from_millis(300))
            .await;
    }
    assert!(matches!(claimed, Ok(Claim::Claimed { .. })), "{claimed:?}");
    let killed = dir.path().join(".cut.txt.d4e5f6.part");
    std::fs::write(&killed, "half a report").unwrap();

    // The next worker takes the step over once the dead one's lease runs out.
    let vendor = Arc::new(Vendor::default());
    drain(&store, vendor.clone()).await;
    let job = store.get(&cut).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(vendor.downloads.load(Ordering::SeqCst), 1);
    assert!(!killed.exists(), "the killed download's file is removed");
    assert!(not_ours.exists());
    assert_eq!(
        sha256(&dir.path().join("cut.txt")),
        job.sha256.unwrap(),
        "the file is whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_cancelled_before_or_after_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let queued = submit(&store, dir.path(), "queued").await;
    let job = store.request_cancel(&queued).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Cancelled,
        "never started: cancelled at once"
    );

    // A started job is cancelled at the vendor by the worker taking its next step.
    let running = submit(&store, dir.path(), "running").await;
    let vendor = Arc::new(Vendor {
        hang_in_start: false,
        ..Vendor::default()
    });
    let mut opts = options();
    // Polls far apart, so the job is surely waiting when the cancel comes.
    opts.policy =
        WaitPolicy::default().with_backoff(Duration::from_secs(1), Duration::from_secs(1));
    let worker = Worker::new(store.clone(), registry(vendor.clone()), opts);
    let run = tokio::spawn(worker.run_until(idle(store.clone(), Duration::from_millis(50))));
    while store.get(&running).await.unwrap().unwrap().ticket.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.request_cancel(&running).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let job = store.get(&running).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled, "{job:?}");
    assert_eq!(vendor.cancels.load(Ordering::SeqCst), 1);
    assert!(!Path::new(&job.out).exists());

    // Retried, it goes on from its ticket: no second start.
    store.retry(&running).await.unwrap();
    drain(&store, vendor.clone()).await;
    assert_eq!(
        store.get(&running).await.unwrap().unwrap().state,
        JobState::Done
    );
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_connection_fails_the_job_and_no_secret_reaches_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let good = submit(&store, dir.path(), "good").await;
    let bad = store
        .submit(NewJob {
            vendor: "fake".into(),
            connection: "elsewhere".into(),
            request: serde_json::json!({ "name": "bad" }),
            out: dir.path().join("bad.txt").display().to_string(),
        })
        .await
        .unwrap()
        .id;
    drain(&store, Arc::new(Vendor::default())).await;
    assert_eq!(
        store.get(&good).await.unwrap().unwrap().state,
        JobState::Done
    );
    let bad = store.get(&bad).await.unwrap().unwrap();
    assert_eq!(bad.state, JobState::Failed);
    assert!(
        bad.error
            .unwrap()
            .contains("no credentials for `elsewhere`")
    );

    // The database and its WAL files, while open: no credential anywhere.
    let mut checked = 0;
    for file in files(dir.path()) {
        if file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("jobs.sqlite")
        {
            let bytes = std::fs::read(&file).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "{} holds the secret", file.display());
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "the database, its -wal, -shm and set-up -lock");
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_task_vendor_runs_a_connections_jobs_one_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(submit(&store, dir.path(), &format!("d{i}")).await);
    }
    let vendor = Arc::new(Vendor {
        one_task: true,
        ..Vendor::default()
    });
    drain(&store, vendor.clone()).await;
    let mut spans = Vec::new();
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "none refused: {job:?}");
        spans.push((job.started_at.unwrap(), job.finished_at.unwrap()));
    }
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 5);
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "jobs overlapped: {pair:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_limits_cap_its_concurrent_starts_and_polls() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(submit(&store, dir.path(), &format!("l{i}")).await);
    }
    let vendor = Arc::new(Vendor {
        limits: Some(Limits {
            writes: Some(1),
            reads: Some(2),
            per_minute: None,
        }),
        busy: Duration::from_millis(150),
        ..Vendor::default()
    });
    // Eight steps at once: only the limits hold the vendor's load down.
    drain_with(
        &store,
        vendor.clone(),
        WorkerOptions {
            concurrency: 8,
            // A 1 s lease could lapse mid-start on a busy machine (see the two-worker test).
            lease: Duration::from_secs(10),
            ..options()
        },
    )
    .await;
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{job:?}");
    }
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 8);
    assert_eq!(
        vendor.starting.most.load(Ordering::SeqCst),
        1,
        "one start at a time"
    );
    assert_eq!(
        vendor.polling.most.load(Ordering::SeqCst),
        2,
        "two polls at a time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_engine_tasks_are_deleted_after_their_retention_and_job_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&store, dir.path(), &format!("v{i}")).await);
    }
    let vendor = Arc::new(Vendor::default());
    let run = |keep: Duration| {
        let worker = Worker::new(store.clone(), registry(vendor.clone()), options())
            .task_retention(Some(TaskRetention {
                keep,
                every: Duration::from_millis(50),
            }));
        tokio::time::timeout(
            Duration::from_secs(30),
            worker.run_until(idle(store.clone(), Duration::from_millis(50))),
        )
    };
    // Kept for an hour: every step's finished task stays (start, two polls, download).
    run(Duration::from_secs(3600)).await.unwrap().unwrap();
    let kept = store.finished_tasks().await.unwrap();
    assert!(kept >= 12, "{kept} finished tasks");

    // Kept for no time: a worker deletes them as it starts and as it goes, but leaves a
    // queued job's task alone (the late job is run).
    let late = submit(&store, dir.path(), "late").await;
    ids.push(late);
    run(Duration::ZERO).await.unwrap().unwrap();
    let left = store.finished_tasks().await.unwrap();
    // The late job's own four may all finish after the worker's last look.
    assert!(
        left <= 4,
        "{left} finished tasks left; at most the late job's four may be"
    );
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "the job records stay: {job:?}");
    }
    assert_eq!(
        store.delete_finished_tasks(Duration::ZERO).await.unwrap(),
        left
    );
    assert_eq!(store.finished_tasks().await.unwrap(), 0);
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 4);
}

/// The engine schedules tasks in whole seconds; polls still come at the policy's moments:
/// never before, and late by no more than the fetch interval and a little work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_come_at_their_planned_moments_not_whole_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    for i in 0..3 {
        submit(&store, dir.path(), &format!("t{i}")).await;
    }
    let vendor = Arc::new(Vendor {
        ready_at_poll: 6,
        ..Vendor::default()
    });
    let interval = Duration::from_millis(400);
    drain_with(
        &store,
        vendor.clone(),
        WorkerOptions {
            lease: Duration::from_secs(10),
            fetch_interval: Duration::from_millis(100),
            policy: WaitPolicy::default()
                .with_backoff(interval, interval)
                .with_jitter(0.0)
                .with_deadline(Some(Duration::from_secs(30))),
            ..options()
        },
    )
    .await;
    let times = vendor.poll_times.lock().unwrap().clone();
    let mut gaps = Vec::new();
    let tickets: std::collections::BTreeSet<_> = times.iter().map(|(t, _)| t.clone()).collect();
    assert_eq!(tickets.len(), 3);
    for ticket in tickets {
        let at: Vec<_> = times
            .iter()
            .filter(|(t, _)| *t == ticket)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(at.len(), 6, "{ticket}: {at:?}");
        gaps.extend(at.windows(2).map(|w| (w[1] - w[0]).to_std().unwrap()));
    }
    gaps.sort();
    let (least, median) = (gaps[0], gaps[gaps.len() / 2]);
    assert!(
        least >= interval - Duration::from_millis(5),
        "a poll came early: {gaps:?}"
    );
    assert!(
        median <= interval + Duration::from_millis(250),
        "polls come late (rounded to whole seconds?): {gaps:?}"
    );
}

/// Two tasks of one step (a released or deferred copy beside the engine's own) reaching one
/// worker at once: the step is taken once, never started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_of_one_step_in_one_worker_take_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = submit(&store, dir.path(), &format!("d{i}")).await;
        // A copy of the start's task, due at once like the original.
        store
            .defer(
                &report_runner::StepTask {
                    job: id.clone(),
                    seq: 0,
                },
                Duration::ZERO,
            )
            .await
            .unwrap();
        ids.push(id);
    }
    let vendor = Arc::new(Vendor {
        busy: Duration::from_millis(300),
        ..Vendor::default()
    });
    drain_with(
        &store,
        vendor.clone(),
        WorkerOptions {
            concurrency: 8,
            lease: Duration::from_secs(10),
            ..options()
        },
    )
    .await;
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 4, "one start per job");
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{job:?}");
    }
}

/// A backlog of new jobs does not make due polls late: polls come before starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_polls_go_before_a_backlog_of_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    for i in 0..40 {
        submit(&store, dir.path(), &format!("b{i:02}")).await;
    }
    let vendor = Arc::new(Vendor {
        busy: Duration::from_millis(30),
        ..Vendor::default()
    });
    drain_with(
        &store,
        vendor.clone(),
        WorkerOptions {
            concurrency: 1,
            lease: Duration::from_secs(10),
            ..options()
        },
    )
    .await;
    let starts = vendor.started.lock().unwrap().clone();
    assert_eq!(starts.len(), 40);
    let first_poll = vendor.poll_times.lock().unwrap()[0].1;
    // One at a time, the 40 starts take 1.2 s at least; the first job's poll, due 10 ms after
    // its start, waits for those the worker had taken already (its tasks fetched at once), not
    // for them all.
    let before = starts.iter().filter(|(_, at)| *at < first_poll).count();
    assert!(
        before <= 20,
        "{before} of 40 starts came before the first poll"
    );
}

/// The engine acknowledges a task by searching the tasks its worker locked: finished tasks
/// must not stay locked, or every acknowledgement reads all a worker ever finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_engine_tasks_are_unlocked_so_acknowledging_stays_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    for i in 0..3 {
        submit(&store, dir.path(), &format!("u{i}")).await;
    }
    drain(&store, Arc::new(Vendor::default())).await;
    let side = sqlx::SqlitePool::connect(&format!("sqlite:{}", db(dir.path())))
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let side = side.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&side)
                .await
                .unwrap()
        }
    };
    const LOCKED_DONE: &str =
        "SELECT COUNT(*) FROM Jobs WHERE status = 'Done' AND lock_by IS NOT NULL";
    assert!(count("SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await >= 12);
    assert_eq!(count(LOCKED_DONE).await, 0, "finished tasks are unlocked");

    // A database an older version left behind: its finished tasks are unlocked once, when it
    // is next opened.
    sqlx::raw_sql(
        "DROP TRIGGER report_runner_unlock_finished_tasks;
         UPDATE Jobs SET lock_by = (SELECT id FROM Workers LIMIT 1) WHERE status = 'Done'",
    )
    .execute(&side)
    .await
    .unwrap();
    assert!(count(LOCKED_DONE).await >= 12);
    drop(store);
    let store = Store::open(&db(dir.path())).await.unwrap();
    assert_eq!(count(LOCKED_DONE).await, 0, "unlocked when opened");
    submit(&store, dir.path(), "after").await;
    drain(&store, Arc::new(Vendor::default())).await;
    assert_eq!(count(LOCKED_DONE).await, 0, "and as they finish again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_limits_hold_across_two_workers_on_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(dir.path());
    // Two stores on one file, each worker with its own registry: two processes' views.
    let (one, two) = (
        Store::open(&path).await.unwrap(),
        Store::open(&path).await.unwrap(),
    );
    let mut ids = Vec::new();
    for i in 0..16 {
        ids.push(submit(&one, dir.path(), &format!("s{i}")).await);
    }
    let vendor = Arc::new(Vendor {
        limits: Some(Limits {
            writes: Some(1),
            reads: Some(2),
            per_minute: None,
        }),
        busy: Duration::from_millis(150),
        ..Vendor::default()
    });
    let run = |store: &Store| {
        let worker = Worker::new(
            store.clone(),
            registry(vendor.clone()),
            WorkerOptions {
                concurrency: 8,
                // Sixteen steps queue for one start slot while the machine is busy: a 1 s
                // lease could lapse mid-start, and a lapsed start is (rightly) of unknown
                // outcome for a vendor that cannot list its reports. Limits are tested here.
                lease: Duration::from_secs(10),
                ..options()
            },
        );
        tokio::time::timeout(
            Duration::from_secs(60),
            worker.run_until(idle(store.clone(), Duration::from_millis(50))),
        )
    };
    let (a, b) = tokio::join!(run(&one), run(&two));
    a.expect("the queue drains in time").unwrap();
    b.expect("the queue drains in time").unwrap();
    for id in &ids {
        let job = one.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{job:?}");
    }
    assert_eq!(vendor.starts.load(Ordering::SeqCst), 16);
    assert_eq!(
        vendor.starting.most.load(Ordering::SeqCst),
        1,
        "one start at a time across both workers"
    );
    assert_eq!(
        vendor.polling.most.load(Ordering::SeqCst),
        2,
        "two polls at a time across both workers"
    );
}

/// A database error that ends a run of the job engine (here its task table is away for a
/// moment; between two SQLite workers it is "database is locked") does not end the worker: the
/// engine is run again and the jobs queued meanwhile are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_outlives_a_database_error_of_the_job_engine() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let store = Store::open(&db(dir.path())).await.unwrap();
    let vendor = Arc::new(Vendor::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(store.clone(), registry(vendor.clone()), options());
    let running = tokio::spawn(worker.run_until(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let side = sqlx::SqlitePool::connect(&format!("sqlite:{}", db(dir.path())))
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE Jobs RENAME TO Jobs_away")
        .execute(&side)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    sqlx::raw_sql("ALTER TABLE Jobs_away RENAME TO Jobs")
        .execute(&side)
        .await
        .unwrap();
    assert!(
        !running.is_finished(),
        "the worker ended on the engine's error"
    );

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&store, &out, &format!("after{i}")).await);
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        while store.unfinished().await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the jobs queued after the error are done");
    for id in &ids {
        assert_eq!(store.get(id).await.unwrap().unwrap().state, JobState::Done);
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the worker stops when told")
        .unwrap()
        .unwrap();
}
