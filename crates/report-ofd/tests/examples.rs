//! Every JSON example of the OFD.ru document (ofd.txt) parses into the generated models.
//! Examples whose JSON is invalid in the document (an unquoted e-mail, a key with spaces, `...`
//! elisions) are fixed in the fixture files; the fix is the only change.

use report_ofd::api::types;
use report_ofd::{ReportStatus, ReportType};
use serde::de::DeserializeOwned;

fn parse<T: DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

#[test]
fn authorization() {
    let request: types::AuthTokenRequest = parse("auth_request.json");
    assert_eq!(request.login, "12345");
    let token: types::AuthToken = parse("auth_response.json");
    assert_eq!(
        token.auth_token.as_deref(),
        Some("ed38f9e155ce4a7ab3b784606fcd40a1")
    );
    assert_eq!(
        token.expiration_date_utc.as_deref(),
        Some("2021-11-12T10:55:20")
    );
    let refused: types::ErrorEnvelope = parse("auth_refused_403.json");
    assert!(refused.errors.is_empty());
}

#[test]
fn agreement_lookup() {
    let list: types::ReportListEnvelope = parse("agreement_lookup_response.json");
    let data = list.data.expect("Data");
    assert_eq!(
        data.ofd_agreement_id.as_deref(),
        Some("56ddf007-76d7-4157-8e85-2d9fe0704cb4")
    );
    assert_eq!(data.ofd_agreement_limit, Some(500_000));
    let report = &data.list[0];
    assert_eq!(report.status, Some(ReportStatus::Processing));
    assert_eq!(report.report_type, Some(ReportType::CloseShiftReport));
    assert_eq!(report.kkt_count, Some(59));
    assert_eq!(report.emails_to_notify, [""]);
    assert!(
        report
            .cancel_url
            .as_deref()
            .unwrap()
            .ends_with("/cancel?ofdAgreementId=56ddf007-76d7-4157-8e85-2d9fe0704cb4")
    );
}

#[test]
fn generic_envelopes() {
    let ok: types::StatusEnvelope = parse("generic_success_envelope.json");
    assert_eq!(ok.status.as_deref(), Some("Success"));
    let failed: types::ErrorEnvelope = parse("generic_failure_envelope.json");
    assert_eq!(failed.errors.len(), 3);
    assert_eq!(failed.status.as_deref(), Some("Failed"));
    let saved: types::StatusEnvelope = parse("status_success.json");
    assert_eq!(saved.elapsed.as_deref(), Some("00:00:00.0010000"));
}

#[test]
fn create_report() {
    let request: types::CreateReportRequest = parse("create_report_request.json");
    assert_eq!(request.report_type, Some(ReportType::ReceiptReport));
    assert_eq!(request.kkt_list, ["7961d10e-f36a-4cce-a8db-add93309bb9e"]);
    assert_eq!(request.custom_report_id, None);
    assert_eq!(request.date_from, "2021-11-01T00:00:00.000+03:00");
    let response: types::ReportEnvelope = parse("create_report_response.json");
    let report = response.data.expect("Data");
    assert_eq!(report.status, Some(ReportStatus::Todo));
    assert_eq!(
        report.assumptive_complete_time.as_deref(),
        Some("2021-11-15T10:15:44")
    );
}

#[test]
fn report_list_in_the_flat_form() {
    let list: types::ReportListEnvelope = parse("report_list_flat.json");
    assert!(list.data.is_none());
    assert_eq!(list.list[0].status, Some(ReportStatus::Done));
    assert_eq!(list.list[0].report_size, Some(8));
    assert_eq!(list.total_count, Some(9));
}

#[test]
fn delete_report() {
    let deleted: types::DeletedReport = parse("delete_report_response.json");
    assert_eq!(deleted.status.as_deref(), Some("Deleted"));
    assert_eq!(deleted.kkt_count, Some(61));
}

#[test]
fn templates() {
    let templates: Vec<types::ReportTemplate> = parse("report_templates.json");
    assert_eq!(templates[0].fields[0].optional, Some(true));
    let custom: Vec<types::CustomTemplate> = parse("custom_templates.json");
    assert_eq!(custom[0].base_report_type.as_deref(), Some("All"));
    let one: types::CustomTemplate = parse("custom_template.json");
    assert_eq!(one.custom_fields, ["string"]);
    let save: types::SaveCustomTemplateRequest = parse("save_custom_template_request.json");
    assert_eq!(save.fields, ["string"]);
}

#[test]
fn unknown_states_and_types_are_kept() {
    let report: types::ReportInfo =
        serde_json::from_str(r#"{"Id":"x","Status":"Archived","ReportType":"NewReport2030"}"#)
            .unwrap();
    assert_eq!(
        report.status,
        Some(ReportStatus::Unknown("Archived".into()))
    );
    assert_eq!(
        report.report_type,
        Some(ReportType::Unknown("NewReport2030".into()))
    );
    // And they serialize back unchanged.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["Status"], "Archived");
}
