//! MetaKocka across the workspace: the API surface of specs/metakocka.yaml as an insta
//! snapshot, so a spec edit is reviewed as a short readable diff (`cargo insta review`).

use integration_tests::{api_surface, load_spec};

#[test]
fn metakocka_api_surface() {
    insta::assert_snapshot!(api_surface(&load_spec("metakocka")));
}

/// The requests of one MetaKocka job against the sandbox, secrets redacted.
#[tokio::test]
async fn metakocka_request_transcript() {
    use report_core::{Job, Status, WaitPolicy};
    use report_metakocka::{
        MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, MetaKockaReportRequest, ReportFormat,
    };
    use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: std::time::Duration::from_millis(200),
        report_size: 2048,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let config = MetaKockaConfig::new(c::METAKOCKA_COMPANY_ID, c::METAKOCKA_SECRET_KEY)
        .with_base_url(sandbox.base_url(Vendor::MetaKocka));
    let adapter = MetaKockaAdapter::new(MetaKockaClient::new(config).unwrap());
    let day = |d| report_metakocka::chrono::NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    let request = MetaKockaReportRequest::new("149", ReportFormat::Csv).period(day(1), day(31));
    let job = Job::start(adapter, &request, WaitPolicy::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let Status::Ready(artifact) = job.poll().await.unwrap() else {
        panic!("the sandbox report should be done");
    };
    let dir = tempfile::tempdir().unwrap();
    let saved = job
        .download_to(&artifact, dir.path().join("r.csv"), Default::default())
        .await
        .unwrap();
    assert_eq!(saved.bytes, 2048);

    let volatile = [(job.ticket().id.as_str(), "{token}")];
    insta::assert_snapshot!(integration_tests::transcript(
        &sandbox.requests(),
        &volatile
    ));
    sandbox.shutdown().await;
}

/// The accounting export against the sandbox: the blocking call answers a pre-signed ZIP on
/// the blob origin; the file matches the sandbox's digest and nothing secret reaches that
/// other host.
#[tokio::test]
async fn an_accounting_export_reaches_the_presigned_host_without_credentials() {
    use report_core::{Job, WaitPolicy};
    use report_metakocka::{
        AccountingExportRequest, MetaKockaClient, MetaKockaConfig, MetaKockaExportAdapter,
    };
    use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: std::time::Duration::from_millis(100),
        report_size: 2048,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let config = MetaKockaConfig::new(c::METAKOCKA_COMPANY_ID, c::METAKOCKA_SECRET_KEY)
        .with_base_url(sandbox.base_url(Vendor::MetaKocka));
    let adapter = MetaKockaExportAdapter::new(MetaKockaClient::new(config).unwrap());
    let day = |d| report_metakocka::chrono::NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    let request = AccountingExportRequest::new(vec!["Izvoz knjiženja".into()], day(1), day(31));
    let job = Job::start(adapter, &request, WaitPolicy::default())
        .await
        .unwrap();
    let artifact = job.wait().await.unwrap();
    assert!(
        artifact.url.starts_with(&sandbox.blob_origin()),
        "{}",
        artifact.url
    );
    let dir = tempfile::tempdir().unwrap();
    let saved = job
        .download_to(&artifact, dir.path().join("export.zip"), Default::default())
        .await
        .unwrap();
    assert_eq!(
        sandbox
            .report_sha256(Vendor::MetaKocka, &job.ticket().id)
            .as_deref(),
        Some(saved.sha256.as_str())
    );
    let blob: Vec<_> = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.origin == "blob")
        .collect();
    assert_eq!(blob.len(), 1);
    for r in &blob {
        let text = format!("{} {:?} {:?} {}", r.path, r.query, r.headers, r.body);
        assert!(!text.contains(c::METAKOCKA_SECRET_KEY), "{text}");
        assert!(!text.to_ascii_lowercase().contains("secret_key"), "{text}");
    }
}
