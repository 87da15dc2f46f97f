//! OFD.ru across the workspace: the API surface of specs/ofd.yaml as an insta snapshot, so a
//! spec edit is reviewed as a short readable diff (`cargo insta review`).

use integration_tests::{api_surface, load_spec};

#[test]
fn ofd_api_surface() {
    insta::assert_snapshot!(api_surface(&load_spec("ofd")));
}

/// The requests of one OFD.ru job against the sandbox, secrets redacted: a change to what the
/// client sends shows up here in review.
#[tokio::test]
async fn ofd_request_transcript() {
    use report_core::{Job, Status, WaitPolicy};
    use report_ofd::chrono::NaiveDate;
    use report_ofd::{
        Agreement, OfdAdapter, OfdClient, OfdConfig, OfdReportRequest, Registers, ReportType,
    };
    use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: std::time::Duration::from_millis(200),
        report_size: 2048,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let config =
        OfdConfig::new(c::OFD_LOGIN, c::OFD_PASSWORD).with_base_url(sandbox.base_url(Vendor::Ofd));
    let adapter = OfdAdapter::new(OfdClient::new(config).unwrap());
    let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
    let request = OfdReportRequest::for_days(
        ReportType::ReceiptReport,
        day(1),
        day(31),
        Registers::List(vec!["kkt-0001".into()]),
    )
    .with_agreement(Agreement::Lookup {
        inn: c::OFD_INN.into(),
        kpp: c::OFD_KPP.into(),
    });
    let job = Job::start(adapter, &request, WaitPolicy::default())
        .await
        .unwrap();
    // Let the simulated report finish, then poll once: the transcript stays deterministic.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let Status::Ready(artifact) = job.poll().await.unwrap() else {
        panic!("the sandbox report should be done");
    };
    let dir = tempfile::tempdir().unwrap();
    job.download_to(&artifact, dir.path().join("r.zip"), Default::default())
        .await
        .unwrap();
    job.delete().await.unwrap();

    let ticket = job.ticket();
    let volatile = [
        (ticket.id.as_str(), "{report-id}"),
        (ticket.get("agreement_id").unwrap(), "{agreement-id}"),
    ];
    insta::assert_snapshot!(integration_tests::transcript(
        &sandbox.requests(),
        &volatile
    ));
    sandbox.shutdown().await;
}
