//! CloudBlue RDE as a [`report_core::ReportAdapter`]: ask for a one-time report, read its
//! state by id, download the file from its pre-signed URL without credentials.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, SubsecRound, Utc};
use report_core::{
    Artifact, Compression, Download, Error, Progress, ReportAdapter, Result, Started, Status,
    Ticket,
};

use crate::VENDOR;
use crate::client::CloudBlueClient;
use crate::filter::ReportFilter;
use crate::generated::types;
use crate::lenient::{ReportFormat, ReportStatus};

/// Parameters of a one-time CloudBlue report.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudBlueReportRequest {
    /// Report name.
    pub name: String,
    /// File format; JSON comes gzip-compressed.
    pub format: ReportFormat,
    /// First day of the period (from 00:00:00 UTC).
    pub from: NaiveDate,
    /// Last day of the period (to 23:59:59.999 UTC).
    pub to: NaiveDate,
    /// Name of the report view (schema customization) to use, if not the default.
    pub customization_name: Option<String>,
}

impl CloudBlueReportRequest {
    /// A report over whole days, `from` and `to` included.
    pub fn new(
        name: impl Into<String>,
        format: ReportFormat,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Self {
        CloudBlueReportRequest {
            name: name.into(),
            format,
            from,
            to,
            customization_name: None,
        }
    }

    /// Uses this report view.
    pub fn with_customization(mut self, customization_name: impl Into<String>) -> Self {
        self.customization_name = Some(customization_name.into());
        self
    }

    /// Checks the request before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if self.name.trim().is_empty() {
            return bad("the report name is empty".into());
        }
        if self.from > self.to {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                self.from, self.to
            ));
        }
        if let ReportFormat::Unknown(format) = &self.format {
            return bad(format!(
                "format {format:?} is not one of json, xml, csv, xlsx"
            ));
        }
        if self
            .customization_name
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return bad("the customization name is blank".into());
        }
        Ok(())
    }

    /// The `POST /reports` body: the period as ISO 8601 instants in UTC, as in the document.
    pub fn body(&self) -> types::CreateReportRequest {
        let instant = |day: NaiveDate, time: NaiveTime| {
            day.and_time(time)
                .and_utc()
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        let end_of_day = NaiveTime::from_hms_milli_opt(23, 59, 59, 999).expect("a valid time");
        types::CreateReportRequest {
            name: self.name.trim().to_string(),
            customization_name: self.customization_name.clone(),
            format: Some(self.format.clone()),
            start_date: instant(self.from, NaiveTime::MIN),
            end_date: Some(instant(self.to, end_of_day)),
        }
    }
}

/// The CloudBlue report job adapter. Cancelling and deleting are not offered by the API
/// ([`Error::Unsupported`]).
#[derive(Clone, Debug)]
pub struct CloudBlueAdapter {
    client: CloudBlueClient,
}

impl CloudBlueAdapter {
    pub fn new(client: CloudBlueClient) -> Self {
        CloudBlueAdapter { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &CloudBlueClient {
        &self.client
    }

    /// The job status a report means. A completed report without a `downloadUrl` is a decode
    /// error (transient: the job asks again within its error budget).
    pub fn status_of(report: &types::ReportItem) -> Result<Status> {
        let status = report.status.as_ref().map(ReportStatus::normalized);
        let id = report.id.as_deref().unwrap_or("?");
        match status {
            Some(ReportStatus::Completed) => Ok(Status::Ready(artifact(report)?)),
            // The document's report list has no status at all, only the link.
            None if report.download_url.is_some() => Ok(Status::Ready(artifact(report)?)),
            Some(ReportStatus::Error) => Ok(Status::Failed {
                code: None,
                message: format!(
                    "CloudBlue could not generate report {id} ({})",
                    report.name.as_deref().unwrap_or("unnamed")
                ),
            }),
            other => {
                let known = matches!(
                    other,
                    Some(ReportStatus::Submitted | ReportStatus::Processing)
                );
                let state = other.map_or_else(String::new, |s| s.to_string());
                if !known {
                    tracing::warn!(state = %state, report = id, "unknown CloudBlue report state; still waiting");
                }
                Ok(Status::Pending(Progress::state(state)))
            }
        }
    }
}

/// The artifact of a finished report: a pre-signed URL that must get no credentials, gzip when
/// the file name says `.gz`.
fn artifact(report: &types::ReportItem) -> Result<Artifact> {
    let url = report
        .download_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing("getReportById", "downloadUrl"))?;
    let parsed = url::Url::parse(url).map_err(|e| Error::Decode {
        vendor: VENDOR,
        operation: "getReportById".into(),
        message: format!("downloadUrl is not a URL: {e}"),
        // Without the query: it holds the signature.
        excerpt: report_core::excerpt(url.split('?').next().unwrap_or_default().as_bytes()),
        source: None,
    })?;
    let file_name = parsed
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .map(file_name_of)
        .filter(|name| !name.is_empty());
    let gzip = file_name
        .as_deref()
        .is_some_and(|name| name.to_ascii_lowercase().ends_with(".gz"));
    let mut data = std::collections::BTreeMap::new();
    if let Some(id) = &report.id {
        data.insert("id".to_string(), id.clone());
    }
    if let Some(name) = &report.name {
        data.insert("name".to_string(), name.clone());
    }
    if let Some(created) = &report.creation_date {
        data.insert("creation_date".to_string(), created.clone());
    }
    Ok(Artifact {
        url: url.to_string(),
        file_name,
        format: report.format.as_ref().map(|f| f.as_str().to_string()),
        size: None,
        compression: if gzip {
            Compression::Gzip
        } else {
            Compression::None
        },
        // Never: the URL carries its own signature, and CloudBlue's credentials must not
        // reach the blob host.
        authenticated: false,
        data,
    })
}

/// The blob name of a URL's last path segment, percent-decoded (`Daily%20report.json.gz` →
/// `Daily report.json.gz`), without any folder part an encoded `/` could smuggle in.
fn file_name_of(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    let name = String::from_utf8(out).unwrap_or_else(|_| segment.to_string());
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base == "." || base == ".." {
        String::new()
    } else {
        base.to_string()
    }
}

impl ReportAdapter for CloudBlueAdapter {
    type Request = CloudBlueReportRequest;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn start(&self, request: &CloudBlueReportRequest) -> Result<Started> {
        self.client.before_start(request.validate()).await?;
        let report = self.client.create_report(&request.body()).await?;
        let id = report
            .id
            .clone()
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| missing("createReport", "id"))?;
        // A status the start answer cannot settle is left to the first poll.
        let status = CloudBlueAdapter::status_of(&report).ok();
        Ok(Started {
            ticket: Ticket::new(VENDOR, id, Utc::now()),
            status,
        })
    }

    /// The reports of this name and format created since `since` (the list's `from`/`to`
    /// filter creation days and return every match), narrowed to this request's period.
    async fn find_started(
        &self,
        request: &CloudBlueReportRequest,
        since: DateTime<Utc>,
    ) -> Result<Option<Ticket>> {
        request.validate()?;
        let today = Utc::now().date_naive();
        let filter = ReportFilter {
            name: Some(request.name.trim().to_string()),
            ..ReportFilter::period(since.date_naive().min(today), today)
        }
        .with_format(request.format.clone());
        let body = request.body();
        let candidates = self
            .client
            .reports(&filter)
            .await?
            .data
            .into_iter()
            .filter(|report| made(&body, report))
            .filter_map(|report| {
                let id = report.id.filter(|id| !id.trim().is_empty())?;
                let created = report.creation_date.as_deref().and_then(instant);
                Some((created, Ticket::new(VENDOR, id, Utc::now())))
            });
        report_core::__private::one_started(VENDOR, since, candidates)
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        ticket.expect_vendor(VENDOR)?;
        let report = self.client.report(&ticket.id).await?;
        CloudBlueAdapter::status_of(&report)
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        let gzip = artifact.compression == Compression::Gzip;
        self.client.open(&artifact.url, offset, gzip).await
    }
}

/// Whether a listed report may be what `body` started: the same name, format, period and
/// customization. A field the listing lacks does not rule it out.
fn made(body: &types::CreateReportRequest, report: &types::ReportItem) -> bool {
    let same = |listed: &Option<String>, sent: Option<&str>| match (listed, sent) {
        (Some(listed), Some(sent)) => match (instant(listed), instant(sent)) {
            (Some(a), Some(b)) => a == b,
            _ => listed.trim() == sent.trim(),
        },
        _ => true,
    };
    report
        .name
        .as_deref()
        .is_none_or(|name| name.trim() == body.name)
        && report
            .format
            .as_ref()
            .zip(body.format.as_ref())
            .is_none_or(|(a, b)| a.as_str().eq_ignore_ascii_case(b.as_str()))
        && same(&report.start_date, Some(&body.start_date))
        && same(&report.end_date, body.end_date.as_deref())
        && same(
            &report.customization_name,
            body.customization_name.as_deref(),
        )
}

/// An RFC 3339 time to the second (listings may drop the milliseconds sent).
fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.with_timezone(&Utc).trunc_subsecs(0))
}

fn missing(operation: &str, field: &str) -> Error {
    Error::missing_field(VENDOR, operation, field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 11, d).unwrap()
    }

    fn item(json: serde_json::Value) -> types::ReportItem {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn requests_are_checked_before_sending() {
        let ok = CloudBlueReportRequest::new("Daily report", ReportFormat::Json, day(5), day(7));
        ok.validate().unwrap();
        let same_day = CloudBlueReportRequest {
            to: day(5),
            ..ok.clone()
        };
        same_day.validate().unwrap();
        let invalid = [
            CloudBlueReportRequest {
                name: "  ".into(),
                ..ok.clone()
            },
            CloudBlueReportRequest {
                from: day(8),
                ..ok.clone()
            },
            CloudBlueReportRequest {
                format: ReportFormat::Unknown("pdf".into()),
                ..ok.clone()
            },
            ok.clone().with_customization(""),
        ];
        for request in invalid {
            let err = request.validate().unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn the_body_covers_whole_days_in_utc() {
        let body = CloudBlueReportRequest::new("Daily report", ReportFormat::Json, day(7), day(9))
            .with_customization("cmp")
            .body();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "Daily report",
                "customizationName": "cmp",
                "format": "json",
                "startDate": "2019-11-07T00:00:00.000Z",
                "endDate": "2019-11-09T23:59:59.999Z",
            })
        );
    }

    #[test]
    fn states_map_to_job_statuses() {
        let pending = |s: &str| {
            let status =
                CloudBlueAdapter::status_of(&item(serde_json::json!({"id": "r", "status": s})));
            match status.unwrap() {
                Status::Pending(p) => p.vendor_state,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(pending("submitted"), "submitted");
        assert_eq!(pending("processing"), "processing");
        assert_eq!(pending("archived"), "archived");

        let failed =
            CloudBlueAdapter::status_of(&item(serde_json::json!({"id": "r", "status": "error"})));
        assert!(matches!(failed.unwrap(), Status::Failed { .. }));

        let no_link = CloudBlueAdapter::status_of(&item(
            serde_json::json!({"id": "r", "status": "completed"}),
        ));
        assert!(matches!(no_link.unwrap_err(), Error::Decode { .. }));
    }

    #[test]
    fn a_completed_report_is_a_pre_signed_gzip_artifact() {
        let report = item(serde_json::json!({
            "id": "f40c942d", "name": "daily-dr1", "status": "COMPLETED", "format": "JSON",
            "downloadUrl": "https://drrde3.blob.core.windows.net/rdecontainer/daily-dr1.2019-11-14.json.gz?sig=abc%3D&sr=b"
        }));
        let Status::Ready(artifact) = CloudBlueAdapter::status_of(&report).unwrap() else {
            panic!("not ready");
        };
        assert!(!artifact.authenticated);
        assert_eq!(artifact.compression, Compression::Gzip);
        assert_eq!(artifact.format.as_deref(), Some("json"));
        assert_eq!(
            artifact.file_name.as_deref(),
            Some("daily-dr1.2019-11-14.json.gz")
        );

        let xlsx = item(serde_json::json!({
            "status": "completed", "format": "XLSX",
            "downloadUrl": "https://drrde3.blob.core.windows.net/rdecontainer/withres2.xlsx?sig=rb8"
        }));
        let Status::Ready(artifact) = CloudBlueAdapter::status_of(&xlsx).unwrap() else {
            panic!("not ready");
        };
        assert_eq!(artifact.compression, Compression::None);
        assert_eq!(artifact.format.as_deref(), Some("xlsx"));
    }

    #[test]
    fn file_names_are_decoded_and_kept_inside_their_folder() {
        assert_eq!(
            file_name_of("Daily%20report.x.json.gz"),
            "Daily report.x.json.gz"
        );
        assert_eq!(
            file_name_of("dr-rep1.2019-11-05.13-59-13.398+0100.xlsx"),
            "dr-rep1.2019-11-05.13-59-13.398+0100.xlsx"
        );
        assert_eq!(file_name_of("..%2F..%2Fetc%2Fpasswd"), "passwd");
        assert_eq!(file_name_of("%2E%2E"), "");
        assert_eq!(file_name_of("100%25%zz"), "100%%zz");
    }
}
