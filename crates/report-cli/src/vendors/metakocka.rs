//! `reports metakocka …`

use clap::Args;
use report_metakocka::{
    MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, MetaKockaReportRequest, ReportFormat,
};

use crate::cli::Common;
use crate::cli::NoFilter;
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};
use crate::vendors::{http_options, required, secret};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// API base URL.
    #[arg(long, global = true, env = "METAKOCKA_BASE_URL", default_value = report_metakocka::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// `secret_key` of the company.
    #[arg(
        long,
        global = true,
        env = "METAKOCKA_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// `company_id`.
    #[arg(long, global = true, env = "METAKOCKA_COMPANY_ID")]
    pub company_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    /// The report to print.
    #[arg(long, value_name = "ID")]
    pub report_id: String,
    /// A report parameter; repeat for several (dates as dd.MM.yyyy).
    #[arg(long = "param", value_name = "TYPE=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// PDF, XLS, CSV, XML, HTM, JSN, POI or ESL.
    #[arg(long, default_value = "PDF")]
    pub format: String,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("`{text}` is not TYPE=VALUE")),
    }
}

impl Connect for Connection {
    type Adapter = MetaKockaAdapter;

    fn connect(&self, common: &Common) -> Result<MetaKockaAdapter, Failure> {
        let key = secret(
            &self.secret_key,
            "--secret-key",
            "METAKOCKA_SECRET_KEY",
            common,
        )?;
        let company = required(&self.company_id, "--company-id", "METAKOCKA_COMPANY_ID")?;
        let config = MetaKockaConfig::new(company, key)
            .with_base_url(&self.base_url)
            .with_http(http_options(common));
        Ok(MetaKockaAdapter::new(MetaKockaClient::new(config)?))
    }
}

impl ListReports<NoFilter> for Connection {
    const COLUMNS: &'static [&'static str] = &[];

    async fn list(&self, _: &NoFilter, _: &Common) -> Result<Vec<serde_json::Value>, Failure> {
        Err(Failure::Usage(
            "MetaKocka keeps no list of reports: a report is found only by its ticket".into(),
        ))
    }
}

impl BuildRequest<MetaKockaReportRequest> for Options {
    fn build(&self) -> Result<MetaKockaReportRequest, Failure> {
        let format: ReportFormat = self
            .format
            .to_ascii_uppercase()
            .parse()
            .unwrap_or_else(|never| match never {});
        if let ReportFormat::Unknown(name) = &format {
            return Err(Failure::Usage(format!(
                "unknown format `{name}`: use PDF, XLS, CSV, XML, HTM, JSN, POI or ESL"
            )));
        }
        let mut request = MetaKockaReportRequest::new(&self.report_id, format);
        for (name, value) in &self.params {
            request = request.param(name, value.as_str());
        }
        request.validate()?;
        Ok(request)
    }
}

/// The sandbox's demo request (the same whichever port the sandbox serves on).
pub fn sandbox_request() -> MetaKockaReportRequest {
    MetaKockaReportRequest::new("149", ReportFormat::Pdf)
}

/// The demo job against the sandbox: report 149 as a PDF.
pub fn for_sandbox(
    sandbox: &report_sandbox::Sandbox,
    http: report_core::HttpOptions,
) -> Result<(MetaKockaAdapter, MetaKockaReportRequest), Failure> {
    use report_sandbox::credentials as c;
    let config = MetaKockaConfig::new(c::METAKOCKA_COMPANY_ID, c::METAKOCKA_SECRET_KEY)
        .with_base_url(sandbox.base_url(report_sandbox::Vendor::MetaKocka))
        .with_http(http);
    let request = sandbox_request();
    Ok((
        MetaKockaAdapter::new(MetaKockaClient::new(config)?),
        request,
    ))
}
