//! Whole report jobs against httpmock portals, with the generated typed mocks and a virtual
//! clock (waits are instant; real sockets keep their real timeouts).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use httpmock::{Mock, MockServer};
use report_docspace::api::types::{
    DocumentBuilderTaskDto, DocumentBuilderTaskEnvelope, ErrorEnvelope, ErrorInfo, StringEnvelope,
};
use report_docspace::mock::MockServerExt;
use report_docspace::report_core::{Clock, VirtualClock};
use report_docspace::{
    DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceErrorCode, DocSpaceReportRequest,
    DownloadOptions, Error, FileId, Job, Status, TaskStatus, WaitPolicy,
};

const KEY: &str = "sk-test-4f1d9c";
const BEARER: &str = "Bearer sk-test-4f1d9c";
const TASK_ID: &str = "DocumentBuilderTask_1_0c7a7b3e-5f1c-4a8e-9d3a-2b6f0e1d4c5a";
const FILE_ID: i64 = 777;
const CONTENT: &[u8] = b"PK\x03\x04 pretend this is an xlsx workbook";

fn task(status: TaskStatus, percentage: i32) -> DocumentBuilderTaskDto {
    let done = matches!(
        status,
        TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Canceled
    );
    let completed = status == TaskStatus::Completed;
    DocumentBuilderTaskDto {
        id: TASK_ID.into(),
        error: Some(String::new()),
        percentage: Some(percentage),
        is_completed: Some(done),
        status,
        result_file_id: completed.then_some(FileId::Number(FILE_ID)),
        result_file_name: completed.then(|| "Customer operations report.xlsx".into()),
        result_file_url: completed.then(|| "https://portal.example/doceditor?fileid=777".into()),
    }
}

fn envelope(task: Option<DocumentBuilderTaskDto>) -> DocumentBuilderTaskEnvelope {
    DocumentBuilderTaskEnvelope {
        count: Some(i64::from(task.is_some())),
        response: task,
        status: Some(0),
        status_code: Some(200),
        ..Default::default()
    }
}

fn error_envelope(status: u16, message: &str) -> ErrorEnvelope {
    ErrorEnvelope {
        error: Some(ErrorInfo {
            message: Some(message.into()),
            ..Default::default()
        }),
        status: Some(1),
        status_code: Some(i32::from(status)),
        ..ErrorEnvelope::default()
    }
}

fn adapter(server: &MockServer) -> DocSpaceAdapter {
    let config = DocSpaceConfig::new(server.base_url(), KEY);
    DocSpaceAdapter::new(DocSpaceClient::new(config).expect("valid config"))
}

fn policy() -> WaitPolicy {
    WaitPolicy::default()
        .with_jitter(0.0)
        .with_seed(1)
        .with_hints(false)
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-02-01T09:00:00Z")
        .unwrap()
        .to_utc()
}

fn january() -> DocSpaceReportRequest {
    let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    DocSpaceReportRequest::for_days(day(1), day(31))
}

/// GET answers: the user's current task (or none), for a request with the key.
fn current_task<'a>(server: &'a MockServer, task: Option<DocumentBuilderTaskDto>) -> Mock<'a> {
    server.get_customer_operations_report(|when, then| {
        let _ = when.into_inner().header("authorization", BEARER);
        then.ok(&envelope(task));
    })
}

/// POST answers a freshly created task, for the January body sent with the key.
fn accepts_start(server: &MockServer) -> Mock<'_> {
    server.create_customer_operations_report(|when, then| {
        let when = when.body(&january().body());
        let _ = when.into_inner().header("authorization", BEARER);
        then.ok(&envelope(Some(task(TaskStatus::Created, 0))));
    })
}

/// Starts the January report on an idle portal, leaving no mock behind.
async fn started_job(server: &MockServer, clock: Arc<VirtualClock>) -> Job<DocSpaceAdapter> {
    let idle = current_task(server, None);
    let start = accepts_start(server);
    let job = Job::start_with_clock(adapter(server), &january(), policy(), clock)
        .await
        .expect("start");
    assert_eq!(start.calls(), 1);
    idle.delete_async().await;
    start.delete_async().await;
    job
}

fn fraction(status: &Status) -> Option<f64> {
    match status {
        Status::Pending(p) => p.fraction,
        other => panic!("expected pending, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_built_polled_and_downloaded() {
    let server = MockServer::start_async().await;
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started_job(&server, clock.clone()).await;
    assert_eq!(job.ticket().vendor, "docspace");
    assert_eq!(job.ticket().id, TASK_ID);

    for percent in [30, 60] {
        let running = current_task(&server, Some(task(TaskStatus::Running, percent)));
        let status = job.poll().await.expect("poll");
        assert_eq!(fraction(&status), Some(f64::from(percent) / 100.0));
        running.delete_async().await;
    }

    let done = current_task(&server, Some(task(TaskStatus::Completed, 100)));
    let artifact = job.wait().await.expect("ready");
    assert_eq!(done.calls(), 1);
    assert_eq!(artifact.data["file_id"], "777");
    assert_eq!(
        artifact.file_name.as_deref(),
        Some("Customer operations report.xlsx")
    );
    // The start answer (0 %) was reported first, then one backoff step before the poll.
    assert_eq!(clock.sleeps(), [Duration::from_secs(1)]);

    // The pre-signed URL is on the portal itself here, so it gets the key.
    let signed = server.url("/storage/files/777/report.xlsx?hash=abc");
    let presign = server.get_presigned_uri(|when, then| {
        let _ = when
            .file_id("777")
            .into_inner()
            .header("authorization", BEARER);
        then.ok(&StringEnvelope {
            response: Some(signed.clone()),
            ..Default::default()
        });
    });
    let file = server.mock(|when, then| {
        when.path("/storage/files/777/report.xlsx")
            .query_param("hash", "abc")
            .header("authorization", BEARER);
        then.status(200)
            .header(
                "content-type",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
            .header(
                "content-disposition",
                "attachment; filename=\"report.xlsx\"",
            )
            .body(CONTENT);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("january.xlsx");
    let saved = job
        .download_to(&artifact, &path, DownloadOptions::default())
        .await
        .expect("download");
    assert_eq!(std::fs::read(&path).unwrap(), CONTENT);
    assert_eq!(saved.bytes, CONTENT.len() as u64);
    assert_eq!(saved.server_file_name.as_deref(), Some("report.xlsx"));
    assert_eq!((presign.calls(), file.calls()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_presigned_url_gets_no_key() {
    let portal = MockServer::start_async().await;
    let storage = MockServer::start_async().await;
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started_job(&portal, clock).await;
    let _done = current_task(&portal, Some(task(TaskStatus::Completed, 100)));
    let artifact = job.wait().await.expect("ready");

    let signed = storage.url("/bucket/777.xlsx?X-Amz-Signature=abc");
    portal.get_presigned_uri(|when, then| {
        when.file_id("777");
        then.ok(&StringEnvelope {
            response: Some(signed.clone()),
            ..Default::default()
        });
    });
    let with_key = storage.mock(|when, then| {
        when.path("/bucket/777.xlsx").header_exists("authorization");
        then.status(400).body("a key leaked to the storage host");
    });
    let without_key = storage.mock(|when, then| {
        when.path("/bucket/777.xlsx")
            .header_missing("authorization");
        then.status(200).body(CONTENT);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xlsx");
    job.download_to(&artifact, &path, DownloadOptions::default())
        .await
        .expect("download");
    assert_eq!(std::fs::read(&path).unwrap(), CONTENT);
    assert_eq!(with_key.calls(), 0, "the storage host received the API key");
    assert_eq!(without_key.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_presigned_url_the_file_handler_is_used_with_the_key() {
    let server = MockServer::start_async().await;
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started_job(&server, clock).await;
    let _done = current_task(&server, Some(task(TaskStatus::Completed, 100)));
    let artifact = job.wait().await.expect("ready");

    server.get_presigned_uri(|when, then| {
        when.file_id("777");
        then.client_error(404, &error_envelope(404, "The method is not supported"));
    });
    let handler = server.download_file(|when, then| {
        let when = when.action("download").fileid("777");
        let _ = when.into_inner().header("authorization", BEARER);
        let _ = then.into_inner().status(200).body(CONTENT);
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xlsx");
    job.download_to(&artifact, &path, DownloadOptions::default())
        .await
        .expect("download");
    assert_eq!(std::fs::read(&path).unwrap(), CONTENT);
    assert_eq!(handler.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_fails_the_job_with_the_vendors_message() {
    let server = MockServer::start_async().await;
    let job = started_job(&server, Arc::new(VirtualClock::new(t0()))).await;
    let mut failed = task(TaskStatus::Failed, 30);
    failed.error = Some("Tariff service is not configured".into());
    // A failed build still answers HTTP 200.
    current_task(&server, Some(failed));
    let err = job.wait().await.unwrap_err();
    match err {
        Error::JobFailed {
            vendor, message, ..
        } => {
            assert_eq!(vendor, "docspace");
            assert_eq!(message, "Tariff service is not configured");
        }
        other => panic!("expected JobFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_terminates_the_task() {
    let server = MockServer::start_async().await;
    let job = started_job(&server, Arc::new(VirtualClock::new(t0()))).await;
    let terminate = server.terminate_customer_operations_report(|when, then| {
        let _ = when.into_inner().header("authorization", BEARER);
        then.ok(&envelope(None));
    });
    job.cancel().await.expect("cancel");
    assert_eq!(terminate.calls(), 1);

    current_task(&server, Some(task(TaskStatus::Canceled, 60)));
    let err = job.wait().await.unwrap_err();
    assert!(
        matches!(err, Error::Cancelled { vendor: "docspace" }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_task_ends_the_job() {
    let server = MockServer::start_async().await;
    let job = started_job(&server, Arc::new(VirtualClock::new(t0()))).await;
    current_task(&server, None);
    let status = job.poll().await.expect("poll");
    assert!(
        matches!(&status, Status::Failed { code: Some(c), .. } if c == DocSpaceErrorCode::TaskNotFound.as_str()),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_an_auth_error() {
    let server = MockServer::start_async().await;
    server.get_customer_operations_report(|_, then| {
        then.client_error(401, &error_envelope(401, "Unauthorized"));
    });
    let start = accepts_start(&server);
    let err = Job::start_with_clock(
        adapter(&server),
        &january(),
        policy(),
        Arc::new(VirtualClock::new(t0())),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Auth {
                vendor: "docspace",
                status: 401,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains(KEY));
    assert_eq!(start.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_is_a_decode_error_with_an_excerpt() {
    let server = MockServer::start_async().await;
    let job = started_job(&server, Arc::new(VirtualClock::new(t0()))).await;
    server.get_customer_operations_report(|_, then| {
        let _ = then
            .into_inner()
            .status(200)
            .header("content-type", "application/json")
            .body(r#"{"response": {"id": "DocumentBuilderTask_1", "status": tru"#);
    });
    let err = job.poll().await.unwrap_err();
    match err {
        Error::Decode {
            vendor,
            operation,
            excerpt,
            ..
        } => {
            assert_eq!(vendor, "docspace");
            assert_eq!(operation, "getCustomerOperationsReport");
            assert!(excerpt.contains("DocumentBuilderTask_1"), "{excerpt}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_gateway_error_keeps_its_status() {
    let server = MockServer::start_async().await;
    let job = started_job(&server, Arc::new(VirtualClock::new(t0()))).await;
    server.get_customer_operations_report(|_, then| {
        let _ = then
            .into_inner()
            .status(502)
            .header("content-type", "text/html")
            .body("<html><body><h1>502 Bad Gateway</h1></body></html>");
    });
    let err = job.poll().await.unwrap_err();
    assert_eq!(err.http_status(), Some(502));
    assert!(err.is_transient());
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_waited_out_as_the_server_asks() {
    let server = MockServer::start_async().await;
    let clock = Arc::new(VirtualClock::new(t0()));
    let job = started_job(&server, clock.clone()).await;
    // httpmock answers are fixed, so the virtual clock decides: 429 for the first ten
    // seconds, then the finished task. Only the job's sleeps move the clock.
    let limited_until = t0() + chrono::Duration::seconds(10);
    let limiter = clock.clone();
    let limited = server.get_customer_operations_report(move |when, then| {
        let _ = when
            .into_inner()
            .is_true(move |_| limiter.now() < limited_until);
        let _ = then
            .into_inner()
            .status(429)
            .header("retry-after", "17")
            .header("content-type", "application/json")
            .json_body_obj(&error_envelope(429, "Too many requests"));
    });
    let ready_clock = clock.clone();
    server.get_customer_operations_report(move |when, then| {
        let _ = when
            .into_inner()
            .is_true(move |_| ready_clock.now() >= limited_until);
        let _ = then
            .into_inner()
            .status(200)
            .json_body_obj(&envelope(Some(task(TaskStatus::Completed, 100))));
    });
    job.wait().await.expect("ready after the rate limit");
    assert_eq!(limited.calls(), 1);
    // One backoff step after the start answer, then the 17 s the server asked for.
    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(1), Duration::from_secs(17)]
    );
    assert_eq!(job.stats().retries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_task_is_not_silently_taken_over() {
    let server = MockServer::start_async().await;
    let running = current_task(&server, Some(task(TaskStatus::Running, 30)));
    let start = server.create_customer_operations_report(|_, then| {
        then.ok(&envelope(Some(task(TaskStatus::Running, 30))));
    });
    let clock = || Arc::new(VirtualClock::new(t0()));

    let err = Job::start_with_clock(adapter(&server), &january(), policy(), clock())
        .await
        .unwrap_err();
    assert_eq!(
        DocSpaceErrorCode::of(&err),
        Some(DocSpaceErrorCode::TaskAlreadyRunning)
    );
    assert!(err.to_string().contains("attach_to_running"), "{err}");
    assert_eq!(start.calls(), 0, "nothing was started");

    // Opting in follows the running task, still without starting anything.
    let job = Job::start_with_clock(
        adapter(&server),
        &january().attaching_to_running(),
        policy(),
        clock(),
    )
    .await
    .expect("attached");
    assert_eq!(job.ticket().id, TASK_ID);
    assert_eq!(start.calls(), 0);
    assert_eq!(running.calls(), 2);
    let first = job.updates();
    futures::pin_mut!(first);
    let status = futures::StreamExt::next(&mut first).await.unwrap().unwrap();
    assert_eq!(fraction(&status), Some(0.3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_start_answer_is_retried_without_refusing_its_own_task() {
    let server = MockServer::start_async().await;
    let clock = Arc::new(VirtualClock::new(t0()));
    // Before the retry (the clock moves only when the job sleeps) the portal has no task and
    // the start's answer is lost in a 503; after it, our task runs and a start returns it.
    let retried = |c: &Arc<VirtualClock>| {
        let c = c.clone();
        move |_: &httpmock::HttpMockRequest| c.now() > t0()
    };
    let before = |c: &Arc<VirtualClock>| {
        let c = c.clone();
        move |_: &httpmock::HttpMockRequest| c.now() == t0()
    };
    let idle = server.get_customer_operations_report(|when, then| {
        let _ = when.into_inner().is_true(before(&clock));
        then.ok(&envelope(None));
    });
    let busy = server.get_customer_operations_report(|when, then| {
        let _ = when.into_inner().is_true(retried(&clock));
        then.ok(&envelope(Some(task(TaskStatus::Running, 30))));
    });
    let lost = server.create_customer_operations_report(|when, then| {
        let _ = when.into_inner().is_true(before(&clock));
        then.server_error(503, &error_envelope(503, "Service Unavailable"));
    });
    let returns_running = server.create_customer_operations_report(|when, then| {
        let _ = when.into_inner().is_true(retried(&clock));
        then.ok(&envelope(Some(task(TaskStatus::Running, 30))));
    });

    let job = Job::start_with_clock(adapter(&server), &january(), policy(), clock.clone())
        .await
        .expect("the retried start follows its own task");
    assert_eq!(job.ticket().id, TASK_ID);
    assert_eq!((idle.calls(), lost.calls()), (1, 1));
    // The retry skipped the running-task check: the running task is the one it started.
    assert_eq!((busy.calls(), returns_running.calls()), (0, 1));
    assert_eq!(job.stats().retries, 1);
}

/// The authentication pipeline answers 401/403 with empty bodies (FACTS round 2): a 401 is a
/// refused key, a 403 a permission problem, both typed with their status.
#[tokio::test]
async fn empty_401_and_403_answers_are_typed() {
    for (status, auth) in [(401, true), (403, false)] {
        let server = MockServer::start_async().await;
        server.get_customer_operations_report(|_, then| {
            let _ = then.into_inner().status(status);
        });
        let client = DocSpaceClient::new(DocSpaceConfig::new(server.base_url(), KEY)).unwrap();
        let err = client.current_task().await.unwrap_err();
        assert_eq!(err.http_status(), Some(status), "{err}");
        assert_eq!(matches!(err, Error::Auth { .. }), auth, "{err}");
        assert!(!err.is_transient(), "{err}");
    }
}

/// `orderType` has no string converter on the server: it is sent as its integer.
#[tokio::test]
async fn the_sort_order_is_sent_as_its_integer() {
    let server = MockServer::start_async().await;
    let start = server.create_customer_operations_report(|when, then| {
        let _ = when.into_inner().json_body_includes(r#"{"orderType": 1}"#);
        let _ = then.into_inner().status(400);
    });
    let client = DocSpaceClient::new(DocSpaceConfig::new(server.base_url(), KEY)).unwrap();
    let body = report_docspace::api::types::CustomerOperationsReportRequest {
        order_type: Some(report_docspace::SortOrder::Ascending),
        ..Default::default()
    };
    let _ = client.start_task(&body).await;
    start.assert_async().await;
}

/// The file handler's errors are not JSON (FACTS.md, round 2): an empty 403 or 404, an HTML
/// 400. Each ends the download in a typed error with its status and no partial file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_handlers_empty_and_html_errors_are_typed() {
    for (status, content_type, body) in [
        (403, None, ""),
        (404, None, ""),
        (
            400,
            Some("text/html; charset=utf-8"),
            "<html><body><h1>Bad Request</h1></body></html>",
        ),
    ] {
        let server = MockServer::start_async().await;
        let clock = Arc::new(VirtualClock::new(t0()));
        let job = started_job(&server, clock).await;
        let _done = current_task(&server, Some(task(TaskStatus::Completed, 100)));
        let artifact = job.wait().await.expect("ready");
        server.get_presigned_uri(|when, then| {
            when.file_id("777");
            then.client_error(404, &error_envelope(404, "The method is not supported"));
        });
        let handler = server.download_file(|when, then| {
            let _ = when.action("download").fileid("777");
            let mut then = then.into_inner().status(status).body(body);
            if let Some(content_type) = content_type {
                then = then.header("content-type", content_type);
            }
            let _ = then;
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xlsx");
        let err = job
            .download_to(&artifact, &path, DownloadOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), Some(status), "{err:?}");
        let text = err.to_string();
        if body.is_empty() {
            assert!(text.ends_with("(empty answer)"), "{status}: {text}");
        } else {
            assert!(text.contains("Bad Request (text/html"), "{text}");
            assert!(text.contains("<h1>Bad Request</h1>"), "{text}");
        }
        assert!(!path.exists(), "{status}: a partial file was left");
        assert!(handler.calls() >= 1);
    }
}
