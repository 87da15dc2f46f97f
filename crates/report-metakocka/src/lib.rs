//! Typed client and report job for MetaKocka's report printing (`POST /rest/eshop/v1/report`).
//!
//! - [`api`]: the client generated from `specs/metakocka.yaml` (the asynchronous JSON mode,
//!   typed models; every value a JSON string).
//! - [`MetaKockaClient`]: that client with the company's credentials, which travel in the JSON
//!   body of API requests only; [`MetaKockaClient::print`] prints synchronously and streams the
//!   file.
//! - [`MetaKockaAdapter`]: asynchronous printing as a [`report_core`] job, so [`Job`] starts,
//!   waits (reading the `N / M` at the end of MetaKocka's progress text as a fraction) and
//!   downloads for you. MetaKocka cannot cancel a print: [`Job::cancel`] is
//!   [`Error::Unsupported`].
//! - Errors come inside HTTP 200 as an `opr_code` other than `"0"`: they become
//!   [`Error::Api`] with that code and MetaKocka's message (a refused secret key:
//!   [`Error::Auth`]).
//! - `mock` (feature `mock`): typed httpmock helpers generated from the same spec.
//!
//! ```no_run
//! use report_metakocka::chrono::NaiveDate;
//! use report_metakocka::{
//!     Job, MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, MetaKockaReportRequest,
//!     ReportFormat, WaitPolicy,
//! };
//!
//! # async fn run() -> report_metakocka::Result<()> {
//! let client = MetaKockaClient::new(MetaKockaConfig::new("16", "secret key"))?;
//! let day = |d| NaiveDate::from_ymd_opt(2017, 7, d).unwrap();
//! let request = MetaKockaReportRequest::new("149", ReportFormat::Poi)
//!     .with_locale("sl")
//!     .period(day(1), day(31))
//!     .param("ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", true);
//!
//! let job = Job::start(MetaKockaAdapter::new(client), &request, WaitPolicy::default()).await?;
//! println!("resume later with: {}", job.ticket().to_json());
//! let artifact = job.wait().await?;
//! let saved = job.download_to(&artifact, "report.xlsx", Default::default()).await?;
//! println!("{} bytes, sha256 {}", saved.bytes, saved.sha256);
//! # Ok(()) }
//! ```
//!
//! # How long a ticket stays valid
//!
//! A print's download link is valid 24 hours, after which the vendor says it generates a new one
//! (a poll with the same ticket reads it); an accounting export's ZIP link is valid one hour. MetaKocka lists and deletes nothing: there is
//! nothing to clean up.
//! Every vendor side by side: `docs/tickets.md` in the repository.

mod adapter;
mod client;
mod export;
mod lenient;
mod progress;
mod request;
mod secret;
mod sync;

#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
mod generated;

/// The vendor kit's glue, generated from the spec's `x-codegen` settings.
mod generated_kit;

pub use adapter::{MetaKockaAdapter, STATE_PRINTING, STATE_WAITING};
pub use client::{
    DEFAULT_BASE_URL, EXPORT_TIMEOUT, MetaKockaClient, MetaKockaConfig, MetaKockaOrigin,
};
pub use client::{OPR_OK, check_answer, is_credentials_refusal};
pub use export::{AccountingExportRequest, MetaKockaExportAdapter};
pub use lenient::ReportFormat;
pub use progress::progress_fraction;
pub use request::{
    DATE_FROM, DATE_FROM_OD, DATE_TO, DATE_TO_DO, DEFAULT_LOCALE, MetaKockaReportRequest,
    ParamValue, REPORT_TYPE, ReportParam, format_date,
};
pub use secret::SecretKey;

pub use chrono;
pub use generated_kit::*;

/// Vendor-specific fuzz entry points (re-exported in `__fuzz`).
mod fuzz_extras {
    pub use crate::sync::{error_status, reject_envelope};
}
