//! Every example payload of shared/vendors/metakocka.md and FACTS.md, as fixture files, parses
//! into the generated types and means what the documents say. The document's examples miss
//! commas; the fixtures are the same payloads with the commas put back.

use std::path::Path;

use report_metakocka::api::types::{ReportAnswer, ReportRequest};
use report_metakocka::{
    Error, MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, ReportFormat, Status,
};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) -> T {
    let text = fixture(name);
    let value: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Nothing is lost or retyped on the way back: every value stays a JSON string.
    let original: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        serde_json::to_value(&value).unwrap(),
        original,
        "{name} round trip"
    );
    value
}

fn adapter() -> MetaKockaAdapter {
    // No request is sent: the adapter only reads answers here.
    MetaKockaAdapter::new(MetaKockaClient::new(MetaKockaConfig::new("16", "8899")).unwrap())
}

#[test]
fn start_request() {
    let request: ReportRequest = parse("start_request.json");
    assert_eq!(request.secret_key.expose(), "8899");
    assert_eq!(request.company_id, "16");
    assert_eq!(request.report_id.as_deref(), Some("149"));
    assert_eq!(request.async_.as_deref(), Some("true"));
    assert_eq!(request.token, None);
    assert_eq!(request.params.len(), 2);
    assert_eq!(
        request.params[1].type_,
        "ADD_ATT_HIDDEN_MK_BACKGROUND_IMAGE_ID"
    );
    assert_eq!(request.params[1].value, "1600161321");
    assert!(
        !format!("{request:?}").contains("8899"),
        "the secret key shows in Debug"
    );
}

#[test]
fn start_answer() {
    let answer: ReportAnswer = parse("start_answer.json");
    assert_eq!(answer.opr_code, "0");
    assert_eq!(answer.opr_time_no_lock_ms.as_deref(), Some("0"));
    assert_eq!(
        answer.token.as_deref(),
        Some("09dfb619-388c-48ec-97c3-cd56eade5fb0")
    );
    assert_eq!(answer.progress, None);
    assert_eq!(answer.url, None);
}

#[test]
fn poll_request() {
    let request: ReportRequest = parse("poll_request.json");
    assert_eq!(
        request.token.as_deref(),
        Some("09dfb619-388c-48ec-97c3-cd56eade5fb0")
    );
    assert_eq!(request.async_.as_deref(), Some("true"));
    assert!(request.params.is_empty());
}

#[test]
fn in_progress_answer_with_another_token() {
    let answer: ReportAnswer = parse("progress_answer.json");
    assert_eq!(
        answer.token.as_deref(),
        Some("a92b3060-53ab-451c-9d6a-19f56e84499f")
    );
    match adapter().status_of(&answer, None).unwrap() {
        Status::Pending(progress) => {
            assert_eq!(progress.fraction, Some(9.0 / 23.0));
            assert_eq!(
                progress.message.as_deref(),
                Some("Priprava podatkov za račun BC-MK-328 9 / 23")
            );
            assert_eq!(progress.vendor_state, "printing");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn completed_answer() {
    let answer: ReportAnswer = parse("completed_answer.json");
    match adapter()
        .status_of(&answer, Some(&ReportFormat::Poi))
        .unwrap()
    {
        Status::Ready(artifact) => {
            assert_eq!(
                artifact.url,
                "https://main.metakocka.si/download/report/09dfb619-388c-48ec-97c3-cd56eade5fb0"
            );
            assert!(!artifact.authenticated, "download links get no credentials");
            assert_eq!(artifact.format.as_deref(), Some("xlsx"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_answer() {
    let answer: ReportAnswer = parse("error_answer.json");
    match adapter().status_of(&answer, None).unwrap_err() {
        Error::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(status, None, "errors come with HTTP 200");
            assert_eq!(code.as_deref(), Some("6"));
            assert_eq!(message, "Report with this token does not exist.");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn facts_unknown_document_type() {
    let answer: ReportAnswer = parse("unknown_document_type.json");
    assert_eq!(answer.opr_time_ms.as_deref(), Some("348"));
    let err = report_metakocka::check_answer(&answer).unwrap_err();
    assert_eq!(err.vendor_code(), Some("2"));
    assert!(
        err.to_string().contains("Unknown document type : …"),
        "{err}"
    );
}

/// FACTS round 2: the accounting export's request, answer and error answer parse.
#[test]
fn the_accounting_export_payloads_parse() {
    use report_metakocka::api::types::{AccountingExportAnswer, AccountingExportRequest};
    let request: AccountingExportRequest = parse("accounting_export_request.json");
    assert_eq!(request.profile_name_list, ["Izvoz knjiženja", "42"]);
    assert_eq!(request.from_date, "2026-01-01+02:00");
    assert_eq!(request.export_attachment.as_deref(), Some("false"));
    let answer: AccountingExportAnswer = parse("accounting_export_answer.json");
    assert_eq!(answer.opr_code, "0");
    assert_eq!(answer.job_id.as_deref(), Some("3f1c9a7e52b84d0c"));
    assert!(
        answer
            .result_url
            .as_deref()
            .unwrap()
            .starts_with("https://mk-exports.s3.")
    );
    assert_eq!(answer.opr_time_ms.as_deref(), Some("17559"));
    let error: AccountingExportAnswer = parse("accounting_export_error.json");
    assert_eq!(error.opr_code, "2");
    assert_eq!(
        error.error_desc.as_deref(),
        Some("Unknown export profile : Izvoz X")
    );
}

/// FACTS round 2: `bg` is one of MetaKocka's locales.
#[test]
fn the_bulgarian_locale_is_accepted() {
    use report_metakocka::MetaKockaReportRequest;
    let request = MetaKockaReportRequest::new("149", ReportFormat::Pdf).with_locale("bg");
    request.validate().expect("bg is a locale");
    assert_eq!(request.locale.as_deref(), Some("bg"));
}

/// FACTS round 2: the spec names both spellings of the period (`…_FROM`/`…_TO` and the
/// Slovenian `…_OD`/`…_DO`); the client's constants are the spec's names.
#[test]
fn the_spec_names_both_spellings_of_the_period() {
    use report_metakocka::api::types::ReportParamName as P;
    for (spec, ours) in [
        (P::ReportType, report_metakocka::REPORT_TYPE),
        (
            P::AddAttHiddenDefaultLocale,
            report_metakocka::DEFAULT_LOCALE,
        ),
        (P::AddAttDateMkDatumFrom, report_metakocka::DATE_FROM),
        (P::AddAttDateMkDatumTo, report_metakocka::DATE_TO),
        (P::AddAttDateMkDatumOd, report_metakocka::DATE_FROM_OD),
        (P::AddAttDateMkDatumDo, report_metakocka::DATE_TO_DO),
    ] {
        assert_eq!(spec.to_string(), ours);
        let parsed: P = serde_json::from_value(serde_json::json!(ours)).unwrap();
        assert_eq!(parsed, spec);
    }
}
