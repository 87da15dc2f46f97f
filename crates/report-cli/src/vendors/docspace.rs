//! `reports docspace …`

use clap::Args;
use report_docspace::{DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceReportRequest};
use report_core::HttpOptions;
use report_runner::{JobRecord, Limits, Registry};
use report_sandbox::{Sandbox, Vendor};

use crate::cli::{Common, VendorCommand};
use crate::cli::NoFilter;
use crate::dates::{self, DateArg};
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};
use crate::vendors::listed;
use crate::vendors::{CliVendor, http_options, required, secret};

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

/// DocSpace in the CLI.
pub struct Cli;

impl CliVendor for Cli {
    const VENDOR: Vendor = Vendor::DocSpace;
    const ABOUT: &'static str =
        "ONLYOFFICE DocSpace customer operations (DOCSPACE_BASE_URL, DOCSPACE_API_KEY)";
    const DEMO_EXTENSION: &'static str = "xlsx";
    const KIND_FLAG: Option<(&'static str, &'static str)> = None;
    type Command = VendorCommand<Connection, Options>;
    type Connection = Connection;
    type Options = Options;

    /// January's operations of the demo portal.
    fn for_sandbox(sandbox: &Sandbox, http: HttpOptions) -> Result<DocSpaceAdapter, Failure> {
        let config = DocSpaceConfig::new(
            sandbox.base_url(Vendor::DocSpace),
            report_sandbox::credentials::DOCSPACE_API_KEY,
        )
        .with_http(http);
        Ok(DocSpaceAdapter::new(DocSpaceClient::new(config)?))
    }

    fn sandbox_request() -> DocSpaceReportRequest {
        let day = |m, d| chrono::NaiveDate::from_ymd_opt(2024, m, d).expect("valid date");
        DocSpaceReportRequest::for_days(day(1, 1), day(1, 31))
    }

    /// The sandbox names DocSpace files by their result file id.
    fn sandbox_key(record: &JobRecord) -> Option<String> {
        record
            .artifact
            .as_ref()
            .and_then(|a| a.data.get("file_id").cloned())
    }

    fn sandbox_env(sandbox: &Sandbox) -> String {
        format!(
            "export DOCSPACE_BASE_URL={} DOCSPACE_API_KEY={}",
            sandbox.base_url(Vendor::DocSpace),
            report_sandbox::credentials::DOCSPACE_API_KEY
        )
    }

    /// DocSpace keeps one report task per user: a connection's jobs go one after another, within
    /// the published limits.
    fn configure_runner(registry: &mut Registry) {
        registry.one_job_per_connection(Vendor::DocSpace.name());
        registry.limit(Vendor::DocSpace.name(), LIMITS);
    }
}

/// What DocSpace publishes per portal: 15 concurrent POST/PUT, 50 concurrent GET, 1,500
/// requests a minute. The other vendors publish no figures; their 429s are waited out.
pub const LIMITS: Limits = Limits {
    writes: Some(15),
    reads: Some(50),
    per_minute: Some(1500),
};
