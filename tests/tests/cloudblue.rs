//! CloudBlue RDE across the workspace: the API surface of specs/cloudblue.yaml as an insta
//! snapshot, so a spec edit is reviewed as a short readable diff (`cargo insta review`).

use integration_tests::{api_surface, load_spec};

#[test]
fn cloudblue_api_surface() {
    insta::assert_snapshot!(api_surface(&load_spec("cloudblue")));
}

/// The requests of one CloudBlue job against the sandbox and its blob origin, secrets
/// redacted: the blob origin's requests show that no credential went there.
#[tokio::test]
async fn cloudblue_request_transcript() {
    use report_cloudblue::chrono::NaiveDate;
    use report_cloudblue::{
        CloudBlueAdapter, CloudBlueClient, CloudBlueConfig, CloudBlueReportRequest, ReportFormat,
    };
    use report_core::{Job, Status, WaitPolicy};
    use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: std::time::Duration::from_millis(200),
        report_size: 2048,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let config = CloudBlueConfig::new(
        c::CLOUDBLUE_USERNAME,
        c::CLOUDBLUE_PASSWORD,
        c::CLOUDBLUE_SUBSCRIPTION_KEY,
    )
    .with_base_url(sandbox.base_url(Vendor::CloudBlue))
    .with_marketplace(c::CLOUDBLUE_MARKETPLACE);
    let adapter = CloudBlueAdapter::new(CloudBlueClient::new(config).unwrap());
    let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    let request = CloudBlueReportRequest::new("january", ReportFormat::Json, day(1), day(31));
    let job = Job::start(adapter, &request, WaitPolicy::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let Status::Ready(artifact) = job.poll().await.unwrap() else {
        panic!("the sandbox report should be done");
    };
    let dir = tempfile::tempdir().unwrap();
    let saved = job
        .download_to(&artifact, dir.path().join("r.json"), Default::default())
        .await
        .unwrap();
    assert_eq!(saved.bytes, 2048, "the gzip blob is saved decompressed");

    // The pre-signed URL's expiry is a timestamp: name it.
    let url = url::Url::parse(&artifact.url).unwrap();
    let expiry = url
        .query_pairs()
        .find(|(k, _)| k == "se")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let volatile = [
        (job.ticket().id.as_str(), "{report-id}"),
        (expiry.as_str(), "{expiry}"),
    ];
    insta::assert_snapshot!(integration_tests::transcript(
        &sandbox.requests(),
        &volatile
    ));
    sandbox.shutdown().await;
}
