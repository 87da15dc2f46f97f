//! MetaKocka as a [`report_core::ReportAdapter`]: start an asynchronous print, poll it with the
//! token the start returned, download the link it ends with.

use chrono::Utc;
use report_core::{
    Artifact, Compression, Download, Error, Progress, ReportAdapter, Result, Started, Status,
    Ticket,
};

use crate::VENDOR;
use crate::api::types::ReportAnswer;
use crate::client::{MetaKockaClient, check_answer};
use crate::lenient::ReportFormat;
use crate::progress::progress_fraction;
use crate::request::MetaKockaReportRequest;

/// What a MetaKocka ticket keeps besides the print token.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct MetaKockaTicketState {
    /// The report template id (polls send it again).
    report_id: String,
    /// The company id (not a secret): a ticket is only polled for its own company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    company_id: Option<String>,
    /// The `REPORT_TYPE`, for the artifact's format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<ReportFormat>,
}

/// `Progress::vendor_state` while MetaKocka reports progress text.
pub const STATE_PRINTING: &str = "printing";
/// `Progress::vendor_state` of an answer with neither progress nor a link (not begun yet).
pub const STATE_WAITING: &str = "waiting";

/// The MetaKocka report job adapter (asynchronous printing).
///
/// Cancelling is not supported by MetaKocka: [`Job::cancel`](report_core::Job::cancel) returns
/// [`Error::Unsupported`].
#[derive(Clone, Debug)]
pub struct MetaKockaAdapter {
    client: MetaKockaClient,
}

impl MetaKockaAdapter {
    pub fn new(client: MetaKockaClient) -> Self {
        MetaKockaAdapter { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &MetaKockaClient {
        &self.client
    }

    /// The job status an answer means: an error for an `opr_code` other than `"0"`; pending
    /// while it has `progress`; ready when it has a `url` and no `progress`.
    pub fn status_of(
        &self,
        answer: &ReportAnswer,
        format: Option<&ReportFormat>,
    ) -> Result<Status> {
        check_answer(answer)?;
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        if let Some(progress) = text(&answer.progress) {
            return Ok(Status::Pending(Progress {
                fraction: progress_fraction(&progress),
                message: Some(progress),
                ..Progress::state(STATE_PRINTING)
            }));
        }
        match text(&answer.url) {
            Some(url) => Ok(Status::Ready(self.artifact(&url, format))),
            None => Ok(Status::Pending(Progress::state(STATE_WAITING))),
        }
    }

    fn artifact(&self, url: &str, format: Option<&ReportFormat>) -> Artifact {
        // The document shows absolute links; a relative one is resolved against the API.
        let url = self
            .client
            .base_url()
            .join(url)
            .map_or_else(|_| url.to_string(), |u| u.to_string());
        Artifact {
            url,
            file_name: None,
            format: format.map(ReportFormat::extension),
            size: None,
            compression: Compression::None,
            // The link is a credential of its own (valid 24 h): MetaKocka's secret key never
            // goes with it. An expired link is refreshed by polling again.
            authenticated: false,
            data: Default::default(),
        }
    }
}

impl ReportAdapter for MetaKockaAdapter {
    type Request = MetaKockaReportRequest;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn start(&self, request: &MetaKockaReportRequest) -> Result<Started> {
        let answer = self.client.start_report(request).await?;
        let token = answer
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Decode {
                vendor: VENDOR,
                operation: "printReport (start)".into(),
                message: "the answer has no `token`".into(),
                excerpt: report_core::excerpt(
                    serde_json::to_string(&answer)
                        .unwrap_or_default()
                        .as_bytes(),
                ),
                source: None,
            })?;
        let ticket = Ticket::new(VENDOR, token, Utc::now()).with_state(&MetaKockaTicketState {
            report_id: request.report_id.clone(),
            company_id: Some(self.client.company_id().to_string()),
            format: Some(request.format.clone()),
        })?;
        // A start answer normally holds only the token: then the job waits before its first
        // poll. Should it already tell progress or a link, that status saves a poll.
        let status = match (&answer.progress, &answer.url) {
            (None, None) => None,
            _ => Some(self.status_of(&answer, Some(&request.format))?),
        };
        Ok(Started { ticket, status })
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        ticket.expect_vendor(VENDOR)?;
        let state: MetaKockaTicketState = ticket.state()?;
        if let Some(company) = &state.company_id
            && company != self.client.company_id()
        {
            return Err(Error::Ticket(format!(
                "ticket {} belongs to MetaKocka company {company}, not {}",
                ticket.id,
                self.client.company_id()
            )));
        }
        let report_id = state.report_id.as_str();
        // Always the token the start returned: in-progress answers carry another one, which
        // is not the job's id.
        let answer = match self.client.report_status(report_id, &ticket.id).await {
            Ok(answer) => answer,
            // A vendor error answering the poll of a started print (an unknown token, a
            // print that broke off) is the vendor saying this report failed: it ends the wait
            // as a failed job. Refused credentials and transport faults stay errors.
            Err(Error::Api {
                status: None,
                code,
                message,
                ..
            }) => return Ok(Status::Failed { code, message }),
            Err(e) => return Err(e),
        };
        if answer.token.as_deref().is_some_and(|t| t != ticket.id) {
            tracing::debug!("MetaKocka answered another token; polling on with the original");
        }
        self.status_of(&answer, state.format.as_ref())
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        self.client.open(&artifact.url, offset).await
    }
}
