//! One step of a wait: stepping by hand equals `wait`, and the state survives JSON mid-wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use report_core::{
    Artifact, Download, Error, Job, Progress, ReportAdapter, Result, Started, Status, Step, Ticket,
    VirtualClock, WaitPolicy, WaitState,
};

/// Answers polls from a script; the same script replayed gives the same answers.
struct Scripted {
    polls: Mutex<VecDeque<Result<Status>>>,
    calls: AtomicU32,
}

impl Scripted {
    fn new() -> Self {
        Scripted {
            polls: Mutex::new(script().into()),
            calls: AtomicU32::new(0),
        }
    }
}

fn t0() -> DateTime<Utc> {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

/// Progress with fractions and an ETA, two transient failures (one with Retry-After), ready.
fn script() -> Vec<Result<Status>> {
    let pending = |fraction: Option<f64>, eta: Option<i64>| {
        Ok(Status::Pending(Progress {
            fraction,
            eta: eta.map(|s| t0() + chrono::Duration::seconds(s)),
            ..Progress::state("running")
        }))
    };
    let transient = |retry_after: Option<u64>| {
        Err(Error::Api {
            vendor: "scripted",
            status: Some(503),
            code: None,
            message: "busy".into(),
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
        })
    };
    vec![
        pending(Some(0.0), None),
        transient(None),
        pending(Some(0.1), None),
        pending(Some(0.3), None),
        transient(Some(7)),
        pending(Some(0.6), Some(400)),
        pending(Some(0.9), Some(400)),
        Ok(Status::Ready(Artifact {
            url: "http://127.0.0.1/file".into(),
            ..Artifact::default()
        })),
    ]
}

impl ReportAdapter for Scripted {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "scripted"
    }

    async fn start(&self, _: &()) -> Result<Started> {
        Ok(Started {
            ticket: Ticket::new("scripted", "r-1", t0()),
            status: None,
        })
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.polls
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script has enough polls")
    }

    async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
        unreachable!("these tests do not download")
    }
}

fn policy() -> WaitPolicy {
    WaitPolicy::default()
        .with_backoff(Duration::from_secs(1), Duration::from_secs(30))
        .with_seed(42)
}

async fn started(clock: &Arc<VirtualClock>) -> Job<Scripted> {
    Job::start_with_clock(Scripted::new(), &(), policy(), clock.clone())
        .await
        .unwrap()
}

/// Steps by hand, sleeping on the virtual clock as told; optionally passes the state through
/// JSON and a brand-new job (another process) after every step.
async fn step_by_hand(through_json: bool) -> (Vec<Duration>, Artifact, u32) {
    let clock = Arc::new(VirtualClock::new(t0()));
    let mut job = started(&clock).await;
    let mut state = job.wait_state();
    let mut polls = 0;
    let artifact = loop {
        if let Some(delay) = job.delay_before_step(&state).unwrap() {
            report_core::Clock::sleep(&*clock, delay).await;
        }
        let step = job.step(&mut state).await.unwrap();
        if through_json {
            polls += job.adapter().calls.load(Ordering::SeqCst);
            let json = serde_json::to_string(&state).unwrap();
            state = serde_json::from_str::<WaitState>(&json).unwrap();
            // The vendor keeps its answers; the new process gets a new adapter on the rest.
            let rest = std::mem::take(&mut *job.adapter().polls.lock().unwrap());
            let adapter = Scripted {
                polls: Mutex::new(rest),
                calls: AtomicU32::new(0),
            };
            job = Job::resume(adapter, job.ticket().clone(), policy())
                .unwrap()
                .with_clock(clock.clone());
        }
        match step {
            Step::Ready(artifact) => break artifact,
            Step::Pending { .. } | Step::Retrying { .. } => {}
            other => panic!("unexpected step {other:?}"),
        }
    };
    if !through_json {
        polls = job.adapter().calls.load(Ordering::SeqCst);
    }
    (clock.sleeps(), artifact, polls)
}

#[tokio::test]
async fn stepping_by_hand_equals_wait() {
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started(&clock).await;
    let artifact = job.wait().await.unwrap();
    let waited = clock.sleeps();
    assert_eq!(job.adapter().calls.load(Ordering::SeqCst), 8);
    assert_eq!(
        waited.len(),
        8,
        "a first backoff step, then one sleep per non-final poll"
    );

    let (stepped, stepped_artifact, polls) = step_by_hand(false).await;
    assert_eq!(stepped, waited);
    assert_eq!(stepped_artifact, artifact);
    assert_eq!(polls, 8);
}

#[tokio::test]
async fn a_wait_resumed_from_json_after_every_step_continues_identically() {
    let (direct, artifact, _) = step_by_hand(false).await;
    let (resumed, resumed_artifact, polls) = step_by_hand(true).await;
    assert_eq!(resumed, direct, "the same delays, to the nanosecond");
    assert_eq!(resumed_artifact, artifact);
    assert_eq!(polls, 8, "no poll repeated or skipped");
}

#[tokio::test]
async fn the_state_records_failures_progress_and_the_deadline() {
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started(&clock).await;
    let mut state = job.wait_state();
    assert_eq!(
        state.deadline_at,
        Some(t0() + chrono::Duration::hours(24)),
        "the deadline is a wall-clock instant"
    );
    let first = state
        .next_poll_at
        .expect("a fresh start waits one step first");
    assert!(first > t0());

    report_core::Clock::sleep(&*clock, job.delay_before_step(&state).unwrap().unwrap()).await;
    assert!(matches!(
        job.step(&mut state).await.unwrap(),
        Step::Pending { .. }
    ));
    assert_eq!(state.last_progress.as_ref().unwrap().fraction, Some(0.0));
    let Step::Retrying {
        next_poll_at,
        error,
    } = job.step(&mut state).await.unwrap()
    else {
        panic!("a 503 is retried")
    };
    assert!(error.is_transient());
    assert_eq!(state.failures, 1);
    assert_eq!(state.next_poll_at, Some(next_poll_at));
    job.step(&mut state).await.unwrap();
    assert_eq!(state.failures, 0, "a success resets the budget");

    // Past the deadline the next step is refused with a typed error, not a poll.
    state.deadline_at = Some(report_core::Clock::now(&*clock));
    let err = job.delay_before_step(&state).unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err:?}");
}

#[tokio::test]
async fn the_start_answers_status_is_stepped_without_a_poll() {
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started(&clock).await;
    let mut state = job.wait_state();
    state.next_poll_at = None;
    state.first_status = Some(Status::Cancelled);
    let json = serde_json::to_string(&state).unwrap();
    let mut state: WaitState = serde_json::from_str(&json).unwrap();
    assert!(matches!(
        job.step(&mut state).await.unwrap(),
        Step::Cancelled
    ));
    assert_eq!(job.adapter().calls.load(Ordering::SeqCst), 0);
}
