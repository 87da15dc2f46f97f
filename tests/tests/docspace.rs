//! ONLYOFFICE DocSpace across the workspace: the API surface of specs/docspace.yaml as an insta
//! snapshot, so a spec edit is reviewed as a short readable diff (`cargo insta review`).

use integration_tests::{api_surface, load_spec};

#[test]
fn docspace_api_surface() {
    insta::assert_snapshot!(api_surface(&load_spec("docspace")));
}

/// The requests of one DocSpace job against the sandbox, secrets redacted.
#[tokio::test]
async fn docspace_request_transcript() {
    use report_core::{Job, Status, WaitPolicy};
    use report_docspace::chrono::NaiveDate;
    use report_docspace::{DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceReportRequest};
    use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: std::time::Duration::from_millis(200),
        report_size: 2048,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let config = DocSpaceConfig::new(sandbox.base_url(Vendor::DocSpace), c::DOCSPACE_API_KEY);
    let adapter = DocSpaceAdapter::new(DocSpaceClient::new(config).unwrap());
    let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    let request = DocSpaceReportRequest::for_days(day(1), day(31)).with_participant("Acme");
    let job = Job::start(adapter, &request, WaitPolicy::default())
        .await
        .unwrap();
    // Let the simulated report finish, then poll once: the transcript stays deterministic.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let Status::Ready(artifact) = job.poll().await.unwrap() else {
        panic!("the sandbox report should be done");
    };
    let dir = tempfile::tempdir().unwrap();
    let saved = job
        .download_to(&artifact, dir.path().join("r.xlsx"), Default::default())
        .await
        .unwrap();
    assert_eq!(saved.bytes, 2048);

    let file_id = artifact.data["file_id"].clone();
    let volatile = [(file_id.as_str(), "{file-id}")];
    insta::assert_snapshot!(integration_tests::transcript(
        &sandbox.requests(),
        &volatile
    ));
    sandbox.shutdown().await;
}
