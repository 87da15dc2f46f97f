//! A report job: start or resume, watch the status, wait, cancel, download.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};

use crate::adapter::{ReportAdapter, Started};
use crate::clock::{Clock, TokioClock};
use crate::policy::{Scheduler, WaitPolicy};
use crate::{Artifact, Error, Result, Status, Ticket};

/// Counters of one job, for progress displays and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Status requests sent.
    pub polls: u32,
    /// Requests retried after a transient failure (polls, starts and downloads).
    pub retries: u32,
}

#[derive(Debug, Default)]
struct Counters {
    polls: AtomicU32,
    retries: AtomicU32,
}

/// A report job of one vendor.
///
/// The policy's [`deadline`](WaitPolicy::deadline) bounds the whole job: its clock starts at
/// [`Job::start`] (or [`Job::resume`]) and is kept as an absolute instant, so every request
/// (token, start, status, download, body reads), every retry and every sleep after it ends
/// with [`Error::Deadline`] once it passes. A sleep that would end past it is not begun.
///
/// ```no_run
/// # async fn demo<A: report_core::ReportAdapter>(adapter: A, request: A::Request) -> report_core::Result<()> {
/// use report_core::{Job, WaitPolicy};
/// let job = Job::start(adapter, &request, WaitPolicy::default()).await?;
/// let ticket_json = job.ticket().to_json(); // keep it to resume after a restart
/// let artifact = job.wait().await?;
/// job.download_to(&artifact, "report.xlsx", Default::default()).await?;
/// # Ok(()) }
/// ```
pub struct Job<A: ReportAdapter> {
    adapter: Arc<A>,
    ticket: Ticket,
    policy: WaitPolicy,
    clock: Arc<dyn Clock>,
    /// When the policy's deadline passes, by `clock` (`None`: never).
    deadline_at: Option<DateTime<Utc>>,
    /// The status the start answer carried; the first wait uses it instead of a poll.
    first_status: Mutex<Option<Status>>,
    /// Started by this process without a status: the first poll waits one backoff step
    /// (a report asked for a moment ago is not ready; asking at once wastes a request).
    just_started: std::sync::atomic::AtomicBool,
    counters: Counters,
}

impl<A: ReportAdapter> std::fmt::Debug for Job<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("ticket", &self.ticket)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<A: ReportAdapter> Job<A> {
    /// Starts a report with the tokio clock.
    ///
    /// A failed start is retried within the policy's transient-error budget only when the
    /// request provably never reached the server, or the vendor makes a repeated start
    /// harmless ([`ReportAdapter::start_is_idempotent`]): a report is never started twice.
    pub async fn start(
        adapter: impl Into<Arc<A>>,
        request: &A::Request,
        policy: WaitPolicy,
    ) -> Result<Self> {
        Self::start_with_clock(adapter, request, policy, Arc::new(TokioClock::new())).await
    }

    /// Starts a report with an injected clock.
    pub async fn start_with_clock(
        adapter: impl Into<Arc<A>>,
        request: &A::Request,
        policy: WaitPolicy,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let adapter = adapter.into();
        let counters = Counters::default();
        let mut scheduler = policy.scheduler();
        let mut failures = 0;
        let deadline_at = deadline_from(clock.now(), &policy);
        let bound = Bound {
            clock: clock.as_ref(),
            deadline_at,
            policy: &policy,
            counters: &counters,
        };
        let started = loop {
            match bound.run(adapter.start(request)).await {
                Ok(started) => break started,
                Err(e)
                    if e.is_transient()
                        && (!e.request_maybe_sent() || adapter.start_is_idempotent()) =>
                {
                    let e = e.unwrap_before_start();
                    failures += 1;
                    if failures > policy.transient_error_budget {
                        return Err(Error::RetriesExhausted {
                            attempts: failures,
                            last: Box::new(e),
                        });
                    }
                    let delay = scheduler.after_error(e.retry_after());
                    // The overall deadline bounds the retries of a start too.
                    bound.check_sleep(delay)?;
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(vendor = adapter.vendor(), error = %e, "start failed before reaching the server; retrying");
                    clock.sleep(delay).await;
                }
                Err(e) => return Err(e.unwrap_before_start()),
            }
        };
        let Started { ticket, status } = started;
        Ok(Job {
            adapter,
            ticket,
            policy,
            clock,
            deadline_at,
            just_started: status.is_none().into(),
            first_status: Mutex::new(status),
            counters,
        })
    }

    /// Resumes a job from a ticket (e.g. one read back from disk).
    pub fn resume(adapter: impl Into<Arc<A>>, ticket: Ticket, policy: WaitPolicy) -> Result<Self> {
        let adapter = adapter.into();
        ticket.expect_vendor(adapter.vendor())?;
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        Ok(Job {
            adapter,
            ticket,
            deadline_at: deadline_from(clock.now(), &policy),
            policy,
            clock,
            first_status: Mutex::new(None),
            just_started: false.into(),
            counters: Counters::default(),
        })
    }

    /// Replaces the clock (tests, simulations). The time left until the deadline is kept.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let left = self.deadline_at.map(|at| at - self.clock.now());
        self.deadline_at = left.map(|left| clock.now() + left);
        self.clock = clock;
        self
    }

    /// When the policy's deadline passes, by the job's clock (`None`: never). It is counted
    /// from [`Job::start`] or [`Job::resume`].
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.deadline_at
    }

    /// The time left until the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.bound().remaining()
    }

    /// The ticket: serialize it to resume this job elsewhere.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// The adapter.
    pub fn adapter(&self) -> &A {
        &self.adapter
    }

    /// The wait policy.
    pub fn policy(&self) -> &WaitPolicy {
        &self.policy
    }

    /// Requests sent and retried so far.
    pub fn stats(&self) -> JobStats {
        JobStats {
            polls: self.counters.polls.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_retry(&self) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
    }

    fn bound(&self) -> Bound<'_> {
        Bound {
            clock: self.clock.as_ref(),
            deadline_at: self.deadline_at,
            policy: &self.policy,
            counters: &self.counters,
        }
    }

    /// Runs `work` until it ends or the deadline passes ([`Error::Deadline`]).
    pub(crate) async fn within_deadline<T>(
        &self,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.bound().run(work).await
    }

    /// Sleeps `delay`, or ends at once with [`Error::Deadline`] when the sleep would end past
    /// the deadline (waking up only to give up is pointless).
    pub(crate) async fn sleep_within_deadline(&self, delay: Duration) -> Result<()> {
        self.bound().check_sleep(delay)?;
        self.clock.sleep(delay).await;
        Ok(())
    }

    /// Asks for the status once (no retries), within the deadline.
    pub async fn poll(&self) -> Result<Status> {
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        self.within_deadline(self.adapter.poll(&self.ticket)).await
    }

    /// Every status observed until the report is ready, failed or cancelled, polling as the
    /// [`WaitPolicy`] says. Transient errors are retried silently within the budget; the
    /// stream ends after a terminal status or an error.
    pub fn updates(&self) -> impl Stream<Item = Result<Status>> + Send + '_ {
        let mut scheduler = self.policy.scheduler();
        let next_sleep = self
            .just_started
            .swap(false, Ordering::Relaxed)
            .then(|| scheduler.first_delay());
        let state = WaitState {
            scheduler,
            next_sleep,
            failures: 0,
            done: false,
        };
        futures::stream::unfold(state, move |mut state| async move {
            if state.done {
                return None;
            }
            let item = self.next_update(&mut state).await;
            match &item {
                Ok(status) if !status.is_terminal() => {}
                _ => state.done = true,
            }
            Some((item, state))
        })
    }

    async fn next_update(&self, state: &mut WaitState) -> Result<Status> {
        if let Some(status) = self.first_status.lock().expect("not poisoned").take() {
            if let Status::Pending(p) = &status {
                state.next_sleep = Some(state.scheduler.after_pending(self.clock.now(), p));
            }
            return Ok(status);
        }
        loop {
            if let Some(delay) = state.next_sleep.take() {
                self.sleep_within_deadline(delay).await?;
            }
            match self.poll().await {
                Ok(status) => {
                    state.failures = 0;
                    if let Status::Pending(p) = &status {
                        state.next_sleep = Some(state.scheduler.after_pending(self.clock.now(), p));
                    }
                    return Ok(status);
                }
                Err(e) if e.is_transient() => {
                    state.failures += 1;
                    if state.failures > self.policy.transient_error_budget {
                        return Err(Error::RetriesExhausted {
                            attempts: state.failures,
                            last: Box::new(e),
                        });
                    }
                    self.count_retry();
                    tracing::debug!(vendor = self.adapter.vendor(), error = %e, "transient poll failure; retrying");
                    state.next_sleep = Some(state.scheduler.after_error(e.retry_after()));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the report is ready and returns its artifact; a failed or cancelled report
    /// is an error ([`Error::JobFailed`], [`Error::Cancelled`]).
    pub async fn wait(&self) -> Result<Artifact> {
        self.wait_with(|_| {}).await
    }

    /// Like [`wait`](Self::wait), calling `on_status` with every status observed.
    pub async fn wait_with(&self, mut on_status: impl FnMut(&Status)) -> Result<Artifact> {
        let updates = self.updates();
        futures::pin_mut!(updates);
        while let Some(status) = updates.next().await {
            let status = status?;
            on_status(&status);
            match status {
                Status::Pending(_) => continue,
                Status::Ready(artifact) => return Ok(artifact),
                terminal => return Err(self.terminal_error(terminal)),
            }
        }
        unreachable!("the update stream ends only after a terminal status or an error")
    }

    pub(crate) fn terminal_error(&self, status: Status) -> Error {
        let vendor = self.adapter.vendor();
        match status {
            Status::Failed { code, message } => Error::JobFailed {
                vendor,
                code,
                message,
            },
            _ => Error::Cancelled { vendor },
        }
    }

    /// Cancels the report (a typed [`Error::Unsupported`] where the vendor cannot).
    pub async fn cancel(&self) -> Result<()> {
        self.adapter.cancel(&self.ticket).await
    }

    /// Deletes the finished report on the vendor's side (where the vendor supports it).
    pub async fn delete(&self) -> Result<()> {
        self.adapter.delete(&self.ticket).await
    }
}

struct WaitState {
    scheduler: Scheduler,
    next_sleep: Option<Duration>,
    failures: u32,
    done: bool,
}

/// The absolute deadline of a job begun at `now`.
fn deadline_from(now: DateTime<Utc>, policy: &WaitPolicy) -> Option<DateTime<Utc>> {
    let deadline = chrono::Duration::from_std(policy.deadline?).ok()?;
    now.checked_add_signed(deadline)
}

/// A job's deadline, usable before the job exists (its start).
struct Bound<'a> {
    clock: &'a dyn Clock,
    deadline_at: Option<DateTime<Utc>>,
    policy: &'a WaitPolicy,
    counters: &'a Counters,
}

impl Bound<'_> {
    fn remaining(&self) -> Option<Duration> {
        let at = self.deadline_at?;
        Some((at - self.clock.now()).to_std().unwrap_or_default())
    }

    fn passed(&self) -> Error {
        Error::Deadline {
            deadline: self.policy.deadline.unwrap_or_default(),
            polls: self.counters.polls.load(Ordering::Relaxed),
        }
    }

    /// `work`, cut off at the deadline. The remaining time is measured on the job's clock and
    /// enforced with the runtime's timer (the same thing with [`TokioClock`]).
    async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        match self.remaining() {
            None => work.await,
            Some(Duration::ZERO) => Err(self.passed()),
            Some(left) => tokio::time::timeout(left, work)
                .await
                .unwrap_or_else(|_| Err(self.passed())),
        }
    }

    /// `Err(Deadline)` when sleeping `delay` would end past the deadline.
    fn check_sleep(&self, delay: Duration) -> Result<()> {
        match self.remaining() {
            Some(left) if delay >= left => Err(self.passed()),
            _ => Ok(()),
        }
    }
}
