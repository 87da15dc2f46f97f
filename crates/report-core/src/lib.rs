//! One job abstraction over vendors' asynchronous report APIs.
//!
//! Vendors make you start a report, wait for it and fetch a file, each in their own way. A
//! vendor crate (`report-ofd`, `report-docspace`, …) implements the small [`ReportAdapter`]
//! trait over its generated client; this crate does the rest once for all of them:
//!
//! - [`Job`]: start or [resume](Job::resume) from a serializable, versioned [`Ticket`];
//!   [`wait`](Job::wait) or watch a [stream of statuses](Job::updates); [`cancel`](Job::cancel);
//!   [`download_to`](Job::download_to) a path (streaming, constant memory, temp file + atomic
//!   rename, `Range` resume, gzip).
//! - [`WaitPolicy`]: exponential backoff with jitter and a cap, an overall deadline, a budget of
//!   consecutive transient errors, `Retry-After`, vendor ETAs and the progress rate.
//! - [`Error`]: one error type for every vendor, with typed vendor codes and sources.
//! - [`http`]: the HTTP plumbing vendor crates share (TLS, credential isolation, tracing).
//!
//! This crate knows no vendor.

mod adapter;
pub mod auth;
mod clock;
mod download;
mod error;
pub mod http;
mod job;
mod lenient;
mod policy;
mod prior;
mod status;
mod ticket;

pub use adapter::{Download, ReportAdapter, Started};
pub use clock::{Clock, TokioClock, VirtualClock};
pub use download::{DownloadOptions, DownloadSummary, leftover_temporary_files};
pub use error::{BoxError, EXCERPT_LEN, Error, Result, excerpt};
pub use job::{Job, JobStats, Nudge, Step, WaitState};
pub use policy::{ETA_ERROR, MaxLag, PROGRESS_SPEEDUP, Scheduler, SchedulerState, WaitPolicy};
pub use prior::{DurationPrior, PRIOR_MIN_COUNT};
pub use status::{Artifact, Compression, Progress, Status};
pub use ticket::{TICKET_VERSION, Ticket};

/// Secret strings: redacted in `Debug`, zeroed on drop. Credentials are always held in these.
pub use secrecy::{ExposeSecret, SecretString};
