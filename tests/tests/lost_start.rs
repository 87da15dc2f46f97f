//! A start whose answer is lost after the vendor started the report: the durable runner finds
//! the report in the vendor's list and adopts it. Every job ends done, with exactly one start
//! at the sandbox and the sandbox's file.

use std::time::Duration;

use integration_tests::vendors::{
    cloudblue_adapter, cloudblue_request, evovoice_adapter, evovoice_request, ofd_adapter,
    ofd_request,
};
use report_core::WaitPolicy;
use report_runner::{JobState, NewJob, Registry, Store, Worker, WorkerOptions, idle};
use report_sandbox::{Faults, Sandbox, SandboxConfig, Vendor};
use sha2::{Digest, Sha256};

/// Each vendor's adapter on the sandbox and its one typical request (the job's JSON is not
/// read: one request per vendor).
fn registry(sandbox: &Sandbox) -> Registry {
    let mut registry = Registry::new();
    let base = sandbox.base_url(Vendor::Ofd);
    registry.register(
        "ofd",
        move |_: &str| Ok(ofd_adapter(&base)),
        |_: &serde_json::Value| Ok(ofd_request()),
    );
    let base = sandbox.base_url(Vendor::CloudBlue);
    registry.register(
        "cloudblue",
        move |_: &str| Ok(cloudblue_adapter(&base)),
        |_: &serde_json::Value| Ok(cloudblue_request("lost answer")),
    );
    let base = sandbox.base_url(Vendor::EvoVoice);
    registry.register(
        "evovoice",
        move |_: &str| Ok(evovoice_adapter(&base)),
        |_: &serde_json::Value| Ok(evovoice_request()),
    );
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_answer_was_lost_is_adopted_from_the_vendors_list() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            // Every start's answer is lost: a second start would lose its answer too, and
            // show as a second report.
            start_answer_lost: 1.0,
            ..Faults::none()
        },
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite").display().to_string();
    let store = Store::open(&db).await.unwrap();
    let vendors = [
        ("ofd", Vendor::Ofd),
        ("cloudblue", Vendor::CloudBlue),
        ("evovoice", Vendor::EvoVoice),
    ];
    let mut ids = Vec::new();
    for (name, _) in vendors {
        let job = store
            .submit(NewJob {
                vendor: name.into(),
                connection: "main".into(),
                request: serde_json::json!({}),
                out: dir.path().join(format!("{name}.out")).display().to_string(),
            })
            .await
            .unwrap();
        ids.push(job.id);
    }
    let options = WorkerOptions {
        concurrency: 3,
        lease: Duration::from_secs(5),
        fetch_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        policy: WaitPolicy::default()
            .with_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .with_deadline(Some(Duration::from_secs(60))),
    };
    let worker = Worker::new(store.clone(), registry(&sandbox), options);
    tokio::time::timeout(
        Duration::from_secs(60),
        worker.run_until(idle(store.clone(), Duration::from_millis(50))),
    )
    .await
    .expect("the queue drains in time")
    .unwrap();

    for (id, (name, vendor)) in ids.iter().zip(vendors) {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{name}: {job:?}");
        let stats = sandbox.stats(vendor);
        assert_eq!(stats.reports_started, 1, "{name}: exactly one start");
        assert_eq!(
            stats.faults_injected, 1,
            "{name}: its start's answer was lost"
        );
        let report = job.ticket.as_ref().unwrap().id.clone();
        let file = std::fs::read(&job.out).unwrap();
        assert_eq!(
            Some(hex::encode(Sha256::digest(&file))),
            sandbox.report_sha256(vendor, &report),
            "{name}: the sandbox's file"
        );
    }
    sandbox.shutdown().await;
}
