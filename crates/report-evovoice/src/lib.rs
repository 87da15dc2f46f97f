//! Typed client and report job for the EvoVoice reports API (a ServiceStack API).
//!
//! - [`api`]: the client generated from `specs/evovoice.yaml` (every endpoint, typed models).
//! - [`EvoVoiceClient`]: that client with HTTP Basic credentials sent only to the API's own
//!   origin, a `User-Agent` of its own, and ServiceStack errors mapped to [`Error`].
//! - [`EvoVoiceAdapter`]: EvoVoice as a [`report_core`] job, so [`Job`] starts a report (billing
//!   by default; every [`ReportKind`]: the vendor tool's types and the endpoints report),
//!   waits for it (EvoVoice has no status endpoint: the account's report list is read), and
//!   downloads the Excel file. A start whose answer was lost is found in that list again
//!   (`find_started`). EvoVoice cannot cancel a report: [`Job::cancel`] answers
//!   [`Error::Unsupported`].
//! - `mock` (feature `mock`): typed httpmock helpers generated from the same spec.
//!
//! ```no_run
//! use report_evovoice::chrono::NaiveDate;
//! use report_evovoice::{EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig, EvoVoiceReportRequest, Job, WaitPolicy};
//!
//! # async fn run() -> report_evovoice::Result<()> {
//! let client = EvoVoiceClient::new(EvoVoiceConfig::new("user", "password"))?;
//! let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
//! let request = EvoVoiceReportRequest::new("account-id", day(1), day(31))
//!     .with_notify_email("billing@example.com");
//!
//! let job = Job::start(EvoVoiceAdapter::new(client), &request, WaitPolicy::default()).await?;
//! println!("resume later with: {}", job.ticket().to_json());
//! let artifact = job.wait().await?;
//! let saved = job.download_to(&artifact, "billing.xlsx", Default::default()).await?;
//! println!("{} bytes, sha256 {}", saved.bytes, saved.sha256);
//! job.delete().await?; // EvoVoice keeps reports until deleted
//! # Ok(()) }
//! ```
//!
//! # How long a ticket stays valid
//!
//! A ticket names a report EvoVoice keeps until it is deleted (`Job::delete`, `reports evovoice
//! delete`); `EvoVoiceClient::reports` lists the reports the current user created.
//! Every vendor side by side: `docs/tickets.md` in the repository.

mod adapter;
mod client;
mod lenient;
mod request;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// The vendor kit's glue, generated from the spec's `x-codegen` settings.
mod generated_kit;

pub use adapter::{DOWNLOAD_LINK, EvoVoiceAdapter};
pub use client::{DEFAULT_BASE_URL, EvoVoiceClient, EvoVoiceConfig, STAGING_BASE_URL, USER_AGENT};
pub use client::{EvoVoiceErrorCode, REPORT_NOT_FOUND};
pub use generated_kit::*;
pub use lenient::ReportStatus;
pub use request::{EvoVoiceReportRequest, ReportKind, ReportOptions, ReportType};

pub use chrono;
