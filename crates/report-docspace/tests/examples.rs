//! Every example payload of the vendor's page and of FACTS.md (tests/fixtures, see its
//! README) parses into the generated types, and means what it should.

use std::path::{Path, PathBuf};

use report_docspace::api::types::{
    CustomerOperationsReportRequest, DocumentBuilderTaskDto, DocumentBuilderTaskEnvelope,
    ErrorEnvelope, StringEnvelope,
};
use report_docspace::{
    DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, FileId, OperationStatus, OperationType,
    SortOrder, Status, TaskStatus,
};
use serde::de::DeserializeOwned;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn parse<T: DeserializeOwned>(name: &str) -> T {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

fn task(name: &str) -> DocumentBuilderTaskDto {
    parse::<DocumentBuilderTaskEnvelope>(name)
        .response
        .unwrap_or_else(|| panic!("{name} has no task"))
}

const REQUESTS: &[&str] = &[
    "request-node-example.json",
    "request-python-example.json",
    "request-date-with-offset.json",
    "request-all-fields.json",
    "request-all-null.json",
    "request-empty.json",
];
const TASKS: &[&str] = &[
    "task-created.json",
    "task-running-30.json",
    "task-running-60.json",
    "task-completed.json",
    "task-completed-status-name.json",
    "task-failed.json",
    "task-canceled.json",
    "task-unknown-status.json",
    "task-unknown-status-code.json",
];
const ERRORS: &[&str] = &[
    "error-400.json",
    "error-402.json",
    "error-403.json",
    "error-403-tariff.json",
    "error-404.json",
];
const OTHERS: &[&str] = &[
    "no-task.json",
    "presigned-uri.json",
    "document-status-as-documented.json",
];

#[test]
fn every_fixture_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = [REQUESTS, TASKS, ERRORS, OTHERS]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed, "list new fixtures in tests/examples.rs");
}

#[test]
fn request_bodies_parse() {
    for name in REQUESTS {
        parse::<CustomerOperationsReportRequest>(name);
    }
    let node: CustomerOperationsReportRequest = parse("request-node-example.json");
    assert_eq!(
        node.start_date.unwrap().to_rfc3339(),
        "2024-01-01T00:00:00+00:00"
    );
    assert_eq!((node.credit, node.debit), (Some(true), Some(true)));
    assert_eq!(node.participant_name, None);

    // The page's offset form is the same instant in UTC.
    let offset: CustomerOperationsReportRequest = parse("request-date-with-offset.json");
    assert_eq!(
        offset.start_date.unwrap().to_rfc3339(),
        "2008-04-10T02:30:00+00:00"
    );

    let all: CustomerOperationsReportRequest = parse("request-all-fields.json");
    assert_eq!(all.status, Some(OperationStatus::Completed));
    assert_eq!(all.order_type, Some(SortOrder::Descending));
    assert_eq!(all.type_, Some(OperationType::Name("payment".into())));

    let nulls: CustomerOperationsReportRequest = parse("request-all-null.json");
    assert_eq!(nulls, CustomerOperationsReportRequest::default());
    assert_eq!(
        nulls,
        parse::<CustomerOperationsReportRequest>("request-empty.json")
    );
    // What we send for "everything" is the empty body.
    assert_eq!(serde_json::to_string(&nulls).unwrap(), "{}");
}

#[test]
fn task_envelopes_parse() {
    for name in TASKS {
        task(name);
    }
    let created = task("task-created.json");
    assert_eq!(created.status, TaskStatus::Created);
    assert_eq!(created.result_file_id, None);
    assert_eq!(task("task-running-30.json").percentage, Some(30));
    assert_eq!(task("task-running-60.json").status, TaskStatus::Running);

    let done = task("task-completed.json");
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.result_file_id, Some(FileId::Number(12345)));
    // The status as a name means the same as the integer.
    assert_eq!(task("task-completed-status-name.json"), done);

    let failed = task("task-failed.json");
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.is_completed, Some(true));
    assert_eq!(task("task-canceled.json").status, TaskStatus::Canceled);
    assert_eq!(
        task("task-unknown-status.json").status,
        TaskStatus::Unknown("Paused".into())
    );
    assert_eq!(
        task("task-unknown-status-code.json").status,
        TaskStatus::Unknown("9".into())
    );

    let envelope: DocumentBuilderTaskEnvelope = parse("task-running-30.json");
    assert_eq!(
        (envelope.count, envelope.status, envelope.status_code),
        (Some(1), Some(0), Some(200))
    );
    assert_eq!(envelope.links[0].action.as_deref(), Some("GET"));
}

#[test]
fn the_tasks_mean_the_right_job_states() {
    let adapter = DocSpaceAdapter::new(
        DocSpaceClient::new(DocSpaceConfig::new(
            "https://yourportal.onlyoffice.com",
            "sk-test",
        ))
        .unwrap(),
    );
    let status = |name: &str| adapter.status_of(&task(name));
    assert!(
        matches!(status("task-running-30.json"), Status::Pending(p) if p.fraction == Some(0.3))
    );
    assert!(
        matches!(status("task-unknown-status.json"), Status::Pending(p) if p.vendor_state == "Paused")
    );
    assert_eq!(status("task-canceled.json"), Status::Cancelled);
    assert_eq!(
        status("task-failed.json"),
        Status::Failed {
            code: None,
            message: "Tariff service is not configured".into()
        }
    );
    let Status::Ready(artifact) = status("task-completed.json") else {
        panic!("completed is ready");
    };
    // The editor URL is kept for reference but is not where the bytes come from.
    assert_eq!(
        artifact.url,
        "https://yourportal.onlyoffice.com/filehandler.ashx?action=download&fileid=12345"
    );
    assert_eq!(
        artifact.data["editor_url"],
        "https://yourportal.onlyoffice.com/doceditor?fileid=12345"
    );
    assert_eq!(artifact.format.as_deref(), Some("xlsx"));
    assert_eq!(
        artifact.file_name.as_deref(),
        Some("Customer operations report 01.01.2024-31.01.2024.xlsx")
    );
}

#[test]
fn no_task_is_an_envelope_without_response() {
    let envelope: DocumentBuilderTaskEnvelope = parse("no-task.json");
    assert_eq!(envelope.response, None);
    assert_eq!(envelope.count, Some(0));
}

#[test]
fn error_envelopes_parse() {
    for name in ERRORS {
        let envelope: ErrorEnvelope = parse(name);
        assert_eq!(envelope.status, Some(1), "{name}");
        let message = envelope.error.and_then(|e| e.message).unwrap_or_default();
        assert!(!message.is_empty(), "{name}");
    }
    let denied: ErrorEnvelope = parse("error-403.json");
    let info = denied.error.unwrap();
    assert_eq!(info.message.as_deref(), Some("Access denied"));
    assert_eq!(
        info.type_.as_deref(),
        Some("System.Security.SecurityException")
    );
    assert_eq!(info.hresult, Some(-2146233078));
    assert_eq!(denied.status_code, Some(403));
}

#[test]
fn the_presigned_uri_answer_parses() {
    let envelope: StringEnvelope = parse("presigned-uri.json");
    assert!(
        envelope
            .response
            .unwrap()
            .starts_with("https://docspace-storage.")
    );
}

#[test]
fn the_documented_status_fields_are_not_a_task() {
    // The page's `status: "Completed"` / `downloadUrl` do not exist (FACTS.md): such an
    // answer must not pass for a task, nor for the envelope (its `status` is the 0/1 flag).
    let text =
        std::fs::read_to_string(fixtures().join("document-status-as-documented.json")).unwrap();
    assert!(serde_json::from_str::<DocumentBuilderTaskDto>(&text).is_err());
    assert!(serde_json::from_str::<DocumentBuilderTaskEnvelope>(&text).is_err());
}
