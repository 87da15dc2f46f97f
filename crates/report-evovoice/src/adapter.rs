//! EvoVoice as a [`report_core::ReportAdapter`]: start a billing report, find it in the
//! account's report list, download `/reports/{id}.xlsx`, delete it. EvoVoice cannot cancel a
//! report: the trait's default `cancel` answers [`Error::Unsupported`].

use chrono::Utc;
use report_core::{
    Artifact, Compression, Download, Error, Progress, ReportAdapter, Result, Started, Status,
    Ticket,
};
use url::Url;

use crate::VENDOR;
use crate::client::EvoVoiceClient;
use crate::generated::types;
use crate::lenient::ReportStatus;
use crate::request::{EvoVoiceReportRequest, ReportKind};

/// What an EvoVoice ticket keeps besides the report id.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct EvoVoiceTicketState {
    /// The account whose report list holds the report (EvoVoice has no status by id).
    account_id: String,
}

/// Artifact key of the report's own `downloadLink`, made absolute.
pub const DOWNLOAD_LINK: &str = "download_link";

/// The EvoVoice report job adapter.
#[derive(Clone, Debug)]
pub struct EvoVoiceAdapter {
    client: EvoVoiceClient,
}

impl EvoVoiceAdapter {
    pub fn new(client: EvoVoiceClient) -> Self {
        EvoVoiceAdapter { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &EvoVoiceClient {
        &self.client
    }

    /// The job status a report entry means.
    pub fn status_of(&self, report: &types::ReportInfo) -> Status {
        let message = report
            .status_message
            .clone()
            .filter(|m| !m.trim().is_empty());
        match &report.status {
            Some(ReportStatus::Completed) => Status::Ready(self.artifact(report)),
            Some(ReportStatus::Error) => Status::Failed {
                code: None,
                message: message.unwrap_or_else(|| {
                    format!(
                        "EvoVoice could not generate report {}",
                        report.id.as_deref().unwrap_or("?")
                    )
                }),
            },
            other => {
                if let Some(ReportStatus::Unknown(state)) = other {
                    tracing::warn!(state = %state, "unknown EvoVoice report state; still waiting");
                }
                Status::Pending(Progress {
                    vendor_state: other.as_ref().map(ToString::to_string).unwrap_or_default(),
                    message,
                    ..Progress::default()
                })
            }
        }
    }

    /// The file of a completed report: `/reports/{id}.xlsx` on the API, with credentials. The
    /// report's own `downloadLink`, if any, is kept in `data` under [`DOWNLOAD_LINK`].
    fn artifact(&self, report: &types::ReportInfo) -> Artifact {
        let id = report.id.as_deref().unwrap_or_default();
        let mut data = std::collections::BTreeMap::new();
        if let Some(link) = report
            .download_link
            .as_deref()
            .and_then(|l| self.absolute(l))
        {
            data.insert(DOWNLOAD_LINK.to_string(), link.to_string());
        }
        Artifact {
            url: self.client.report_file_url(id).to_string(),
            file_name: None,
            format: Some("xlsx".into()),
            size: None,
            compression: Compression::None,
            authenticated: true,
            data,
        }
    }

    fn absolute(&self, link: &str) -> Option<Url> {
        let link = link.trim();
        if link.is_empty() {
            return None;
        }
        self.client.base_url().join(link).ok()
    }

    /// An artifact for the report's own `downloadLink` (see [`DOWNLOAD_LINK`]), for when that
    /// link is preferred to `/reports/{id}.xlsx`. It carries the credentials only if it is on
    /// the API's own origin; a link on another host gets none.
    pub fn download_link_artifact(&self, artifact: &Artifact) -> Option<Artifact> {
        let link = Url::parse(artifact.data.get(DOWNLOAD_LINK)?).ok()?;
        Some(Artifact {
            authenticated: report_core::__private::same_origin(&link, self.client.base_url()),
            url: link.to_string(),
            data: Default::default(),
            ..artifact.clone()
        })
    }
}

/// Refuses report ids that could not have come from EvoVoice and would change the path.
fn check_report_id(ticket: &Ticket) -> Result<&str> {
    let id = ticket.id.as_str();
    if id.trim().is_empty() || id == "." || id == ".." || id.chars().any(char::is_control) {
        return Err(Error::Ticket(format!(
            "{id:?} is not an EvoVoice report id"
        )));
    }
    Ok(id)
}

impl ReportAdapter for EvoVoiceAdapter {
    type Request = EvoVoiceReportRequest;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn start(&self, request: &EvoVoiceReportRequest) -> Result<Started> {
        request.validate()?;
        let (report, operation) = match request.kind {
            ReportKind::Billing => (
                self.client
                    .start_billing_report(&request.billing_report())
                    .await?,
                "createBillingReport",
            ),
            ReportKind::Other(kind) => (
                self.client
                    .start_report(kind, &request.report_request())
                    .await?,
                "createReport",
            ),
        };
        let id = report
            .id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| Error::Decode {
                vendor: VENDOR,
                operation: operation.into(),
                message: "the answer has no report `id`".into(),
                excerpt: String::new(),
                source: None,
            })?;
        let ticket = Ticket::new(VENDOR, id, Utc::now()).with_state(&EvoVoiceTicketState {
            account_id: request.account_id.trim().to_string(),
        })?;
        Ok(Started {
            ticket,
            status: Some(self.status_of(&report)),
        })
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        ticket.expect_vendor(VENDOR)?;
        let id = check_report_id(ticket)?;
        let state: EvoVoiceTicketState = ticket.state()?;
        let report = self.client.report(&state.account_id, id).await?;
        Ok(self.status_of(&report))
    }

    async fn delete(&self, ticket: &Ticket) -> Result<()> {
        ticket.expect_vendor(VENDOR)?;
        self.client.delete_report(check_report_id(ticket)?).await
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        self.client
            .open(&artifact.url, offset, artifact.authenticated)
            .await
    }
}
