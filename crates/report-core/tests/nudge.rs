//! Nudges: a waiting job polls at once when nudged; the poll decides, so a forged or repeated
//! nudge costs at most one poll. In paused tokio time: the waits take milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use report_core::{
    Artifact, Download, Error, Job, Progress, ReportAdapter, Result, Started, Status, Ticket,
    WaitPolicy,
};
use tokio::time::{Instant, sleep};

/// A report that is ready from `ready_at` on; no progress (an EvoVoice-like vendor).
struct Timed {
    ready_at: Instant,
    polls: AtomicU32,
}

impl ReportAdapter for Timed {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "timed"
    }

    async fn start(&self, _: &()) -> Result<Started> {
        Ok(Started {
            ticket: Ticket::new("timed", "job-1", chrono::DateTime::UNIX_EPOCH),
            status: Some(Status::Pending(Progress::state("Queued"))),
        })
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Ok(if Instant::now() >= self.ready_at {
            Status::Ready(Artifact::default())
        } else {
            Status::Pending(Progress::state("Running"))
        })
    }

    async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
        Err(Error::Unsupported {
            vendor: "timed",
            operation: "open",
        })
    }
}

/// A job whose report is ready `ready_in` from now, under the default policy without jitter.
async fn job(ready_in: Duration) -> Arc<Job<Timed>> {
    let adapter = Timed {
        ready_at: Instant::now() + ready_in,
        polls: AtomicU32::new(0),
    };
    let policy = WaitPolicy::default().with_jitter(0.0).with_seed(1);
    Arc::new(Job::start(adapter, &(), policy).await.expect("start"))
}

/// Waits for the job on its own task; returns when it noticed, relative to the test's start.
fn waiting(job: &Arc<Job<Timed>>) -> tokio::task::JoinHandle<Duration> {
    let job = job.clone();
    let began = Instant::now();
    tokio::spawn(async move {
        job.wait().await.expect("ready");
        began.elapsed()
    })
}

#[tokio::test(start_paused = true)]
async fn a_nudge_makes_a_waiting_job_poll_at_once() {
    // Without a nudge the 60 s cadence notices a report ready at 1000 s at 1020 s (polls at
    // 0 + 1, 3, 7, 15, 31, 63, 123, …, 963, 1023 s).
    let plain = job(Duration::from_secs(1000)).await;
    let noticed = waiting(&plain).await.unwrap();
    assert_eq!(noticed, Duration::from_secs(1023));
    let polls_alone = plain.adapter().polls.load(Ordering::SeqCst);

    // With a nudge 2 s after it is ready: noticed then, with one poll fewer.
    let nudged = job(Duration::from_secs(1000)).await;
    let handle = waiting(&nudged);
    let nudge = nudged.nudger();
    sleep(Duration::from_secs(1002)).await;
    nudge.nudge();
    assert_eq!(handle.await.unwrap(), Duration::from_secs(1002));
    assert_eq!(nudged.adapter().polls.load(Ordering::SeqCst), polls_alone);
}

#[tokio::test(start_paused = true)]
async fn a_forged_nudge_costs_one_poll_and_repeats_cost_nothing_more() {
    let baseline = job(Duration::from_secs(1000)).await;
    waiting(&baseline).await.unwrap();
    let alone = baseline.adapter().polls.load(Ordering::SeqCst);

    let job = job(Duration::from_secs(1000)).await;
    let handle = waiting(&job);
    let nudge = job.nudger();
    sleep(Duration::from_secs(500)).await;
    // A forged callback, delivered five times at once: the job polls once, sees it pending
    // and goes on every 60 s from there (…, 980, 1040 s): still within the lag budget.
    for _ in 0..5 {
        nudge.clone().nudge();
    }
    assert_eq!(handle.await.unwrap(), Duration::from_secs(1040));
    assert_eq!(job.adapter().polls.load(Ordering::SeqCst), alone + 1);
}

#[tokio::test(start_paused = true)]
async fn a_job_never_nudged_still_finishes_by_polling() {
    let job = job(Duration::from_secs(40)).await;
    let _unused = job.nudger();
    assert_eq!(waiting(&job).await.unwrap(), Duration::from_secs(63));
}

/// Answers its first poll with a 429 and `Retry-After: 30`, then ready; notes when it polled.
struct Throttled {
    polled_at: std::sync::Mutex<Vec<Instant>>,
}

impl ReportAdapter for Throttled {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "throttled"
    }

    async fn start(&self, _: &()) -> Result<Started> {
        Ok(Started {
            ticket: Ticket::new("throttled", "job-1", chrono::DateTime::UNIX_EPOCH),
            status: Some(Status::Pending(Progress::state("Queued"))),
        })
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        let mut polled = self.polled_at.lock().unwrap();
        polled.push(Instant::now());
        if polled.len() == 1 {
            return Err(Error::Api {
                vendor: "throttled",
                status: Some(429),
                code: None,
                message: "slow down".into(),
                request_id: None,
                retry_after: Some(Duration::from_secs(30)),
            });
        }
        Ok(Status::Ready(Artifact::default()))
    }

    async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
        Err(Error::Unsupported {
            vendor: "throttled",
            operation: "open",
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_nudge_never_cuts_short_a_retry_after_that_came_with_an_error() {
    let adapter = Throttled {
        polled_at: std::sync::Mutex::new(Vec::new()),
    };
    let policy = WaitPolicy::default().with_jitter(0.0).with_seed(1);
    let job = Arc::new(Job::start(adapter, &(), policy).await.expect("start"));
    let nudge = job.nudger();
    let waiter = {
        let job = job.clone();
        tokio::spawn(async move { job.wait().await.expect("ready") })
    };
    // Nudge often while the 429's Retry-After runs.
    for _ in 0..40 {
        sleep(Duration::from_secs(1)).await;
        nudge.nudge();
    }
    waiter.await.unwrap();
    let polled = job.adapter().polled_at.lock().unwrap().clone();
    assert_eq!(
        polled.len(),
        2,
        "one refused poll, then the one that saw it ready"
    );
    assert!(
        polled[1] - polled[0] >= Duration::from_secs(30),
        "the retry came {:?} after the 429",
        polled[1] - polled[0]
    );
}
