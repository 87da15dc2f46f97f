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
//! - [`HttpOptions`]: timeouts, user agent and the insecure-http opt-in of a vendor client.
//!
//! This crate knows no vendor. The plumbing vendor crates share (HTTP clients, credential
//! isolation, the token cache, the vendor kit) lives in [`__private`]: it is for the vendor
//! crates of this workspace, not part of the API, with no stability promise.

mod adapter;
mod auth;
mod clock;
mod download;
mod error;
mod http;
mod job;
mod lenient;
mod lost_start;
mod mask;
mod policy;
mod prior;
mod schema;
mod sink;
mod status;
mod ticket;
mod vendor_kit;

/// The plumbing this workspace's vendor crates share. Not part of the API: no stability
/// promise; it may change with any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::auth::{Token, TokenCache};
    pub use crate::http::*;
    pub use crate::lost_start::one_started;
    pub use crate::vendor_kit::*;
}

pub use adapter::{Download, ReportAdapter, Started};
pub use clock::{Clock, TokioClock, VirtualClock};
pub use download::{
    DEFAULT_MAX_RATIO, DEFAULT_MAX_SIZE, DownloadOptions, DownloadSummary, RATIO_GRACE,
    leftover_temporary_files,
};
pub use error::{BoxError, EXCERPT_LEN, Error, Result, excerpt};
pub use http::{HttpOptions, redact_query};
pub use job::{Job, JobStats, Nudge, Step, WaitState};
pub use mask::{hide_credentials_of, is_credential_name, mask_credentials};
pub use policy::{ETA_ERROR, MaxLag, PROGRESS_SPEEDUP, Scheduler, SchedulerState, WaitPolicy};
pub use prior::{DurationPrior, PRIOR_MIN_COUNT};
pub use status::{Artifact, Compression, Progress, Status};
pub use ticket::{TICKET_MAX_BYTES, TICKET_VERSION, Ticket};

/// Secret strings: redacted in `Debug`, zeroed on drop. Credentials are always held in these.
pub use secrecy::{ExposeSecret, SecretString};
