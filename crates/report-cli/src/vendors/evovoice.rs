//! `reports evovoice …`

use clap::Args;
use report_evovoice::{
    EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig, EvoVoiceReportRequest, ReportKind,
    ReportOptions,
};
use report_core::HttpOptions;
use report_sandbox::{Sandbox, Vendor};

use crate::cli::{Common, VendorCommand};
use crate::dates;
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};
use crate::vendors::listed;
use crate::vendors::{CliVendor, WithWebhook, http_options, required, secret};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// API base URL.
    #[arg(long, global = true, env = "EVOVOICE_BASE_URL", default_value = report_evovoice::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// User name (Basic auth).
    #[arg(long, global = true, env = "EVOVOICE_USERNAME", hide_env_values = true)]
    pub username: Option<String>,
    /// Password (Basic auth).
    #[arg(long, global = true, env = "EVOVOICE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The report: billing, agent-state, call-center-abandon, call-center-detail, call-center,
    /// call-history, call-outcome, cdr, metric, sync-phone-numbers or endpoints.
    #[arg(long = "type", value_name = "TYPE", default_value = "billing")]
    pub kind: String,
    #[command(flatten)]
    pub span: dates::Span,
    /// The account to report on.
    #[arg(long, value_name = "ID")]
    pub account_id: String,
    /// Include customer ids in the report.
    #[arg(long)]
    pub include_customer_ids: bool,
    /// E-mail address EvoVoice notifies when the report is done.
    #[arg(long, value_name = "EMAIL")]
    pub notify: Option<String>,
    /// Webhook EvoVoice calls with the report's data when it is done (https).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Time zone of the period (not billing), e.g. America/New_York.
    #[arg(long, value_name = "TZ")]
    pub time_zone: Option<String>,
    /// Only this customer (not billing).
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<String>,
    /// Only this endpoint (not billing).
    #[arg(long, value_name = "ID")]
    pub endpoint_id: Option<String>,
    /// Only this flow (call-outcome).
    #[arg(long, value_name = "ID")]
    pub flow_id: Option<String>,
    /// The metric to report (metric).
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,
    /// Only this agent state (agent-state).
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Count archived sessions too (not billing).
    #[arg(long)]
    pub include_archived_sessions: bool,
    /// Sync the Documo fax numbers too (sync-phone-numbers).
    #[arg(long)]
    pub sync_documo_numbers: bool,
    /// Only these kinds of records (repeatable; not billing).
    #[arg(long = "record-type", value_name = "TYPE")]
    pub types: Vec<String>,
}

impl Connect for Connection {
    type Adapter = EvoVoiceAdapter;

    fn connect(&self, common: &Common) -> Result<EvoVoiceAdapter, Failure> {
        let user = required(&self.username, "--username", "EVOVOICE_USERNAME")?;
        let password = secret(&self.password, "--password", "EVOVOICE_PASSWORD", common)?;
        let config = EvoVoiceConfig::new(user, password)
            .with_base_url(&self.base_url)
            .with_http(http_options(common));
        Ok(EvoVoiceAdapter::new(EvoVoiceClient::new(config)?))
    }
}

/// `evovoice list`: EvoVoice lists the reports of one account.
#[derive(Debug, Clone, Args)]
pub struct ListFilter {
    /// The account whose reports to list.
    #[arg(long, value_name = "ID")]
    pub account_id: String,
}

impl ListReports<ListFilter> for Connection {
    const COLUMNS: &'static [&'static str] = &["id", "status", "name", "dateCreated"];

    async fn list(
        &self,
        filter: &ListFilter,
        common: &Common,
    ) -> Result<Vec<serde_json::Value>, Failure> {
        let adapter = self.connect(common)?;
        Ok(listed(&adapter.client().reports(&filter.account_id).await?))
    }
}

impl BuildRequest<EvoVoiceReportRequest> for Options {
    fn build(&self) -> Result<EvoVoiceReportRequest, Failure> {
        let (from, to) = self.span.resolve()?;
        let kind: ReportKind = self.kind.parse()?;
        let options = ReportOptions {
            time_zone_id: self.time_zone.clone(),
            customer_id: self.customer_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            flow_id: self.flow_id.clone(),
            metric_name: self.metric.clone(),
            specific_state: self.state.clone(),
            include_archived_sessions: self.include_archived_sessions,
            sync_documo_numbers: self.sync_documo_numbers,
            types: self.types.clone(),
        };
        let mut request = EvoVoiceReportRequest::new(&self.account_id, from.day(), to.day())
            .with_customer_ids(self.include_customer_ids)
            .with_kind(kind)
            .with_options(options);
        if let Some(email) = &self.notify {
            request = request.with_notify_email(email);
        }
        if let Some(url) = &self.webhook {
            request = request.with_webhook_url(url);
        }
        request.validate()?;
        Ok(request)
    }
}

/// EvoVoice in the CLI.
pub struct Cli;

impl CliVendor for Cli {
    const VENDOR: Vendor = Vendor::EvoVoice;
    const ABOUT: &'static str = "EvoVoice billing (EVOVOICE_USERNAME, EVOVOICE_PASSWORD)";
    const DEMO_EXTENSION: &'static str = "xlsx";
    const KIND_FLAG: Option<(&'static str, &'static str)> = Some(("--type", "billing"));
    /// EvoVoice calls a report's webhookUrl when it is done: the job's own URL, unless the
    /// submitted options name a webhook of their own (the user's choice stands; the job then
    /// finishes by polling).
    const WEBHOOK: Option<WithWebhook<Self>> = Some(|request, url| {
            if request.webhook_url.is_some() {
                request
            } else {
                request.with_webhook_url(url)
            }
        });
    type Command = VendorCommand<Connection, Options, ListFilter>;
    type Connection = Connection;
    type Options = Options;

    /// The demo account.
    fn for_sandbox(sandbox: &Sandbox, http: HttpOptions) -> Result<EvoVoiceAdapter, Failure> {
        use report_sandbox::credentials as c;
        let config = EvoVoiceConfig::new(c::EVOVOICE_USERNAME, c::EVOVOICE_PASSWORD)
            .with_base_url(sandbox.base_url(Vendor::EvoVoice))
            .with_http(http);
        Ok(EvoVoiceAdapter::new(EvoVoiceClient::new(config)?))
    }

    /// January's billing of the demo account.
    fn sandbox_request() -> EvoVoiceReportRequest {
        let day = |m, d| chrono::NaiveDate::from_ymd_opt(2024, m, d).expect("valid date");
        EvoVoiceReportRequest::new(
            report_sandbox::credentials::EVOVOICE_ACCOUNT_ID,
            day(1, 1),
            day(1, 31),
        )
    }

    fn sandbox_env(sandbox: &Sandbox) -> String {
        use report_sandbox::credentials as c;
        format!(
            "export EVOVOICE_BASE_URL={} EVOVOICE_USERNAME={} EVOVOICE_PASSWORD={}\n\
             # EvoVoice account: --account-id {}",
            sandbox.base_url(Vendor::EvoVoice),
            c::EVOVOICE_USERNAME,
            c::EVOVOICE_PASSWORD,
            c::EVOVOICE_ACCOUNT_ID
        )
    }
}
