//! Every example payload of evovoice.txt and FACTS.md parses into the generated types. The
//! fixtures under `tests/fixtures/` are the documents' samples verbatim (`"String"`
//! placeholders included) or, where the documents only describe a shape, that shape filled in.

use report_evovoice::ReportStatus;
use report_evovoice::api::types::{BillingReport, ErrorResponse, ReportInfo, ReportList};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The metadata page's `POST /reports/billing` request sample.
#[test]
fn the_billing_request_sample_parses_and_round_trips() {
    let request: BillingReport = parse("billing_request.json");
    assert_eq!(request.start_date.as_deref(), Some("String"));
    assert_eq!(request.end_date.as_deref(), Some("String"));
    assert!(!request.include_customer_ids);
    assert_eq!(request.account_id.as_deref(), Some("String"));
    assert_eq!(request.email_address_to_notify.as_deref(), Some("String"));
    assert_eq!(request.webhook_url.as_deref(), Some("String"));
    let original: serde_json::Value =
        serde_json::from_str(&fixture("billing_request.json")).unwrap();
    assert_eq!(serde_json::to_value(&request).unwrap(), original);
}

/// An empty request is valid on the wire: every field is optional, `includeCustomerIds`
/// defaults to false.
#[test]
fn an_empty_billing_request_parses() {
    let request: BillingReport = serde_json::from_str("{}").unwrap();
    assert_eq!(request, BillingReport::default());
}

/// The metadata page's `ReportInfo` response sample.
#[test]
fn the_report_info_sample_parses() {
    let report: ReportInfo = parse("report_info.json");
    assert_eq!(report.id.as_deref(), Some("String"));
    assert_eq!(report.name.as_deref(), Some("String"));
    assert_eq!(report.status, Some(ReportStatus::Queued));
    assert_eq!(report.status_message.as_deref(), Some("String"));
    assert_eq!(report.date_created.as_deref(), Some("String"));
    assert_eq!(report.date_updated.as_deref(), Some("String"));
    assert_eq!(report.download_link.as_deref(), Some("String"));
    assert_eq!(report.job_id.as_deref(), Some("String"));
    assert_eq!(report.email_address_to_notify.as_deref(), Some("String"));
    assert_eq!(report.server.as_deref(), Some("String"));
}

/// FACTS.md: `GET /reports?accountId=…` answers `{"reports": [ReportInfo, …]}`, with every
/// documented status.
#[test]
fn a_report_list_parses_with_every_status() {
    let list: ReportList = parse("report_list.json");
    let states: Vec<(String, Option<ReportStatus>)> = list
        .reports
        .iter()
        .map(|r| (r.id.clone().unwrap(), r.status.clone()))
        .collect();
    assert_eq!(
        states,
        [
            ("r-queued".into(), Some(ReportStatus::Queued)),
            ("r-running".into(), Some(ReportStatus::Running)),
            ("r-done".into(), Some(ReportStatus::Completed)),
            ("r-failed".into(), Some(ReportStatus::Error)),
        ]
    );
    assert_eq!(
        list.reports[3].status_message.as_deref(),
        Some("No billing data for the period")
    );

    let empty: ReportList = parse("report_list_empty.json");
    assert!(empty.reports.is_empty());
    // ServiceStack leaves out empty collections: no `reports` key is an empty list.
    let missing: ReportList = serde_json::from_str("{}").unwrap();
    assert!(missing.reports.is_empty());
}

/// A state this crate does not know is kept, not rejected, and written back unchanged.
#[test]
fn an_unknown_status_is_kept() {
    let report: ReportInfo = parse("report_unknown_status.json");
    assert_eq!(
        report.status,
        Some(ReportStatus::Unknown("Archived".into()))
    );
    assert_eq!(serde_json::to_value(&report).unwrap()["status"], "Archived");
    // `null` (some ServiceStack configurations write nulls) is no status at all.
    let report: ReportInfo = serde_json::from_str(r#"{"id":"r","status":null}"#).unwrap();
    assert_eq!(report.status, None);
}

/// FACTS.md: ServiceStack's error shape, with field errors and a stack trace.
#[test]
fn the_service_stack_error_shape_parses() {
    let error: ErrorResponse = parse("error_validation.json");
    let status = error.response_status.expect("responseStatus");
    assert_eq!(status.error_code.as_deref(), Some("NotEmpty"));
    assert_eq!(
        status.message.as_deref(),
        Some("'Account Id' must not be empty.")
    );
    assert!(status.stack_trace.unwrap().contains("ValidationException"));
    assert_eq!(status.errors.len(), 1);
    assert_eq!(status.errors[0].field_name.as_deref(), Some("AccountId"));
    assert_eq!(status.errors[0].error_code.as_deref(), Some("NotEmpty"));

    let error: ErrorResponse = parse("error_unauthorized.json");
    let status = error.response_status.expect("responseStatus");
    assert_eq!(status.error_code.as_deref(), Some("Unauthorized"));
    assert!(status.errors.is_empty());
    assert!(status.stack_trace.is_none());
}

/// FACTS.md round 2: the request fields seen across the other report types (`cdr`,
/// `call-history`, …) parse into the shared `ReportRequest` and round-trip.
#[test]
fn the_other_report_types_request_parses_and_round_trips() {
    use report_evovoice::api::types::ReportRequest;
    let request: ReportRequest = parse("report_request_all_fields.json");
    assert_eq!(request.time_zone_id.as_deref(), Some("America/New_York"));
    assert_eq!(request.metric_name.as_deref(), Some("calls"));
    assert_eq!(request.specific_state.as_deref(), Some("Available"));
    assert_eq!(request.include_archived_sessions, Some(true));
    assert_eq!(request.sync_documo_numbers, Some(true));
    assert_eq!(request.types, ["Inbound", "Outbound"]);
    let original: serde_json::Value =
        serde_json::from_str(&fixture("report_request_all_fields.json")).unwrap();
    assert_eq!(serde_json::to_value(&request).unwrap(), original);
}

/// FACTS.md round 2: the endpoints report (`POST /json/reply/EndpointsReport`) takes the
/// shared `ReportRequest` and answers a `ReportInfo` (ServiceStack's `/Date(…)/` dates kept as
/// the strings they are).
#[test]
fn the_endpoints_report_payloads_parse() {
    use report_evovoice::api::types::{ReportInfo, ReportRequest};
    let request: ReportRequest = parse("endpoints_report_request.json");
    assert_eq!(request.account_id.as_deref(), Some("acc-42"));
    assert_eq!(request.types, ["User", "PhoneNumber", "Flow"]);
    assert_eq!(request.start_date, None);
    let original: serde_json::Value =
        serde_json::from_str(&fixture("endpoints_report_request.json")).unwrap();
    assert_eq!(serde_json::to_value(&request).unwrap(), original);
    let answer: ReportInfo = parse("endpoints_report_answer.json");
    assert_eq!(answer.status, Some(report_evovoice::ReportStatus::Queued));
    assert_eq!(
        answer.date_created.as_deref(),
        Some("/Date(1711958400350-0000)/")
    );
    assert_eq!(answer.server.as_deref(), Some("evo-reports-2"));
}
