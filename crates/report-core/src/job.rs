//! A report job: start or resume, watch the status, wait, cancel, download.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};

use crate::adapter::{ReportAdapter, Started};
use crate::clock::{Clock, TokioClock};
use crate::policy::{Scheduler, SchedulerState, WaitPolicy};
use crate::{Artifact, Error, Progress, Result, Status, Ticket};
use serde::{Deserialize, Serialize};

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
    /// Wakes a waiting [`wait`](Self::wait) or [`updates`](Self::updates) early.
    nudges: Arc<Nudges>,
    /// The nudges already answered by a poll.
    nudges_seen: AtomicU64,
}

#[derive(Debug, Default)]
struct Nudges {
    /// Nudges received so far.
    count: AtomicU64,
    wake: tokio::sync::Notify,
}

/// A handle that makes a waiting job poll at once (a notification arrived, the user pressed a
/// key): [`Job::nudger`]. A nudge is a hint, never a status: the poll it causes decides. A
/// forged nudge costs one poll; nudges that arrive together (before that poll is sent) cost
/// that one poll in all. It does not shorten a Retry-After the vendor asked for.
#[derive(Clone, Debug)]
pub struct Nudge(Arc<Nudges>);

impl Nudge {
    /// Makes the job poll now if it is waiting, or right after its current poll.
    pub fn nudge(&self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        self.0.wake.notify_waiters();
    }
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
            nudges: Arc::default(),
            nudges_seen: AtomicU64::new(0),
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
            nudges: Arc::default(),
            nudges_seen: AtomicU64::new(0),
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

    /// A handle to make this job's wait poll at once.
    pub fn nudger(&self) -> Nudge {
        Nudge(self.nudges.clone())
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

    /// A fresh wait state for this job, with the job's deadline (counted from [`Job::start`] or
    /// [`Job::resume`]). The first call hands
    /// over the status the start answer carried (so no poll is spent on it); a job started
    /// without one has its first poll one backoff step away.
    pub fn wait_state(&self) -> WaitState {
        let now = self.clock.now();
        let mut scheduler = self.policy.scheduler();
        let first_status = self.first_status.lock().expect("not poisoned").take();
        let next_poll_at = self
            .just_started
            .swap(false, Ordering::Relaxed)
            .then(|| now + to_chrono(scheduler.first_delay()));
        WaitState {
            scheduler: scheduler.state(),
            deadline_at: self.deadline_at,
            next_poll_at,
            failures: 0,
            last_progress: None,
            first_status,
        }
    }

    /// How long to wait before the next [`step`](Self::step): `None` to step at once, an
    /// [`Error::Deadline`] once the overall deadline has passed or when the wait would end past
    /// it (waking up only to give up is pointless). The deadline is the state's
    /// (`WaitState::deadline_at`), so it holds across processes.
    pub fn delay_before_step(&self, state: &WaitState) -> Result<Option<Duration>> {
        let now = self.clock.now();
        let bound = Bound {
            deadline_at: state.deadline_at,
            ..self.bound()
        };
        if bound.remaining() == Some(Duration::ZERO) {
            return Err(bound.passed());
        }
        let Some(at) = state.next_poll_at else {
            return Ok(None);
        };
        let delay = (at - now).to_std().unwrap_or_default();
        bound.check_sleep(delay)?;
        Ok(Some(delay))
    }

    /// One step of a wait: at most one status request, no sleep. What it learns goes into
    /// `state` (serializable: another process may take the next step with
    /// [`Job::resume`] and the same state). The caller waits
    /// [`delay_before_step`](Self::delay_before_step) between steps; [`wait`](Self::wait)
    /// and [`updates`](Self::updates) are exactly that loop.
    ///
    /// A transient failure within the budget is [`Step::Retrying`]; past the budget it is
    /// [`Error::RetriesExhausted`]; any other failure is returned as is.
    pub async fn step(&self, state: &mut WaitState) -> Result<Step> {
        let mut scheduler = self.policy.resume_scheduler(state.scheduler.clone());
        let result = self.step_with(&mut scheduler, state).await;
        state.scheduler = scheduler.state();
        result
    }

    async fn step_with(&self, scheduler: &mut Scheduler, state: &mut WaitState) -> Result<Step> {
        let status = match state.first_status.take() {
            Some(status) => status,
            None => match self.poll().await {
                Ok(status) => {
                    state.failures = 0;
                    status
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
                    let delay = scheduler.after_error(e.retry_after());
                    let next_poll_at = self.clock.now() + to_chrono(delay);
                    state.next_poll_at = Some(next_poll_at);
                    return Ok(Step::Retrying {
                        error: e,
                        next_poll_at,
                    });
                }
                Err(e) => return Err(e),
            },
        };
        Ok(match status {
            Status::Pending(progress) => {
                let now = self.clock.now();
                let next_poll_at = now + to_chrono(scheduler.after_pending(now, &progress));
                state.next_poll_at = Some(next_poll_at);
                state.last_progress = Some(progress.clone());
                Step::Pending {
                    progress,
                    next_poll_at,
                }
            }
            Status::Ready(artifact) => Step::Ready(artifact),
            Status::Failed { code, message } => Step::Failed { code, message },
            Status::Cancelled => Step::Cancelled,
        })
    }

    /// Every status observed until the report is ready, failed or cancelled, polling as the
    /// [`WaitPolicy`] says. Transient errors are retried silently within the budget; the
    /// stream ends after a terminal status or an error.
    pub fn updates(&self) -> impl Stream<Item = Result<Status>> + Send + '_ {
        let state = Some(self.wait_state());
        futures::stream::unfold(state, move |state| async move {
            let mut state = state?;
            let item = self.next_update(&mut state).await;
            let go_on = matches!(&item, Ok(status) if !status.is_terminal());
            Some((item, go_on.then_some(state)))
        })
    }

    /// Steps until a status is observed (transient failures are retried within the budget).
    async fn next_update(&self, state: &mut WaitState) -> Result<Status> {
        // A Retry-After that came with a transient error binds like a pending status's.
        let mut told_to_retry_after = false;
        loop {
            if let Some(delay) = self.delay_before_step(state)? {
                let asked_to_wait = told_to_retry_after
                    || state
                        .last_progress
                        .as_ref()
                        .and_then(|p| p.retry_after)
                        .is_some();
                let wake = self.nudges.wake.notified();
                futures::pin_mut!(wake);
                // Registered before the check, so a nudge in between is not missed.
                wake.as_mut().enable();
                let unanswered = self.nudges.count.load(Ordering::SeqCst)
                    != self.nudges_seen.load(Ordering::SeqCst);
                if asked_to_wait {
                    self.clock.sleep(delay).await;
                } else if !unanswered {
                    futures::future::select(self.clock.sleep(delay), wake).await;
                }
            }
            // This poll answers every nudge so far.
            let count = self.nudges.count.load(Ordering::SeqCst);
            self.nudges_seen.store(count, Ordering::SeqCst);
            match self.step(state).await? {
                Step::Retrying { error, .. } => {
                    told_to_retry_after = error.retry_after().is_some();
                    continue;
                }
                step => return Ok(step.into_status().expect("only retries carry no status")),
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

/// The serializable state of a wait, kept next to the [`Ticket`] so that any process can take
/// the next [`Job::step`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WaitState {
    /// The backoff and hints learned so far.
    pub scheduler: SchedulerState,
    /// When the overall deadline passes (wall-clock UTC), if there is one.
    pub deadline_at: Option<DateTime<Utc>>,
    /// When the next status request is due (`None`: at once).
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Transient failures in a row, counted against the policy's budget.
    pub failures: u32,
    /// The last progress the vendor reported.
    pub last_progress: Option<Progress>,
    /// The status the start answer carried, not yet handed out by a step.
    pub first_status: Option<Status>,
}

/// What one [`Job::step`] learned.
#[derive(Debug)]
#[non_exhaustive]
pub enum Step {
    /// Not ready yet; ask again at `next_poll_at`.
    Pending {
        progress: Progress,
        next_poll_at: DateTime<Utc>,
    },
    /// The status request failed transiently (within the budget); ask again at `next_poll_at`.
    Retrying {
        error: Error,
        next_poll_at: DateTime<Utc>,
    },
    /// Ready to download.
    Ready(Artifact),
    /// The vendor says the report failed.
    Failed {
        code: Option<String>,
        message: String,
    },
    /// The report was cancelled or deleted.
    Cancelled,
}

impl Step {
    /// The status this step observed (`None` for a retry).
    pub fn into_status(self) -> Option<Status> {
        Some(match self {
            Step::Pending { progress, .. } => Status::Pending(progress),
            Step::Ready(artifact) => Status::Ready(artifact),
            Step::Failed { code, message } => Status::Failed { code, message },
            Step::Cancelled => Status::Cancelled,
            Step::Retrying { .. } => return None,
        })
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
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
