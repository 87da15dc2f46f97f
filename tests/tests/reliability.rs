//! Reliability under faults, against the embedded sandbox (real sockets, real time):
//!
//! - `two_hundred_jobs_survive_mixed_faults`: 200 jobs over the five vendors while about a
//!   fifth of the status requests fail (5xx, 429 + `Retry-After`, dropped connections,
//!   truncated bodies, slow answers) and a tenth of the downloads are cut. Every job completes,
//!   every file's SHA-256 equals the sandbox's, and no report is started twice.
//! - `a_fault_storm_ends_in_retries_exhausted_promptly`: 100 % failing polls end in
//!   [`Error::RetriesExhausted`] within seconds, never a hang.
//! - `downloads_cut_every_time_fail_typed_and_leave_nothing_behind`.
//! - `a_ticket_resumes_in_a_new_process_and_completes`: the job's task is killed after the
//!   ticket was written; a new client resumes it from the ticket file.
//! - `a_sandbox_restart_loses_reports_and_resumed_jobs_fail_typed`: vendor state does not
//!   survive a sandbox restart (it lives in memory); resumed jobs end in typed errors.
//! - `expired_tokens_are_renewed_once_and_jobs_go_on`: OFD.ru and CloudBlue tokens expire
//!   while jobs wait.
//! - `endless_answers_are_cut_at_their_limits`: an endless error page or JSON answer is read
//!   only up to its limit (64 KiB, 16 MiB) and ends in a typed error.
//!
//! Run with `cargo test -p integration-tests --test reliability -- --nocapture` to see the
//! tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::vendors::{
    cloudblue_adapter, cloudblue_request, docspace_adapter, docspace_request, evovoice_adapter,
    evovoice_request, metakocka_adapter, metakocka_request, ofd_adapter, ofd_request,
};
use report_cloudblue::CloudBlueAdapter;
use report_core::{Artifact, DownloadOptions, Error, Job, ReportAdapter, Ticket, WaitPolicy};
use report_docspace::DocSpaceAdapter;
use report_evovoice::EvoVoiceAdapter;
use report_metakocka::MetaKockaAdapter;
use report_ofd::OfdAdapter;
use report_ofd::chrono::Utc;
use report_sandbox::{Faults, Sandbox, SandboxConfig, Vendor, credentials as c};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Vendors against a base URL (a running sandbox, a stopped one, a fresh one).

// ---------------------------------------------------------------------------------------------
// Running and checking jobs.

/// The policy of every test here: quick backoff (50 ms doubling to 500 ms), jitter on, enough
/// budget for a fifth of the requests failing, and a deadline.
fn policy() -> WaitPolicy {
    WaitPolicy::default()
        .with_backoff(Duration::from_millis(50), Duration::from_millis(500))
        .with_jitter(0.2)
        .with_transient_error_budget(10)
        .with_deadline(Some(Duration::from_secs(90)))
}

/// About 20 % of status requests fail (5xx 5 %, 429 4 %, dropped 4.5 %, truncated 4.5 %, slow
/// 4.5 %, rolled independently: 1 − 0.95·0.96·0.955³ ≈ 20 %), and 10 % of downloads are cut.
fn mixed_faults() -> Faults {
    Faults {
        status_5xx: 0.05,
        status_429: 0.04,
        retry_after_secs: 1,
        drop_connection: 0.045,
        truncate_body: 0.045,
        slow: 0.045,
        slow_delay: Duration::from_millis(100),
        download_cut: 0.10,
        ..Faults::none()
    }
}

fn sandbox_config(job_duration: Duration, faults: Faults) -> SandboxConfig {
    SandboxConfig {
        job_duration,
        report_size: 32 * 1024,
        faults,
        seed: 20_261_123,
        ..SandboxConfig::default()
    }
}

/// What a finished job left.
struct Finished {
    ticket: Ticket,
    artifact: Artifact,
    path: PathBuf,
    sha256: String,
    polls: u32,
    retries: u32,
    /// Download resumes (`Range`) and restarts.
    resumes: u32,
}

async fn finish<A: ReportAdapter>(job: Job<A>, path: PathBuf) -> Result<Finished, Error> {
    let artifact = job.wait().await?;
    let summary = job
        .download_to(&artifact, &path, DownloadOptions::default())
        .await?;
    let stats = job.stats();
    Ok(Finished {
        ticket: job.ticket().clone(),
        artifact,
        path,
        sha256: summary.sha256,
        polls: stats.polls,
        retries: stats.retries,
        resumes: summary.resumes + summary.restarts,
    })
}

async fn run_job<A: ReportAdapter>(
    adapter: Arc<A>,
    request: &A::Request,
    policy: WaitPolicy,
    path: PathBuf,
) -> Result<Finished, Error> {
    let job = Job::<A>::start(adapter, request, policy).await?;
    finish(job, path).await
}

/// The id the sandbox knows a report's file by: DocSpace's result file id, else the ticket's.
fn report_key(vendor: Vendor, ticket: &Ticket, artifact: &Artifact) -> String {
    match vendor {
        Vendor::DocSpace => artifact.data.get("file_id").cloned().unwrap_or_default(),
        _ => ticket.id.clone(),
    }
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// Checks a finished job's file on disk against the sandbox's digest of that report.
fn verify(sandbox: &Sandbox, vendor: Vendor, done: &Finished) -> Result<(), String> {
    let key = report_key(vendor, &done.ticket, &done.artifact);
    let expected = sandbox
        .report_sha256(vendor, &key)
        .ok_or_else(|| format!("the sandbox has no report `{key}`"))?;
    let on_disk = sha256_file(&done.path);
    if done.sha256 != expected || on_disk != expected {
        return Err(format!(
            "report {key}: expected sha256 {expected}, the job said {}, the file has {on_disk}",
            done.sha256
        ));
    }
    Ok(())
}

/// Runs `lanes`: each lane runs its jobs one after the other (DocSpace: one task per API key);
/// lanes run concurrently, each in a task of its own.
async fn batch<A>(
    vendor: Vendor,
    lanes: Vec<(Arc<A>, usize)>,
    request: A::Request,
    dir: &Path,
) -> (Vec<Result<Finished, Error>>, Duration)
where
    A: ReportAdapter + 'static,
    A::Request: Clone + 'static,
{
    let began = Instant::now();
    let mut tasks = Vec::new();
    for (lane, (adapter, jobs)) in lanes.into_iter().enumerate() {
        let request = request.clone();
        let dir = dir.to_path_buf();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::with_capacity(jobs);
            for i in 0..jobs {
                let path = dir.join(format!("{vendor}-{lane}-{i}.out"));
                results.push(run_job(adapter.clone(), &request, policy(), path).await);
            }
            results
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.expect("a job task panicked"));
    }
    (results, began.elapsed())
}

/// `jobs` concurrent jobs sharing one adapter (and so one client, one token).
fn concurrent<A>(adapter: A, jobs: usize) -> Vec<(Arc<A>, usize)> {
    let adapter = Arc::new(adapter);
    (0..jobs).map(|_| (adapter.clone(), 1)).collect()
}

/// One line of the summary table.
struct Row {
    vendor: Vendor,
    jobs: usize,
    status_requests: u64,
    downloads: u64,
    faults: u64,
    retries: u64,
    resumes: u64,
    completed: usize,
    lost: usize,
    started: u64,
    time: Duration,
}

fn tally(
    sandbox: &Sandbox,
    vendor: Vendor,
    (results, time): (Vec<Result<Finished, Error>>, Duration),
) -> Row {
    let stats = sandbox.stats(vendor);
    let mut row = Row {
        vendor,
        jobs: results.len(),
        status_requests: stats.status_requests,
        downloads: stats.downloads,
        faults: stats.faults_injected,
        retries: 0,
        resumes: 0,
        completed: 0,
        lost: 0,
        started: stats.reports_started,
        time,
    };
    for result in &results {
        let checked = match result {
            Ok(done) => {
                row.retries += u64::from(done.retries);
                row.resumes += u64::from(done.resumes);
                verify(sandbox, vendor, done)
            }
            Err(e) => Err(format!("{e} ({e:?})")),
        };
        match checked {
            Ok(()) => row.completed += 1,
            Err(why) => {
                row.lost += 1;
                eprintln!("{vendor}: job lost: {why}");
            }
        }
    }
    row
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<10} {:>5} {:>7} {:>9} {:>6} {:>7} {:>7} {:>9} {:>5} {:>7} {:>6}",
        "vendor",
        "jobs",
        "status",
        "downloads",
        "faults",
        "retries",
        "resumes",
        "completed",
        "lost",
        "started",
        "time"
    );
    for r in rows {
        println!(
            "{:<10} {:>5} {:>7} {:>9} {:>6} {:>7} {:>7} {:>9} {:>5} {:>7} {:>5.1}s",
            r.vendor.name(),
            r.jobs,
            r.status_requests,
            r.downloads,
            r.faults,
            r.retries,
            r.resumes,
            r.completed,
            r.lost,
            r.started,
            r.time.as_secs_f64()
        );
    }
    let sum = |f: fn(&Row) -> u64| rows.iter().map(f).sum::<u64>();
    println!(
        "{:<10} {:>5} {:>7} {:>9} {:>6} {:>7} {:>7} {:>9} {:>5} {:>7}",
        "total",
        sum(|r| r.jobs as u64),
        sum(|r| r.status_requests),
        sum(|r| r.downloads),
        sum(|r| r.faults),
        sum(|r| r.retries),
        sum(|r| r.resumes),
        sum(|r| r.completed as u64),
        sum(|r| r.lost as u64),
        sum(|r| r.started),
    );
    println!(
        "(status: status requests the sandbox received; faults: faults it injected into them and \
         into downloads; retries: requests the jobs retried; resumes: downloads resumed or \
         restarted; started: reports the sandbox started; {} status requests, {:.1} % of all \
         requests faulted, {:.1} status requests per job)",
        sum(|r| r.status_requests),
        100.0 * sum(|r| r.faults) as f64 / sum(|r| r.status_requests + r.downloads).max(1) as f64,
        sum(|r| r.status_requests) as f64 / sum(|r| r.jobs as u64).max(1) as f64,
    );
}

// ---------------------------------------------------------------------------------------------
// 200 jobs under mixed faults.

const DOCSPACE_JOBS_PER_KEY: usize = 10;
const CONCURRENT_JOBS: usize = 45;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_survive_mixed_faults() {
    let sandbox = Sandbox::start(sandbox_config(Duration::from_millis(300), mixed_faults()))
        .await
        .expect("the sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let base = |v| sandbox.base_url(v);
    let began = Instant::now();

    let (docspace, evovoice, cloudblue, metakocka, ofd) = tokio::join!(
        // DocSpace runs one task per API key: two keys, ten jobs each, one after the other.
        batch(
            Vendor::DocSpace,
            vec![
                (
                    Arc::new(docspace_adapter(
                        &base(Vendor::DocSpace),
                        c::DOCSPACE_API_KEY
                    )),
                    DOCSPACE_JOBS_PER_KEY
                ),
                (
                    Arc::new(docspace_adapter(
                        &base(Vendor::DocSpace),
                        c::DOCSPACE_API_KEY_2
                    )),
                    DOCSPACE_JOBS_PER_KEY
                ),
            ],
            docspace_request(),
            dir.path(),
        ),
        batch(
            Vendor::EvoVoice,
            concurrent(evovoice_adapter(&base(Vendor::EvoVoice)), CONCURRENT_JOBS),
            evovoice_request(),
            dir.path(),
        ),
        batch(
            Vendor::CloudBlue,
            concurrent(cloudblue_adapter(&base(Vendor::CloudBlue)), CONCURRENT_JOBS),
            cloudblue_request("reliability"),
            dir.path(),
        ),
        batch(
            Vendor::MetaKocka,
            concurrent(metakocka_adapter(&base(Vendor::MetaKocka)), CONCURRENT_JOBS),
            metakocka_request(),
            dir.path(),
        ),
        batch(
            Vendor::Ofd,
            concurrent(ofd_adapter(&base(Vendor::Ofd)), CONCURRENT_JOBS),
            ofd_request(),
            dir.path(),
        ),
    );
    let elapsed = began.elapsed();

    let rows = [
        tally(&sandbox, Vendor::DocSpace, docspace),
        tally(&sandbox, Vendor::EvoVoice, evovoice),
        tally(&sandbox, Vendor::CloudBlue, cloudblue),
        tally(&sandbox, Vendor::MetaKocka, metakocka),
        tally(&sandbox, Vendor::Ofd, ofd),
    ];
    print_table(
        &format!(
            "mixed faults: ~20 % of status requests, 10 % of downloads cut; {:.1}s in all",
            elapsed.as_secs_f64()
        ),
        &rows,
    );

    let jobs: usize = rows.iter().map(|r| r.jobs).sum();
    assert!(jobs >= 200, "only {jobs} jobs ran");
    let faults: u64 = rows.iter().map(|r| r.faults).sum();
    assert!(faults > 0, "no fault was injected: the test proves nothing");
    for row in &rows {
        let vendor = row.vendor;
        assert_eq!(row.completed, row.jobs, "{vendor}: not every job completed");
        assert_eq!(row.lost, 0, "{vendor}: jobs lost");
        assert_eq!(
            row.started, row.jobs as u64,
            "{vendor}: a report was started twice (or not at all)"
        );
    }
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Fault storms: typed errors, promptly.

/// The budget of the storm tests: small, so the storm is recognised quickly.
const STORM_BUDGET: u32 = 4;

fn storm_policy() -> WaitPolicy {
    policy().with_transient_error_budget(STORM_BUDGET)
}

/// Waits for a job that can only fail, bounding the wait so a hang fails the test.
async fn wait_out<A: ReportAdapter>(job: Job<A>) -> (Error, Duration) {
    let began = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), job.wait())
        .await
        .unwrap_or_else(|_| panic!("{}: the wait hung", job.adapter().vendor()));
    match outcome {
        Ok(artifact) => panic!(
            "{}: the job succeeded through a fault storm: {artifact:?}",
            job.adapter().vendor()
        ),
        Err(e) => (e, began.elapsed()),
    }
}

/// Asserts a storm ended in `RetriesExhausted` after exactly the budget, promptly, with the
/// last error passing `last_ok`; returns a line for the table.
fn exhausted(vendor: &str, (error, time): (Error, Duration), last_ok: ErrorCheck) -> String {
    match &error {
        Error::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, STORM_BUDGET + 1, "{vendor}: {error}");
            assert!(last_ok(last), "{vendor}: unexpected last error {last:?}");
        }
        other => panic!("{vendor}: expected RetriesExhausted, got {other:?}"),
    }
    assert!(
        time < Duration::from_secs(30),
        "{vendor}: the storm took {time:?} to be recognised"
    );
    format!("{vendor:<10} {:>6.2}s  {error}", time.as_secs_f64())
}

fn is_5xx(e: &Error) -> bool {
    e.http_status().is_some_and(|s| (500..600).contains(&s))
}

fn is_transport(e: &Error) -> bool {
    matches!(e, Error::Transport { .. })
}

/// Starts one job per vendor (DocSpace with `docspace_key`) while no fault is set.
async fn start_all(
    sandbox: &Sandbox,
    docspace_key: &str,
    policy: WaitPolicy,
) -> (
    Job<DocSpaceAdapter>,
    Job<EvoVoiceAdapter>,
    Job<CloudBlueAdapter>,
    Job<MetaKockaAdapter>,
    Job<OfdAdapter>,
) {
    let base = |v| sandbox.base_url(v);
    let docspace = docspace_adapter(&base(Vendor::DocSpace), docspace_key);
    let requests = (
        docspace_request(),
        evovoice_request(),
        cloudblue_request("reliability"),
        metakocka_request(),
        ofd_request(),
    );
    let (d, e, cb, m, o) = tokio::join!(
        Job::start(docspace, &requests.0, policy.clone()),
        Job::start(
            evovoice_adapter(&base(Vendor::EvoVoice)),
            &requests.1,
            policy.clone()
        ),
        Job::start(
            cloudblue_adapter(&base(Vendor::CloudBlue)),
            &requests.2,
            policy.clone()
        ),
        Job::start(
            metakocka_adapter(&base(Vendor::MetaKocka)),
            &requests.3,
            policy.clone()
        ),
        Job::start(ofd_adapter(&base(Vendor::Ofd)), &requests.4, policy),
    );
    (
        d.expect("docspace starts"),
        e.expect("evovoice starts"),
        cb.expect("cloudblue starts"),
        m.expect("metakocka starts"),
        o.expect("ofd starts"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_storm_ends_in_retries_exhausted_promptly() {
    let sandbox = Sandbox::start(sandbox_config(Duration::from_millis(300), Faults::none()))
        .await
        .unwrap();
    let mut lines = Vec::new();

    // Every status request answers 500, 502 or 503.
    let (d, e, cb, m, o) = start_all(&sandbox, c::DOCSPACE_API_KEY, storm_policy()).await;
    sandbox.set_faults(Faults {
        status_5xx: 1.0,
        ..Faults::none()
    });
    let (d, e, cb, m, o) = tokio::join!(
        wait_out(d),
        wait_out(e),
        wait_out(cb),
        wait_out(m),
        wait_out(o)
    );
    lines.push("5xx storm".to_string());
    lines.push(exhausted("docspace", d, is_5xx));
    lines.push(exhausted("evovoice", e, is_5xx));
    lines.push(exhausted("cloudblue", cb, is_5xx));
    lines.push(exhausted("metakocka", m, is_5xx));
    lines.push(exhausted("ofd", o, is_5xx));

    // Every status request has its connection dropped without an answer.
    sandbox.set_faults(Faults::none());
    let (d, e, cb, m, o) = start_all(&sandbox, c::DOCSPACE_API_KEY_2, storm_policy()).await;
    sandbox.set_faults(Faults {
        drop_connection: 1.0,
        ..Faults::none()
    });
    let (d, e, cb, m, o) = tokio::join!(
        wait_out(d),
        wait_out(e),
        wait_out(cb),
        wait_out(m),
        wait_out(o)
    );
    lines.push("dropped-connection storm".to_string());
    lines.push(exhausted("docspace", d, is_transport));
    lines.push(exhausted("evovoice", e, is_transport));
    lines.push(exhausted("cloudblue", cb, is_transport));
    lines.push(exhausted("metakocka", m, is_transport));
    lines.push(exhausted("ofd", o, is_transport));

    println!(
        "\nfault storms (budget {STORM_BUDGET}):\n{}",
        lines.join("\n")
    );
    sandbox.shutdown().await;
}

/// Waits for the report, then downloads it while every download is cut: the download must
/// end in a typed error and leave nothing in the folder.
async fn cut_download<A: ReportAdapter>(job: Job<A>, dir: &Path) -> String {
    let vendor = job.adapter().vendor();
    let artifact = job.wait().await.expect("the report is ready");
    let path = dir.join(format!("{vendor}.out"));
    let began = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        job.download_to(&artifact, &path, DownloadOptions::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("{vendor}: the download hung"));
    let error = match outcome {
        Ok(summary) => panic!("{vendor}: a download cut every time succeeded: {summary:?}"),
        Err(e) => e,
    };
    assert!(
        matches!(&error, Error::RetriesExhausted { attempts, .. } if *attempts == STORM_BUDGET + 1),
        "{vendor}: {error:?}"
    );
    assert!(
        !path.exists(),
        "{vendor}: a partial file was left at {path:?}"
    );
    format!(
        "{vendor:<10} {:>6.2}s  {error}",
        began.elapsed().as_secs_f64()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_cut_every_time_fail_typed_and_leave_nothing_behind() {
    let sandbox = Sandbox::start(sandbox_config(
        Duration::from_millis(200),
        Faults {
            download_cut: 1.0,
            ..Faults::none()
        },
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, e, cb, m, o) = start_all(&sandbox, c::DOCSPACE_API_KEY, storm_policy()).await;
    let lines = tokio::join!(
        cut_download(d, dir.path()),
        cut_download(e, dir.path()),
        cut_download(cb, dir.path()),
        cut_download(m, dir.path()),
        cut_download(o, dir.path()),
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    println!(
        "\ndownloads cut every time (budget {STORM_BUDGET}):\n{}\n{}\n{}\n{}\n{}",
        lines.0, lines.1, lines.2, lines.3, lines.4
    );
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Resuming from a ticket.

/// Starts a job in a task, writes its ticket to `ticket_file` and goes on waiting; the task is
/// then killed (aborted) mid-wait, like a process that died.
async fn start_then_kill<A>(adapter: A, request: A::Request, ticket_file: PathBuf)
where
    A: ReportAdapter + 'static,
    A::Request: 'static,
{
    let (written, on_written) = tokio::sync::oneshot::channel();
    let process = tokio::spawn(async move {
        let job = Job::start(adapter, &request, policy()).await?;
        let temp = ticket_file.with_extension("tmp");
        std::fs::write(&temp, job.ticket().to_json()).expect("write the ticket");
        std::fs::rename(&temp, &ticket_file).expect("move the ticket into place");
        let _ = written.send(());
        job.wait().await
    });
    tokio::time::timeout(Duration::from_secs(30), on_written)
        .await
        .expect("the ticket is written in time")
        .expect("the job started and wrote its ticket");
    process.abort();
    let killed = process.await;
    assert!(
        killed.as_ref().is_err_and(|e| e.is_cancelled()),
        "the job should have been killed mid-wait"
    );
}

/// Reads the ticket back and resumes the job with a brand-new adapter and client.
async fn resume_from<A: ReportAdapter>(
    adapter: A,
    ticket_file: &Path,
    policy: WaitPolicy,
) -> Job<A> {
    let json = std::fs::read_to_string(ticket_file).expect("the ticket file");
    let ticket = Ticket::from_json(&json).expect("a valid ticket");
    Job::resume(adapter, ticket, policy).expect("the ticket belongs to this vendor")
}

async fn kill_and_resume<A>(
    vendor: Vendor,
    first: A,
    second: A,
    request: A::Request,
    dir: &Path,
) -> Result<Finished, Error>
where
    A: ReportAdapter + 'static,
    A::Request: 'static,
{
    let ticket_file = dir.join(format!("{vendor}.ticket.json"));
    start_then_kill(first, request, ticket_file.clone()).await;
    let job = resume_from(second, &ticket_file, policy()).await;
    finish(job, dir.join(format!("{vendor}.out"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_resumes_in_a_new_process_and_completes() {
    // Mixed faults on: the resumed job retries through them like any other.
    let sandbox = Sandbox::start(sandbox_config(Duration::from_millis(800), mixed_faults()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = |v| sandbox.base_url(v);
    let (d, e, cb, m, o) = tokio::join!(
        kill_and_resume(
            Vendor::DocSpace,
            docspace_adapter(&base(Vendor::DocSpace), c::DOCSPACE_API_KEY),
            docspace_adapter(&base(Vendor::DocSpace), c::DOCSPACE_API_KEY),
            docspace_request(),
            dir.path(),
        ),
        kill_and_resume(
            Vendor::EvoVoice,
            evovoice_adapter(&base(Vendor::EvoVoice)),
            evovoice_adapter(&base(Vendor::EvoVoice)),
            evovoice_request(),
            dir.path(),
        ),
        kill_and_resume(
            Vendor::CloudBlue,
            cloudblue_adapter(&base(Vendor::CloudBlue)),
            cloudblue_adapter(&base(Vendor::CloudBlue)),
            cloudblue_request("reliability"),
            dir.path(),
        ),
        kill_and_resume(
            Vendor::MetaKocka,
            metakocka_adapter(&base(Vendor::MetaKocka)),
            metakocka_adapter(&base(Vendor::MetaKocka)),
            metakocka_request(),
            dir.path(),
        ),
        kill_and_resume(
            Vendor::Ofd,
            ofd_adapter(&base(Vendor::Ofd)),
            ofd_adapter(&base(Vendor::Ofd)),
            ofd_request(),
            dir.path(),
        ),
    );
    println!();
    for (vendor, outcome) in [
        (Vendor::DocSpace, d),
        (Vendor::EvoVoice, e),
        (Vendor::CloudBlue, cb),
        (Vendor::MetaKocka, m),
        (Vendor::Ofd, o),
    ] {
        let done = outcome.unwrap_or_else(|e| panic!("{vendor}: the resumed job failed: {e:?}"));
        verify(&sandbox, vendor, &done).unwrap_or_else(|why| panic!("{vendor}: {why}"));
        assert_eq!(
            sandbox.stats(vendor).reports_started,
            1,
            "{vendor}: resuming must not start the report again"
        );
        println!(
            "{vendor:<10} resumed ticket {} → {} polls, {} retries, sha256 {} ok",
            done.ticket.id,
            done.polls,
            done.retries,
            &done.sha256[..16]
        );
    }
    sandbox.shutdown().await;
}

/// A check of an error.
type ErrorCheck = fn(&Error) -> bool;

/// Resumes a ticket and returns how the wait ended.
async fn resume_and_wait<A: ReportAdapter>(
    adapter: A,
    ticket: &Ticket,
    policy: WaitPolicy,
) -> Error {
    let vendor = adapter.vendor();
    let job = Job::resume(adapter, ticket.clone(), policy).expect("the vendor's own ticket");
    tokio::time::timeout(Duration::from_secs(60), job.wait())
        .await
        .unwrap_or_else(|_| panic!("{vendor}: the resumed wait hung"))
        .expect_err("the report cannot be found any more")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_restart_loses_reports_and_resumed_jobs_fail_typed() {
    let config = sandbox_config(Duration::from_millis(500), Faults::none());
    let first = Sandbox::start(config.clone()).await.unwrap();
    let (d, e, cb, m, o) = start_all(&first, c::DOCSPACE_API_KEY, policy()).await;
    let tickets = [
        d.ticket().to_json(),
        e.ticket().to_json(),
        cb.ticket().to_json(),
        m.ticket().to_json(),
        o.ticket().to_json(),
    ];
    let tickets: Vec<Ticket> = tickets
        .iter()
        .map(|json| Ticket::from_json(json).unwrap())
        .collect();
    drop((d, e, cb, m, o));
    first.shutdown().await;

    // The sandbox is gone. Its ports may be taken by another test's sandbox at any moment, so
    // "gone" is a loopback port nothing listens on (1: privileged, outside the ephemeral
    // range). The resumed jobs give up after their budget with the connect error, never hang.
    let old: Vec<String> = Vendor::ALL
        .iter()
        .map(|v| match v {
            Vendor::CloudBlue => "http://127.0.0.1:1/marketplace/eu".to_string(),
            _ => "http://127.0.0.1:1".to_string(),
        })
        .collect();
    let quick = storm_policy();
    let gone = tokio::join!(
        resume_and_wait(
            docspace_adapter(&old[0], c::DOCSPACE_API_KEY),
            &tickets[0],
            quick.clone()
        ),
        resume_and_wait(evovoice_adapter(&old[1]), &tickets[1], quick.clone()),
        resume_and_wait(cloudblue_adapter(&old[2]), &tickets[2], quick.clone()),
        resume_and_wait(metakocka_adapter(&old[3]), &tickets[3], quick.clone()),
        resume_and_wait(ofd_adapter(&old[4]), &tickets[4], quick),
    );
    println!("\nresumed while the sandbox is down:");
    for (vendor, error) in Vendor::ALL
        .iter()
        .zip([gone.0, gone.1, gone.2, gone.3, gone.4])
    {
        match &error {
            Error::RetriesExhausted { last, .. } => assert!(
                matches!(
                    **last,
                    Error::Transport {
                        maybe_sent: false,
                        ..
                    }
                ),
                "{vendor}: {last:?}"
            ),
            other => panic!("{vendor}: expected RetriesExhausted, got {other:?}"),
        }
        println!("{vendor:<10} {error}");
    }

    // A fresh sandbox knows none of the reports: vendor state does not survive a restart.
    let second = Sandbox::start(config).await.unwrap();
    let base = |v| second.base_url(v);
    let fresh = tokio::join!(
        resume_and_wait(
            docspace_adapter(&base(Vendor::DocSpace), c::DOCSPACE_API_KEY),
            &tickets[0],
            policy()
        ),
        resume_and_wait(
            evovoice_adapter(&base(Vendor::EvoVoice)),
            &tickets[1],
            policy()
        ),
        resume_and_wait(
            cloudblue_adapter(&base(Vendor::CloudBlue)),
            &tickets[2],
            policy()
        ),
        resume_and_wait(
            metakocka_adapter(&base(Vendor::MetaKocka)),
            &tickets[3],
            policy()
        ),
        resume_and_wait(ofd_adapter(&base(Vendor::Ofd)), &tickets[4], policy()),
    );
    println!("\nresumed against a restarted (empty) sandbox:");
    let expectations: [(Vendor, Error, ErrorCheck); 5] = [
        (
            Vendor::DocSpace,
            fresh.0,
            |e| matches!(e, Error::JobFailed { code: Some(c), .. } if c == "TaskNotFound"),
        ),
        (
            Vendor::EvoVoice,
            fresh.1,
            |e| matches!(e, Error::Api { code: Some(c), .. } if c == report_evovoice::REPORT_NOT_FOUND),
        ),
        (Vendor::CloudBlue, fresh.2, |e| e.http_status() == Some(404)),
        (
            Vendor::MetaKocka,
            fresh.3,
            |e| matches!(e, Error::JobFailed { code: Some(c), .. } if c == "6"),
        ),
        (
            Vendor::Ofd,
            fresh.4,
            |e| matches!(e, Error::Api { code: Some(c), .. } if c == "ReportNotFound"),
        ),
    ];
    for (vendor, error, expected) in expectations {
        assert!(
            !error.is_transient(),
            "{vendor}: a lost report must not look transient: {error:?}"
        );
        assert!(expected(&error), "{vendor}: unexpected error {error:?}");
        println!("{vendor:<10} {error}");
        assert_eq!(
            second.stats(vendor).reports_started,
            0,
            "{vendor}: resuming must never start a report"
        );
    }
    second.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Tokens expiring mid-job.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_are_renewed_once_and_jobs_go_on() {
    const JOBS: usize = 5;
    let sandbox = Sandbox::start(sandbox_config(Duration::from_millis(1500), Faults::none()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One client per vendor, shared by every job (and so one token per vendor).
    let ofd = Arc::new(ofd_adapter(&sandbox.base_url(Vendor::Ofd)));
    let cloudblue = Arc::new(cloudblue_adapter(&sandbox.base_url(Vendor::CloudBlue)));
    let mut ofd_jobs = Vec::new();
    let mut cloudblue_jobs = Vec::new();
    for _ in 0..JOBS {
        ofd_jobs.push(
            Job::<OfdAdapter>::start(ofd.clone(), &ofd_request(), policy())
                .await
                .expect("ofd starts"),
        );
        cloudblue_jobs.push(
            Job::<CloudBlueAdapter>::start(
                cloudblue.clone(),
                &cloudblue_request("reliability"),
                policy(),
            )
            .await
            .expect("cloudblue starts"),
        );
    }
    // Every token issued so far is now refused; the reports are still being built.
    sandbox.expire_tokens();

    let ofd_done = futures::future::join_all(
        ofd_jobs
            .into_iter()
            .enumerate()
            .map(|(i, job)| finish(job, dir.path().join(format!("ofd-{i}.out")))),
    );
    let cloudblue_done = futures::future::join_all(
        cloudblue_jobs
            .into_iter()
            .enumerate()
            .map(|(i, job)| finish(job, dir.path().join(format!("cloudblue-{i}.out")))),
    );
    let (ofd_done, cloudblue_done) = tokio::join!(ofd_done, cloudblue_done);
    for (vendor, results) in [(Vendor::Ofd, ofd_done), (Vendor::CloudBlue, cloudblue_done)] {
        for result in results {
            let done = result.unwrap_or_else(|e| panic!("{vendor}: the job stopped: {e:?}"));
            verify(&sandbox, vendor, &done).unwrap_or_else(|why| panic!("{vendor}: {why}"));
        }
    }

    let requests = sandbox.requests();
    let logins = |origin: &str, path_end: &str| {
        requests
            .iter()
            .filter(|r| r.origin == origin && r.method == "POST" && r.path.ends_with(path_end))
            .count()
    };
    let ofd_logins = logins("ofd", "/api/Authorization/CreateAuthToken");
    let cloudblue_logins = logins("cloudblue", "/token");
    println!(
        "\ntokens expired mid-job: {JOBS} OFD.ru and {JOBS} CloudBlue jobs completed; \
         token requests: ofd {ofd_logins}, cloudblue {cloudblue_logins} (1 login + 1 renewal)"
    );
    assert_eq!(ofd_logins, 2, "OFD.ru: one login, one renewal");
    assert_eq!(cloudblue_logins, 2, "CloudBlue: one token, one renewal");
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Hostile answers: bounded reads.

/// A raw HTTP/1.1 server on loopback answering every request with `head` and then an endless
/// body (`prefix`, then `x` forever, until the client hangs up). Returns its base URL and the
/// count of body bytes it managed to send.
fn endless_server(
    head: &'static str,
    prefix: &'static [u8],
) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicU64, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let chunk = vec![b'x'; 64 * 1024];
                if stream.write_all(head.as_bytes()).is_err() || stream.write_all(prefix).is_err() {
                    return;
                }
                while stream.write_all(&chunk).is_ok() {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (url, sent)
}

/// An endless error page is read up to 64 KiB (`ERROR_BODY_LIMIT`) and an endless JSON answer
/// up to 16 MiB (`API_BODY_LIMIT`): both end in typed errors instead of exhausting memory or
/// hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_answers_are_cut_at_their_limits() {
    use report_core::__private::{API_BODY_LIMIT, ERROR_BODY_LIMIT};
    use std::sync::atomic::Ordering;

    let ticket = Ticket::new("evovoice", "r1", Utc::now()).with("account_id", "acct-1");
    let poll = |url: String| {
        let adapter = evovoice_adapter(&url);
        let ticket = ticket.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(60), adapter.poll(&ticket))
                .await
                .expect("an endless answer made the poll hang")
        }
    };

    let (url, sent) = endless_server(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n",
        b"<html><body>",
    );
    let began = Instant::now();
    let error = poll(url).await.expect_err("an error page is an error");
    let page_time = began.elapsed();
    assert_eq!(error.http_status(), Some(502), "{error:?}");
    assert!(error.is_transient(), "{error:?}");
    let message = error.to_string();
    assert!(
        message.len() < 1024,
        "the message holds more than an excerpt: {} bytes",
        message.len()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page_sent = sent.load(Ordering::Relaxed);

    let (url, sent) = endless_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        br#"{"reports": [""#,
    );
    let began = Instant::now();
    let error = poll(url).await.expect_err("an endless answer is refused");
    let json_time = began.elapsed();
    assert!(
        matches!(&error, Error::Decode { message, .. } if message.contains("larger than")),
        "{error:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let json_sent = sent.load(Ordering::Relaxed);
    // What the server got into the socket before the client hung up: the limit plus what
    // the kernel's socket buffers hold, far from "everything".
    assert!(json_sent >= API_BODY_LIMIT as u64 / 2, "{json_sent}");
    assert!(json_sent < 4 * API_BODY_LIMIT as u64, "{json_sent}");
    assert!(page_sent < 4 * API_BODY_LIMIT as u64, "{page_sent}");
    println!(
        "\nendless error page: cut after the {} KiB error-body limit in {:.2}s ({} KiB sent into the socket): {message}\n\
         endless JSON answer: cut at the {} MiB API-body limit in {:.2}s ({} MiB sent): {error}",
        ERROR_BODY_LIMIT / 1024,
        page_time.as_secs_f64(),
        page_sent / 1024,
        API_BODY_LIMIT / (1024 * 1024),
        json_time.as_secs_f64(),
        json_sent / (1024 * 1024),
    );
}

/// OFD.ru's agreement lookup runs before its start request: while every lookup answers 500,
/// the start is retried (nothing can have been created), and once the faults stop it starts
/// exactly one report.
#[tokio::test]
async fn a_failed_lookup_before_the_start_is_retried() {
    let sandbox = Sandbox::start(sandbox_config(
        Duration::from_millis(300),
        Faults {
            status_5xx: 1.0,
            ..Faults::none()
        },
    ))
    .await
    .unwrap();
    let adapter = ofd_adapter(&sandbox.base_url(Vendor::Ofd));
    let request = ofd_request().with_agreement(report_ofd::Agreement::Lookup {
        inn: c::OFD_INN.into(),
        kpp: c::OFD_KPP.into(),
    });
    let start = tokio::spawn(async move { Job::start(adapter, &request, policy()).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 0);
    sandbox.set_faults(Faults::none());
    let job = start
        .await
        .unwrap()
        .expect("the start went through once the lookup worked");
    assert!(job.stats().retries >= 1, "{:?}", job.stats());
    assert_eq!(sandbox.stats(Vendor::Ofd).reports_started, 1);
}
