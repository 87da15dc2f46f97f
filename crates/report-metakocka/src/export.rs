//! MetaKocka's accounting export as a report job: `POST /rest/eshop/accounting_export` blocks
//! until the ZIP is ready and answers a pre-signed URL of another host, so the job is ready
//! as soon as it starts, and its file is downloaded with no credentials.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use report_core::{
    Artifact, Compression, Download, Error, ReportAdapter, Result, Started, Status, Ticket,
};

use crate::client::MetaKockaClient;
use crate::client::is_credentials_refusal;
use crate::generated::types;
use crate::{OPR_OK, VENDOR};

/// What to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountingExportRequest {
    /// The export profiles to run, by name or id.
    pub profiles: Vec<String>,
    /// First day.
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
    /// The UTC offset the days are read in (MetaKocka writes `2026-01-01+02:00`).
    pub utc_offset: FixedOffset,
    /// Export the documents' attachments too.
    pub export_attachment: bool,
}

impl AccountingExportRequest {
    /// The export of these profiles for the days `from` to `to`, in UTC, without attachments.
    pub fn new(profiles: Vec<String>, from: NaiveDate, to: NaiveDate) -> Self {
        AccountingExportRequest {
            profiles,
            from,
            to,
            utc_offset: FixedOffset::east_opt(0).expect("UTC is an offset"),
            export_attachment: false,
        }
    }

    /// Reads the days at this UTC offset.
    pub fn with_utc_offset(mut self, offset: FixedOffset) -> Self {
        self.utc_offset = offset;
        self
    }

    /// Exports the attachments too.
    pub fn with_attachments(mut self, export: bool) -> Self {
        self.export_attachment = export;
        self
    }

    /// Checks the request before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.profiles.is_empty() {
            return bad("an accounting export needs at least one profile".into());
        }
        if let Some(p) = self
            .profiles
            .iter()
            .find(|p| p.trim().is_empty() || p.chars().any(char::is_control))
        {
            return bad(format!(
                "export profile {p:?} is blank or has control characters"
            ));
        }
        if self.from > self.to {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                self.from, self.to
            ));
        }
        Ok(())
    }

    fn day(&self, day: NaiveDate) -> String {
        format!("{}{}", day.format("%Y-%m-%d"), self.utc_offset)
    }

    /// The request body, with the company's credentials from `client`.
    pub(crate) fn body(&self, client: &MetaKockaClient) -> types::AccountingExportRequest {
        let credentials = client.request_body();
        types::AccountingExportRequest {
            secret_key: credentials.secret_key,
            company_id: credentials.company_id,
            profile_name_list: self.profiles.iter().map(|p| p.trim().to_string()).collect(),
            from_date: self.day(self.from),
            to_date: self.day(self.to),
            export_attachment: Some(self.export_attachment.to_string()),
        }
    }
}

/// `Ok` for `opr_code` `"0"`; otherwise the typed error the answer carries.
fn check(answer: &types::AccountingExportAnswer) -> Result<()> {
    let code = answer.opr_code.trim();
    if code == OPR_OK {
        return Ok(());
    }
    let message = [&answer.error_desc, &answer.opr_desc]
        .into_iter()
        .flatten()
        .map(|m| m.trim())
        .find(|m| !m.is_empty())
        .unwrap_or("no error description")
        .to_string();
    if is_credentials_refusal(code, &message) {
        return Err(Error::auth(
            VENDOR,
            200,
            format!("opr_code {code}: {message}"),
        ));
    }
    let message = match &answer.job_id {
        Some(job) => format!("{message} (job {job})"),
        None => message,
    };
    Err(Error::detected(VENDOR, code, message))
}

/// How long MetaKocka's pre-signed export link is valid.
const LINK_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What an export ticket keeps: MetaKocka has no status of an export, so the ticket carries
/// the answer itself and a resumed job polls it from there.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ExportTicketState {
    /// The pre-signed ZIP (another host, no credentials).
    result_url: String,
    /// When the link expires (an hour after the answer).
    expires_at: DateTime<Utc>,
}

impl ExportTicketState {
    fn status(&self, job_id: &str) -> Status {
        if Utc::now() >= self.expires_at {
            return Status::Failed {
                code: None,
                message: format!(
                    "the link of accounting export {job_id} expired at {}: export again",
                    self.expires_at.to_rfc3339()
                ),
            };
        }
        Status::Ready(Artifact {
            url: self.result_url.clone(),
            file_name: Some(format!("accounting-export-{job_id}.zip")),
            format: Some("zip".into()),
            size: None,
            compression: Compression::None,
            // A pre-signed URL of another host: it gets no credential.
            authenticated: false,
            data: Default::default(),
        })
    }
}

/// The accounting export as a [`report_core`] job. The export is done when the start answers:
/// the job starts ready, and its ticket carries the file's link, so a resumed ticket polls
/// ready too until the link expires (an hour); an expired link is not renewed: export again.
#[derive(Clone, Debug)]
pub struct MetaKockaExportAdapter {
    client: MetaKockaClient,
}

impl MetaKockaExportAdapter {
    /// The adapter over a client.
    pub fn new(client: MetaKockaClient) -> Self {
        MetaKockaExportAdapter { client }
    }
}

impl ReportAdapter for MetaKockaExportAdapter {
    type Request = AccountingExportRequest;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn start(&self, request: &AccountingExportRequest) -> Result<Started> {
        request.validate()?;
        let answer = self
            .client
            .accounting_export(&request.body(&self.client))
            .await?;
        check(&answer)?;
        let text = |value: &Option<String>, field: &str| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| Error::missing_field(VENDOR, "accountingExport", field))
        };
        let job_id = text(&answer.job_id, "job_id")?;
        let state = ExportTicketState {
            result_url: text(&answer.result_url, "result_url")?,
            expires_at: Utc::now() + LINK_LIFETIME,
        };
        let ticket = Ticket::new(VENDOR, job_id, Utc::now()).with_state(&state)?;
        Ok(Started {
            status: Some(state.status(&ticket.id)),
            ticket,
        })
    }

    /// The export's file from the ticket (MetaKocka has no status of an export): ready while
    /// its link lives, failed once it expired (export again).
    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        ticket.expect_vendor(VENDOR)?;
        let state: ExportTicketState = ticket.state()?;
        Ok(state.status(&ticket.id))
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        self.client.open(&artifact.url, offset).await
    }
}
