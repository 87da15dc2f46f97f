//! EvoVoice as a [`report_core::ReportAdapter`]: start a report (billing, another type, or the
//! endpoints report), find it in the account's report list, download `/reports/{id}.xlsx`,
//! delete it. EvoVoice cannot cancel a report: the trait's default `cancel` answers
//! [`Error::Unsupported`].

use chrono::{DateTime, NaiveDateTime, Utc};
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

/// A ServiceStack date as the list writes it: ISO 8601 (without an offset: UTC) or the WCF
/// form `/Date(1700000000000-0000)/` (milliseconds since the epoch, then the offset it was
/// shown in).
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|rest| rest.split_once(')'))
        .map(|(inner, _)| inner)
    {
        let digits = inner
            .char_indices()
            .find(|&(i, c)| i > 0 && (c == '+' || c == '-'))
            .map_or(inner, |(i, _)| &inner[..i]);
        return DateTime::from_timestamp_millis(digits.parse().ok()?);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
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
            ReportKind::Endpoints => (
                self.client
                    .start_endpoints_report(&request.report_request())
                    .await?,
                "createEndpointsReport",
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

    /// The account's reports created since `since` (`dateCreated`): the list says neither a
    /// report's type nor its period, so two reports started meanwhile for the account (or
    /// notifying another address) cannot be told apart.
    async fn find_started(
        &self,
        request: &EvoVoiceReportRequest,
        since: DateTime<Utc>,
    ) -> Result<Option<Ticket>> {
        request.validate()?;
        let state = EvoVoiceTicketState {
            account_id: request.account_id.trim().to_string(),
        };
        let mut candidates = Vec::new();
        for report in self.client.reports(&state.account_id).await? {
            let Some(id) = report.id.clone().filter(|id| !id.trim().is_empty()) else {
                continue;
            };
            let other_address = report
                .email_address_to_notify
                .as_deref()
                .zip(request.notify_email.as_deref())
                .is_some_and(|(listed, sent)| !listed.trim().eq_ignore_ascii_case(sent.trim()));
            if other_address {
                continue;
            }
            let created = report.date_created.as_deref().and_then(parse_date);
            candidates.push((
                created,
                Ticket::new(VENDOR, id, Utc::now()).with_state(&state)?,
            ));
        }
        report_core::__private::one_started(VENDOR, since, candidates)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_dates_read_in_both_servicestack_forms() {
        let at: DateTime<Utc> = "2023-11-14T22:13:20Z".parse().unwrap();
        for text in [
            "/Date(1700000000000)/",
            "/Date(1700000000000-0000)/",
            "/Date(1700000000000+0200)/",
            "2023-11-14T22:13:20Z",
            "2023-11-15T00:13:20+02:00",
            " 2023-11-14T22:13:20 ",
            "2023-11-14 22:13:20.000",
        ] {
            assert_eq!(parse_date(text), Some(at), "{text}");
        }
        for bad in ["", "/Date(x)/", "/Date(", "14.11.2023"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
