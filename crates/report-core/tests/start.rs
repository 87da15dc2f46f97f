//! Which failed starts are retried: never one that may have started a report, always one the
//! adapter marks as failing before its start request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use report_core::{
    Artifact, Download, Error, Job, ReportAdapter, Result, Started, Status, Ticket, WaitPolicy,
};

/// Starts fail with the scripted errors, then succeed.
struct Flaky {
    errors: Mutex<Vec<Error>>,
    calls: AtomicU32,
}

impl Flaky {
    fn new(mut errors: Vec<Error>) -> Self {
        errors.reverse();
        Flaky {
            errors: Mutex::new(errors),
            calls: AtomicU32::new(0),
        }
    }
}

impl ReportAdapter for Flaky {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "flaky"
    }

    async fn start(&self, _: &()) -> Result<Started> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.errors.lock().unwrap().pop() {
            Some(e) => Err(e),
            None => Ok(Started {
                ticket: Ticket::new("flaky", "1", chrono::DateTime::UNIX_EPOCH),
                status: None,
            }),
        }
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        Ok(Status::Cancelled)
    }

    async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
        unreachable!("not downloaded")
    }
}

fn server_error() -> Error {
    Error::Api {
        vendor: "flaky",
        status: Some(503),
        code: None,
        message: "busy".into(),
        request_id: None,
        retry_after: None,
    }
}

fn policy() -> WaitPolicy {
    WaitPolicy::default().with_jitter(0.0)
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_the_start_request_is_retried() {
    let flaky = std::sync::Arc::new(Flaky::new(vec![
        Error::before_start(server_error()),
        Error::before_start(server_error()),
    ]));
    Job::<Flaky>::start(flaky.clone(), &(), policy())
        .await
        .expect("started on the third try");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_start_request_that_may_have_arrived_is_not_retried() {
    let flaky = std::sync::Arc::new(Flaky::new(vec![server_error()]));
    let err = Job::<Flaky>::start(flaky.clone(), &(), policy())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(503));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn callers_never_see_the_before_start_mark() {
    let refused = Error::Auth {
        vendor: "flaky",
        status: 401,
        message: "no".into(),
    };
    let flaky = std::sync::Arc::new(Flaky::new(vec![Error::before_start(refused)]));
    let err = Job::<Flaky>::start(flaky.clone(), &(), policy())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    // Refused credentials are not transient: one try only.
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
}
