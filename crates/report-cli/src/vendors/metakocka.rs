//! `reports metakocka …`

use clap::Args;
use std::path::PathBuf;

use clap::Subcommand;
use report_metakocka::{
    AccountingExportRequest, MetaKockaAdapter, MetaKockaClient, MetaKockaConfig,
    MetaKockaExportAdapter, MetaKockaReportRequest, ReportFormat,
};
use report_core::HttpOptions;
use report_sandbox::{Sandbox, Vendor};

use crate::cli::{Action, Common, DownloadArgs, VendorCommand};
use crate::cli::NoFilter;
use crate::dates;
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};
use crate::vendors::{CliVendor, VendorArgs, http_options, required, secret};

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

impl Connection {
    fn client(&self, common: &Common) -> Result<MetaKockaClient, Failure> {
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
        Ok(MetaKockaClient::new(config)?)
    }
}

impl Connect for Connection {
    type Adapter = MetaKockaAdapter;

    fn connect(&self, common: &Common) -> Result<MetaKockaAdapter, Failure> {
        Ok(MetaKockaAdapter::new(self.client(common)?))
    }
}

/// `reports metakocka …`: the report actions, and the accounting export.
#[derive(Debug, Args)]
pub struct MetaKockaCommand {
    #[command(flatten)]
    pub connection: Connection,
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub action: MetaKockaAction,
}

#[derive(Debug, Subcommand)]
pub enum MetaKockaAction {
    #[command(flatten)]
    Report(Action<Options>),
    /// Run an accounting export and download its ZIP: MetaKocka answers once the export is done,
    /// with a link that needs no credentials. Nothing to wait for or resume: an interrupted
    /// export is run again.
    Export(ExportArgs),
}

/// `reports metakocka export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub options: ExportOptions,
    /// Where to save the ZIP (renamed into place only when complete); `-` writes it to
    /// standard output once downloaded, with no such atomicity.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    #[command(flatten)]
    pub download: DownloadArgs,
}

/// What to export.
#[derive(Debug, Clone, Args)]
pub struct ExportOptions {
    /// An export profile to run, by name or id; repeat for several.
    #[arg(long = "export-profile", value_name = "NAME", required = true)]
    pub profiles: Vec<String>,
    #[command(flatten)]
    pub span: dates::Span,
    /// The UTC offset the days are read in, e.g. +02:00 (default: +00:00).
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    pub utc_offset: Option<chrono::FixedOffset>,
    /// Export the documents' attachments too.
    #[arg(long)]
    pub export_attachment: bool,
}

impl BuildRequest<AccountingExportRequest> for ExportOptions {
    fn build(&self) -> Result<AccountingExportRequest, Failure> {
        let (from, to) = self.span.resolve()?;
        let mut request = AccountingExportRequest::new(self.profiles.clone(), from.day(), to.day())
            .with_attachments(self.export_attachment);
        if let Some(offset) = self.utc_offset {
            request = request.with_utc_offset(offset);
        }
        request.validate()?;
        Ok(request)
    }
}

/// The connection, making the export's adapter.
#[derive(Debug, Args)]
pub struct ExportConnection {
    #[command(flatten)]
    connection: Connection,
}

impl Connect for ExportConnection {
    type Adapter = MetaKockaExportAdapter;

    fn connect(&self, common: &Common) -> Result<MetaKockaExportAdapter, Failure> {
        Ok(MetaKockaExportAdapter::new(
            self.connection.client(common)?,
        ))
    }
}

impl ListReports<NoFilter> for ExportConnection {
    const COLUMNS: &'static [&'static str] = &[];

    async fn list(&self, filter: &NoFilter, common: &Common) -> Result<Vec<serde_json::Value>, Failure> {
        self.connection.list(filter, common).await
    }
}

impl VendorArgs for MetaKockaCommand {
    fn common(&self) -> &Common {
        &self.common
    }

    async fn execute(self) -> Result<(), Failure> {
        let common = self.common.clone();
        match self.action {
            MetaKockaAction::Report(action) => {
                let command = VendorCommand {
                    connection: self.connection,
                    common: self.common,
                    action,
                };
                crate::jobs::execute(command, &common).await
            }
            MetaKockaAction::Export(export) => {
                // The export is done when it starts: `run` without a state file (a ticket
                // could not be polled to find its link again).
                let command = VendorCommand {
                    connection: ExportConnection {
                        connection: self.connection,
                    },
                    common: self.common,
                    action: Action::Run {
                        options: export.options,
                        out: export.out,
                        download: export.download,
                        state_file: None,
                        skip_existing: false,
                    },
                };
                crate::jobs::execute(command, &common)
                    .await
                    .map_err(export_again)
            }
        }
    }
}

/// An export's ticket cannot be polled for its link: no `download --ticket` line is offered
/// (running the export again is the way on).
fn export_again(failure: Failure) -> Failure {
    match failure {
        Failure::Sent {
            failure,
            ticket,
            cause,
            ..
        } => Failure::Sent {
            failure,
            ticket,
            resume: None,
            cause,
        },
        other => other,
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

/// MetaKocka in the CLI.
pub struct Cli;

impl CliVendor for Cli {
    const VENDOR: Vendor = Vendor::MetaKocka;
    const ABOUT: &'static str =
        "MetaKocka report printing and accounting export (METAKOCKA_SECRET_KEY, METAKOCKA_COMPANY_ID)";
    const DEMO_EXTENSION: &'static str = "pdf";
    const KIND_FLAG: Option<(&'static str, &'static str)> = Some(("--report-id", "default"));
    type Command = MetaKockaCommand;
    type Connection = Connection;
    type Options = Options;

    /// Report 149 as a PDF.
    fn for_sandbox(sandbox: &Sandbox, http: HttpOptions) -> Result<MetaKockaAdapter, Failure> {
        use report_sandbox::credentials as c;
        let config = MetaKockaConfig::new(c::METAKOCKA_COMPANY_ID, c::METAKOCKA_SECRET_KEY)
            .with_base_url(sandbox.base_url(Vendor::MetaKocka))
            .with_http(http);
        Ok(MetaKockaAdapter::new(MetaKockaClient::new(config)?))
    }

    fn sandbox_request() -> MetaKockaReportRequest {
        MetaKockaReportRequest::new("149", ReportFormat::Pdf)
    }

    fn sandbox_env(sandbox: &Sandbox) -> String {
        use report_sandbox::credentials as c;
        format!(
            "export METAKOCKA_BASE_URL={} METAKOCKA_SECRET_KEY={} METAKOCKA_COMPANY_ID={}",
            sandbox.base_url(Vendor::MetaKocka),
            c::METAKOCKA_SECRET_KEY,
            c::METAKOCKA_COMPANY_ID
        )
    }
}
