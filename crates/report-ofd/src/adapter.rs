//! OFD.ru as a [`report_core::ReportAdapter`]: request a report, find it in the report list,
//! follow its relative URLs.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, SubsecRound, TimeZone, Utc};
use report_core::{
    Artifact, Compression, Download, Error, Progress, ReportAdapter, Result, Started, Status,
    Ticket,
};

use crate::VENDOR;
use crate::client::OfdErrorCode;
use crate::client::{OfdClient, parse_utc};
use crate::generated::types;
use crate::lenient::{ReportStatus, ReportType};

/// What an OFD.ru ticket keeps besides the report id.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct OfdTicketState {
    /// The personal-account id (`OfdAgreementId`), when the start named or looked one up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agreement_id: Option<String>,
}

impl OfdTicketState {
    fn of(ticket: &Ticket) -> Result<OfdTicketState> {
        ticket.state()
    }
}

/// Which registers (KKT) a report covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registers {
    /// These register ids.
    List(Vec<String>),
    /// These folders of registers (sub-folders included).
    Groups(Vec<String>),
    /// Every register of the personal account.
    All,
}

/// Which personal account (LKK) the report is for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Agreement {
    /// The user's only account (enough when one legal entity is linked).
    #[default]
    Default,
    /// A known OfdAgreementId.
    Id(String),
    /// Look the id up by the legal entity's INN and KPP before starting.
    Lookup { inn: String, kpp: String },
}

/// Parameters of an OFD.ru report.
#[derive(Clone, Debug, PartialEq)]
pub struct OfdReportRequest {
    pub report_type: ReportType,
    /// Start of the period.
    pub date_from: DateTime<FixedOffset>,
    /// End of the period.
    pub date_to: DateTime<FixedOffset>,
    pub registers: Registers,
    pub agreement: Agreement,
    /// Report name shown in the personal account.
    pub name: Option<String>,
    /// Addresses notified when the report is ready.
    pub notify: Vec<String>,
    /// A custom template instead of the base report type's fields.
    pub custom_report_id: Option<String>,
    /// Produce an XLSX file (default true).
    pub xlsx: bool,
}

/// Moscow time, OFD.ru's own zone, used for whole-day periods.
fn moscow() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600).expect("valid offset")
}

impl OfdReportRequest {
    /// A report over whole days, `from` 00:00:00 to `to` 23:59:59 Moscow time.
    pub fn for_days(
        report_type: ReportType,
        from: NaiveDate,
        to: NaiveDate,
        registers: Registers,
    ) -> Self {
        let start = moscow()
            .from_local_datetime(&from.and_time(NaiveTime::MIN))
            .single()
            .expect("fixed offsets have no gaps");
        let end = moscow()
            .from_local_datetime(&to.and_hms_opt(23, 59, 59).expect("valid time"))
            .single()
            .expect("fixed offsets have no gaps");
        OfdReportRequest {
            report_type,
            date_from: start,
            date_to: end,
            registers,
            agreement: Agreement::Default,
            name: None,
            notify: Vec::new(),
            custom_report_id: None,
            xlsx: true,
        }
    }

    /// Sets the personal account.
    pub fn with_agreement(mut self, agreement: Agreement) -> Self {
        self.agreement = agreement;
        self
    }

    /// Checks the request before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.date_from > self.date_to {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                self.date_from.to_rfc3339(),
                self.date_to.to_rfc3339()
            ));
        }
        match &self.registers {
            Registers::List(ids) | Registers::Groups(ids) if ids.is_empty() => {
                return bad("no registers given: name some, or select all".into());
            }
            Registers::List(ids) | Registers::Groups(ids) => {
                if let Some(blank) = ids.iter().find(|id| id.trim().is_empty()) {
                    return bad(format!("register id {blank:?} is blank"));
                }
            }
            Registers::All => {}
        }
        match &self.agreement {
            Agreement::Id(id) if uuid::Uuid::parse_str(id).is_err() => {
                return bad(format!("agreement id {id:?} is not a UUID"));
            }
            Agreement::Lookup { inn, kpp } => {
                if !(inn.len() == 10 || inn.len() == 12) || !inn.bytes().all(|b| b.is_ascii_digit())
                {
                    return bad(format!("INN {inn:?} must be 10 or 12 digits"));
                }
                if kpp.len() != 9 || !kpp.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return bad(format!("KPP {kpp:?} must be 9 characters"));
                }
            }
            _ => {}
        }
        if let Some(id) = &self.custom_report_id
            && uuid::Uuid::parse_str(id).is_err()
        {
            return bad(format!("custom report id {id:?} is not a UUID"));
        }
        Ok(())
    }

    /// Whether a report-list entry may be what this request started: the same type (unless a
    /// custom template), period and name. A field the entry lacks does not rule it out.
    fn made(&self, report: &types::ReportInfo) -> bool {
        let same_time = |text: &Option<String>, wanted: &DateTime<FixedOffset>| {
            let Some(text) = text.as_deref().map(str::trim) else {
                return true;
            };
            // Lists write whole seconds.
            let wanted = wanted.trunc_subsecs(0);
            match DateTime::parse_from_rfc3339(text) {
                Ok(at) => at.trunc_subsecs(0) == wanted,
                // Without an offset: the wall-clock time as it was sent.
                Err(_) => parse_utc(text)
                    .is_none_or(|at| at.trunc_subsecs(0).naive_utc() == wanted.naive_local()),
            }
        };
        let same_type = self.custom_report_id.is_some()
            || report
                .report_type
                .as_ref()
                .is_none_or(|t| t.as_str() == self.report_type.as_str());
        let same_name = match (&self.name, &report.name) {
            (Some(wanted), Some(name)) => wanted.trim() == name.trim(),
            _ => true,
        };
        same_type
            && same_name
            && same_time(&report.date_from, &self.date_from)
            && same_time(&report.date_to, &self.date_to)
    }

    fn body(&self, agreement_id: Option<String>) -> types::CreateReportRequest {
        let (kkts, groups, all) = match &self.registers {
            Registers::List(ids) => (ids.clone(), Vec::new(), false),
            Registers::Groups(ids) => (Vec::new(), ids.clone(), false),
            Registers::All => (Vec::new(), Vec::new(), true),
        };
        types::CreateReportRequest {
            ofd_agreement_id: agreement_id,
            custom_report_id: self.custom_report_id.clone(),
            name: self.name.clone(),
            date_from: self
                .date_from
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            date_to: self
                .date_to
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
            emails_to_notify: (!self.notify.is_empty()).then(|| self.notify.join(";")),
            ffd_type: None,
            groups_list: groups,
            kkt_list: kkts,
            report_type: Some(self.report_type.clone()),
            select_all_kkts: Some(all),
            use_xlsx_file: Some(self.xlsx),
            kkt_status: None,
            search_string: None,
        }
    }
}

/// The OFD.ru report job adapter.
#[derive(Clone, Debug)]
pub struct OfdAdapter {
    client: OfdClient,
}

impl OfdAdapter {
    pub fn new(client: OfdClient) -> Self {
        OfdAdapter { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &OfdClient {
        &self.client
    }

    async fn resolve_agreement(&self, agreement: &Agreement) -> Result<Option<String>> {
        match agreement {
            Agreement::Default => Ok(None),
            Agreement::Id(id) => Ok(Some(id.clone())),
            Agreement::Lookup { inn, kpp } => self.client.agreement_id(inn, kpp).await.map(Some),
        }
    }

    /// The job status a report entry means.
    pub fn status_of(&self, report: &types::ReportInfo, agreement_id: Option<&str>) -> Status {
        let state = report
            .status
            .clone()
            .unwrap_or(ReportStatus::Unknown(String::new()));
        match state {
            ReportStatus::Done => Status::Ready(self.artifact(report, agreement_id)),
            ReportStatus::Error => Status::Failed {
                code: None,
                message: format!(
                    "OFD.ru could not generate report {}",
                    report.id.as_deref().unwrap_or("?")
                ),
            },
            ReportStatus::Deleted => Status::Cancelled,
            other => {
                if let ReportStatus::Unknown(s) = &other {
                    tracing::warn!(state = %s, "unknown OFD.ru report state; still waiting");
                }
                Status::Pending(Progress {
                    vendor_state: other.to_string(),
                    eta: report
                        .assumptive_complete_time
                        .as_deref()
                        .and_then(parse_utc),
                    message: report.report_type_name.clone(),
                    ..Progress::default()
                })
            }
        }
    }

    fn artifact(&self, report: &types::ReportInfo, agreement_id: Option<&str>) -> Artifact {
        let id = report.id.clone().unwrap_or_default();
        let relative = report
            .download_url
            .clone()
            .unwrap_or_else(|| match agreement_id {
                Some(a) => format!("/api/customer/reports/{id}?OfdAgreementId={a}"),
                None => format!("/api/customer/reports/{id}"),
            });
        let url = self
            .client
            .base_url()
            .join(&relative)
            .map(|u| u.to_string())
            .unwrap_or(relative);
        let mut data = std::collections::BTreeMap::new();
        if let Some(kb) = report.report_size {
            data.insert("size_kb".to_string(), kb.to_string());
        }
        Artifact {
            authenticated: url::Url::parse(&url)
                .is_ok_and(|u| report_core::__private::same_origin(&u, self.client.base_url())),
            url,
            file_name: None,
            format: report.file_format.clone(),
            // ReportSize is in whole kilobytes: not exact enough to verify against.
            size: None,
            compression: Compression::None,
            data,
        }
    }
}

impl ReportAdapter for OfdAdapter {
    type Request = OfdReportRequest;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn start(&self, request: &OfdReportRequest) -> Result<Started> {
        self.client.before_start(request.validate()).await?;
        let agreement_id = self
            .resolve_agreement(&request.agreement)
            .await
            .map_err(Error::before_start)?;
        let body = request.body(agreement_id.clone());
        let api = self.client.api();
        let envelope = self
            .client
            .call("createReport", || {
                api.create_report().body(body.clone()).send()
            })
            .await?;
        let report = envelope
            .data
            .ok_or_else(|| missing("createReport", "Data"))?;
        let id = report
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| missing("createReport", "Data.Id"))?;
        let ticket = Ticket::new(VENDOR, id, Utc::now()).with_state(&OfdTicketState {
            agreement_id: agreement_id.clone(),
        })?;
        let status = self.status_of(&report, agreement_id.as_deref());
        Ok(Started {
            ticket,
            status: Some(status),
        })
    }

    /// The report list's entries of this request's type, period (and name, when it has one)
    /// created at or after `since` (`CDateUtc`).
    async fn find_started(
        &self,
        request: &OfdReportRequest,
        since: DateTime<Utc>,
    ) -> Result<Option<Ticket>> {
        request.validate()?;
        let agreement_id = self.resolve_agreement(&request.agreement).await?;
        let state = OfdTicketState {
            agreement_id: agreement_id.clone(),
        };
        let mut candidates = Vec::new();
        for report in self.client.reports().await? {
            let Some(id) = report.id.clone().filter(|id| !id.is_empty()) else {
                continue;
            };
            if !request.made(&report) {
                continue;
            }
            let created = report.c_date_utc.as_deref().and_then(parse_utc);
            candidates.push((
                created,
                Ticket::new(VENDOR, id, Utc::now()).with_state(&state)?,
            ));
        }
        report_core::__private::one_started(VENDOR, since, candidates)
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        ticket.expect_vendor(VENDOR)?;
        let report = self
            .client
            .report(&ticket.id)
            .await?
            .ok_or_else(|| Error::Api {
                vendor: VENDOR,
                status: None,
                code: Some(OfdErrorCode::ReportNotFound.to_string()),
                message: format!(
                    "report {} is not in the account's report list (expired or deleted)",
                    ticket.id
                ),
                request_id: None,
                retry_after: None,
            })?;
        let state = OfdTicketState::of(ticket)?;
        Ok(self.status_of(&report, state.agreement_id.as_deref()))
    }

    async fn cancel(&self, ticket: &Ticket) -> Result<()> {
        ticket.expect_vendor(VENDOR)?;
        let state = OfdTicketState::of(ticket)?;
        let agreement = state.agreement_id.as_deref();
        let api = self.client.api();
        self.client
            .call("cancelReport", || {
                let op = api.cancel_report().id(ticket.id.as_str());
                match agreement {
                    Some(a) => op.ofd_agreement_id(a).send(),
                    None => op.send(),
                }
            })
            .await
            .map(|_| ())
    }

    async fn delete(&self, ticket: &Ticket) -> Result<()> {
        ticket.expect_vendor(VENDOR)?;
        let state = OfdTicketState::of(ticket)?;
        let agreement = state.agreement_id.as_deref();
        let api = self.client.api();
        self.client
            .call("deleteReport", || {
                let op = api.delete_report().id(ticket.id.as_str());
                match agreement {
                    Some(a) => op.ofd_agreement_id(a).send(),
                    None => op.send(),
                }
            })
            .await
            .map(|_| ())
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        self.client.open(&artifact.url, offset).await
    }
}

fn missing(operation: &str, field: &str) -> Error {
    Error::missing_field(VENDOR, operation, field)
}
