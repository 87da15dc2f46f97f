//! A CloudBlue report job end to end against httpmock: one server plays the API (with the
//! typed mocks generated from the spec), a second one the Azure blob host of the pre-signed
//! download links. Waits run on a `VirtualClock`, so the tests take milliseconds.
//!
//! httpmock mocks are stateless: a report "progresses" by deleting one mock and creating the
//! next between `job.poll()` steps.

use std::io::Write;
use std::sync::Arc;

use httpmock::{Method, Mock, MockServer};
use report_cloudblue::api::types::{ErrorBody, ReportItem, ReportList, Token, TokenRequest};
use report_cloudblue::chrono::{DateTime, NaiveDate};
use report_cloudblue::mock::MockServerExt;
use report_cloudblue::{
    CloudBlueAdapter, CloudBlueClient, CloudBlueConfig, CloudBlueReportRequest, Compression,
    DownloadOptions, Error, Job, ReportFilter, ReportFormat, ReportStatus, ReportType, Status,
    WaitPolicy,
};
use report_core::VirtualClock;

const USER: &str = "api-user";
const PASSWORD: &str = "pa55-word";
const KEY: &str = "066a6b33b16";
const ID: &str = "f40c942d-ebec-41b9-b604-5ed9ffb6d4f2";
const REPORT_JSON: &str = r#"[{"customerId":1000008012,"customerName":"Business Toy Sample, inc.","orderTotal":"22.50000000"}]"#;

/// `Basic base64("api-user:pa55-word")`.
const BASIC: &str = "Basic YXBpLXVzZXI6cGE1NS13b3Jk";

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2019, 11, d).unwrap()
}

fn request() -> CloudBlueReportRequest {
    CloudBlueReportRequest::new("Daily report", ReportFormat::Json, day(7), day(8))
}

fn client(api: &MockServer) -> CloudBlueClient {
    client_at(&api.base_url())
}

fn client_at(base_url: &str) -> CloudBlueClient {
    CloudBlueClient::new(CloudBlueConfig::new(USER, PASSWORD, KEY).with_base_url(base_url))
        .expect("a valid configuration")
}

async fn start(api: &MockServer) -> Result<Job<CloudBlueAdapter>, Error> {
    let clock = Arc::new(VirtualClock::new(DateTime::UNIX_EPOCH));
    let policy = WaitPolicy::default().with_jitter(0.0).with_seed(1);
    Job::start_with_clock(
        CloudBlueAdapter::new(client(api)),
        &request(),
        policy,
        clock,
    )
    .await
}

fn report(status: &str, download_url: Option<String>) -> ReportItem {
    ReportItem {
        id: Some(ID.into()),
        name: Some("Daily report".into()),
        status: Some(status.parse().unwrap()),
        type_: Some(ReportType::Onetime),
        format: Some(ReportFormat::Json),
        creation_date: Some("2019-11-21T13:02:20.000Z".into()),
        start_date: Some("2019-11-07T00:00:00.000Z".into()),
        end_date: Some("2019-11-08T23:59:59.999Z".into()),
        download_url,
        ..ReportItem::default()
    }
}

fn error_body(status: i32, message: &str, correlation_id: Option<&str>) -> ErrorBody {
    ErrorBody {
        timestamp: Some("2024-05-02T10:15:30.123+00:00".into()),
        status: Some(status),
        error: Some(message.into()),
        correlation_id: correlation_id.map(str::to_string),
        ..ErrorBody::default()
    }
}

/// `POST /token` answering `token` to the right credentials and body only.
fn token_mock<'a>(api: &'a MockServer, token: &str, expires_in_seconds: i64) -> Mock<'a> {
    api.generate_auth_token(|when, then| {
        when.body(&TokenRequest {
            marketplace: Some("eu".into()),
        })
        .into_inner()
        .header("authorization", BASIC)
        .header("x-subscription-key", KEY);
        then.ok(&Token {
            token: token.into(),
            expires_in_seconds: Some(expires_in_seconds),
        });
    })
}

/// `POST /reports` with the request's body, answering `submitted`.
fn create_mock<'a>(api: &'a MockServer, token: &str) -> Mock<'a> {
    api.create_report(|when, then| {
        when.body(&request().body())
            .into_inner()
            .header("authorization", format!("Bearer {token}"))
            .header("x-subscription-key", KEY);
        then.ok(&report("submitted", None));
    })
}

/// `GET /reports/{ID}` with a valid token, answering `item`.
fn report_mock<'a>(api: &'a MockServer, token: &str, item: &ReportItem) -> Mock<'a> {
    api.get_report_by_id(|when, then| {
        when.report_id(ID)
            .into_inner()
            .header("authorization", format!("Bearer {token}"))
            .header("x-subscription-key", KEY);
        then.ok(item)
            .into_inner()
            .header("X-Correlation-ID", "corr-poll");
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The blob host: serves `body` at `/rdecontainer/<blob>?sig=<sig>` only to requests without
/// credentials; a request carrying any is counted by the returned spies and refused.
fn blob_mocks<'a>(blob: &'a MockServer, name: &str, sig: &str, body: Vec<u8>) -> [Mock<'a>; 3] {
    let path = format!("/rdecontainer/{name}");
    let file = blob.mock(|when, then| {
        when.method(Method::GET)
            .path(path.clone())
            .query_param("sig", sig)
            .header_missing("authorization")
            .header_missing("x-subscription-key");
        then.status(200)
            .header("content-type", "application/octet-stream")
            .header("x-ms-blob-type", "BlockBlob")
            .body(body);
    });
    let spy = |header: &'static str| {
        blob.mock(|when, then| {
            when.header_exists(header);
            then.status(418);
        })
    };
    [file, spy("authorization"), spy("x-subscription-key")]
}

fn sas_url(blob: &MockServer, name: &str, sig: &str) -> String {
    blob.url(format!(
        "/rdecontainer/{name}?sig={sig}&se=2019-11-21T14%3A02%3A20Z&sp=r&sv=2016-05-31&sr=b"
    ))
}

#[tokio::test]
async fn a_report_is_created_polled_and_downloaded_without_credentials() {
    let api = MockServer::start_async().await;
    let blob = MockServer::start_async().await;
    let token = token_mock(&api, "jwt-1", 1500);
    let create = create_mock(&api, "jwt-1");

    let job = start(&api).await.expect("started");
    assert_eq!(job.ticket().vendor, "cloudblue");
    assert_eq!(job.ticket().id, ID);

    let processing = report_mock(&api, "jwt-1", &report("processing", None));
    match job.poll().await.unwrap() {
        Status::Pending(progress) => assert_eq!(progress.vendor_state, "processing"),
        other => panic!("expected pending, got {other:?}"),
    }
    processing.delete_async().await;

    let name = "daily-dr1.1124976b-ce8560b8626b.2019-11-14.21-57-30.014+0100.json.gz";
    let url = sas_url(&blob, name, "4JbyvWJAUwwN7R");
    let completed = report_mock(&api, "jwt-1", &report("completed", Some(url.clone())));
    let [file, auth_spy, key_spy] =
        blob_mocks(&blob, name, "4JbyvWJAUwwN7R", gzip(REPORT_JSON.as_bytes()));

    let mut seen = Vec::new();
    let artifact = job
        .wait_with(|status| seen.push(status.name()))
        .await
        .expect("ready");
    // The start's `submitted`, then the completed poll.
    assert_eq!(seen, ["pending", "ready"]);
    assert_eq!(artifact.url, url);
    assert!(!artifact.authenticated);
    assert_eq!(artifact.compression, Compression::Gzip);
    assert_eq!(artifact.format.as_deref(), Some("json"));

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("daily.json");
    let summary = job
        .download_to(&artifact, &dest, DownloadOptions::default())
        .await
        .expect("downloaded");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), REPORT_JSON);
    assert_eq!(summary.bytes, REPORT_JSON.len() as u64);
    assert_eq!(
        summary.wire_bytes,
        gzip(REPORT_JSON.as_bytes()).len() as u64
    );

    // Kept compressed on request.
    let raw = dir.path().join("daily.json.gz");
    job.download_to(
        &artifact,
        &raw,
        DownloadOptions::default().keep_compressed(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&raw).unwrap(), gzip(REPORT_JSON.as_bytes()));

    assert_eq!(token.calls_async().await, 1, "one token for the whole job");
    assert_eq!(create.calls_async().await, 1);
    assert_eq!(completed.calls_async().await, 1);
    assert_eq!(file.calls_async().await, 2);
    assert_eq!(
        auth_spy.calls_async().await,
        0,
        "the blob host saw an Authorization header"
    );
    assert_eq!(
        key_spy.calls_async().await,
        0,
        "the blob host saw the subscription key"
    );
}

#[tokio::test]
async fn a_report_that_failed_on_the_vendor_side_is_a_job_failure() {
    let api = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    create_mock(&api, "jwt-1");
    report_mock(&api, "jwt-1", &report("error", None));

    let job = start(&api).await.unwrap();
    let err = job.wait().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::JobFailed {
                vendor: "cloudblue",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(ID), "{err}");
}

#[tokio::test]
async fn refused_credentials_are_an_auth_error_before_any_report_request() {
    let api = MockServer::start_async().await;
    let token = api.generate_auth_token(|_when, then| {
        then.client_error(401, &error_body(401, "Bad credentials", None))
            .into_inner()
            .header("X-Correlation-ID", "corr-token");
    });
    let create = create_mock(&api, "jwt-1");

    let err = start(&api).await.unwrap_err();
    match &err {
        Error::Auth {
            vendor: "cloudblue",
            status: 401,
            message,
        } => {
            assert!(message.contains("Bad credentials"), "{message}");
            assert!(message.contains("corr-token"), "{message}");
        }
        other => panic!("expected an auth error, got {other}"),
    }
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(create.calls_async().await, 0);
}

#[tokio::test]
async fn an_expired_token_mid_job_is_renewed_once_and_the_job_goes_on() {
    let api = MockServer::start_async().await;
    let first_token = token_mock(&api, "jwt-1", 1500);
    create_mock(&api, "jwt-1");
    let job = start(&api).await.unwrap();
    let first_token_hits = first_token.calls_async().await;
    first_token.delete_async().await;

    // The server now refuses jwt-1 and hands out jwt-2.
    let second_token = token_mock(&api, "jwt-2", 1500);
    let refused = api.get_report_by_id(|when, then| {
        when.report_id(ID)
            .into_inner()
            .header("authorization", "Bearer jwt-1");
        then.client_error(
            401,
            &error_body(401, "Invalid or expired token", Some("corr-401")),
        );
    });
    let url = "https://drrde3.blob.core.windows.net/rdecontainer/daily.json.gz?sig=x".to_string();
    report_mock(&api, "jwt-2", &report("completed", Some(url)));

    assert!(matches!(job.poll().await.unwrap(), Status::Ready(_)));
    assert_eq!(refused.calls_async().await, 1);
    assert_eq!(
        first_token_hits + second_token.calls_async().await,
        2,
        "the token endpoint is hit twice: at the start and after the 401"
    );
}

#[tokio::test]
async fn a_token_refused_even_after_renewal_is_an_auth_error() {
    let api = MockServer::start_async().await;
    let token = token_mock(&api, "jwt-1", 1500);
    api.get_report_by_id(|when, then| {
        when.report_id(ID);
        then.client_error(
            401,
            &error_body(401, "Invalid or expired token", Some("corr-401")),
        );
    });
    let err = client(&api).report(ID).await.unwrap_err();
    assert!(matches!(&err, Error::Auth { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("corr-401"), "{err}");
    assert_eq!(token.calls_async().await, 2, "one renewal, not a loop");
}

#[tokio::test]
async fn a_token_about_to_expire_is_renewed_before_use() {
    let api = MockServer::start_async().await;
    // 30 s left is inside the one-minute renewal margin: every call gets a fresh token.
    let token = token_mock(&api, "jwt-short", 30);
    report_mock(&api, "jwt-short", &report("processing", None));
    let client = client(&api);
    client.report(ID).await.unwrap();
    client.report(ID).await.unwrap();
    assert_eq!(token.calls_async().await, 2);

    let long = MockServer::start_async().await;
    let token = token_mock(&long, "jwt-long", 1500);
    report_mock(&long, "jwt-long", &report("processing", None));
    let client = self::client(&long);
    client.report(ID).await.unwrap();
    client.report(ID).await.unwrap();
    assert_eq!(token.calls_async().await, 1, "a valid token is reused");
}

#[tokio::test]
async fn a_malformed_answer_is_a_decode_error_with_an_excerpt() {
    let api = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    create_mock(&api, "jwt-1");
    let job = start(&api).await.unwrap();
    api.get_report_by_id(|when, then| {
        when.report_id(ID);
        then.into_inner()
            .status(200)
            .header("content-type", "application/json")
            .body(r#"{"id": "f40c942d", "status": "completed", "downloadUrl": "#);
    });
    let err = job.poll().await.unwrap_err();
    match &err {
        Error::Decode {
            vendor, excerpt, ..
        } => {
            assert_eq!(*vendor, "cloudblue");
            assert!(excerpt.contains(r#""id": "f40c942d""#), "{excerpt}");
        }
        other => panic!("expected a decode error, got {other}"),
    }
}

#[tokio::test]
async fn the_correlation_id_is_kept_in_errors() {
    let api = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    let header = api.get_report_by_id(|when, then| {
        when.report_id(ID);
        then.client_error(404, &error_body(404, "Report not found", Some("corr-body")))
            .into_inner()
            .header("X-Correlation-ID", "corr-header");
    });
    let client = client(&api);
    let err = client.report(ID).await.unwrap_err();
    match &err {
        Error::Api {
            status: Some(404),
            request_id: Some(id),
            message,
            ..
        } => {
            assert_eq!(id, "corr-header", "the header wins");
            assert!(message.contains("Report not found"), "{message}");
        }
        other => panic!("expected an API error, got {other}"),
    }
    assert!(err.to_string().contains("corr-header"), "{err}");
    header.delete_async().await;

    // Without the header, the body's `correlationId` (other spelling of the body, too).
    api.get_report_by_id(|when, then| {
        when.report_id(ID);
        then.client_error(
            400,
            &ErrorBody {
                time_stamp: Some("2024-05-02T10:15:30Z".into()),
                status: Some(400),
                message: Some("id is not a UUID".into()),
                correlation_id: Some("corr-body".into()),
                ..ErrorBody::default()
            },
        );
    });
    let err = client.report(ID).await.unwrap_err();
    assert!(
        matches!(&err, Error::Api { request_id: Some(id), .. } if id == "corr-body"),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_download_link_is_refreshed_by_asking_for_the_report_again() {
    let api = MockServer::start_async().await;
    let blob = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    create_mock(&api, "jwt-1");
    let name = "daily.json.gz";
    let stale = report_mock(
        &api,
        "jwt-1",
        &report("completed", Some(sas_url(&blob, name, "old"))),
    );
    let job = start(&api).await.unwrap();
    let artifact = job.wait().await.unwrap();
    stale.delete_async().await;

    // The old signature has expired; the API now hands out a new one.
    let expired = blob.mock(|when, then| {
        when.query_param("sig", "old");
        then.status(403)
            .header("content-type", "application/xml")
            .body("<Error><Code>AuthenticationFailed</Code></Error>");
    });
    report_mock(
        &api,
        "jwt-1",
        &report("completed", Some(sas_url(&blob, name, "new"))),
    );
    let [file, auth_spy, key_spy] = blob_mocks(&blob, name, "new", gzip(REPORT_JSON.as_bytes()));

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("daily.json");
    let summary = job
        .download_to(&artifact, &dest, DownloadOptions::default())
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), REPORT_JSON);
    assert_eq!(summary.restarts, 1);
    assert_eq!(expired.calls_async().await, 1);
    assert_eq!(file.calls_async().await, 1);
    assert_eq!(
        auth_spy.calls_async().await + key_spy.calls_async().await,
        0
    );
}

#[tokio::test]
async fn bad_requests_are_refused_before_any_request() {
    let api = MockServer::start_async().await;
    let token = token_mock(&api, "jwt-1", 1500);
    let clock = Arc::new(VirtualClock::new(DateTime::UNIX_EPOCH));
    let reversed = CloudBlueReportRequest::new("Daily report", ReportFormat::Json, day(9), day(8));
    let nameless = CloudBlueReportRequest::new(" ", ReportFormat::Csv, day(7), day(8));
    for request in [reversed, nameless] {
        let err = Job::start_with_clock(
            CloudBlueAdapter::new(client(&api)),
            &request,
            WaitPolicy::default(),
            clock.clone(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }
    let err = client(&api)
        .reports(&ReportFilter::period(day(9), day(8)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert_eq!(token.calls_async().await, 0);
}

#[tokio::test]
async fn cancelling_is_not_offered() {
    let api = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    create_mock(&api, "jwt-1");
    let job = start(&api).await.unwrap();
    let err = job.cancel().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                vendor: "cloudblue",
                operation: "cancel"
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn reports_are_listed_with_every_filter() {
    let api = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    let list = api.get_reports(|when, then| {
        when.from(&day(5))
            .to(&day(30))
            .format(&ReportFormat::Json)
            .status(&ReportStatus::Completed)
            .type_(&ReportType::Daily)
            .name("daily-dr1")
            .limit(std::num::NonZeroU64::new(20))
            .offset(0)
            .into_inner()
            .header("authorization", "Bearer jwt-1")
            .header("x-subscription-key", KEY);
        then.ok(&ReportList {
            data: vec![report("completed", None)],
            pagination: None,
        });
    });
    let filter = ReportFilter {
        name: Some("daily-dr1".into()),
        status: Some(ReportStatus::Completed),
        report_type: Some(ReportType::Daily),
        limit: Some(20),
        offset: Some(0),
        ..ReportFilter::period(day(5), day(30)).with_format(ReportFormat::Json)
    };
    let page = client(&api).reports(&filter).await.unwrap();
    assert_eq!(page.data.len(), 1);
    assert!(page.pagination.is_none());
    assert_eq!(list.calls_async().await, 1);
}

#[tokio::test]
async fn the_region_path_of_the_base_url_is_kept() {
    let api = MockServer::start_async().await;
    let token = api.mock(|when, then| {
        when.method(Method::POST)
            .path("/marketplace/eu/token")
            .header("authorization", BASIC);
        then.status(200)
            .header("content-type", "application/json")
            .body(r#"{"token":"jwt-eu","expiresInSeconds":1500}"#);
    });
    let get = api.mock(|when, then| {
        when.method(Method::GET)
            .path(format!("/marketplace/eu/reports/{ID}"))
            .header("authorization", "Bearer jwt-eu");
        then.status(200)
            .header("content-type", "application/json")
            .body(format!(r#"{{"id":"{ID}","status":"processing"}}"#));
    });
    let client = client_at(&format!("{}/marketplace/eu/", api.base_url()));
    let item = client.report(ID).await.unwrap();
    assert_eq!(item.status, Some(ReportStatus::Processing));
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(get.calls_async().await, 1);
}

/// A listed report of the lost-start tests: the request's name, format and period.
fn listed(id: &str, created: &str) -> ReportItem {
    ReportItem {
        id: Some(id.into()),
        creation_date: Some(created.into()),
        ..report("processing", None)
    }
}

/// `find_started` (a start whose answer was lost): the reports of this name and format listed
/// since the start's day, narrowed to the ones created since the start with the request's
/// period. One is adopted, none is `None`, two are an error naming both; nothing is started.
#[tokio::test]
async fn a_lost_start_is_found_in_the_report_list() {
    use report_core::ReportAdapter;

    let api = MockServer::start_async().await;
    token_mock(&api, "jwt-1", 1500);
    let create = create_mock(&api, "jwt-1");
    let since: DateTime<report_cloudblue::chrono::Utc> =
        "2019-11-21T13:02:20.400Z".parse().unwrap();
    let older = listed("older", "2019-11-21T13:02:19Z");
    // Written in whole seconds: made 100 ms after the start was sent.
    let ours = listed(ID, "2019-11-21T13:02:20Z");
    let other_period = ReportItem {
        end_date: Some("2019-11-30T23:59:59.999Z".into()),
        ..listed("period", "2019-11-21T13:02:21Z")
    };
    let twin = listed("twin", "2019-11-21T13:02:21.000Z");
    let list = |items: Vec<ReportItem>| ReportList {
        data: items,
        ..ReportList::default()
    };
    let adapter = CloudBlueAdapter::new(client(&api));

    let found = api.get_reports(|when, then| {
        when.into_inner()
            .query_param("name", "Daily report")
            .query_param("format", "json")
            .query_param("from", "2019-11-21")
            .header("authorization", "Bearer jwt-1");
        then.ok(&list(vec![
            older.clone(),
            other_period.clone(),
            ours.clone(),
        ]));
    });
    let ticket = adapter
        .find_started(&request(), since)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(
        (ticket.vendor.as_str(), ticket.id.as_str()),
        ("cloudblue", ID)
    );
    found.assert_calls_async(1).await;
    found.delete_async().await;

    let none = api.get_reports(|_, then| {
        then.ok(&list(vec![older.clone(), other_period.clone()]));
    });
    assert_eq!(adapter.find_started(&request(), since).await.unwrap(), None);
    none.delete_async().await;

    api.get_reports(|_, then| {
        then.ok(&list(vec![older, ours, twin]));
    });
    let err = adapter.find_started(&request(), since).await.unwrap_err();
    assert!(
        matches!(&err, Error::Ticket(m) if m.contains(ID) && m.contains("twin")),
        "{err}"
    );
    create.assert_calls_async(0).await;
}
