//! The OFD.ru job lifecycle against httpmock, with the typed mocks generated from the spec.
//! Waiting runs on a virtual clock: no test sleeps for real.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;
use httpmock::MockServer;
use report_core::{Error, Job, Status, VirtualClock, WaitPolicy};
use report_ofd::api::types;
use report_ofd::mock::MockServerExt;
use report_ofd::{
    Agreement, OfdAdapter, OfdClient, OfdConfig, OfdErrorCode, OfdReportRequest, Registers,
    ReportStatus, ReportType,
};

const TOKEN: &str = "ed38f9e155ce4a7ab3b784606fcd40a1";
const TOKEN2: &str = "0123456789abcdef0123456789abcdef";
const REPORT: &str = "bddf7767-f72b-49a9-90f1-df1b74090d92";
const AGREEMENT: &str = "d64249c5-61b8-4ed9-b729-9bd7cde127db";

fn adapter(server: &MockServer) -> OfdAdapter {
    let config = OfdConfig::new("12345", "56789").with_base_url(server.base_url());
    OfdAdapter::new(OfdClient::new(config).expect("valid config"))
}

fn request() -> OfdReportRequest {
    let day = |d| NaiveDate::from_ymd_opt(2021, 11, d).unwrap();
    OfdReportRequest::for_days(
        ReportType::ReceiptReport,
        day(1),
        day(2),
        Registers::List(vec!["7961d10e-f36a-4cce-a8db-add93309bb9e".into()]),
    )
    .with_agreement(Agreement::Id(AGREEMENT.into()))
}

fn token(value: &str) -> types::AuthToken {
    types::AuthToken {
        auth_token: Some(value.into()),
        expiration_date_utc: Some("2099-01-01T00:00:00".into()),
    }
}

fn report(status: ReportStatus) -> types::ReportInfo {
    types::ReportInfo {
        id: Some(REPORT.into()),
        status: Some(status),
        report_type: Some(ReportType::ReceiptReport),
        file_format: Some("Xlsx".into()),
        assumptive_complete_time: Some("2099-01-01T00:01:00".into()),
        download_url: Some(format!(
            "/api/customer/reports/{REPORT}?OfdAgreementId={AGREEMENT}"
        )),
        cancel_url: Some(format!(
            "/api/customer/reports/{REPORT}/cancel?ofdAgreementId={AGREEMENT}"
        )),
        ..Default::default()
    }
}

fn list_of(status: ReportStatus) -> types::ReportListEnvelope {
    types::ReportListEnvelope {
        status: Some("Success".into()),
        data: Some(types::ReportList {
            list: vec![report(status)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn failure(code: &str) -> types::ErrorEnvelope {
    types::ErrorEnvelope {
        errors: vec![code.into()],
        status: Some("Failed".into()),
        elapsed: None,
    }
}

fn clock() -> Arc<VirtualClock> {
    Arc::new(VirtualClock::new(
        chrono::DateTime::parse_from_rfc3339("2099-01-01T00:00:00Z")
            .unwrap()
            .into(),
    ))
}

fn policy() -> WaitPolicy {
    WaitPolicy::default().with_seed(7)
}

#[tokio::test]
async fn token_start_poll_download_delete() {
    let server = MockServer::start_async().await;
    let auth = server.create_auth_token(|when, then| {
        when.body(&types::AuthTokenRequest {
            login: "12345".into(),
            password: "56789".into(),
        });
        then.ok(&token(TOKEN));
    });
    let create = server.create_report(|when, then| {
        when.into_inner()
            .query_param("AuthToken", TOKEN)
            .json_body_includes(format!(r#"{{"OfdAgreementId":"{AGREEMENT}"}}"#))
            .json_body_includes(r#"{"ReportType":"ReceiptReport","SelectAllKkts":false}"#);
        then.ok(&types::ReportEnvelope {
            status: Some("Success".into()),
            data: Some(report(ReportStatus::Todo)),
            elapsed: None,
        });
    });
    let processing = server.list_reports(|when, then| {
        when.skip_page_filter(true)
            .into_inner()
            .query_param("AuthToken", TOKEN);
        then.ok(&list_of(ReportStatus::Processing));
    });

    let clock = clock();
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock.clone())
        .await
        .expect("started");
    assert_eq!(job.ticket().id, REPORT);
    assert_eq!(job.ticket().get("agreement_id"), Some(AGREEMENT));
    match job.poll().await.unwrap() {
        Status::Pending(p) => {
            assert_eq!(p.vendor_state, "Processing");
            assert_eq!(p.eta.unwrap().to_rfc3339(), "2099-01-01T00:01:00+00:00");
        }
        other => panic!("expected pending, got {other:?}"),
    }
    processing.delete_async().await;
    let done = server.list_reports(|when, then| {
        when.skip_page_filter(true)
            .into_inner()
            .query_param("AuthToken", TOKEN);
        then.ok(&list_of(ReportStatus::Done));
    });

    let artifact = job.wait().await.expect("ready");
    // The start answer's ETA (one minute) was used: one sleep until it, one poll.
    assert_eq!(clock.sleeps(), [std::time::Duration::from_secs(60)]);
    assert_eq!(
        artifact.url,
        format!(
            "{}/api/customer/reports/{REPORT}?OfdAgreementId={AGREEMENT}",
            server.base_url()
        )
    );
    assert!(artifact.authenticated);

    let file = server.download_report(|when, then| {
        when.id(REPORT)
            .into_inner()
            .query_param("OfdAgreementId", AGREEMENT)
            .query_param("AuthToken", TOKEN);
        then.into_inner()
            .status(200)
            .header("content-type", "application/zip")
            .header("content-disposition", "attachment; filename=\"report.zip\"")
            .body(b"PK\x03\x04 report bytes");
    });
    let dir = tempfile::tempdir().unwrap();
    let saved = job
        .download_to(&artifact, dir.path().join("report.zip"), Default::default())
        .await
        .expect("downloaded");
    assert_eq!(
        std::fs::read(dir.path().join("report.zip")).unwrap(),
        b"PK\x03\x04 report bytes"
    );
    assert_eq!(saved.server_file_name.as_deref(), Some("report.zip"));

    let delete = server.delete_report(|when, then| {
        when.id(REPORT)
            .ofd_agreement_id(AGREEMENT)
            .into_inner()
            .query_param("AuthToken", TOKEN);
        then.ok(&types::DeletedReport {
            id: Some(REPORT.into()),
            status: Some("Deleted".into()),
            ..Default::default()
        });
    });
    job.delete().await.expect("deleted");

    auth.assert_calls_async(1).await;
    create.assert_calls_async(1).await;
    done.assert_calls_async(1).await;
    file.assert_calls_async(1).await;
    delete.assert_calls_async(1).await;
    assert_eq!(job.stats().polls, 2);
}

#[tokio::test]
async fn start_then_cancel() {
    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope {
            data: Some(report(ReportStatus::Todo)),
            ..Default::default()
        });
    });
    let cancel = server.cancel_report(|when, then| {
        when.id(REPORT)
            .ofd_agreement_id(AGREEMENT)
            .into_inner()
            .query_param("AuthToken", TOKEN);
        then.ok(&types::StatusEnvelope {
            status: Some("Success".into()),
            ..Default::default()
        });
    });
    server.list_reports(|_, then| {
        then.ok(&list_of(ReportStatus::Deleted));
    });
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap();
    job.cancel().await.expect("cancelled");
    cancel.assert_calls_async(1).await;
    // After a cancel OFD.ru lists the report as Deleted: the wait ends as cancelled.
    let err = job.wait().await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { vendor: "ofd" }), "{err}");
}

#[tokio::test]
async fn an_expired_token_mid_job_is_renewed_once_and_the_job_goes_on() {
    let server = MockServer::start_async().await;
    // The first CreateAuthToken answers TOKEN, later ones TOKEN2.
    let issued = Arc::new(AtomicUsize::new(0));
    let first = issued.clone();
    let auth1 = server.create_auth_token(|when, then| {
        when.into_inner()
            .is_true(move |_| first.fetch_add(1, Ordering::SeqCst) == 0);
        then.ok(&token(TOKEN));
    });
    let auth2 = server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN2));
    });
    server.create_report(|when, then| {
        when.into_inner().query_param("AuthToken", TOKEN);
        then.ok(&types::ReportEnvelope {
            data: Some(report(ReportStatus::Todo)),
            ..Default::default()
        });
    });
    // The server has expired TOKEN by the time of the first poll.
    let expired = server.list_reports(|when, then| {
        when.into_inner().query_param("AuthToken", TOKEN);
        then.client_error(401, &failure("AuthToken expired"));
    });
    let renewed = server.list_reports(|when, then| {
        when.into_inner().query_param("AuthToken", TOKEN2);
        then.ok(&list_of(ReportStatus::Done));
    });
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap();
    job.wait().await.expect("the job goes on after renewal");
    expired.assert_calls_async(1).await;
    renewed.assert_calls_async(1).await;
    auth1.assert_calls_async(1).await;
    auth2.assert_calls_async(1).await;
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error() {
    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.client_error(403, &types::ErrorEnvelope::default());
    });
    let err = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth {
                vendor: "ofd",
                status: 403,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        !err.to_string().contains("56789"),
        "the password leaked: {err}"
    );
}

#[tokio::test]
async fn an_errors_envelope_becomes_a_typed_vendor_error() {
    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    server.create_report(|_, then| {
        then.client_error(400, &failure("DateFromGreaterThanDateTo"));
    });
    let err = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap_err();
    assert_eq!(
        OfdErrorCode::of(&err),
        Some(OfdErrorCode::DateFromGreaterThanDateTo)
    );
    assert_eq!(err.http_status(), Some(400));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_failed_report_ends_the_wait_with_job_failed() {
    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope {
            data: Some(report(ReportStatus::Todo)),
            ..Default::default()
        });
    });
    server.list_reports(|_, then| {
        then.ok(&list_of(ReportStatus::Error));
    });
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap();
    let err = job.wait().await.unwrap_err();
    assert!(
        matches!(err, Error::JobFailed { vendor: "ofd", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn html_error_pages_and_malformed_bodies_are_typed() {
    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope {
            data: Some(report(ReportStatus::Todo)),
            ..Default::default()
        });
    });
    let gateway = server.list_reports(|_, then| {
        then.into_inner()
            .status(502)
            .header("content-type", "text/html")
            .header("retry-after", "7")
            .body("<html><body>Bad Gateway</body></html>");
    });
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap();
    let err = job.poll().await.unwrap_err();
    assert_eq!(err.http_status(), Some(502), "{err}");
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert!(err.to_string().contains("Bad Gateway"), "{err}");
    assert!(err.is_transient());
    gateway.delete_async().await;

    server.list_reports(|_, then| {
        then.into_inner()
            .status(200)
            .header("content-type", "application/json")
            .body(r#"{"Status":"Success","Data":{"List":[{"Id":42"#);
    });
    let err = job.poll().await.unwrap_err();
    match &err {
        Error::Decode { excerpt, .. } => assert!(excerpt.contains(r#""Id":42"#), "{excerpt}"),
        other => panic!("expected a decode error, got {other}"),
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    let server = MockServer::start_async().await;
    let any = server.mock(|_, then| {
        then.status(500);
    });
    let day = |d| NaiveDate::from_ymd_opt(2021, 11, d).unwrap();
    let reversed =
        OfdReportRequest::for_days(ReportType::ReceiptReport, day(2), day(1), Registers::All);
    let err = Job::start_with_clock(adapter(&server), &reversed, policy(), clock())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let no_kkt = OfdReportRequest::for_days(
        ReportType::ReceiptReport,
        day(1),
        day(2),
        Registers::List(vec![]),
    );
    assert!(
        Job::start_with_clock(adapter(&server), &no_kkt, policy(), clock())
            .await
            .is_err()
    );
    let bad_inn = request().with_agreement(Agreement::Lookup {
        inn: "12".into(),
        kpp: "772501001".into(),
    });
    assert!(
        Job::start_with_clock(adapter(&server), &bad_inn, policy(), clock())
            .await
            .is_err()
    );
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn the_token_never_goes_to_another_origin() {
    let server = MockServer::start_async().await;
    let foreign = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    let mut done = report(ReportStatus::Done);
    done.download_url = Some(foreign.url("/elsewhere/report.zip"));
    server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope {
            data: Some(done),
            ..Default::default()
        });
    });
    // Matches only requests without the token: a leaked token makes the download fail.
    let file = foreign.mock(|when, then| {
        when.path("/elsewhere/report.zip")
            .query_param_missing("AuthToken");
        then.status(200).body("bytes");
    });
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap();
    let artifact = job.wait().await.unwrap();
    assert!(!artifact.authenticated);
    let dir = tempfile::tempdir().unwrap();
    job.download_to(&artifact, dir.path().join("r.zip"), Default::default())
        .await
        .unwrap();
    file.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_huge_answer_is_refused_with_bounded_memory() {
    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope {
            data: Some(report(ReportStatus::Todo)),
            ..Default::default()
        });
    });
    // 17 MiB of JSON: more than any report list needs.
    let mut huge = String::from(r#"{"Status":"Success","Data":{"List":[], "Padding":""#);
    huge.push_str(&"x".repeat(17 * 1024 * 1024));
    huge.push_str(r#""}}"#);
    server.list_reports(|_, then| {
        then.into_inner()
            .status(200)
            .header("content-type", "application/json")
            .body(huge);
    });
    let job = Job::start_with_clock(adapter(&server), &request(), policy(), clock())
        .await
        .unwrap();
    let err = job.poll().await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}

/// A report-list entry for the lost-start tests: the request's type and period unless told.
fn listed(id: &str, created: &str, report_type: ReportType, date_from: &str) -> types::ReportInfo {
    types::ReportInfo {
        id: Some(id.into()),
        c_date_utc: Some(created.into()),
        report_type: Some(report_type),
        date_from: Some(date_from.into()),
        date_to: Some("2021-11-02T23:59:59".into()),
        status: Some(ReportStatus::Processing),
        ..Default::default()
    }
}

fn list(reports: Vec<types::ReportInfo>) -> types::ReportListEnvelope {
    types::ReportListEnvelope {
        status: Some("Success".into()),
        data: Some(types::ReportList {
            list: reports,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `find_started` (a start whose answer was lost): the report list's one entry of this type
/// and period created since the start is adopted; none is `None`; two are an error naming
/// both. Nothing is ever started.
#[tokio::test]
async fn a_lost_start_is_found_in_the_report_list() {
    use report_core::ReportAdapter;

    let server = MockServer::start_async().await;
    server.create_auth_token(|_, then| {
        then.ok(&token(TOKEN));
    });
    let create = server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope::default());
    });
    // The start was sent half a second after 10:55:20; the list writes whole seconds.
    let since: chrono::DateTime<chrono::Utc> = "2021-11-12T10:55:20.500Z".parse().unwrap();
    let day_one = "2021-11-01T00:00:00";
    let older = listed(
        "older",
        "2021-11-12T10:55:19",
        ReportType::ReceiptReport,
        day_one,
    );
    let other_type = listed(
        "shifts",
        "2021-11-12T10:55:21",
        ReportType::CloseShiftReport,
        day_one,
    );
    let other_period = listed(
        "period",
        "2021-11-12T10:55:21",
        ReportType::ReceiptReport,
        "2021-10-01T00:00:00",
    );
    let ours = listed(
        REPORT,
        "2021-11-12T10:55:20",
        ReportType::ReceiptReport,
        day_one,
    );
    let twin = listed(
        "twin",
        "2021-11-12T10:55:22.1234567",
        ReportType::ReceiptReport,
        day_one,
    );
    let adapter = adapter(&server);

    let found = server.list_reports(|when, then| {
        when.skip_page_filter(true)
            .into_inner()
            .query_param("AuthToken", TOKEN);
        then.ok(&list(vec![
            older.clone(),
            other_type.clone(),
            other_period.clone(),
            ours.clone(),
        ]));
    });
    let ticket = adapter
        .find_started(&request(), since)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(ticket.id, REPORT);
    assert_eq!(ticket.vendor, "ofd");
    assert_eq!(ticket.get("agreement_id"), Some(AGREEMENT));
    found.delete_async().await;

    let none = server.list_reports(|_, then| {
        then.ok(&list(vec![
            older.clone(),
            other_type.clone(),
            other_period.clone(),
        ]));
    });
    assert_eq!(adapter.find_started(&request(), since).await.unwrap(), None);
    none.delete_async().await;

    server.list_reports(|_, then| {
        then.ok(&list(vec![older, ours, twin]));
    });
    let err = adapter.find_started(&request(), since).await.unwrap_err();
    assert!(
        matches!(&err, Error::Ticket(m) if m.contains(REPORT) && m.contains("twin")),
        "{err}"
    );
    create.assert_calls_async(0).await;
}
