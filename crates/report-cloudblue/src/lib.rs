//! Typed client and report job for the CloudBlue Commerce Marketplace API's Reporting and Data
//! Export (RDE).
//!
//! - [`api`]: the client generated from `specs/cloudblue.yaml` (every endpoint, typed models).
//! - [`CloudBlueClient`]: that client with the token handled: a JWT from `POST /token` (your
//!   user name, password and subscription key), cached, renewed before it expires and once
//!   after a 401, and sent with the subscription key only to the API's own origin.
//! - [`CloudBlueAdapter`]: CloudBlue as a [`report_core`] job, so [`Job`] starts a one-time
//!   report, waits for it and downloads it from its pre-signed URL (no credentials go to the
//!   blob host; `.json.gz` files are decompressed unless you ask to keep them compressed).
//!   Cancelling is not offered by the API ([`Error::Unsupported`]).
//! - `mock` (feature `mock`): typed httpmock helpers generated from the same spec.
//!
//! ```no_run
//! use report_cloudblue::chrono::NaiveDate;
//! use report_cloudblue::{
//!     CloudBlueAdapter, CloudBlueClient, CloudBlueConfig, CloudBlueReportRequest, Job,
//!     ReportFormat, WaitPolicy,
//! };
//!
//! # async fn run() -> report_cloudblue::Result<()> {
//! let client = CloudBlueClient::new(CloudBlueConfig::new("api-user", "password", "subscription-key"))?;
//! let day = |d| NaiveDate::from_ymd_opt(2019, 11, d).unwrap();
//! let request = CloudBlueReportRequest::new("Daily report", ReportFormat::Json, day(7), day(8));
//!
//! let job = Job::start(CloudBlueAdapter::new(client), &request, WaitPolicy::default()).await?;
//! println!("resume later with: {}", job.ticket().to_json());
//! let artifact = job.wait().await?;
//! let saved = job.download_to(&artifact, "daily.json", Default::default()).await?;
//! println!("{} bytes, sha256 {}", saved.bytes, saved.sha256);
//! # Ok(()) }
//! ```

mod adapter;
mod client;
mod errors;
mod filter;
mod lenient;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// Typed httpmock helpers generated from `specs/cloudblue.yaml`, for testing code that uses
/// this crate: `server.get_report(|when, then| …)`. Paths are relative to the mock server's
/// root, so configure the client with `server.base_url()` as its base URL.
#[cfg(feature = "mock")]
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
#[path = "generated_mock.rs"]
pub mod mock;

/// The generated CloudBlue client and its types.
pub mod api {
    pub use crate::generated::*;
}

pub use adapter::{CloudBlueAdapter, CloudBlueReportRequest};
pub use client::{
    CloudBlueClient, CloudBlueConfig, DEFAULT_BASE_URL, DEFAULT_MARKETPLACE, DEFAULT_TIMEOUT,
    Inner, LAB_BASE_URL,
};
pub use errors::{CORRELATION_ID_HEADER, VENDOR};
pub use filter::ReportFilter;
pub use lenient::{ReportFormat, ReportStatus, ReportType};

pub use chrono;
pub use report_core::{
    self, Artifact, Compression, Download, DownloadOptions, DownloadSummary, Error, Job, JobStats,
    Progress, ReportAdapter, Result, Status, Ticket, WaitPolicy, http::HttpOptions,
};

/// Internals the workspace's fuzzers and property tests drive directly
/// (`integration_tests::fuzzing`). Not part of the API: no stability promise.
#[doc(hidden)]
pub mod __fuzz {
    use report_core::http::{VendorError, VendorErrors};

    use crate::api::types::ErrorBody;

    /// How the client reads the API's error answers.
    pub const ERRORS: VendorErrors<'static> = crate::errors::ERRORS;

    /// How the client reads the blob host's error answers.
    pub const BLOB_ERRORS: VendorErrors<'static> = crate::errors::BLOB_ERRORS;

    /// The message of an error body.
    pub fn describe(body: &ErrorBody) -> VendorError {
        crate::errors::describe(body)
    }

    /// The error body made for a non-JSON error answer.
    pub fn body_for(text: String) -> serde_json::Value {
        crate::errors::body_for(text)
    }

    /// When a token with this `expiresInSeconds` expires, issued at `now`.
    pub fn token_expiry(
        now: chrono::DateTime<chrono::Utc>,
        expires_in_seconds: Option<i64>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        crate::client::token_expiry(now, expires_in_seconds)
    }

    /// A generated-client error as the client reports it (correlation id kept).
    pub async fn map(
        operation: &str,
        e: progenitor_client::Error<ErrorBody>,
    ) -> report_core::Error {
        crate::errors::map(operation, e).await
    }
}
