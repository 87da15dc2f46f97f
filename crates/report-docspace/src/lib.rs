//! Typed client and report job for the ONLYOFFICE DocSpace customer operations report.
//!
//! - [`api`]: the client generated from `specs/docspace.yaml` (the report task operations and
//!   the Files API download operations, typed models).
//! - [`DocSpaceClient`]: that client with your portal URL and API key; the key is sent as
//!   `Authorization: Bearer …` to the portal's own origin only.
//! - [`DocSpaceAdapter`]: DocSpace as a [`report_core`] job, so [`Job`] starts, waits (using
//!   the task's percentage), downloads (pre-signed URL, else the file handler) and cancels.
//! - `mock` (feature `mock`): typed httpmock helpers generated from the same spec.
//!
//! DocSpace keeps one report task per user. Starting while one runs is refused with
//! [`DocSpaceErrorCode::TaskAlreadyRunning`] unless the request sets
//! [`attach_to_running`](DocSpaceReportRequest::attach_to_running).
//!
//! ```no_run
//! use report_docspace::chrono::NaiveDate;
//! use report_docspace::{DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceReportRequest, Job, WaitPolicy};
//!
//! # async fn run() -> report_docspace::Result<()> {
//! let client = DocSpaceClient::new(DocSpaceConfig::new("https://yourportal.onlyoffice.com", "sk-…"))?;
//! let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
//! let request = DocSpaceReportRequest::for_days(day(1), day(31));
//!
//! let job = Job::start(DocSpaceAdapter::new(client), &request, WaitPolicy::default()).await?;
//! println!("resume later with: {}", job.ticket().to_json());
//! let artifact = job.wait().await?;
//! let saved = job.download_to(&artifact, "operations.xlsx", Default::default()).await?;
//! println!("{} bytes, sha256 {}", saved.bytes, saved.sha256);
//! # Ok(()) }
//! ```
//!
//! # How long a ticket stays valid
//!
//! A ticket stays valid until the same user starts the next report: every task of a user has the
//! same id, and a new start replaces a finished task. The file itself stays in the user's
//! documents until deleted there; `Job::cancel` ends a running task.
//! Every vendor side by side: `docs/tickets.md` in the repository.

mod adapter;
mod client;
mod lenient;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// The vendor kit's glue, generated from the spec's `x-codegen` settings.
mod generated_kit;

pub use adapter::{DocSpaceAdapter, DocSpaceReportRequest, TICKET_FILE_ID};
pub use client::DocSpaceErrorCode;
pub use client::{DocSpaceClient, DocSpaceConfig};
pub use generated::types::OperationStatus;
pub use generated_kit::*;
pub use lenient::{FileId, OperationType, SortOrder, TaskStatus};

pub use chrono;
