//! Report jobs against httpmock servers, with the typed mocks of the `mock` feature and a
//! virtual clock, so every wait is instant.
//!
//! httpmock mocks are stateless: a report "progresses" by deleting one list mock and creating
//! the next between polls.

use std::sync::Arc;

use httpmock::MockServer;
use report_evovoice::api::types::{
    self, ErrorResponse, ReportInfo, ReportList, ResponseError, ResponseStatus,
};
use report_evovoice::chrono::{DateTime, NaiveDate};
use report_evovoice::mock::MockServerExt;
use report_evovoice::{
    DOWNLOAD_LINK, DownloadOptions, Error, EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig,
    EvoVoiceErrorCode, EvoVoiceReportRequest, Job, REPORT_NOT_FOUND, ReportStatus, Status, Ticket,
    USER_AGENT, VirtualClock, WaitPolicy,
};

const USER: &str = "evo-user";
const PASSWORD: &str = "s3cret-pass";
/// `Basic base64("evo-user:s3cret-pass")`.
const BASIC: &str = "Basic ZXZvLXVzZXI6czNjcmV0LXBhc3M=";
const ACCOUNT: &str = "acc-42";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn adapter(server: &MockServer) -> EvoVoiceAdapter {
    let config = EvoVoiceConfig::new(USER, PASSWORD).with_base_url(server.base_url());
    EvoVoiceAdapter::new(EvoVoiceClient::new(config).expect("valid config"))
}

fn request() -> EvoVoiceReportRequest {
    let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    EvoVoiceReportRequest::new(ACCOUNT, day(1), day(31))
        .with_customer_ids(true)
        .with_notify_email("billing@example.com")
        .with_webhook_url("https://hooks.example.com/evovoice")
}

fn report(id: &str, status: &str) -> ReportInfo {
    ReportInfo {
        id: Some(id.into()),
        name: Some("Billing March 2024".into()),
        status: Some(status.parse().unwrap()),
        date_created: Some("2024-04-01T08:00:00Z".into()),
        ..ReportInfo::default()
    }
}

fn list(reports: Vec<ReportInfo>) -> ReportList {
    ReportList { reports }
}

fn service_stack_error(code: &str, message: &str) -> ErrorResponse {
    ErrorResponse {
        response_status: Some(ResponseStatus {
            error_code: Some(code.into()),
            message: Some(message.into()),
            stack_trace: None,
            errors: Vec::new(),
        }),
    }
}

/// Starts a job in virtual time: backoff sleeps return at once.
async fn start(adapter: EvoVoiceAdapter) -> report_evovoice::Result<Job<EvoVoiceAdapter>> {
    let clock = Arc::new(VirtualClock::new(DateTime::UNIX_EPOCH));
    let policy = WaitPolicy::default().with_jitter(0.0).with_seed(1);
    Job::start_with_clock(adapter, &request(), policy, clock).await
}

/// A started report `r-1` (`Queued`).
fn mock_start(server: &MockServer) -> httpmock::Mock<'_> {
    server.create_billing_report(|when, then| {
        when.body(&request().billing_report());
        then.ok(&report("r-1", "Queued"));
    })
}

/// The account's report list, holding `reports`.
fn mock_list<'a>(server: &'a MockServer, reports: Vec<ReportInfo>) -> httpmock::Mock<'a> {
    server.list_reports(|when, then| {
        when.account_id(ACCOUNT);
        then.ok(&list(reports));
    })
}

#[tokio::test]
async fn a_report_runs_from_start_to_download_and_delete() {
    let server = MockServer::start_async().await;
    let started = mock_start(&server);
    let job = start(adapter(&server)).await.expect("started");

    // The ticket finds the report again later: vendor, report id, account id.
    let ticket = job.ticket();
    assert_eq!(
        (ticket.vendor.as_str(), ticket.id.as_str()),
        ("evovoice", "r-1")
    );
    assert_eq!(ticket.get("account_id"), Some(ACCOUNT));
    started.assert_async().await;

    // Running: the list shows it among other reports.
    let running = mock_list(
        &server,
        vec![report("other", "Completed"), report("r-1", "Running")],
    );
    match job.poll().await.expect("poll") {
        Status::Pending(p) => assert_eq!(p.vendor_state, "Running"),
        other => panic!("expected pending, got {other:?}"),
    }
    running.delete_async().await;

    // Completed: the wait sees the start's `Queued`, then the completed report.
    let mut done = report("r-1", "Completed");
    done.download_link = Some("/reports/r-1.xlsx".into());
    let completed = mock_list(&server, vec![done]);
    let mut seen = Vec::new();
    let artifact = job
        .wait_with(|s| {
            seen.push(match s {
                Status::Pending(p) => p.vendor_state.clone(),
                other => other.name().to_string(),
            })
        })
        .await
        .expect("ready");
    assert_eq!(seen, ["Queued", "ready"]);
    assert_eq!(artifact.url, server.url("/reports/r-1.xlsx"));
    assert!(artifact.authenticated);
    assert_eq!(artifact.format.as_deref(), Some("xlsx"));
    assert_eq!(
        artifact.data.get(DOWNLOAD_LINK),
        Some(&server.url("/reports/r-1.xlsx"))
    );
    completed.assert_async().await;

    // The file, named by Content-Disposition.
    let content = b"PK\x03\x04 fake xlsx bytes".repeat(100);
    let file = server.download_report(|when, then| {
        when.id("r-1");
        then.into_inner()
            .status(200)
            .header("content-type", XLSX)
            .header(
                "content-disposition",
                "attachment; filename=\"billing-2024-03.xlsx\"",
            )
            .body(&content);
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.xlsx");
    let summary = job
        .download_to(&artifact, &dest, DownloadOptions::default())
        .await
        .expect("downloaded");
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert_eq!(summary.bytes, content.len() as u64);
    assert_eq!(
        summary.server_file_name.as_deref(),
        Some("billing-2024-03.xlsx")
    );
    file.assert_async().await;

    // Deleted on the server.
    let deleted = server.delete_report(|when, then| {
        when.id("r-1");
        then.no_content();
    });
    job.delete().await.expect("deleted");
    deleted.assert_async().await;
}

#[tokio::test]
async fn a_ticket_resumes_the_job_elsewhere() {
    let server = MockServer::start_async().await;
    let ticket = Ticket::new("evovoice", "r-1", DateTime::UNIX_EPOCH).with("account_id", ACCOUNT);
    let ticket = Ticket::from_json(&ticket.to_json()).unwrap();
    let _list = mock_list(&server, vec![report("r-1", "Completed")]);
    let job = Job::resume(adapter(&server), ticket, WaitPolicy::default()).unwrap();
    assert!(matches!(job.poll().await.unwrap(), Status::Ready(_)));

    // A ticket without the account cannot be polled: reports are listed per account.
    let bare = Ticket::new("evovoice", "r-1", DateTime::UNIX_EPOCH);
    let job = Job::resume(adapter(&server), bare, WaitPolicy::default()).unwrap();
    let err = job.poll().await.unwrap_err();
    assert!(
        matches!(&err, Error::Ticket(m) if m.contains("account_id")),
        "{err}"
    );
}

#[tokio::test]
async fn a_vendor_side_failure_ends_the_job_with_the_status_message() {
    let server = MockServer::start_async().await;
    let _start = mock_start(&server);
    let job = start(adapter(&server)).await.unwrap();
    let mut failed = report("r-1", "Error");
    failed.status_message = Some("No billing data for the period".into());
    let _list = mock_list(&server, vec![failed]);
    let err = job.wait().await.unwrap_err();
    match &err {
        Error::JobFailed {
            vendor, message, ..
        } => {
            assert_eq!(*vendor, "evovoice");
            assert_eq!(message, "No billing data for the period");
        }
        other => panic!("expected JobFailed, got {other}"),
    }
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error() {
    let server = MockServer::start_async().await;
    let refused = server.create_billing_report(|_, then| {
        then.client_error(
            401,
            &service_stack_error("Unauthorized", "Invalid UserName or Password"),
        );
    });
    let err = start(adapter(&server)).await.unwrap_err();
    match &err {
        Error::Auth {
            vendor,
            status,
            message,
        } => {
            assert_eq!((*vendor, *status), ("evovoice", 401));
            assert_eq!(message, "Invalid UserName or Password");
        }
        other => panic!("expected Auth, got {other}"),
    }
    assert_eq!(
        EvoVoiceErrorCode::of(&err),
        Some(EvoVoiceErrorCode::Unauthenticated)
    );
    // Not retried: a start that reached the server is never sent twice.
    assert_eq!(refused.calls_async().await, 1);
    assert!(!err.to_string().contains(PASSWORD), "{err}");
}

#[tokio::test]
async fn service_stack_errors_keep_status_code_and_field_errors() {
    let server = MockServer::start_async().await;
    let adapter = adapter(&server);
    let client = adapter.client();

    // 400 with field errors: the code, and every field in the message.
    let mut invalid = service_stack_error("NotEmpty", "'Account Id' must not be empty.");
    invalid.response_status.as_mut().unwrap().errors = vec![ResponseError {
        error_code: Some("NotEmpty".into()),
        field_name: Some("AccountId".into()),
        message: Some("'Account Id' must not be empty.".into()),
    }];
    let mut m = server.list_reports(|_, then| {
        then.client_error(400, &invalid);
    });
    let err = client.reports(ACCOUNT).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { status: Some(400), code: Some(c), message, .. }
            if c == "NotEmpty" && message.contains("AccountId: 'Account Id' must not be empty.")),
        "{err}"
    );
    assert_eq!(
        EvoVoiceErrorCode::of(&err),
        Some(EvoVoiceErrorCode::BadRequest)
    );
    m.delete_async().await;

    // 403, 404, 405, 500 with ServiceStack bodies.
    for (status, code, kind) in [
        (403, "Forbidden", EvoVoiceErrorCode::Forbidden),
        (404, "NotFound", EvoVoiceErrorCode::NotFound),
        (405, "NotSupported", EvoVoiceErrorCode::NotSupported),
        (
            500,
            "NullReferenceException",
            EvoVoiceErrorCode::ServerError,
        ),
    ] {
        let body = service_stack_error(code, "nope");
        m = server.list_reports(|_, then| {
            then.into_inner().status(status).json_body_obj(&body);
        });
        let err = client.reports(ACCOUNT).await.unwrap_err();
        assert_eq!(err.http_status(), Some(status), "{err}");
        assert_eq!(err.vendor_code(), Some(code), "{err}");
        assert_eq!(EvoVoiceErrorCode::of(&err), Some(kind), "{err}");
        assert_eq!(err.is_transient(), status == 500, "{err}");
        m.delete_async().await;
    }

    // An HTML error page from a proxy keeps its status (and a 401 without a body is still Auth).
    m = server.list_reports(|_, then| {
        then.into_inner()
            .status(502)
            .header("content-type", "text/html")
            .body("<html><body>Bad Gateway</body></html>");
    });
    let err = client.reports(ACCOUNT).await.unwrap_err();
    assert_eq!(err.http_status(), Some(502), "{err}");
    assert!(err.to_string().contains("Bad Gateway"), "{err}");
    assert!(err.is_transient());
    m.delete_async().await;
    m = server.list_reports(|_, then| {
        then.into_inner().status(401);
    });
    let err = client.reports(ACCOUNT).await.unwrap_err();
    assert!(matches!(err, Error::Auth { status: 401, .. }), "{err}");
    m.delete_async().await;
}

#[tokio::test]
async fn a_malformed_body_is_a_decode_error_with_an_excerpt() {
    let server = MockServer::start_async().await;
    let _start = mock_start(&server);
    let job = start(adapter(&server)).await.unwrap();
    let _list = server.list_reports(|_, then| {
        then.into_inner()
            .status(200)
            .header("content-type", "application/json")
            .body(r#"{"reports": [{"id": "r-1", "status": "Runn"#);
    });
    let err = job.poll().await.unwrap_err();
    match &err {
        Error::Decode {
            vendor,
            operation,
            excerpt,
            ..
        } => {
            assert_eq!(*vendor, "evovoice");
            assert_eq!(operation, "listReports");
            assert!(
                excerpt.starts_with(r#"{"reports": [{"id": "r-1""#),
                "{excerpt}"
            );
        }
        other => panic!("expected Decode, got {other}"),
    }

    // A start answer without an id cannot be followed.
    let server = MockServer::start_async().await;
    let _start = server.create_billing_report(|_, then| {
        then.ok(&ReportInfo::default());
    });
    let err = start(adapter(&server)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Decode { message, .. } if message.contains("`id`")),
        "{err}"
    );
}

#[tokio::test]
async fn cancel_is_unsupported() {
    let server = MockServer::start_async().await;
    let _start = mock_start(&server);
    let job = start(adapter(&server)).await.unwrap();
    let err = job.cancel().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                vendor: "evovoice",
                operation: "cancel"
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "evovoice does not support cancel");
}

#[tokio::test]
async fn a_report_missing_from_the_list_is_a_typed_error() {
    let server = MockServer::start_async().await;
    let _start = mock_start(&server);
    let job = start(adapter(&server)).await.unwrap();
    let list = mock_list(&server, vec![report("someone-else", "Completed")]);
    let err = job.wait().await.unwrap_err();
    match &err {
        Error::Api {
            vendor,
            status,
            code,
            message,
            ..
        } => {
            assert_eq!((*vendor, *status), ("evovoice", None));
            assert_eq!(code.as_deref(), Some(REPORT_NOT_FOUND));
            assert!(
                message.contains("r-1") && message.contains(ACCOUNT),
                "{message}"
            );
        }
        other => panic!("expected Api, got {other}"),
    }
    assert_eq!(
        EvoVoiceErrorCode::of(&err),
        Some(EvoVoiceErrorCode::ReportMissing)
    );
    // Not transient: the wait stopped at the first answer.
    assert_eq!(list.calls_async().await, 1);
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    let server = MockServer::start_async().await;
    let anything = server
        .mock_async(|_, then| {
            then.status(500);
        })
        .await;
    let day = |d| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
    for bad in [
        EvoVoiceReportRequest::new(ACCOUNT, day(31), day(1)),
        EvoVoiceReportRequest::new("", day(1), day(31)),
        request().with_webhook_url("http://hooks.example.com/evovoice"),
        request().with_notify_email("not-an-address"),
    ] {
        let clock = Arc::new(VirtualClock::new(DateTime::UNIX_EPOCH));
        let err = Job::start_with_clock(adapter(&server), &bad, WaitPolicy::default(), clock)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }
    assert_eq!(anything.calls_async().await, 0);
}

#[tokio::test]
async fn credentials_and_user_agent_go_to_the_api_origin_only() {
    let server = MockServer::start_async().await;
    let foreign = MockServer::start_async().await;

    // Every API request carries our User-Agent and the Basic credentials.
    let started = server.create_billing_report(|when, then| {
        when.into_inner()
            .header("authorization", BASIC)
            .header("user-agent", USER_AGENT);
        then.ok(&report("r-1", "Queued"));
    });
    let job = start(adapter(&server)).await.expect("authenticated start");
    started.assert_async().await;

    let mut done = report("r-1", "Completed");
    done.download_link = Some(foreign.url("/files/r-1.xlsx"));
    let listed = server.list_reports(|when, then| {
        when.account_id(ACCOUNT)
            .into_inner()
            .header("authorization", BASIC)
            .header("user-agent", USER_AGENT);
        then.ok(&list(vec![done]));
    });
    let artifact = job.wait().await.expect("ready");
    listed.assert_async().await;

    // The API's own file URL gets them too.
    let own = server.download_report(|when, then| {
        when.id("r-1")
            .into_inner()
            .header("authorization", BASIC)
            .header("user-agent", USER_AGENT);
        then.into_inner()
            .status(200)
            .header("content-type", XLSX)
            .body("own");
    });
    let dir = tempfile::tempdir().unwrap();
    job.download_to(
        &artifact,
        dir.path().join("own.xlsx"),
        DownloadOptions::default(),
    )
    .await
    .expect("own download");
    own.assert_async().await;

    // The report's downloadLink on another origin gets no credentials, only the User-Agent.
    let leaked = foreign
        .mock_async(|when, then| {
            when.header_exists("authorization");
            then.status(500);
        })
        .await;
    let clean = foreign
        .mock_async(|when, then| {
            when.path("/files/r-1.xlsx")
                .header_missing("authorization")
                .header("user-agent", USER_AGENT);
            then.status(200)
                .header("content-disposition", "attachment; filename=\"r-1.xlsx\"")
                .body("foreign");
        })
        .await;
    let link = job
        .adapter()
        .download_link_artifact(&artifact)
        .expect("a download link");
    assert_eq!(link.url, foreign.url("/files/r-1.xlsx"));
    assert!(!link.authenticated);
    let dest = dir.path().join("foreign.xlsx");
    job.download_to(&link, &dest, DownloadOptions::default())
        .await
        .expect("foreign download");
    assert_eq!(std::fs::read(&dest).unwrap(), b"foreign");

    // Even an artifact wrongly marked authenticated sends nothing to another origin.
    let forged = report_evovoice::Artifact {
        authenticated: true,
        ..link.clone()
    };
    job.download_to(
        &forged,
        dir.path().join("forged.xlsx"),
        DownloadOptions::default(),
    )
    .await
    .expect("forged download");
    assert_eq!(clean.calls_async().await, 2);
    assert_eq!(leaked.calls_async().await, 0);
}

#[test]
fn statuses_map_to_job_states() {
    let adapter =
        EvoVoiceAdapter::new(EvoVoiceClient::new(EvoVoiceConfig::new(USER, PASSWORD)).unwrap());
    let status = |s: Option<ReportStatus>, message: Option<&str>| {
        adapter.status_of(&types::ReportInfo {
            id: Some("r".into()),
            status: s,
            status_message: message.map(Into::into),
            ..Default::default()
        })
    };
    assert!(
        matches!(status(Some(ReportStatus::Queued), None), Status::Pending(p) if p.vendor_state == "Queued")
    );
    assert!(matches!(status(Some(ReportStatus::Running), Some("50 %")),
        Status::Pending(p) if p.message.as_deref() == Some("50 %")));
    assert!(matches!(status(Some("Archived".parse().unwrap()), None),
        Status::Pending(p) if p.vendor_state == "Archived"));
    assert!(matches!(status(None, None), Status::Pending(p) if p.vendor_state.is_empty()));
    assert!(matches!(status(Some(ReportStatus::Error), None),
        Status::Failed { message, .. } if message == "EvoVoice could not generate report r"));
    match status(Some(ReportStatus::Completed), None) {
        Status::Ready(a) => {
            assert_eq!(a.url, "https://evovoice.io/reports/r.xlsx");
            assert!(a.authenticated && a.data.is_empty());
        }
        other => panic!("expected ready, got {other:?}"),
    }
}

/// Every report type of the vendor's own tool runs as a job: started at `POST /reports/<type>`
/// (the endpoints report at `POST /json/reply/EndpointsReport`) with its fields, then listed
/// and downloaded like billing.
#[tokio::test]
async fn every_report_type_runs_as_a_job() {
    use report_evovoice::{ReportKind, ReportOptions, ReportType};

    for kind in ReportKind::ALL {
        let server = MockServer::start_async().await;
        let options = ReportOptions {
            time_zone_id: Some("Europe/Ljubljana".into()),
            types: vec!["Inbound".into()],
            ..ReportOptions::default()
        };
        let request = match kind {
            ReportKind::Billing => request(),
            ReportKind::Other(_) | ReportKind::Endpoints => {
                request().with_kind(kind).with_options(options)
            }
        };
        let started = match kind {
            ReportKind::Billing => server.create_billing_report(|when, then| {
                when.body(&request.billing_report());
                then.ok(&report("r-1", "Queued"));
            }),
            ReportKind::Other(kind) => server.create_report(|when, then| {
                when.report_type(kind).body(&request.report_request());
                then.ok(&report("r-1", "Queued"));
            }),
            // FACTS round 2: ServiceStack's predefined route, the same body.
            ReportKind::Endpoints => server.create_endpoints_report(|when, then| {
                when.body(&request.report_request())
                    .into_inner()
                    .path("/json/reply/EndpointsReport");
                then.ok(&report("r-1", "Queued"));
            }),
        };
        let mut done = report("r-1", "Completed");
        done.download_link = Some("/reports/r-1.xlsx".into());
        mock_list(&server, vec![done]);
        let clock = Arc::new(VirtualClock::new(DateTime::UNIX_EPOCH));
        let policy = WaitPolicy::default().with_jitter(0.0).with_seed(1);
        let job = Job::start_with_clock(adapter(&server), &request, policy, clock)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let artifact = job.wait().await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(artifact.url, server.url("/reports/r-1.xlsx"), "{kind}");
        started.assert_async().await;
        if let ReportKind::Other(other) = kind {
            assert_eq!(kind.to_string(), other.to_string());
            assert_eq!(kind.to_string().parse::<ReportKind>().unwrap(), kind);
            let body = serde_json::to_value(request.report_request()).unwrap();
            assert_eq!(body["timeZoneId"], "Europe/Ljubljana", "{kind}");
            assert_eq!(body["types"], serde_json::json!(["Inbound"]), "{kind}");
        }
    }
    assert_eq!(
        "CDR".parse::<ReportKind>().unwrap(),
        ReportKind::Other(ReportType::Cdr)
    );
    assert_eq!(
        "endpoints".parse::<ReportKind>().unwrap(),
        ReportKind::Endpoints
    );
    assert_eq!(ReportKind::Endpoints.to_string(), "endpoints");
    assert!(matches!(
        "fax".parse::<ReportKind>(),
        Err(Error::InvalidInput(_))
    ));
    // Billing reads none of the other types' options: refused before any request.
    let billing_with_options = request().with_options(ReportOptions {
        metric_name: Some("calls".into()),
        ..ReportOptions::default()
    });
    assert!(matches!(
        billing_with_options.validate(),
        Err(Error::InvalidInput(_))
    ));
}

/// A listed report created at `created`, notifying `email`.
fn created(id: &str, created: &str, email: Option<&str>) -> ReportInfo {
    ReportInfo {
        date_created: Some(created.into()),
        email_address_to_notify: email.map(str::to_string),
        ..report(id, "Queued")
    }
}

/// `find_started` (a start whose answer was lost): the account's one report created since
/// the start (ISO or ServiceStack's `/Date(…)/` form) notifying the request's address, if any,
/// is adopted; none is `None`; two are an error naming both. Nothing is started.
#[tokio::test]
async fn a_lost_start_is_found_in_the_accounts_list() {
    use report_evovoice::report_core::ReportAdapter;

    let server = MockServer::start_async().await;
    let start = mock_start(&server);
    let adapter = adapter(&server);
    // 2024-04-01T08:00:00.300Z; ServiceStack writes milliseconds, the ISO form whole seconds.
    let since: DateTime<report_evovoice::chrono::Utc> = "2024-04-01T08:00:00.300Z".parse().unwrap();
    let older = created("older", "2024-04-01T07:59:59Z", Some("billing@example.com"));
    let ours = created(
        "ours",
        "/Date(1711958400350-0000)/",
        Some("billing@example.com"),
    );
    let elsewhere = created("elsewhere", "2024-04-01T08:00:01Z", Some("ops@example.com"));
    let twin = created("twin", "2024-04-01T08:00:02Z", None);

    let found = mock_list(
        &server,
        vec![older.clone(), elsewhere.clone(), ours.clone()],
    );
    let ticket = adapter
        .find_started(&request(), since)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (ticket.vendor.as_str(), ticket.id.as_str()),
        ("evovoice", "ours")
    );
    assert_eq!(ticket.get("account_id"), Some(ACCOUNT));
    found.assert_async().await;
    found.delete_async().await;

    let none = mock_list(&server, vec![older.clone(), elsewhere.clone()]);
    assert_eq!(adapter.find_started(&request(), since).await.unwrap(), None);
    none.delete_async().await;

    mock_list(&server, vec![older, ours, twin]);
    let err = adapter.find_started(&request(), since).await.unwrap_err();
    assert!(
        matches!(&err, Error::Ticket(m) if m.contains("ours") && m.contains("twin")),
        "{err}"
    );
    start.assert_calls_async(0).await;
}
