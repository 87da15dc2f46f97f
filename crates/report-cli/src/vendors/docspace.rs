//! `reports docspace …`

use clap::Args;
use report_docspace::{DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceReportRequest};

use crate::cli::Common;
use crate::cli::NoFilter;
use crate::dates::{self, DateArg};
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};
use crate::vendors::listed;
use crate::vendors::{http_options, required, secret};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// Portal URL, e.g. https://yourportal.onlyoffice.com (DocSpace has no default).
    #[arg(long, global = true, env = "DOCSPACE_BASE_URL")]
    pub base_url: Option<String>,
    /// API key (`sk-…`).
    #[arg(long, global = true, env = "DOCSPACE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    #[command(flatten)]
    pub span: dates::Span,
    /// Only operations of this participant (customer).
    #[arg(long, value_name = "NAME")]
    pub participant: Option<String>,
    /// Leave credit operations out.
    #[arg(long)]
    pub no_credit: bool,
    /// Leave debit operations out.
    #[arg(long)]
    pub no_debit: bool,
    /// If a report task of this user is already running (DocSpace runs one at a time), follow
    /// it instead of refusing to start; its filters may differ from these.
    #[arg(long)]
    pub attach: bool,
}

impl Connect for Connection {
    type Adapter = DocSpaceAdapter;

    fn connect(&self, common: &Common) -> Result<DocSpaceAdapter, Failure> {
        let portal = required(&self.base_url, "--base-url", "DOCSPACE_BASE_URL")?;
        let key = secret(&self.api_key, "--api-key", "DOCSPACE_API_KEY", common)?;
        let config = DocSpaceConfig::new(portal, key).with_http(http_options(common));
        Ok(DocSpaceAdapter::new(DocSpaceClient::new(config)?))
    }
}

/// DocSpace keeps one report task per user: `list` shows it (`--attach` follows it).
impl ListReports<NoFilter> for Connection {
    const COLUMNS: &'static [&'static str] =
        &["id", "percentage", "isCompleted", "resultFileName", "error"];

    async fn list(&self, _: &NoFilter, common: &Common) -> Result<Vec<serde_json::Value>, Failure> {
        let adapter = self.connect(common)?;
        Ok(listed(adapter.client().current_task().await?.as_slice()))
    }
}

impl BuildRequest<DocSpaceReportRequest> for Options {
    fn build(&self) -> Result<DocSpaceReportRequest, Failure> {
        let (from, to) = self.span.resolve()?;
        let mut request = DocSpaceReportRequest::for_days(from.day(), to.day());
        if let DateArg::Moment(m) = from {
            request.start_date = Some(m.to_utc());
        }
        if let DateArg::Moment(m) = to {
            request.end_date = Some(m.to_utc());
        }
        request.participant_name = self.participant.clone();
        request.credit = Some(!self.no_credit);
        request.debit = Some(!self.no_debit);
        request.attach_to_running = self.attach;
        request.validate()?;
        Ok(request)
    }
}

/// The sandbox's demo request (the same whichever port the sandbox serves on).
pub fn sandbox_request() -> DocSpaceReportRequest {
    let day = |m, d| chrono::NaiveDate::from_ymd_opt(2024, m, d).expect("valid date");
    DocSpaceReportRequest::for_days(day(1, 1), day(1, 31))
}

/// The demo job against the sandbox: January's operations of the demo portal.
pub fn for_sandbox(
    sandbox: &report_sandbox::Sandbox,
    http: report_core::HttpOptions,
) -> Result<(DocSpaceAdapter, DocSpaceReportRequest), Failure> {
    let config = DocSpaceConfig::new(
        sandbox.base_url(report_sandbox::Vendor::DocSpace),
        report_sandbox::credentials::DOCSPACE_API_KEY,
    )
    .with_http(http);
    let request = sandbox_request();
    Ok((DocSpaceAdapter::new(DocSpaceClient::new(config)?), request))
}
