//! The typed parameters of an EvoVoice report (billing, one of the other types the vendor's
//! own tool runs, or the endpoints report), checked before anything is sent.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use report_core::{Error, Result};

use crate::generated::types;

pub use crate::generated::types::ReportType;

/// Which EvoVoice report a job runs: billing (`POST /reports/billing`), another type
/// (`POST /reports/<type>`) or the endpoints report (`POST /json/reply/EndpointsReport`).
/// Named as in the vendor's tool: `billing`, `cdr`, `call-history`…, `endpoints`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// The billing report.
    #[default]
    Billing,
    /// Another report type.
    Other(ReportType),
    /// The endpoints report (`/json/reply/EndpointsReport`): the account's users, phone
    /// numbers and flows.
    Endpoints,
}

impl ReportKind {
    /// Every kind, billing first.
    pub const ALL: [ReportKind; 11] = [
        ReportKind::Billing,
        ReportKind::Other(ReportType::AgentState),
        ReportKind::Other(ReportType::CallCenterAbandon),
        ReportKind::Other(ReportType::CallCenterDetail),
        ReportKind::Other(ReportType::CallCenter),
        ReportKind::Other(ReportType::CallHistory),
        ReportKind::Other(ReportType::CallOutcome),
        ReportKind::Other(ReportType::Cdr),
        ReportKind::Other(ReportType::Metric),
        ReportKind::Other(ReportType::SyncPhoneNumbers),
        ReportKind::Endpoints,
    ];
}

impl fmt::Display for ReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportKind::Billing => f.write_str("billing"),
            ReportKind::Endpoints => f.write_str("endpoints"),
            ReportKind::Other(kind) => kind.fmt(f),
        }
    }
}

impl FromStr for ReportKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<ReportKind> {
        ReportKind::ALL
            .into_iter()
            .find(|kind| kind.to_string().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                let names: Vec<String> = ReportKind::ALL.iter().map(|k| k.to_string()).collect();
                Error::InvalidInput(format!(
                    "unknown EvoVoice report type {text:?} (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// What the report types other than billing read besides the period and the account (see
/// `ReportRequest` in the spec). Billing reads none of these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// Time zone the period is read in (e.g. `America/New_York`).
    pub time_zone_id: Option<String>,
    /// Only this customer.
    pub customer_id: Option<String>,
    /// Only this endpoint.
    pub endpoint_id: Option<String>,
    /// Only this flow (call outcome reports).
    pub flow_id: Option<String>,
    /// The metric to report (metric reports).
    pub metric_name: Option<String>,
    /// Only this agent state (agent state reports).
    pub specific_state: Option<String>,
    /// Count archived sessions too.
    pub include_archived_sessions: bool,
    /// Sync the Documo fax numbers too (phone number sync).
    pub sync_documo_numbers: bool,
    /// Only these kinds of records.
    pub types: Vec<String>,
}

impl ReportOptions {
    fn texts(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("time zone", &self.time_zone_id),
            ("customer id", &self.customer_id),
            ("endpoint id", &self.endpoint_id),
            ("flow id", &self.flow_id),
            ("metric name", &self.metric_name),
            ("agent state", &self.specific_state),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
        .chain(self.types.iter().map(|t| ("record type", t)))
    }
}

/// Parameters of an EvoVoice report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvoVoiceReportRequest {
    /// Which report: billing unless chosen with [`with_kind`](Self::with_kind).
    pub kind: ReportKind,
    /// What the other report types read; billing reads none of it.
    pub options: ReportOptions,
    /// The account the report is run for (also where its status is looked up).
    pub account_id: String,
    /// First day of the period.
    pub from: NaiveDate,
    /// Last day of the period.
    pub to: NaiveDate,
    /// Include the customers' ids in the report.
    pub include_customer_ids: bool,
    /// An address EvoVoice emails after the report is run.
    pub notify_email: Option<String>,
    /// An `https://` URL EvoVoice calls with the report's data when it is complete.
    pub webhook_url: Option<String>,
}

impl EvoVoiceReportRequest {
    /// A billing report of `account_id` for the days `from` to `to`.
    pub fn new(account_id: impl Into<String>, from: NaiveDate, to: NaiveDate) -> Self {
        EvoVoiceReportRequest {
            account_id: account_id.into(),
            from,
            to,
            include_customer_ids: false,
            notify_email: None,
            webhook_url: None,
            kind: ReportKind::Billing,
            options: ReportOptions::default(),
        }
    }

    /// Runs this kind of report instead of billing.
    pub fn with_kind(mut self, kind: ReportKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets what the other report types read.
    pub fn with_options(mut self, options: ReportOptions) -> Self {
        self.options = options;
        self
    }

    /// Includes (or not) the customers' ids.
    pub fn with_customer_ids(mut self, include: bool) -> Self {
        self.include_customer_ids = include;
        self
    }

    /// Emails this address after the report is run.
    pub fn with_notify_email(mut self, email: impl Into<String>) -> Self {
        self.notify_email = Some(email.into());
        self
    }

    /// Calls this `https://` webhook (or `http://` on loopback) when the report is complete.
    pub fn with_webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// Checks the request before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.from > self.to {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                self.from, self.to
            ));
        }
        if self.account_id.trim().is_empty() {
            return bad("the EvoVoice account id is empty".into());
        }
        if self.account_id.chars().any(char::is_control) {
            return bad(format!(
                "account id {:?} contains control characters",
                self.account_id
            ));
        }
        if let Some(email) = &self.notify_email
            && !looks_like_email(email)
        {
            return bad(format!("{email:?} is not an email address"));
        }
        if let Some(webhook) = &self.webhook_url {
            check_webhook(webhook)?;
        }
        if self.kind == ReportKind::Billing && self.options != ReportOptions::default() {
            return bad("a billing report reads none of the other report types' options".into());
        }
        for (name, value) in self.options.texts() {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return bad(format!(
                    "the {name} {value:?} is blank or has control characters"
                ));
            }
        }
        Ok(())
    }

    /// The body of a report type other than billing (the endpoints report's too).
    pub fn report_request(&self) -> types::ReportRequest {
        let o = &self.options;
        types::ReportRequest {
            start_date: Some(self.from.format("%Y-%m-%d").to_string()),
            end_date: Some(self.to.format("%Y-%m-%d").to_string()),
            time_zone_id: o.time_zone_id.clone(),
            customer_id: o.customer_id.clone(),
            endpoint_id: o.endpoint_id.clone(),
            flow_id: o.flow_id.clone(),
            metric_name: o.metric_name.clone(),
            specific_state: o.specific_state.clone(),
            include_archived_sessions: o.include_archived_sessions.then_some(true),
            include_customer_ids: self.include_customer_ids.then_some(true),
            sync_documo_numbers: o.sync_documo_numbers.then_some(true),
            types: o.types.clone(),
            account_id: Some(self.account_id.trim().to_string()),
            email_address_to_notify: self.notify_email.clone(),
            webhook_url: self.webhook_url.clone(),
        }
    }

    /// The billing request body. Dates are sent as `YYYY-MM-DD`: EvoVoice takes plain date
    /// strings.
    pub fn billing_report(&self) -> types::BillingReport {
        types::BillingReport {
            start_date: Some(self.from.format("%Y-%m-%d").to_string()),
            end_date: Some(self.to.format("%Y-%m-%d").to_string()),
            include_customer_ids: self.include_customer_ids,
            account_id: Some(self.account_id.trim().to_string()),
            email_address_to_notify: self.notify_email.clone(),
            webhook_url: self.webhook_url.clone(),
        }
    }
}

/// A plausibility check, not RFC 5322: one `@`, something before it, a dotted domain after
/// it, no spaces or list separators (a list of addresses is not accepted).
fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let forbidden =
        |c: char| c.is_whitespace() || c.is_control() || matches!(c, '@' | ',' | ';' | '<' | '>');
    !local.is_empty()
        && !local.contains(forbidden)
        && !domain.contains(forbidden)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// EvoVoice posts the report's data to the webhook: only an `https://` URL keeps it encrypted
/// (plain `http://` only to this machine's loopback, where nothing crosses a network). A
/// webhook URL may be a capability (a token in its path): errors name its scheme and host only.
fn check_webhook(text: &str) -> Result<()> {
    let url = url::Url::parse(text)
        .map_err(|e| Error::InvalidInput(format!("the webhook URL is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let shown = format!("{}://{host}", url.scheme());
    let loopback = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(Error::InvalidInput(format!(
            "webhook URL {shown}/… must use https:// (EvoVoice sends the report's data to it)"
        )));
    }
    if host.is_empty() {
        return Err(Error::InvalidInput(format!(
            "webhook URL {shown}/… has no host"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    fn invalid(request: EvoVoiceReportRequest) -> String {
        match request.validate() {
            Err(Error::InvalidInput(msg)) => msg,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn a_good_request_passes_and_becomes_the_body() {
        let request = EvoVoiceReportRequest::new(" acc-1 ", day(1), day(31))
            .with_customer_ids(true)
            .with_notify_email("billing@example.com")
            .with_webhook_url("https://hooks.example.com/evovoice");
        request.validate().unwrap();
        let body = serde_json::to_value(request.billing_report()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "startDate": "2024-03-01",
                "endDate": "2024-03-31",
                "includeCustomerIds": true,
                "accountId": "acc-1",
                "emailAddressToNotify": "billing@example.com",
                "webhookUrl": "https://hooks.example.com/evovoice",
            })
        );
        // One day is a valid period.
        EvoVoiceReportRequest::new("acc", day(5), day(5))
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_requests_are_refused() {
        let base = || EvoVoiceReportRequest::new("acc", day(1), day(2));
        assert!(
            invalid(EvoVoiceReportRequest::new("acc", day(2), day(1))).contains("after it ends")
        );
        assert!(
            invalid(EvoVoiceReportRequest::new("  ", day(1), day(2)))
                .contains("account id is empty")
        );
        assert!(invalid(EvoVoiceReportRequest::new("a\nb", day(1), day(2))).contains("control"));
        for email in [
            "",
            "billing",
            "@example.com",
            "a@b",
            "a@.com",
            "a b@example.com",
            "a@b.com;c@d.com",
        ] {
            assert!(
                invalid(base().with_notify_email(email)).contains("not an email"),
                "{email}"
            );
        }
        assert!(invalid(base().with_webhook_url("http://hooks.example.com")).contains("https://"));
        assert!(invalid(base().with_webhook_url("hooks.example.com/x")).contains("not a URL"));
        assert!(invalid(base().with_webhook_url("ftp://hooks.example.com")).contains("https://"));
        // Plain HTTP stays on this machine only; an error never repeats the URL's path (it may
        // hold a token).
        let leaked = invalid(base().with_webhook_url("http://10.0.0.1:80/hooks/t0k3n"));
        assert!(
            leaked.contains("https://") && !leaked.contains("t0k3n"),
            "{leaked}"
        );
        for local in [
            "http://127.0.0.1:8080/hooks/t",
            "http://localhost:1/t",
            "http://[::1]:9/t",
        ] {
            assert!(base().with_webhook_url(local).validate().is_ok(), "{local}");
        }
    }
}
