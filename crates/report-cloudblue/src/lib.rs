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
//!
//! # How long a ticket stays valid
//!
//! A ticket names a report CloudBlue keeps for 90 days; its pre-signed link expires sooner and
//! is refreshed by polling once. The API has no delete: reports age out on their own;
//! `CloudBlueClient::reports` lists them.
//! Every vendor side by side: `docs/tickets.md` in the repository.

mod adapter;
mod client;
mod filter;
mod lenient;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// The vendor kit's glue, generated from the spec's `x-codegen` settings.
mod generated_kit;

pub use adapter::{CloudBlueAdapter, CloudBlueReportRequest};
pub use client::CORRELATION_ID_HEADER;
pub use client::{
    CloudBlueClient, CloudBlueConfig, CloudBlueCredentials, DEFAULT_BASE_URL, DEFAULT_MARKETPLACE,
    DEFAULT_TIMEOUT, LAB_BASE_URL,
};
pub use filter::ReportFilter;
pub use generated_kit::*;
pub use lenient::{ReportFormat, ReportStatus, ReportType};

pub use chrono;

/// Vendor-specific fuzz entry points (re-exported in `__fuzz`).
mod fuzz_extras {
    pub use crate::client::BLOB_ERRORS;
    pub use crate::client::token_expiry;
}
