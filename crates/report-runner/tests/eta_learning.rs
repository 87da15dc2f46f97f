//! The worker learns how far a vendor's ETAs are off: each finished job records the first ETA
//! its vendor gave next to how long the report took (dated midway between the last pending
//! status and the poll that found it ready), so the prior's ETA ratio is known after three.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use report_core::{
    Artifact, Download, Progress, ReportAdapter, Result, Started, Status, Ticket, WaitPolicy,
};
use report_runner::{DEFAULT_KIND, JobState, NewJob, Registry, Store, Worker, WorkerOptions, idle};

/// Reports ready `READY_AFTER` after their start, whose vendor says they will take `ETA_AFTER`
/// (a pessimistic vendor: its ETAs are twice the truth).
const READY_AFTER: Duration = Duration::from_secs(3);
const ETA_AFTER: Duration = Duration::from_secs(6);

#[derive(Default)]
struct Vendor {
    started: Mutex<HashMap<String, DateTime<Utc>>>,
}

struct Adapter(Arc<Vendor>);

impl ReportAdapter for Adapter {
    type Request = String;

    fn vendor(&self) -> &'static str {
        "eta"
    }

    async fn start(&self, request: &String) -> Result<Started> {
        self.0
            .started
            .lock()
            .unwrap()
            .insert(request.clone(), Utc::now());
        Ok(Started {
            ticket: Ticket::new("eta", request.clone(), Utc::now()),
            status: None,
        })
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        let started = self.0.started.lock().unwrap()[&ticket.id];
        let after = |d: Duration| started + chrono::Duration::from_std(d).unwrap();
        Ok(if Utc::now() < after(READY_AFTER) {
            Status::Pending(Progress {
                eta: Some(after(ETA_AFTER)),
                ..Progress::state("processing")
            })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_eta_is_learnt_with_the_duration() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite:{}", dir.path().join("jobs.db").display()))
        .await
        .unwrap();
    let vendor = Arc::new(Vendor::default());
    let mut registry = Registry::new();
    let v = vendor.clone();
    registry.register(
        "eta",
        move |_: &str| Ok(Adapter(v.clone())),
        |request: &serde_json::Value| Ok(request["name"].as_str().unwrap_or("").to_string()),
    );
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let job = store
            .submit(NewJob {
                vendor: "eta".into(),
                connection: "main".into(),
                request: serde_json::json!({ "name": name }),
                out: dir.path().join(format!("{name}.txt")).display().to_string(),
            })
            .await
            .unwrap();
        ids.push(job.id);
    }
    // Polls as often as the engine schedules (whole seconds), the hints aside: the report is
    // found ready up to a second after it was.
    let options = WorkerOptions {
        concurrency: 4,
        lease: Duration::from_secs(5),
        fetch_interval: Duration::from_millis(20),
        heartbeat: Duration::from_secs(1),
        policy: WaitPolicy::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(100))
            .with_hints(false)
            .with_deadline(Some(Duration::from_secs(30))),
    };
    let worker = Worker::new(store.clone(), registry, options);
    tokio::time::timeout(
        Duration::from_secs(30),
        worker.run_until(idle(store.clone(), Duration::from_millis(50))),
    )
    .await
    .expect("the queue drains in time")
    .unwrap();
    for id in ids {
        assert_eq!(store.get(&id).await.unwrap().unwrap().state, JobState::Done);
    }

    let prior = store.prior("eta", DEFAULT_KIND).await.unwrap().unwrap();
    assert_eq!(prior.count(), 3);
    // Dated midway: within half a poll interval (plus the engine's rounding) of the truth.
    let typical = prior.typical().unwrap().as_secs_f64();
    assert!(
        (2.4..=3.7).contains(&typical),
        "learnt {typical} s; took 3 s"
    );
    // The vendor's ETAs said 6 s for 3 s reports: ready from about half the ETA on.
    let ratio = prior
        .eta_ratio_floor()
        .expect("three ETAs learnt with their durations");
    assert!((0.3..=0.62).contains(&ratio), "ETA ratio floor {ratio}");
}
