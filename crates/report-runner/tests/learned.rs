//! The worker learns what each report kind takes and uses it: once three reports of a kind
//! are known, the next one of that kind skips the polls before it can plausibly be ready,
//! while another kind (nothing learned) still polls at the policy's pace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use report_core::{
    Artifact, Download, Progress, ReportAdapter, Result, Started, Status, Ticket, WaitPolicy,
};
use report_runner::{JobState, NewJob, Registry, Store, Worker, WorkerOptions, idle};

/// Reports that take `READY_AFTER` from their start and say nothing about their progress
/// (like EvoVoice and CloudBlue); each ticket's polls are counted.
#[derive(Default)]
struct Vendor {
    started: Mutex<HashMap<String, DateTime<Utc>>>,
    polls: Mutex<HashMap<String, u32>>,
}

// Long against the engine's one-second scheduling granularity (its due times are whole
// seconds), so a wait without a prior polls several times.
const READY_AFTER: Duration = Duration::from_secs(5);

struct Adapter(Arc<Vendor>);

impl ReportAdapter for Adapter {
    type Request = String;

    fn vendor(&self) -> &'static str {
        "quiet"
    }

    async fn start(&self, request: &String) -> Result<Started> {
        self.0
            .started
            .lock()
            .unwrap()
            .insert(request.clone(), Utc::now());
        Ok(Started {
            ticket: Ticket::new("quiet", request.clone(), Utc::now()),
            status: None,
        })
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        *self
            .0
            .polls
            .lock()
            .unwrap()
            .entry(ticket.id.clone())
            .or_default() += 1;
        let started = self.0.started.lock().unwrap()[&ticket.id];
        let ready_at = started + chrono::Duration::from_std(READY_AFTER).unwrap();
        Ok(if Utc::now() < ready_at {
            Status::Pending(Progress::state("processing"))
        } else {
            Status::Ready(Artifact {
                url: format!("http://127.0.0.1/{}", ticket.id),
                ..Artifact::default()
            })
        })
    }

    async fn open(&self, _: &Artifact, offset: u64) -> Result<Download> {
        let body = b"report\n"[offset as usize..].to_vec();
        Ok(Download {
            file_name: None,
            content_type: None,
            total_size: Some(body.len() as u64 + offset),
            offset,
            compression: report_core::Compression::None,
            body: Box::pin(futures::stream::iter([Ok(Bytes::from(body))])),
        })
    }
}

fn registry(vendor: Arc<Vendor>) -> Registry {
    let mut registry = Registry::new();
    registry
        .register(
            "quiet",
            move |_: &str| Ok(Adapter(vendor.clone())),
            |request: &serde_json::Value| Ok(request["name"].as_str().unwrap_or("").to_string()),
        )
        .report_kind("quiet", |request| {
            request["kind"].as_str().unwrap_or("other").to_string()
        });
    registry
}

async fn run(store: &Store, vendor: &Arc<Vendor>, dir: &std::path::Path, jobs: &[(&str, &str)]) {
    let mut ids = Vec::new();
    for (name, kind) in jobs {
        let job = store
            .submit(NewJob {
                vendor: "quiet".into(),
                connection: "main".into(),
                request: serde_json::json!({ "name": name, "kind": kind }),
                out: dir.join(format!("{name}.txt")).display().to_string(),
            })
            .await
            .unwrap();
        ids.push(job.id);
    }
    let options = WorkerOptions {
        concurrency: 4,
        lease: Duration::from_secs(5),
        fetch_interval: Duration::from_millis(20),
        heartbeat: Duration::from_secs(1),
        // Doubling capped at 100 ms: without a prior a 5 s report takes about 50 polls.
        policy: WaitPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(100))
            .with_deadline(Some(Duration::from_secs(30))),
    };
    let worker = Worker::new(store.clone(), registry(vendor.clone()), options);
    tokio::time::timeout(
        Duration::from_secs(30),
        worker.run_until(idle(store.clone(), Duration::from_millis(50))),
    )
    .await
    .expect("the queue drains in time")
    .unwrap();
    for id in ids {
        let job = store.get(&id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{job:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinds_next_job_waits_with_what_its_past_jobs_took() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite:{}", dir.path().join("jobs.db").display()))
        .await
        .unwrap();
    let vendor = Arc::new(Vendor::default());
    run(
        &store,
        &vendor,
        dir.path(),
        &[("a1", "billing"), ("a2", "billing"), ("a3", "billing")],
    )
    .await;

    let prior = store.prior("quiet", "billing").await.unwrap().unwrap();
    assert_eq!(prior.count(), 3, "each finished job is learned once");
    let earliest = prior.earliest().unwrap();
    assert!(
        earliest >= Duration::from_secs(4) && earliest <= Duration::from_secs(8),
        "learned from start to ready: {earliest:?}"
    );
    assert_eq!(store.prior("quiet", "other").await.unwrap(), None);

    run(
        &store,
        &vendor,
        dir.path(),
        &[("b", "billing"), ("c", "other")],
    )
    .await;
    let polls = vendor.polls.lock().unwrap().clone();
    eprintln!("polls per job: {polls:?}");
    for first in ["a1", "a2", "a3", "c"] {
        assert!(
            polls[first] >= 30,
            "no prior: polled at the policy's pace: {polls:?}"
        );
    }
    assert!(
        polls["b"] <= 5,
        "the prior skips the polls before the report can be ready: {polls:?}"
    );
}
