//! MetaKocka jobs end to end against httpmock, driven step by step (httpmock's mocks are
//! stateless: each step replaces the poll mock) on a virtual clock, so no wait is real.
//!
//! Poll mocks match the exact JSON body, token included: a poll that sent any token but the
//! one the start returned would match nothing and fail the test.

use std::sync::Arc;

use chrono::Utc;
use futures::TryStreamExt;
use httpmock::{HttpMockRequest, Method, Mock, MockServer};
use report_metakocka::api::types::{self, ReportAnswer, ReportRequest};
use report_metakocka::mock::operations::{PrintReportThen, PrintReportWhen};
use report_metakocka::report_core::VirtualClock;
use report_metakocka::{
    Error, Job, MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, MetaKockaReportRequest,
    ReportFormat, Status, Ticket, WaitPolicy,
};
use serde_json::json;

const SECRET: &str = "mk-secret-8899-do-not-leak";
const COMPANY: &str = "16";
const TOKEN: &str = "09dfb619-388c-48ec-97c3-cd56eade5fb0";
/// The token the in-progress answer carries instead (metakocka.md's example).
const OTHER_TOKEN: &str = "a92b3060-53ab-451c-9d6a-19f56e84499f";
const PROGRESS: &str = "Priprava podatkov za račun BC-MK-328 9 / 23";

fn client(api: &MockServer) -> MetaKockaClient {
    MetaKockaClient::new(MetaKockaConfig::new(COMPANY, SECRET).with_base_url(api.base_url()))
        .expect("valid configuration")
}

fn adapter(api: &MockServer) -> MetaKockaAdapter {
    MetaKockaAdapter::new(client(api))
}

fn request() -> MetaKockaReportRequest {
    MetaKockaReportRequest::new("149", ReportFormat::Pdf)
        .param("ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", true)
}

fn policy() -> WaitPolicy {
    WaitPolicy::default().with_jitter(0.0).with_seed(1)
}

fn clock() -> Arc<VirtualClock> {
    Arc::new(VirtualClock::new(Utc::now()))
}

fn pair(name: &str, value: &str) -> types::ReportParam {
    types::ReportParam {
        type_: name.into(),
        value: value.into(),
    }
}

/// The wire body of printing [`request`], written out so the test pins the format: every
/// value a string, the format as `REPORT_TYPE`.
fn print_body(asynchronous: bool) -> ReportRequest {
    ReportRequest {
        secret_key: SECRET.into(),
        company_id: COMPANY.into(),
        report_id: Some("149".into()),
        mk_id: None,
        async_: asynchronous.then(|| "true".into()),
        token: None,
        params: vec![
            pair("REPORT_TYPE", "PDF"),
            pair("ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", "true"),
        ],
    }
}

/// The wire body of a poll: metakocka.md's poll request.
fn poll_body(token: &str) -> ReportRequest {
    ReportRequest {
        secret_key: SECRET.into(),
        company_id: COMPANY.into(),
        report_id: Some("149".into()),
        mk_id: None,
        async_: Some("true".into()),
        token: Some(token.into()),
        params: Vec::new(),
    }
}

fn answer(value: serde_json::Value) -> ReportAnswer {
    serde_json::from_value(value).expect("a valid answer")
}

/// A typed mock of the report endpoint: this body gets this answer (HTTP 200).
async fn on_print<'a>(
    server: &'a MockServer,
    body: &ReportRequest,
    reply: ReportAnswer,
) -> Mock<'a> {
    server
        .mock_async(|when, then| {
            PrintReportWhen::new(when).body(body);
            PrintReportThen::new(then).ok(&reply);
        })
        .await
}

async fn on_start(api: &MockServer) -> Mock<'_> {
    let reply = answer(json!({
        "opr_code": "0", "opr_time_ms": "0", "opr_time_no_lock_ms": "0", "token": TOKEN
    }));
    on_print(api, &print_body(true), reply).await
}

async fn started_job(api: &MockServer) -> Job<MetaKockaAdapter> {
    Job::start_with_clock(adapter(api), &request(), policy(), clock())
        .await
        .expect("the job starts")
}

/// Whether the secret key appears anywhere in a request: URL, headers or body.
fn carries_secret(req: &HttpMockRequest) -> bool {
    req.uri().to_string().contains(SECRET)
        || req
            .headers_vec()
            .iter()
            .any(|(k, v)| k.contains(SECRET) || v.contains(SECRET))
        || req.body_string().contains(SECRET)
}

#[tokio::test]
async fn a_report_runs_from_start_to_download() {
    let api = MockServer::start_async().await;
    let files = MockServer::start_async().await;

    // Start: the ticket is the token; it holds no secret.
    let start = on_start(&api).await;
    let job = started_job(&api).await;
    start.assert_calls_async(1).await;
    assert_eq!(job.ticket().id, TOKEN);
    assert_eq!(job.ticket().get("report_id"), Some("149"));
    assert_eq!(job.ticket().get("company_id"), Some(COMPANY));
    assert!(!job.ticket().to_json().contains(SECRET));

    // A poll sending the token of the in-progress answer would land here.
    let stale = api
        .mock_async(|when, then| {
            when.body_includes(OTHER_TOKEN);
            then.status(500);
        })
        .await;

    // In progress, with another token in the answer.
    let progress = on_print(
        &api,
        &poll_body(TOKEN),
        answer(json!({
            "opr_code": "0", "opr_time_ms": "0", "opr_time_no_lock_ms": "0",
            "token": OTHER_TOKEN, "progress": PROGRESS
        })),
    )
    .await;
    match job.poll().await.expect("pending") {
        Status::Pending(p) => {
            assert_eq!(p.fraction, Some(9.0 / 23.0));
            assert_eq!(p.message.as_deref(), Some(PROGRESS));
        }
        other => panic!("{other:?}"),
    }
    progress.assert_calls_async(1).await;
    progress.delete_async().await;

    // Done: the link is on another origin; the next polls still send the original token.
    let link = files.url(format!("/download/report/{TOKEN}"));
    let done = on_print(
        &api,
        &poll_body(TOKEN),
        answer(json!({
            "opr_code": "0", "opr_time_ms": "0", "opr_time_no_lock_ms": "0",
            "token": TOKEN, "url": link
        })),
    )
    .await;
    let artifact = job.wait().await.expect("ready");
    assert_eq!(artifact.url, link);
    assert!(!artifact.authenticated);
    assert_eq!(artifact.format.as_deref(), Some("pdf"));
    done.assert_calls_async(1).await;
    stale.assert_calls_async(0).await;

    // Download: the file arrives; the secret key does not.
    let content: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let served = content.clone();
    let file = files
        .mock_async(move |when, then| {
            when.method(Method::GET)
                .path(format!("/download/report/{TOKEN}"))
                .is_true(|req| !carries_secret(req));
            then.status(200)
                .header("content-type", "application/pdf")
                .header(
                    "content-disposition",
                    "attachment; filename=\"report_149.pdf\"",
                )
                .body(served);
        })
        .await;
    let leak = files
        .mock_async(|when, then| {
            when.is_true(carries_secret);
            then.status(418);
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    let summary = job
        .download_to(&artifact, &path, Default::default())
        .await
        .expect("downloaded");
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(summary.bytes, content.len() as u64);
    assert_eq!(summary.server_file_name.as_deref(), Some("report_149.pdf"));
    file.assert_calls_async(1).await;
    leak.assert_calls_async(0).await;
}

#[tokio::test]
async fn a_vendor_side_failure_ends_the_wait_as_a_failed_job() {
    let api = MockServer::start_async().await;
    on_start(&api).await;
    let job = started_job(&api).await;
    on_print(
        &api,
        &poll_body(TOKEN),
        answer(json!({
            "opr_code": "6", "opr_desc": "Report with this token does not exist.",
            "opr_time_ms": "0", "opr_time_no_lock_ms": "0"
        })),
    )
    .await;
    let err = job.wait().await.expect_err("the report failed");
    match &err {
        Error::JobFailed {
            vendor,
            code,
            message,
        } => {
            assert_eq!(*vendor, "metakocka");
            assert_eq!(code.as_deref(), Some("6"));
            assert_eq!(message, "Report with this token does not exist.");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient(), "a vendor error is not retried");
    assert_eq!(job.stats().polls, 1);
}

#[tokio::test]
async fn a_wrong_secret_key_is_an_auth_error() {
    let api = MockServer::start_async().await;
    let start = on_print(
        &api,
        &print_body(true),
        answer(json!({"opr_code": "1", "opr_desc": "Wrong secret key or company id.", "opr_time_ms": "3"})),
    )
    .await;
    let err = Job::start_with_clock(adapter(&api), &request(), policy(), clock())
        .await
        .expect_err("refused");
    match &err {
        Error::Auth {
            vendor,
            status,
            message,
        } => {
            assert_eq!(*vendor, "metakocka");
            assert_eq!(*status, 200);
            assert!(message.contains("Wrong secret key"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains(SECRET));
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_malformed_answer_is_a_decode_error_with_an_excerpt() {
    let api = MockServer::start_async().await;
    on_start(&api).await;
    let job = started_job(&api).await;
    api.mock_async(|when, then| {
        PrintReportWhen::new(when).body(&poll_body(TOKEN));
        then.status(200)
            .header("content-type", "application/json")
            .body(r#"{"opr_code": "0", "progress": "Priprava podat"#);
    })
    .await;
    match job.poll().await.expect_err("cannot decode") {
        Error::Decode {
            vendor, excerpt, ..
        } => {
            assert_eq!(vendor, "metakocka");
            assert!(excerpt.contains("Priprava podat"), "{excerpt}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_html_error_page_keeps_its_status() {
    let api = MockServer::start_async().await;
    on_start(&api).await;
    let job = started_job(&api).await;
    api.mock_async(|when, then| {
        PrintReportWhen::new(when).body(&poll_body(TOKEN));
        then.status(502)
            .header("content-type", "text/html")
            .body("<html><body>Bad gateway</body></html>");
    })
    .await;
    let err = job.poll().await.expect_err("502");
    assert_eq!(err.http_status(), Some(502), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("Bad gateway"), "{err}");
}

#[tokio::test]
async fn cancel_is_unsupported() {
    let api = MockServer::start_async().await;
    let start = on_start(&api).await;
    let job = started_job(&api).await;
    match job.cancel().await.expect_err("no cancel") {
        Error::Unsupported { vendor, operation } => {
            assert_eq!(vendor, "metakocka");
            assert_eq!(operation, "cancel");
        }
        other => panic!("{other:?}"),
    }
    start.assert_calls_async(1).await;
}

#[tokio::test]
async fn a_job_resumes_from_its_ticket() {
    let api = MockServer::start_async().await;
    on_start(&api).await;
    let saved = started_job(&api).await.ticket().to_json();

    let link = api.url(format!("/download/report/{TOKEN}"));
    on_print(
        &api,
        &poll_body(TOKEN),
        answer(json!({"opr_code": "0", "token": TOKEN, "url": link})),
    )
    .await;
    let ticket = Ticket::from_json(&saved).unwrap();
    let job = Job::resume(adapter(&api), ticket.clone(), policy())
        .unwrap()
        .with_clock(clock());
    assert_eq!(job.wait().await.unwrap().url, link);

    // Another company's client does not poll this company's ticket.
    let other =
        MetaKockaClient::new(MetaKockaConfig::new("17", SECRET).with_base_url(api.base_url()))
            .unwrap();
    let job = Job::resume(MetaKockaAdapter::new(other), ticket, policy()).unwrap();
    assert!(matches!(job.poll().await, Err(Error::Ticket(_))));
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    let api = MockServer::start_async().await;
    let anything = api
        .mock_async(|_, then| {
            then.status(500);
        })
        .await;
    let bad = [
        MetaKockaReportRequest::new("bill", ReportFormat::Pdf),
        MetaKockaReportRequest::new("149", ReportFormat::Pdf)
            .param("ADD_ATT_DATE_MK_DATUM_FROM", "2017-07-01"),
    ];
    for request in &bad {
        let started = Job::start_with_clock(adapter(&api), request, policy(), clock()).await;
        assert!(
            matches!(started, Err(Error::InvalidInput(_))),
            "{started:?}"
        );
        let printed = client(&api).print(request).await;
        assert!(
            matches!(printed, Err(Error::InvalidInput(_))),
            "{printed:?}"
        );
    }
    anything.assert_calls_async(0).await;
}

#[tokio::test]
async fn synchronous_printing_streams_the_file() {
    let api = MockServer::start_async().await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let served = content.clone();
    let print = api
        .mock_async(move |when, then| {
            PrintReportWhen::new(when).body(&print_body(false));
            then.status(200)
                .header("content-type", "application/pdf")
                .header(
                    "content-disposition",
                    "attachment; filename=\"report_149.pdf\"",
                )
                .body(served);
        })
        .await;
    let download = client(&api).print(&request()).await.expect("the file");
    assert_eq!(download.file_name.as_deref(), Some("report_149.pdf"));
    assert_eq!(download.content_type.as_deref(), Some("application/pdf"));
    assert_eq!(download.total_size, Some(content.len() as u64));
    let chunks: Vec<bytes::Bytes> = download.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), content);
    print.assert_calls_async(1).await;
}

#[tokio::test]
async fn synchronous_printing_reads_a_json_body_as_an_error() {
    let api = MockServer::start_async().await;
    api.mock_async(|when, then| {
        PrintReportWhen::new(when).body(&print_body(false));
        then.status(200)
            .header("content-type", "application/json;charset=UTF-8")
            .body(
                r#"{"opr_code":"2","opr_desc":"Unknown document type : null","opr_time_ms":"348"}"#,
            );
    })
    .await;
    match client(&api)
        .print(&request())
        .await
        .expect_err("an error envelope")
    {
        Error::Api {
            status,
            code,
            message,
            ..
        } => {
            assert_eq!(status, None);
            assert_eq!(code.as_deref(), Some("2"));
            assert_eq!(message, "Unknown document type : null");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn synchronous_json_reports_are_files() {
    let api = MockServer::start_async().await;
    let jsn = MetaKockaReportRequest::new("149", ReportFormat::Jsn);
    let mut body = print_body(false);
    body.params = vec![pair("REPORT_TYPE", "JSN")];

    // Small: JSON without `opr_code` is the report itself.
    let small = r#"[{"racun":"BC-MK-328","znesek":"12.30"}]"#;
    let mock = api
        .mock_async(|when, then| {
            PrintReportWhen::new(when).body(&body);
            then.status(200)
                .header("content-type", "application/json")
                .body(small);
        })
        .await;
    let download = client(&api).print(&jsn).await.expect("the file");
    let chunks: Vec<bytes::Bytes> = download.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), small.as_bytes());
    mock.delete_async().await;

    // Large: streamed whole, the bytes read to tell it from an envelope included.
    let large = format!("[{}]", vec![r#"{"racun":"BC-MK-328"}"#; 20_000].join(","));
    let served = large.clone();
    api.mock_async(|when, then| {
        PrintReportWhen::new(when).body(&body);
        then.status(200)
            .header("content-type", "application/json")
            .body(served);
    })
    .await;
    let download = client(&api).print(&jsn).await.expect("the file");
    let chunks: Vec<bytes::Bytes> = download.body.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), large.as_bytes());
}

#[tokio::test]
async fn synchronous_printing_keeps_http_error_statuses() {
    let api = MockServer::start_async().await;
    api.mock_async(|when, then| {
        PrintReportWhen::new(when).body(&print_body(false));
        then.status(503)
            .header("content-type", "text/html")
            .body("<h1>Vzdrževanje</h1>");
    })
    .await;
    let err = client(&api).print(&request()).await.expect_err("503");
    assert_eq!(err.http_status(), Some(503), "{err:?}");
    assert!(err.to_string().contains("Vzdrževanje"), "{err}");
}

#[tokio::test]
async fn an_expired_link_is_renewed_by_polling_again() {
    let api = MockServer::start_async().await;
    let files = MockServer::start_async().await;
    on_start(&api).await;
    let job = started_job(&api).await;

    let old = files.url("/download/report/yesterday");
    let first = on_print(
        &api,
        &poll_body(TOKEN),
        answer(json!({"opr_code": "0", "url": old})),
    )
    .await;
    let artifact = job.wait().await.expect("ready");
    first.delete_async().await;

    // The link's 24 hours are over; asking again with the token gives a new one.
    let new = files.url("/download/report/today");
    on_print(
        &api,
        &poll_body(TOKEN),
        answer(json!({"opr_code": "0", "url": new})),
    )
    .await;
    let expired = files
        .mock_async(|when, then| {
            when.path("/download/report/yesterday");
            then.status(404).body("Not found");
        })
        .await;
    let fresh = files
        .mock_async(|when, then| {
            when.path("/download/report/today");
            then.status(200)
                .header("content-type", "application/pdf")
                .body("%PDF-1.4 fresh");
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    let summary = job
        .download_to(&artifact, &path, Default::default())
        .await
        .expect("downloaded");
    assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1.4 fresh");
    assert_eq!(summary.restarts, 1);
    expired.assert_calls_async(1).await;
    fresh.assert_calls_async(1).await;
}

/// The accounting export (FACTS round 2): one blocking call answers a pre-signed ZIP on
/// another host; the job starts ready, and the download carries no credential.
#[tokio::test]
async fn an_accounting_export_is_ready_at_start_and_downloaded_without_credentials() {
    use report_metakocka::{AccountingExportRequest, MetaKockaExportAdapter};

    let api = MockServer::start_async().await;
    let s3 = MockServer::start_async().await;
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
    let request = AccountingExportRequest::new(vec!["Izvoz knjiženja".into()], day(1), day(31))
        .with_utc_offset(chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    let export = api.mock(|when, then| {
        when.method(Method::POST)
            .path("/rest/eshop/accounting_export")
            .json_body(json!({
                "secret_key": SECRET, "company_id": COMPANY,
                "profile_name_list": ["Izvoz knjiženja"],
                "from_date": "2026-01-01+02:00", "to_date": "2026-01-31+02:00",
                "export_attachment": "false"
            }));
        then.status(200).json_body(json!({
            "opr_code": "0", "job_id": "job-1", "opr_time_ms": "17559",
            "result_url": s3.url("/16/job-1.zip?X-Amz-Signature=sig")
        }));
    });
    let zip = s3.mock(|when, then| {
        when.method(Method::GET)
            .path("/16/job-1.zip")
            .query_param("X-Amz-Signature", "sig")
            .is_true(|r: &HttpMockRequest| {
                let text = format!("{:?}", r);
                !text.contains(SECRET) && !text.to_ascii_lowercase().contains("authorization")
            });
        then.status(200)
            .header("content-type", "application/zip")
            .body(b"PK\x03\x04 zip");
    });
    let adapter = MetaKockaExportAdapter::new(client(&api));
    let job = Job::start_with_clock(adapter, &request, policy(), clock())
        .await
        .unwrap();
    assert_eq!(job.ticket().id, "job-1");
    let artifact = job.wait().await.unwrap();
    assert!(!artifact.authenticated);
    let dir = tempfile::tempdir().unwrap();
    let saved = job
        .download_to(&artifact, dir.path().join("export.zip"), Default::default())
        .await
        .unwrap();
    assert_eq!(saved.bytes, 8);
    export.assert_async().await;
    zip.assert_async().await;
    // MetaKocka has no status of an export: the ticket carries the link, so a job resumed
    // from the ticket's JSON (another process) polls ready, and downloads the same file.
    let json = job.ticket().to_json();
    assert!(
        json.contains("result_url") && !json.contains(SECRET),
        "{json}"
    );
    let resumed = Job::resume(
        MetaKockaExportAdapter::new(client(&api)),
        Ticket::from_json(&json).unwrap(),
        policy(),
    )
    .unwrap();
    let Status::Ready(again) = resumed.poll().await.unwrap() else {
        panic!("a resumed export polls ready");
    };
    assert_eq!(again, artifact);
    resumed
        .download_to(&again, dir.path().join("again.zip"), Default::default())
        .await
        .unwrap();
    zip.assert_calls_async(2).await;
    export.assert_calls_async(1).await;
    // Once its link expired (an hour after the answer), the export is failed: export again.
    let mut stale: serde_json::Value = serde_json::from_str(&json).unwrap();
    stale["state"]["expires_at"] = json!("2020-01-01T00:00:00Z");
    let stale = Job::resume(
        MetaKockaExportAdapter::new(client(&api)),
        Ticket::from_json(&stale.to_string()).unwrap(),
        policy(),
    )
    .unwrap();
    match stale.poll().await.unwrap() {
        Status::Failed { message, .. } => assert!(message.contains("expired"), "{message}"),
        other => panic!("an expired export is failed, not {other:?}"),
    }
    // A ticket without the link (an older release's) is refused, typed.
    let mut bare: serde_json::Value = serde_json::from_str(&json).unwrap();
    bare["state"] = json!({});
    let bare = Job::resume(
        MetaKockaExportAdapter::new(client(&api)),
        Ticket::from_json(&bare.to_string()).unwrap(),
        policy(),
    )
    .unwrap();
    let err = bare.poll().await.unwrap_err();
    assert!(matches!(err, Error::Ticket(_)), "{err}");
}

#[tokio::test]
async fn a_failed_accounting_export_is_a_typed_error() {
    use report_metakocka::{AccountingExportRequest, MetaKockaExportAdapter};

    let api = MockServer::start_async().await;
    api.mock(|when, then| {
        when.path("/rest/eshop/accounting_export");
        then.status(200).json_body(
            json!({"opr_code": "2", "error_desc": "Unknown export profile : X", "job_id": "77aa01"}),
        );
    });
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
    let request = AccountingExportRequest::new(vec!["X".into()], day(1), day(31));
    let adapter = MetaKockaExportAdapter::new(client(&api));
    let err = Job::start_with_clock(adapter.clone(), &request, policy(), clock())
        .await
        .unwrap_err();
    match &err {
        Error::Api { code, message, .. } => {
            assert_eq!(code.as_deref(), Some("2"));
            assert!(message.contains("Unknown export profile") && message.contains("77aa01"));
        }
        other => panic!("expected an API error, got {other}"),
    }
    let empty = AccountingExportRequest::new(vec![], day(1), day(31));
    let err = Job::start_with_clock(adapter, &empty, policy(), clock())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}
