//! Typed client and report job for the OFD.ru reports API («ИС Отчеты»).
//!
//! - [`api`]: the client generated from `specs/ofd.yaml` (every endpoint, typed models).
//! - [`OfdClient`]: that client with the AuthToken handled: obtained from your login and
//!   password, cached until it expires, renewed early and after a 401/403, and sent only to the
//!   API's own origin.
//! - [`OfdAdapter`]: OFD.ru as a [`report_core`] job, so [`Job`] starts, waits (using OFD.ru's
//!   `AssumptiveCompleteTime` as a hint), downloads and cancels for you.
//! - `mock` (feature `mock`): typed httpmock helpers generated from the same spec.
//!
//! ```no_run
//! use report_ofd::chrono::NaiveDate;
//! use report_ofd::{Job, OfdAdapter, OfdClient, OfdConfig, OfdReportRequest, Registers, ReportType, WaitPolicy};
//!
//! # async fn run() -> report_ofd::Result<()> {
//! let client = OfdClient::new(OfdConfig::new("login", "password"))?;
//! let day = |d| NaiveDate::from_ymd_opt(2021, 11, d).unwrap();
//! let request = OfdReportRequest::for_days(ReportType::ReceiptReport, day(1), day(2), Registers::All);
//!
//! let job = Job::start(OfdAdapter::new(client), &request, WaitPolicy::default()).await?;
//! println!("resume later with: {}", job.ticket().to_json());
//! let artifact = job.wait().await?;
//! let saved = job.download_to(&artifact, "receipts.zip", Default::default()).await?;
//! println!("{} bytes, sha256 {}", saved.bytes, saved.sha256);
//! # Ok(()) }
//! ```
//!
//! # How long a ticket stays valid
//!
//! A ticket names a report in the agreement's list, which OFD.ru keeps until the report's
//! `ExpiredDate` (seven days in the vendor's examples). `OfdClient::reports` lists what is
//! there; remove one you no longer need with `Job::delete` (`reports ofd delete`).
//! Every vendor side by side: `docs/tickets.md` in the repository.

/// The workspace README's Rust examples, compiled by `cargo test` (they use this crate).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

mod adapter;
mod client;
mod lenient;
mod listing;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// The vendor kit's glue, generated from the spec's `x-codegen` settings.
mod generated_kit;

pub use adapter::{Agreement, OfdAdapter, OfdReportRequest, Registers};
pub use client::OfdErrorCode;
pub use client::{DEFAULT_BASE_URL, OfdClient, OfdConfig, OfdCredentials};
pub use generated_kit::*;
pub use lenient::{ReportStatus, ReportType};

pub use chrono;

/// Vendor-specific fuzz entry points (re-exported in `__fuzz`).
mod fuzz_extras {
    pub use crate::client::parse_utc;
    pub use crate::listing::{check_list_decoders_agree, find_report};
}
