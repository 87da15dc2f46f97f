//! Every example payload of the vendor's document (shared/vendors/cloudblue-rde.txt) and of
//! FACTS.md parses into the generated types. The fixtures are the document's examples made
//! valid JSON: the `{ /* Other reports */ }` placeholder entries are dropped (the truncated
//! `…` URLs stay, they are only strings), and the "GET with a body" request is the
//! `POST /reports` body.

use report_cloudblue::api::types::{
    CreateReportRequest, ErrorBody, ReportItem, ReportList, Token, TokenRequest,
};
use report_cloudblue::{
    CloudBlueAdapter, Compression, ReportFormat, ReportStatus, ReportType, Status,
};

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("fixtures/{name}: {e}"))
}

macro_rules! fixture {
    ($name:literal) => {
        parse($name, include_str!(concat!("fixtures/", $name)))
    };
}

#[test]
fn the_list_of_all_reports_parses() {
    let list: ReportList = fixture!("list_all_reports.json");
    assert_eq!(list.data.len(), 7);
    let first = &list.data[0];
    assert_eq!(first.name.as_deref(), Some("withres2"));
    assert_eq!(
        first.format,
        Some(ReportFormat::Xlsx),
        "`XLSX` is read case-insensitively"
    );
    assert_eq!(first.creation_date.as_deref(), Some("2019-11-12T09:51:14Z"));
    assert!(
        first.id.is_none() && first.status.is_none(),
        "the list shows neither"
    );
    let json_reports = list
        .data
        .iter()
        .filter(|r| r.format == Some(ReportFormat::Json))
        .count();
    assert_eq!(json_reports, 3);
    let pagination = list.pagination.expect("pagination");
    assert_eq!(
        (pagination.offset, pagination.limit, pagination.total),
        (Some(0), Some(28), Some(28))
    );
}

#[test]
fn the_list_filtered_by_format_parses_and_its_links_are_gzip_artifacts() {
    let list: ReportList = fixture!("list_json_reports.json");
    assert_eq!(list.data.len(), 3);
    for report in &list.data {
        assert_eq!(report.format, Some(ReportFormat::Json));
        // No status in the list: a download link alone means the report is there.
        let Status::Ready(artifact) = CloudBlueAdapter::status_of(report).unwrap() else {
            panic!("a listed report with a link is ready");
        };
        assert_eq!(artifact.compression, Compression::Gzip, "{}", artifact.url);
        assert!(!artifact.authenticated);
        assert!(
            artifact
                .url
                .starts_with("https://drrde3.blob.core.windows.net/rdecontainer/")
        );
    }
    assert_eq!(list.pagination.and_then(|p| p.total), Some(17));
}

#[test]
fn the_one_time_report_request_parses_as_the_post_body() {
    let body: CreateReportRequest = fixture!("create_report_request.json");
    assert_eq!(body.name, "Daily report");
    assert_eq!(body.customization_name.as_deref(), Some("string"));
    assert_eq!(body.format, Some(ReportFormat::Json));
    assert_eq!(body.start_date, "2019-11-07T17:02:59.000Z");
    assert_eq!(body.end_date.as_deref(), Some("2019-12-07T17:02:59.000Z"));
    // The document's stray `downloadUrl` is not part of the request and is not sent back.
    let sent = serde_json::to_value(&body).unwrap();
    assert!(sent.get("downloadUrl").is_none(), "{sent}");
}

/// cmp.yaml 1.6 requires only `name` and `startDate` of `createReport`.
#[test]
fn a_minimal_one_time_report_request_parses() {
    let body: CreateReportRequest = fixture!("create_report_request_minimal.json");
    assert_eq!(body.name, "Daily report");
    assert_eq!(body.start_date, "2019-11-07T17:02:59.000Z");
    assert_eq!((&body.format, &body.end_date), (&None, &None));
    let sent = serde_json::to_value(&body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"name": "Daily report", "startDate": "2019-11-07T17:02:59.000Z"})
    );
}

/// The vendor's own `unknown` in every enum is a known value, and such a report waits on.
#[test]
fn the_vendors_unknown_values_parse_and_keep_the_job_waiting() {
    let report: ReportItem = fixture!("report_unknown_values.json");
    assert_eq!(report.status, Some(ReportStatus::VendorUnknown));
    assert_eq!(report.type_, Some(ReportType::VendorUnknown));
    assert_eq!(report.format, Some(ReportFormat::VendorUnknown));
    let Status::Pending(progress) = CloudBlueAdapter::status_of(&report).unwrap() else {
        panic!("an `unknown` report is not finished");
    };
    assert_eq!(progress.vendor_state, "unknown");
}

#[test]
fn the_one_time_report_response_parses() {
    let report: ReportItem = fixture!("create_report_response.json");
    assert_eq!(
        report.id.as_deref(),
        Some("f40c942d-ebec-41b9-b604-5ed9ffb6d4f2")
    );
    assert_eq!(report.status, Some(ReportStatus::Completed));
    assert_eq!(report.type_, Some(ReportType::Onetime));
    assert_eq!(report.format, Some(ReportFormat::Json));
    assert_eq!(report.customization_name.as_deref(), Some("string"));
    assert_eq!(
        report.start_date.as_deref(),
        Some("2019-11-07T17:02:59.000Z")
    );
    let Status::Ready(artifact) = CloudBlueAdapter::status_of(&report).unwrap() else {
        panic!("completed means ready");
    };
    // This example's link ends in `.json` (no `.gz`): no decompression is promised.
    assert_eq!(artifact.compression, Compression::None);
    assert_eq!(artifact.format.as_deref(), Some("json"));
}

#[test]
fn the_token_exchange_parses() {
    let request: TokenRequest = fixture!("token_request.json");
    assert_eq!(request.marketplace.as_deref(), Some("eu"));
    // cmp.yaml 1.6: the marketplace is optional (the user's default applies).
    let request: TokenRequest = fixture!("token_request_without_marketplace.json");
    assert_eq!(request.marketplace, None);
    assert_eq!(serde_json::to_string(&request).unwrap(), "{}");
    let token: Token = fixture!("token_response.json");
    assert_eq!(token.token, "eyJwcm...0fQtrLk4RToj51HAmsRXO78");
    assert_eq!(token.expires_in_seconds, Some(1500));
}

#[test]
fn error_bodies_parse_in_both_spellings() {
    let spring: ErrorBody = fixture!("error_timestamp_error.json");
    assert!(spring.timestamp.is_some() && spring.time_stamp.is_none());
    assert_eq!(spring.status, Some(400));
    assert_eq!(spring.error.as_deref(), Some("Bad Request"));
    assert_eq!(
        spring.message.as_deref(),
        Some("startDate must be before endDate")
    );
    assert_eq!(
        spring.correlation_id.as_deref(),
        Some("3f2b8c1e-5d4a-4b7e-9c6f-0a1b2c3d4e5f")
    );

    let legacy: ErrorBody = fixture!("error_timestamp_message.json");
    assert!(legacy.time_stamp.is_some() && legacy.timestamp.is_none());
    assert_eq!(legacy.status, Some(404));
    assert!(legacy.error.is_none());
    assert!(legacy.message.as_deref().unwrap().contains("not found"));
    assert!(
        legacy
            .path
            .as_deref()
            .unwrap()
            .starts_with("/marketplace/eu/reports/")
    );

    let error_only: ErrorBody = fixture!("error_error_only.json");
    assert_eq!(
        error_only.error.as_deref(),
        Some("Invalid or expired token")
    );
    assert!(error_only.message.is_none());
}

#[test]
fn every_state_type_and_format_parses_and_unknown_ones_are_kept() {
    let list: ReportList = fixture!("report_states.json");
    let states: Vec<_> = list
        .data
        .iter()
        .map(|r| r.status.clone().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            ReportStatus::Submitted,
            ReportStatus::Processing,
            ReportStatus::Completed,
            ReportStatus::Error,
            ReportStatus::Submitted,
            ReportStatus::Unknown("archived".into()),
        ]
    );
    let types: Vec<_> = list.data.iter().map(|r| r.type_.clone().unwrap()).collect();
    assert_eq!(
        types,
        [
            ReportType::Daily,
            ReportType::Monthly,
            ReportType::Periodic,
            ReportType::OnInvoice,
            ReportType::Onetime,
            ReportType::Unknown("quarterly".into()),
        ]
    );
    let formats: Vec<_> = list
        .data
        .iter()
        .map(|r| r.format.clone().unwrap())
        .collect();
    assert_eq!(
        formats,
        [
            ReportFormat::Json,
            ReportFormat::Csv,
            ReportFormat::Xlsx,
            ReportFormat::Xml,
            ReportFormat::Json,
            ReportFormat::Unknown("parquet".into()),
        ]
    );
    let statuses: Vec<&str> = list
        .data
        .iter()
        .map(|r| CloudBlueAdapter::status_of(r).unwrap().name())
        .collect();
    assert_eq!(
        statuses,
        [
            "pending", "pending", "ready", "failed", "pending", "pending"
        ]
    );
}
