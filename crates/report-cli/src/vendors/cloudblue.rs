//! `reports cloudblue …`

use clap::Args;
use report_cloudblue::{
    CloudBlueAdapter, CloudBlueClient, CloudBlueConfig, CloudBlueReportRequest, ReportFormat,
};
use report_core::HttpOptions;
use report_sandbox::{Sandbox, Vendor};

use crate::cli::{Common, VendorCommand};
use crate::dates;
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};
use crate::vendors::listed;
use crate::vendors::{CliVendor, http_options, required, secret};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// API root including the marketplace, e.g. https://api.cloud.im/marketplace/eu.
    #[arg(long, global = true, env = "CLOUDBLUE_BASE_URL", default_value = report_cloudblue::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// User name for the token request.
    #[arg(
        long,
        global = true,
        env = "CLOUDBLUE_USERNAME",
        hide_env_values = true
    )]
    pub username: Option<String>,
    /// Password for the token request.
    #[arg(
        long,
        global = true,
        env = "CLOUDBLUE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// API subscription key (`X-Subscription-Key`).
    #[arg(
        long,
        global = true,
        env = "CLOUDBLUE_SUBSCRIPTION_KEY",
        hide_env_values = true
    )]
    pub subscription_key: Option<String>,
    /// Marketplace of the token request.
    #[arg(long, global = true, env = "CLOUDBLUE_MARKETPLACE", default_value = report_cloudblue::DEFAULT_MARKETPLACE)]
    pub marketplace: String,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    #[command(flatten)]
    pub span: dates::Span,
    /// json (delivered gzip-compressed, saved decompressed), xml, csv or xlsx.
    #[arg(long)]
    pub format: String,
    /// Report name (default: "reports FROM..TO").
    #[arg(long)]
    pub name: Option<String>,
}

impl Connect for Connection {
    type Adapter = CloudBlueAdapter;

    fn connect(&self, common: &Common) -> Result<CloudBlueAdapter, Failure> {
        let user = required(&self.username, "--username", "CLOUDBLUE_USERNAME")?;
        let password = secret(&self.password, "--password", "CLOUDBLUE_PASSWORD", common)?;
        let key = required(
            &self.subscription_key,
            "--subscription-key",
            "CLOUDBLUE_SUBSCRIPTION_KEY",
        )?;
        // CloudBlue is slow: keep its long default request timeout.
        let mut http = http_options(common);
        http.timeout = report_cloudblue::DEFAULT_TIMEOUT;
        let config = CloudBlueConfig::new(user, password, key)
            .with_base_url(&self.base_url)
            .with_marketplace(&self.marketplace)
            .with_http(http);
        Ok(CloudBlueAdapter::new(CloudBlueClient::new(config)?))
    }
}

/// `cloudblue list`: one page of the marketplace's reports, newest first.
#[derive(Debug, Clone, Args)]
pub struct ListFilter {
    /// How many reports (the server's default page is 10).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

impl ListReports<ListFilter> for Connection {
    const COLUMNS: &'static [&'static str] = &["id", "status", "name", "creationDate"];

    async fn list(
        &self,
        filter: &ListFilter,
        common: &Common,
    ) -> Result<Vec<serde_json::Value>, Failure> {
        let adapter = self.connect(common)?;
        let query = report_cloudblue::ReportFilter {
            limit: filter.limit,
            ..Default::default()
        };
        Ok(listed(&adapter.client().reports(&query).await?.data))
    }
}

impl BuildRequest<CloudBlueReportRequest> for Options {
    fn build(&self) -> Result<CloudBlueReportRequest, Failure> {
        let (from, to) = self.span.resolve()?;
        let format: ReportFormat = self.format.parse().unwrap_or_else(|never| match never {});
        if let ReportFormat::Unknown(name) = &format {
            return Err(Failure::Usage(format!(
                "unknown format `{name}`: use json, xml, csv or xlsx"
            )));
        }
        let (from, to) = (from.day(), to.day());
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("reports {from}..{to}"));
        let request = CloudBlueReportRequest::new(name, format, from, to);
        request.validate()?;
        Ok(request)
    }
}

/// CloudBlue in the CLI.
pub struct Cli;

impl CliVendor for Cli {
    const VENDOR: Vendor = Vendor::CloudBlue;
    const ABOUT: &'static str = "CloudBlue Commerce RDE (CLOUDBLUE_USERNAME, CLOUDBLUE_PASSWORD, CLOUDBLUE_SUBSCRIPTION_KEY, CLOUDBLUE_MARKETPLACE)";
    const DEMO_EXTENSION: &'static str = "json";
    const KIND_FLAG: Option<(&'static str, &'static str)> = Some(("--format", "default"));
    type Command = VendorCommand<Connection, Options, ListFilter>;
    type Connection = Connection;
    type Options = Options;

    /// A JSON report (gzip on the wire) from the blob origin.
    fn for_sandbox(sandbox: &Sandbox, mut http: HttpOptions) -> Result<CloudBlueAdapter, Failure> {
        use report_sandbox::credentials as c;
        http.timeout = report_cloudblue::DEFAULT_TIMEOUT;
        let config = CloudBlueConfig::new(
            c::CLOUDBLUE_USERNAME,
            c::CLOUDBLUE_PASSWORD,
            c::CLOUDBLUE_SUBSCRIPTION_KEY,
        )
        .with_base_url(sandbox.base_url(Vendor::CloudBlue))
        .with_marketplace(c::CLOUDBLUE_MARKETPLACE)
        .with_http(http);
        Ok(CloudBlueAdapter::new(CloudBlueClient::new(config)?))
    }

    fn sandbox_request() -> CloudBlueReportRequest {
        let day = |m, d| chrono::NaiveDate::from_ymd_opt(2024, m, d).expect("valid date");
        CloudBlueReportRequest::new("demo", ReportFormat::Json, day(1, 1), day(1, 31))
    }

    fn sandbox_env(sandbox: &Sandbox) -> String {
        use report_sandbox::credentials as c;
        format!(
            "export CLOUDBLUE_BASE_URL={} CLOUDBLUE_USERNAME={} CLOUDBLUE_PASSWORD={} CLOUDBLUE_SUBSCRIPTION_KEY={} CLOUDBLUE_MARKETPLACE={}",
            sandbox.base_url(Vendor::CloudBlue),
            c::CLOUDBLUE_USERNAME,
            c::CLOUDBLUE_PASSWORD,
            c::CLOUDBLUE_SUBSCRIPTION_KEY,
            c::CLOUDBLUE_MARKETPLACE
        )
    }
}
