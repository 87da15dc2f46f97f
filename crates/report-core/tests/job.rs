//! Job behaviour against a scripted adapter, in paused tokio time: waits take milliseconds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use report_core::{
    Artifact, Compression, Download, DownloadOptions, Error, Job, Progress, ReportAdapter, Result,
    Started, Status, TICKET_VERSION, Ticket, TokioClock, WaitPolicy,
};

fn transport(maybe_sent: bool) -> Error {
    Error::Transport {
        operation: "test".into(),
        maybe_sent,
        source: "connection reset".into(),
    }
}

fn http_error(status: u16) -> Error {
    Error::Api {
        vendor: "fake",
        status: Some(status),
        code: None,
        message: "injected".into(),
        request_id: None,
        retry_after: None,
    }
}

fn pending(state: &str, fraction: Option<f64>) -> Status {
    Status::Pending(Progress {
        fraction,
        ..Progress::state(state)
    })
}

fn artifact() -> Artifact {
    Artifact {
        url: "http://127.0.0.1/file".into(),
        format: Some("csv".into()),
        authenticated: true,
        ..Artifact::default()
    }
}

/// How `open` behaves.
#[derive(Default)]
struct FileScript {
    content: Vec<u8>,
    /// Byte offsets at which successive transfers are cut.
    cuts: Mutex<VecDeque<usize>>,
    honour_range: bool,
    compression: Compression,
    announce_size: bool,
    /// Errors returned by successive `open` calls before the real transfer.
    open_errors: Mutex<VecDeque<Error>>,
    opens: AtomicU32,
    offsets: Mutex<Vec<u64>>,
}

#[derive(Default)]
struct Fake {
    starts: Mutex<VecDeque<Result<Started>>>,
    polls: Mutex<VecDeque<Result<Status>>>,
    idempotent: bool,
    start_calls: AtomicU32,
    poll_calls: AtomicU32,
    file: FileScript,
}

impl Fake {
    fn with_polls(polls: Vec<Result<Status>>) -> Self {
        Fake {
            starts: Mutex::new(VecDeque::from([Ok(started(None))])),
            polls: Mutex::new(polls.into()),
            ..Fake::default()
        }
    }
}

fn started(status: Option<Status>) -> Started {
    Started {
        ticket: Ticket::new("fake", "job-1", chrono::DateTime::UNIX_EPOCH),
        status,
    }
}

impl ReportAdapter for Fake {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "fake"
    }

    fn start_is_idempotent(&self) -> bool {
        self.idempotent
    }

    async fn start(&self, _: &()) -> Result<Started> {
        self.start_calls.fetch_add(1, Ordering::SeqCst);
        self.starts
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok(started(None)))
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        self.poll_calls.fetch_add(1, Ordering::SeqCst);
        self.polls
            .lock()
            .unwrap()
            .pop_front()
            .expect("the test scripted enough polls")
    }

    async fn open(&self, _: &Artifact, offset: u64) -> Result<Download> {
        let f = &self.file;
        f.opens.fetch_add(1, Ordering::SeqCst);
        f.offsets.lock().unwrap().push(offset);
        if let Some(e) = f.open_errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        let start = if f.honour_range { offset as usize } else { 0 };
        let cut = f.cuts.lock().unwrap().pop_front();
        let end = cut
            .map_or(f.content.len(), |c| c.max(start))
            .min(f.content.len());
        let mut items: Vec<Result<Bytes>> = f.content[start..end]
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if cut.is_some() {
            items.push(Err(transport(true)));
        }
        Ok(Download {
            file_name: Some("server-name.csv".into()),
            content_type: None,
            total_size: f.announce_size.then_some(f.content.len() as u64),
            offset: start as u64,
            compression: f.compression,
            body: futures::stream::iter(items).boxed(),
        })
    }
}

fn quick_policy() -> WaitPolicy {
    WaitPolicy::default().with_jitter(0.0).with_seed(1)
}

async fn started_job(fake: Fake, policy: WaitPolicy) -> Job<Fake> {
    Job::start(fake, &(), policy).await.expect("start")
}

#[tokio::test(start_paused = true)]
async fn waits_with_backoff_until_ready() {
    let fake = Fake::with_polls(vec![
        Ok(pending("queued", None)),
        Ok(pending("running", None)),
        Ok(pending("running", None)),
        Ok(Status::Ready(artifact())),
    ]);
    let job = started_job(fake, quick_policy()).await;
    let t0 = tokio::time::Instant::now();
    let got = job.wait().await.expect("ready");
    assert_eq!(got, artifact());
    assert_eq!(job.stats().polls, 4);
    // Backoff 1 + 2 + 4 + 8 s before the four polls (no status came with the start).
    assert_eq!(t0.elapsed(), Duration::from_secs(1 + 2 + 4 + 8));
}

#[tokio::test(start_paused = true)]
async fn the_start_answer_saves_a_poll() {
    let mut fake = Fake::with_polls(vec![Ok(Status::Ready(artifact()))]);
    fake.starts = Mutex::new(VecDeque::from([Ok(started(Some(pending("queued", None))))]));
    let job = started_job(fake, quick_policy()).await;
    let statuses: Vec<String> = job
        .updates()
        .map(|s| s.unwrap().name().to_string())
        .collect()
        .await;
    assert_eq!(statuses, ["pending", "ready"]);
    assert_eq!(job.stats().polls, 1);
}

#[tokio::test(start_paused = true)]
async fn a_ready_start_needs_no_poll_at_all() {
    let mut fake = Fake::with_polls(vec![]);
    fake.starts = Mutex::new(VecDeque::from([Ok(started(Some(Status::Ready(
        artifact(),
    ))))]));
    let job = started_job(fake, quick_policy()).await;
    job.wait().await.expect("ready");
    assert_eq!(job.stats().polls, 0);
}

#[tokio::test(start_paused = true)]
async fn transient_poll_errors_are_retried_within_budget() {
    let fake = Fake::with_polls(vec![
        Err(http_error(503)),
        Err(transport(true)),
        Err(http_error(429)),
        Ok(pending("running", Some(0.5))),
        Err(http_error(502)),
        Ok(Status::Ready(artifact())),
    ]);
    let job = started_job(fake, quick_policy().with_transient_error_budget(3)).await;
    job.wait().await.expect("ready despite faults");
    assert_eq!(job.stats().polls, 6);
    assert_eq!(job.stats().retries, 4);
}

#[tokio::test(start_paused = true)]
async fn a_fault_storm_ends_in_a_typed_error_not_a_hang() {
    let fake = Fake::with_polls((0..10).map(|_| Err(http_error(503))).collect());
    let job = started_job(fake, quick_policy().with_transient_error_budget(4)).await;
    let err = job.wait().await.unwrap_err();
    match err {
        Error::RetriesExhausted { attempts, last } => {
            assert_eq!(attempts, 5);
            assert_eq!(last.http_status(), Some(503));
        }
        other => panic!("expected RetriesExhausted, got {other}"),
    }
    assert_eq!(job.stats().polls, 5);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let fake = Fake::with_polls(vec![
        Err(Error::Api {
            vendor: "fake",
            status: Some(429),
            code: None,
            message: "slow down".into(),
            request_id: None,
            retry_after: Some(Duration::from_secs(120)),
        }),
        Ok(Status::Ready(artifact())),
    ]);
    let job = started_job(fake, quick_policy()).await;
    let t0 = tokio::time::Instant::now();
    job.wait().await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(1 + 120));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_stops_the_wait() {
    let fake = Fake::with_polls(vec![Err(http_error(400))]);
    let job = started_job(fake, quick_policy()).await;
    assert_eq!(job.wait().await.unwrap_err().http_status(), Some(400));
    assert_eq!(job.stats().polls, 1);
}

#[tokio::test(start_paused = true)]
async fn failed_and_cancelled_reports_are_errors() {
    let fake = Fake::with_polls(vec![Ok(Status::Failed {
        code: Some("E42".into()),
        message: "no data".into(),
    })]);
    let job = started_job(fake, quick_policy()).await;
    let err = job.wait().await.unwrap_err();
    assert!(
        matches!(&err, Error::JobFailed { code: Some(c), .. } if c == "E42"),
        "{err}"
    );
    assert_eq!(err.to_string(), "fake: the report failed (E42): no data");

    let fake = Fake::with_polls(vec![Ok(Status::Cancelled)]);
    let job = started_job(fake, quick_policy()).await;
    assert!(matches!(
        job.wait().await.unwrap_err(),
        Error::Cancelled { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_wait() {
    let fake = Fake::with_polls((0..100).map(|_| Ok(pending("running", None))).collect());
    let policy = quick_policy().with_deadline(Some(Duration::from_secs(300)));
    let job = started_job(fake, policy).await;
    let t0 = tokio::time::Instant::now();
    let err = job.wait().await.unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    // The last sleep is cut to the deadline; no time is wasted past it.
    assert!(
        t0.elapsed() <= Duration::from_secs(300),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_vendor_eta_replaces_the_backoff() {
    let clock = Arc::new(TokioClock::new());
    let eta = report_core::Clock::now(clock.as_ref()) + chrono::Duration::seconds(1800);
    let fake = Fake::with_polls(vec![
        Ok(Status::Pending(Progress {
            eta: Some(eta),
            ..Progress::state("Todo")
        })),
        Ok(Status::Ready(artifact())),
    ]);
    let job = Job::start_with_clock(fake, &(), quick_policy(), clock)
        .await
        .unwrap();
    job.wait().await.unwrap();
    // One poll after the first backoff step, a second at the early look (90 % of the way to
    // the ETA), when the report is ready: two requests for 30 minutes.
    assert_eq!(job.stats().polls, 2);
}

#[tokio::test(start_paused = true)]
async fn starts_are_retried_only_when_never_sent() {
    // A connect failure (never sent) is retried.
    let mut fake = Fake::with_polls(vec![]);
    fake.starts = Mutex::new(VecDeque::from([Err(transport(false)), Ok(started(None))]));
    let job = started_job(fake, quick_policy()).await;
    assert_eq!(job.adapter().start_calls.load(Ordering::SeqCst), 2);

    // A reset after sending may have started the report: not retried.
    let mut fake = Fake::with_polls(vec![]);
    fake.starts = Mutex::new(VecDeque::from([Err(transport(true)), Ok(started(None))]));
    let fake = Arc::new(fake);
    let err = Job::<Fake>::start(fake.clone(), &(), quick_policy())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }));
    assert_eq!(fake.start_calls.load(Ordering::SeqCst), 1);

    // Unless the vendor makes a second start harmless.
    let mut fake = Fake::with_polls(vec![]);
    fake.idempotent = true;
    fake.starts = Mutex::new(VecDeque::from([Err(http_error(502)), Ok(started(None))]));
    let job = started_job(fake, quick_policy()).await;
    assert_eq!(job.adapter().start_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn status_sequence_snapshot() {
    let fake = Fake::with_polls(vec![
        Ok(pending("Created", Some(0.0))),
        Ok(pending("Running", Some(0.3))),
        Err(http_error(503)),
        Ok(pending("Running", Some(0.6))),
        Ok(Status::Ready(artifact())),
    ]);
    let job = started_job(fake, quick_policy()).await;
    let seen: Vec<Status> = job.updates().map(|s| s.unwrap()).collect().await;
    insta::assert_yaml_snapshot!(seen);
}

#[test]
fn ticket_format_snapshot_and_versioning() {
    let ticket = Ticket::new(
        "ofd",
        "bddf7767-f72b-49a9-90f1-df1b74090d92",
        chrono::DateTime::UNIX_EPOCH,
    )
    .with("agreement_id", "d64249c5-61b8-4ed9-b729-9bd7cde127db");
    insta::assert_snapshot!(ticket.to_json());
    assert_eq!(Ticket::from_json(&ticket.to_json()).unwrap(), ticket);

    let newer = ticket.to_json().replace(
        &format!("\"version\":{TICKET_VERSION}"),
        &format!("\"version\":{}", TICKET_VERSION + 1),
    );
    let err = Ticket::from_json(&newer).unwrap_err();
    assert!(
        err.to_string()
            .contains("newer than this program understands"),
        "{err}"
    );
    assert!(Ticket::from_json("{}").is_err());
    assert!(Ticket::from_json("not json").is_err());
    let job = Job::resume(Fake::default(), ticket.clone(), WaitPolicy::default()).unwrap_err();
    assert!(
        job.to_string().contains("belongs to `ofd`, not `fake`"),
        "{job}"
    );
}

fn file_fake(content: &[u8]) -> Fake {
    let mut fake = Fake::with_polls(vec![]);
    fake.file.content = content.to_vec();
    fake.file.honour_range = true;
    fake.file.announce_size = true;
    fake
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(start_paused = true)]
async fn download_resumes_after_cuts() {
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let fake = file_fake(&content);
    *fake.file.cuts.lock().unwrap() = VecDeque::from([3000, 7000]);
    let job = started_job(fake, quick_policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("report.csv");
    let summary = job
        .download_to(&artifact(), &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(summary.bytes, 10_000);
    assert_eq!(summary.resumes, 2);
    assert_eq!(summary.sha256, sha256_hex(&content));
    assert_eq!(summary.server_file_name.as_deref(), Some("server-name.csv"));
    assert_eq!(*job.adapter().file.offsets.lock().unwrap(), [0, 3000, 7000]);
    assert_eq!(leftovers(dir.path()), ["report.csv"]);
}

#[tokio::test(start_paused = true)]
async fn download_restarts_when_the_server_ignores_range() {
    let content = b"id,amount\n1,10\n2,20\n3,30\n".repeat(50);
    let mut fake = file_fake(&content);
    fake.file.honour_range = false;
    *fake.file.cuts.lock().unwrap() = VecDeque::from([100]);
    let job = started_job(fake, quick_policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r.csv");
    let summary = job
        .download_to(&artifact(), &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(summary.restarts, 1);
    assert_eq!(leftovers(dir.path()), ["r.csv"]);
}

/// The file is hashed and written on a task of its own; on a multi-threaded runtime that task
/// runs beside the receiving one, through cuts, resumes and a restart, with and without fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_writes_on_its_own_task_through_cuts_and_restarts() {
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let policy = quick_policy().with_backoff(Duration::from_millis(1), Duration::from_millis(5));
    for fsync in [true, false] {
        for honour_range in [true, false] {
            let mut fake = file_fake(&content);
            fake.file.honour_range = honour_range;
            *fake.file.cuts.lock().unwrap() = VecDeque::from([70_001, 150_003, 299_999]);
            let job = started_job(fake, policy.clone()).await;
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("big.bin");
            let mut options = DownloadOptions::default();
            if !fsync {
                options = options.without_fsync();
            }
            let summary = job.download_to(&artifact(), &dest, options).await.unwrap();
            assert!(std::fs::read(&dest).unwrap() == content, "fsync {fsync}");
            assert_eq!(summary.sha256, sha256_hex(&content));
            assert_eq!(summary.bytes, content.len() as u64);
            let (resumes, restarts) = if honour_range { (3, 0) } else { (3, 3) };
            assert_eq!((summary.resumes, summary.restarts), (resumes, restarts));
            assert_eq!(leftovers(dir.path()), ["big.bin"]);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn gzip_is_decompressed_or_kept() {
    use std::io::Write;
    let plain = b"{\"rows\":[1,2,3]}\n".repeat(100);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();

    let mut fake = file_fake(&gz);
    fake.file.compression = Compression::Gzip;
    let job = started_job(fake, quick_policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r.json");
    let summary = job
        .download_to(&artifact(), &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), plain);
    assert_eq!(summary.sha256, sha256_hex(&plain));
    assert_eq!(summary.wire_bytes, gz.len() as u64);

    let kept = dir.path().join("r.json.gz");
    job.download_to(
        &artifact(),
        &kept,
        DownloadOptions::default().keep_compressed(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&kept).unwrap(), gz);
    assert_eq!(leftovers(dir.path()), ["r.json", "r.json.gz"]);
}

/// gzip of `plain` in two members, as some servers concatenate them.
fn two_member_gzip(plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let (a, b) = plain.split_at(plain.len() / 3);
    let mut out = Vec::new();
    for part in [a, b] {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(part).unwrap();
        out.extend(gz.finish().unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn gzip_is_decompressed_across_resumes_and_restarts() {
    let plain: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("{{\"row\":{i}}}\n").into_bytes())
        .collect();
    let gz = two_member_gzip(&plain);

    // Cut twice and resumed with `Range`: the decompression simply continues.
    let mut fake = file_fake(&gz);
    fake.file.compression = Compression::Gzip;
    *fake.file.cuts.lock().unwrap() = VecDeque::from([gz.len() / 4, gz.len() / 2]);
    let job = started_job(fake, quick_policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r.json");
    let summary = job
        .download_to(&artifact(), &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), plain);
    assert_eq!(summary.resumes, 2);
    assert_eq!(summary.wire_bytes, gz.len() as u64);
    assert_eq!(summary.sha256, sha256_hex(&plain));

    // The server ignores `Range`: the decompression starts over in a fresh file.
    let mut fake = file_fake(&gz);
    fake.file.compression = Compression::Gzip;
    fake.file.honour_range = false;
    *fake.file.cuts.lock().unwrap() = VecDeque::from([gz.len() / 2]);
    let job = started_job(fake, quick_policy()).await;
    let summary = job
        .download_to(&artifact(), &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), plain);
    assert_eq!(summary.restarts, 1);
    assert_eq!(summary.bytes, plain.len() as u64);
    assert_eq!(leftovers(dir.path()), ["r.json"]);
}

#[test]
fn job_futures_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let job = Job::resume(
        Fake::default(),
        Ticket::new("fake", "job-1", chrono::DateTime::UNIX_EPOCH),
        quick_policy(),
    )
    .unwrap();
    assert_send(&job.wait());
    assert_send(&job.download_to(&artifact(), "r.bin", DownloadOptions::default()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_download_leaves_nothing_at_the_destination() {
    let content = vec![7u8; 5000];
    let fake = file_fake(&content);
    *fake.file.cuts.lock().unwrap() = (0..20).map(|_| 10).collect();
    let job = started_job(fake, quick_policy().with_transient_error_budget(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r.bin");
    let err = job
        .download_to(&artifact(), &dest, DownloadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RetriesExhausted { .. }), "{err}");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );

    // A checksum mismatch also leaves nothing, and an existing file is not replaced.
    std::fs::write(&dest, b"previous").unwrap();
    let job = started_job(file_fake(&content), quick_policy()).await;
    let err = job
        .download_to(
            &artifact(),
            &dest,
            DownloadOptions::default().expect_sha256("00"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous");
    assert_eq!(leftovers(dir.path()), ["r.bin"]);
}

#[tokio::test(start_paused = true)]
async fn corrupt_gzip_is_an_integrity_error() {
    let mut fake = file_fake(b"this is not gzip at all");
    fake.file.compression = Compression::Gzip;
    let job = started_job(fake, quick_policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let err = job
        .download_to(
            &artifact(),
            dir.path().join("x.json"),
            DownloadOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
    assert!(leftovers(dir.path()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expired_presigned_link_is_refreshed_through_the_vendor() {
    let content = b"fresh bytes".to_vec();
    let mut fake = file_fake(&content);
    let fresh = Artifact {
        url: "http://127.0.0.1/file?sig=new".into(),
        authenticated: false,
        ..artifact()
    };
    fake.polls = Mutex::new(VecDeque::from([Ok(Status::Ready(fresh))]));
    *fake.file.open_errors.lock().unwrap() = VecDeque::from([http_error(403)]);
    let job = started_job(fake, quick_policy()).await;
    let stale = Artifact {
        authenticated: false,
        ..artifact()
    };
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("r.bin");
    let summary = job
        .download_to(&stale, &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(job.stats().polls, 1);
    assert_eq!(summary.restarts, 1);
}

fn leftovers(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_ends_the_wait_at_once() {
    // A vendor asking to come back in a day, with 10 minutes left: no day-long sleep.
    let busy = || {
        Err(Error::Api {
            vendor: "fake",
            status: Some(503),
            code: None,
            message: "busy".into(),
            request_id: None,
            retry_after: Some(Duration::from_secs(86_400)),
        })
    };
    let fake = Fake::with_polls((0..10).map(|_| busy()).collect());
    let policy = quick_policy().with_deadline(Some(Duration::from_secs(600)));
    let job = started_job(fake, policy).await;
    let t0 = tokio::time::Instant::now();
    let err = job.wait().await.unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    // The first look after one backoff step, then the refusal to sleep a day.
    assert!(t0.elapsed() <= Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(job.stats().polls, 1);
}

#[tokio::test(start_paused = true)]
async fn a_poll_that_never_answers_ends_at_the_deadline() {
    // The adapter's request hangs (no HTTP timeout would end it in time).
    struct Hanging;
    impl ReportAdapter for Hanging {
        type Request = ();
        fn vendor(&self) -> &'static str {
            "fake"
        }
        async fn start(&self, _: &()) -> Result<Started> {
            Ok(started(None))
        }
        async fn poll(&self, _: &Ticket) -> Result<Status> {
            futures::future::pending().await
        }
        async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
            futures::future::pending().await
        }
    }
    let policy = quick_policy().with_deadline(Some(Duration::from_secs(30)));
    let job = Job::start(Hanging, &(), policy).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let err = job.wait().await.unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    assert!(
        t0.elapsed() <= Duration::from_secs(30),
        "{:?}",
        t0.elapsed()
    );
    let dir = tempfile::tempdir().unwrap();
    let err = job
        .download_to(
            &artifact(),
            dir.path().join("r.csv"),
            DownloadOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_an_instant_kept_across_a_change_of_clock() {
    let policy = quick_policy().with_deadline(Some(Duration::from_secs(600)));
    let job = Job::resume(Fake::with_polls(vec![]), started(None).ticket, policy).unwrap();
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(job.remaining(), Some(Duration::from_secs(500)));
    // A virtual clock somewhere else in time: the time left is kept, not restarted.
    let clock = Arc::new(report_core::VirtualClock::new(chrono::DateTime::UNIX_EPOCH));
    let job = job.with_clock(clock.clone());
    assert_eq!(job.remaining(), Some(Duration::from_secs(500)));
    assert_eq!(
        job.deadline(),
        Some(chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(500))
    );
    clock.advance(Duration::from_secs(500));
    assert_eq!(job.remaining(), Some(Duration::ZERO));
    let err = job.poll().await.unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_start_retries_too() {
    let mut fake = Fake::with_polls(vec![]);
    fake.starts = Mutex::new((0..20).map(|_| Err(transport(false))).collect());
    let fake = Arc::new(fake);
    let policy = quick_policy().with_deadline(Some(Duration::from_secs(10)));
    let t0 = tokio::time::Instant::now();
    let err = Job::<Fake>::start(fake.clone(), &(), policy)
        .await
        .unwrap_err();
    // A sleep that would end past the deadline is not begun: the job ends at once.
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    // Retries after 1, 2 and 4 s; the next (8 s) would pass the 10 s deadline.
    assert_eq!(fake.start_calls.load(Ordering::SeqCst), 4);
    assert!(t0.elapsed() <= Duration::from_secs(10));
}
