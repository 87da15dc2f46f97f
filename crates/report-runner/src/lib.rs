//! Durable report jobs on the apalis job engine.
//!
//! `report-core` waits for a report inside one process. This crate keeps jobs in a database
//! instead: [`Store::submit`] queues a job; [`Worker`]s (any number of processes) start it,
//! poll it one step at a time ([`report_core::Job::step`]) through the engine's delayed
//! tasks at the moments the wait policy picks, download the file and record the outcome.
//! A worker may be killed at any moment: the job goes on in the next one.
//!
//! - Every effect is safe to repeat: a poll only reads, a download writes a temporary file and
//!   renames it. A start is never repeated: the intent is recorded before the request and the
//!   ticket right after; a job found with an intent and no ticket (a crash, or a start whose
//!   answer was lost) is reconciled with the vendor
//!   ([`report_core::ReportAdapter::find_started`]) or fails with "start outcome unknown".
//! - No credential is stored: a job names a connection; the worker's [`Registry`] (supplied by
//!   the caller) builds adapters from its own environment.
//! - A vendor that calls back when a report is done ([`Registry::register_with_webhook`])
//!   gets each job's own URL from a worker with [`Worker::with_webhook_url_base`];
//!   [`serve_webhooks`] turns a call into a poll at once (a hint: that poll decides).
//! - A connection's [`Limits`] hold across every worker on the database (slots with an expiry
//!   and a table of operations begun), so a killed worker's share frees itself.
//! - A stopping worker lets its steps finish within a grace ([`Worker::stop_grace`]), then
//!   abandons them safely and queues them again; finished engine tasks are deleted after a
//!   retention ([`Worker::task_retention`]); job records are kept.
//! - It knows no vendor.

mod limits;
#[cfg(feature = "postgres")]
mod postgres_setup;
mod record;
mod registry;
mod retention;
mod schedule;
mod setup_lock;
mod shared_limits;
mod sqlite_setup;
mod store;
mod transaction;
mod webhook;
mod work_slots;
mod worker;

pub use limits::{Access, Limits};
pub use record::{JobRecord, JobState, NewJob};
pub use registry::{DEFAULT_KIND, KindFn, Registry, Stepped, Vendor, WebhookFn};
pub use retention::TaskRetention;
pub use schedule::{Definition, Period, ScheduleFile, run_schedules};
pub use store::{Claim, QUEUE, StepTask, Store};
pub use webhook::{Nudged, serve_webhooks};
pub use worker::{DEFAULT_STOP_GRACE, Worker, WorkerOptions, idle};

/// The runner's errors (database and bookkeeping; vendor errors end in the job record).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database cannot be opened or used.
    #[error("database: {0}")]
    Database(String),
    /// No job with this id.
    #[error("no job `{0}`")]
    NotFound(String),
    /// The operation does not fit the job's state.
    #[error("{0}")]
    Conflict(String),
    /// Another worker took over the job's step (this worker's lease ran out).
    #[error("job {0}: the lease on its step was lost to another worker")]
    LeaseLost(String),
    /// The worker stopped before the step finished: it was abandoned and queued again.
    #[error("job {0}: step abandoned as the worker stops; queued again")]
    Stopped(String),
    /// The engine stopped with an error.
    #[error("job engine: {0}")]
    Engine(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e.to_string())
    }
}

/// The runner's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
