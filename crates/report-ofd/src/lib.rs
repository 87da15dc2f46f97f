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

mod adapter;
mod client;
mod errors;
mod lenient;
mod listing;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// Typed httpmock helpers generated from `specs/ofd.yaml`, for testing code that uses this
/// crate: `server.create_report(|when, then| …)`.
#[cfg(feature = "mock")]
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
#[path = "generated_mock.rs"]
pub mod mock;

/// The generated OFD.ru client and its types.
pub mod api {
    pub use crate::generated::*;
}

pub use adapter::{Agreement, OfdAdapter, OfdReportRequest, Registers};
pub use client::{DEFAULT_BASE_URL, Inner, OfdClient, OfdConfig};
pub use errors::{OfdErrorCode, VENDOR};
pub use lenient::{ReportStatus, ReportType};

pub use chrono;
pub use report_core::{
    self, Artifact, Download, DownloadOptions, DownloadSummary, Error, Job, JobStats, Progress,
    ReportAdapter, Result, Status, Ticket, WaitPolicy, http::HttpOptions,
};

/// Internals the workspace's fuzzers and property tests drive directly
/// (`integration_tests::fuzzing`). Not part of the API: no stability promise.
#[doc(hidden)]
pub mod __fuzz {
    use chrono::{DateTime, Utc};
    use report_core::http::{VendorError, VendorErrors};

    use crate::api::types::ErrorEnvelope;

    /// How the client reads error answers.
    pub const ERRORS: VendorErrors<'static> = crate::errors::ERRORS;

    /// Code and message of a failure envelope.
    pub fn describe(envelope: &ErrorEnvelope) -> VendorError {
        crate::errors::describe(envelope)
    }

    /// The failure envelope made for a non-JSON error body.
    pub fn envelope_for(text: String) -> serde_json::Value {
        crate::errors::envelope_for(text)
    }

    /// Decodes a report-list answer both as the generated `ReportListEnvelope` and as the
    /// status path's borrowing mirror of it; panics when they disagree.
    pub fn check_list_decoders_agree(body: &[u8]) {
        crate::listing::check_agreement(body)
    }

    /// The status path's reading of a report-list answer: the entry of report `id`.
    pub fn find_report(
        body: &[u8],
        id: &str,
    ) -> serde_json::Result<Option<crate::api::types::ReportInfo>> {
        crate::listing::find_report(body, id)
    }

    /// OFD.ru's dates (`ExpirationDateUtc`, `AssumptiveCompleteTime`).
    pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
        crate::client::parse_utc(text)
    }
}
