//! A program that depends on report-ofd alone runs a whole job: start, keep the ticket, resume it,
//! wait, step by hand, download, tell errors apart. It compiles without report_core in its
//! dependencies, which is the point.

use std::sync::Arc;

use httpmock::MockServer;
use one_vendor_user::{describe, fetch, is_ready, nightly_policy, poll_once};
use report_ofd::api::types;
use report_ofd::chrono::{DateTime, NaiveDate};
use report_ofd::mock::MockServerExt;
use report_ofd::{
    Agreement, DurationPrior, Job, OfdAdapter, OfdClient, OfdConfig, OfdReportRequest, Registers,
    ReportStatus, ReportType, Ticket, VirtualClock,
};

const TOKEN: &str = "ed38f9e155ce4a7ab3b784606fcd40a1";
const REPORT: &str = "bddf7767-f72b-49a9-90f1-df1b74090d92";
const AGREEMENT: &str = "d64249c5-61b8-4ed9-b729-9bd7cde127db";

fn config(server: &MockServer) -> OfdConfig {
    OfdConfig::new("12345", "56789").with_base_url(server.base_url())
}

fn request() -> OfdReportRequest {
    let day = |d| NaiveDate::from_ymd_opt(2021, 11, d).unwrap();
    OfdReportRequest::for_days(ReportType::ReceiptReport, day(1), day(2), Registers::All)
        .with_agreement(Agreement::Id(AGREEMENT.into()))
}

fn clock() -> Arc<VirtualClock> {
    let start = DateTime::parse_from_rfc3339("2099-01-01T00:00:00Z").unwrap();
    Arc::new(VirtualClock::new(start.into()))
}

fn report(status: ReportStatus) -> types::ReportInfo {
    types::ReportInfo {
        id: Some(REPORT.into()),
        status: Some(status),
        report_type: Some(ReportType::ReceiptReport),
        assumptive_complete_time: Some("2099-01-01T00:01:00".into()),
        download_url: Some(format!(
            "/api/customer/reports/{REPORT}?OfdAgreementId={AGREEMENT}"
        )),
        ..Default::default()
    }
}

/// Serves a whole job; the answer is the mock that counts starts.
fn serve(server: &MockServer, listed: ReportStatus) -> httpmock::Mock<'_> {
    server.create_auth_token(|_, then| {
        then.ok(&types::AuthToken {
            auth_token: Some(TOKEN.into()),
            expiration_date_utc: Some("2099-01-02T00:00:00".into()),
        });
    });
    let starts = server.create_report(|_, then| {
        then.ok(&types::ReportEnvelope {
            status: Some("Success".into()),
            data: Some(report(ReportStatus::Todo)),
            elapsed: None,
        });
    });
    server.list_reports(|when, then| {
        when.skip_page_filter(true);
        then.ok(&types::ReportListEnvelope {
            status: Some("Success".into()),
            data: Some(types::ReportList {
                list: vec![report(listed)],
                ..Default::default()
            }),
            ..Default::default()
        });
    });
    server.download_report(|when, then| {
        when.id(REPORT);
        then.into_inner()
            .status(200)
            .header("content-type", "application/zip")
            .body(b"PK\x03\x04 receipts");
    });
    starts
}

#[tokio::test]
async fn a_job_runs_start_to_file_and_resumes_from_its_ticket() {
    let server = MockServer::start_async().await;
    let starts = serve(&server, ReportStatus::Done);
    let dir = tempfile::tempdir().unwrap();
    let policy = nightly_policy(DurationPrior::default());

    let mut kept = None;
    let saved = fetch(
        config(&server),
        &request(),
        None,
        &mut |ticket: &Ticket| kept = Some(ticket.to_json()),
        &dir.path().join("first.zip"),
        policy.clone(),
        clock(),
    )
    .await
    .expect("the job ran");
    assert_eq!(saved.bytes, 13);
    let ticket = kept.expect("the ticket was handed over before waiting");

    // The next run resumes the same report from the kept ticket: no second start.
    let again = fetch(
        config(&server),
        &request(),
        Some(&ticket),
        &mut |_| {},
        &dir.path().join("again.zip"),
        policy,
        clock(),
    )
    .await
    .expect("resumed");
    assert_eq!(again.sha256, saved.sha256);
    starts.assert_calls_async(1).await;
    assert_eq!(
        std::fs::read(dir.path().join("again.zip")).unwrap(),
        b"PK\x03\x04 receipts"
    );
}

#[tokio::test]
async fn a_caller_can_step_by_hand_and_match_statuses_and_errors() {
    let server = MockServer::start_async().await;
    serve(&server, ReportStatus::Processing);
    let client = OfdClient::new(config(&server)).unwrap();
    let job = Job::start_with_clock(
        OfdAdapter::new(client),
        &request(),
        nightly_policy(DurationPrior::default()),
        clock(),
    )
    .await
    .unwrap();
    let mut state = job.wait_state();
    // The start answer's status comes first, then a real poll: both still pending.
    assert_eq!(poll_once(&job, &mut state).await.unwrap(), "pending");
    assert_eq!(poll_once(&job, &mut state).await.unwrap(), "pending");
    assert!(!is_ready(&job.poll().await.unwrap()));

    // Refused credentials are told apart from everything else.
    let refusing = MockServer::start_async().await;
    refusing.create_auth_token(|_, then| {
        then.into_inner().status(401).body("");
    });
    let client = OfdClient::new(config(&refusing)).unwrap();
    let error = Job::start(OfdAdapter::new(client), &request(), Default::default())
        .await
        .expect_err("refused");
    assert_eq!(describe(&error), "check the credentials", "{error}");
}

#[test]
fn this_crate_does_not_depend_on_report_core() {
    let manifest = include_str!("../Cargo.toml");
    // A dependency is a key (`report-core = …`) or a renamed one (`package = "report-core"`).
    let dependency_lines = manifest.lines().map(str::trim_start).filter(|line| {
        line.starts_with("report-core") || line.replace(' ', "").contains("package=\"report-core\"")
    });
    assert_eq!(
        dependency_lines.count(),
        0,
        "report-core crept into {manifest}"
    );
}
