//! `reports ofd …`

use clap::Args;
use report_ofd::{
    Agreement, OfdAdapter, OfdClient, OfdConfig, OfdReportRequest, Registers, ReportType,
};
use report_core::HttpOptions;
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
    /// API base URL.
    #[arg(long, global = true, env = "OFD_BASE_URL", default_value = report_ofd::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Personal-account login.
    #[arg(long, global = true, env = "OFD_LOGIN", hide_env_values = true)]
    pub login: Option<String>,
    /// Personal-account password.
    #[arg(long, global = true, env = "OFD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Options {
    #[command(flatten)]
    pub span: dates::Span,
    /// Report type, e.g. ReceiptReport, CloseShiftReport, KKTReport.
    #[arg(long = "type", value_name = "REPORT_TYPE")]
    pub report_type: String,
    /// A register (KKT) id to include; repeat for several.
    #[arg(long = "kkt", value_name = "ID", required_unless_present = "all_kkts")]
    pub kkts: Vec<String>,
    /// Include every register of the account.
    #[arg(long, conflicts_with = "kkts")]
    pub all_kkts: bool,
    /// INN of the legal entity, to look its agreement id up (with --kpp).
    #[arg(long, requires = "kpp", conflicts_with = "agreement_id")]
    pub inn: Option<String>,
    /// KPP of the legal entity (with --inn).
    #[arg(long, requires = "inn")]
    pub kpp: Option<String>,
    /// The personal-account (agreement) id, if known.
    #[arg(long, value_name = "UUID")]
    pub agreement_id: Option<String>,
}

impl Connect for Connection {
    type Adapter = OfdAdapter;

    fn connect(&self, common: &Common) -> Result<OfdAdapter, Failure> {
        let login = required(&self.login, "--login", "OFD_LOGIN")?;
        let password = secret(&self.password, "--password", "OFD_PASSWORD", common)?;
        let config = OfdConfig::new(login, password)
            .with_base_url(&self.base_url)
            .with_http(http_options(common));
        Ok(OfdAdapter::new(OfdClient::new(config)?))
    }
}

impl ListReports<NoFilter> for Connection {
    const COLUMNS: &'static [&'static str] = &["Id", "Status", "ReportType", "DateFrom", "DateTo"];

    async fn list(&self, _: &NoFilter, common: &Common) -> Result<Vec<serde_json::Value>, Failure> {
        let adapter = self.connect(common)?;
        Ok(listed(&adapter.client().reports().await?))
    }
}

impl BuildRequest<OfdReportRequest> for Options {
    fn build(&self) -> Result<OfdReportRequest, Failure> {
        let (from, to) = self.span.resolve()?;
        let report_type: ReportType = self
            .report_type
            .parse()
            .unwrap_or_else(|never| match never {});
        if let ReportType::Unknown(name) = &report_type {
            let known: Vec<String> = ReportType::KNOWN.iter().map(ToString::to_string).collect();
            return Err(Failure::Usage(format!(
                "unknown report type `{name}`; known: {}",
                known.join(", ")
            )));
        }
        let registers = if self.all_kkts {
            Registers::All
        } else {
            Registers::List(self.kkts.clone())
        };
        let mut request = OfdReportRequest::for_days(report_type, from.day(), to.day(), registers);
        if let DateArg::Moment(m) = from {
            request.date_from = m;
        }
        if let DateArg::Moment(m) = to {
            request.date_to = m;
        }
        request.agreement = match (&self.agreement_id, &self.inn, &self.kpp) {
            (Some(id), _, _) => Agreement::Id(id.clone()),
            (None, Some(inn), Some(kpp)) => Agreement::Lookup {
                inn: inn.clone(),
                kpp: kpp.clone(),
            },
            _ => Agreement::Default,
        };
        request.validate()?;
        Ok(request)
    }
}

/// OFD.ru in the CLI.
pub struct Cli;

impl CliVendor for Cli {
    const VENDOR: Vendor = Vendor::Ofd;
    const ABOUT: &'static str = "OFD.ru «ИС Отчеты» (OFD_LOGIN, OFD_PASSWORD)";
    const DEMO_EXTENSION: &'static str = "zip";
    const KIND_FLAG: Option<(&'static str, &'static str)> = Some(("--type", "default"));
    type Command = VendorCommand<Connection, Options>;
    type Connection = Connection;
    type Options = Options;

    fn for_sandbox(sandbox: &Sandbox, http: HttpOptions) -> Result<OfdAdapter, Failure> {
        use report_sandbox::credentials as c;
        let config = OfdConfig::new(c::OFD_LOGIN, c::OFD_PASSWORD)
            .with_base_url(sandbox.base_url(Vendor::Ofd))
            .with_http(http);
        Ok(OfdAdapter::new(OfdClient::new(config)?))
    }

    /// A month's receipts of the demo account, looked up by INN.
    fn sandbox_request() -> OfdReportRequest {
        use report_sandbox::credentials as c;
        let day = |m, d| chrono::NaiveDate::from_ymd_opt(2024, m, d).expect("valid date");
        OfdReportRequest::for_days(
            ReportType::ReceiptReport,
            day(1, 1),
            day(1, 31),
            Registers::All,
        )
        .with_agreement(Agreement::Lookup {
            inn: c::OFD_INN.into(),
            kpp: c::OFD_KPP.into(),
        })
    }

    fn sandbox_env(sandbox: &Sandbox) -> String {
        use report_sandbox::credentials as c;
        format!(
            "export OFD_BASE_URL={} OFD_LOGIN={} OFD_PASSWORD={}\n\
             # OFD demo account: --inn {} --kpp {}",
            sandbox.base_url(Vendor::Ofd),
            c::OFD_LOGIN,
            c::OFD_PASSWORD,
            c::OFD_INN,
            c::OFD_KPP
        )
    }
}
