//! EvoVoice across the workspace: the API surface of specs/evovoice.yaml as an insta snapshot,
//! so a spec edit is reviewed as a short readable diff (`cargo insta review`).

use integration_tests::{api_surface, load_spec};

#[test]
fn evovoice_api_surface() {
    insta::assert_snapshot!(api_surface(&load_spec("evovoice")));
}

/// The requests of one EvoVoice job against the sandbox, secrets redacted: a change to what the
/// client sends shows up here in review.
#[tokio::test]
async fn evovoice_request_transcript() {
    use report_core::{Job, Status, WaitPolicy};
    use report_evovoice::chrono::NaiveDate;
    use report_evovoice::{EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig, EvoVoiceReportRequest};
    use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: std::time::Duration::from_millis(200),
        report_size: 2048,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let config = EvoVoiceConfig::new(c::EVOVOICE_USERNAME, c::EVOVOICE_PASSWORD)
        .with_base_url(sandbox.base_url(Vendor::EvoVoice));
    let adapter = EvoVoiceAdapter::new(EvoVoiceClient::new(config).unwrap());
    let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    let request = EvoVoiceReportRequest::new(c::EVOVOICE_ACCOUNT_ID, day(1), day(31))
        .with_notify_email("billing@example.com");
    let job = Job::start(adapter, &request, WaitPolicy::default())
        .await
        .unwrap();
    // Let the simulated report finish, then poll once: the transcript stays deterministic.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let Status::Ready(artifact) = job.poll().await.unwrap() else {
        panic!("the sandbox report should be done");
    };
    let dir = tempfile::tempdir().unwrap();
    let summary = job
        .download_to(&artifact, dir.path().join("r.xlsx"), Default::default())
        .await
        .unwrap();
    assert_eq!(summary.bytes, 2048);
    job.delete().await.unwrap();

    let volatile = [(job.ticket().id.as_str(), "{report-id}")];
    insta::assert_snapshot!(integration_tests::transcript(
        &sandbox.requests(),
        &volatile
    ));
    sandbox.shutdown().await;
}
