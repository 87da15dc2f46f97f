//! A webhook call that arrives while its job's step is under way (here: the start request,
//! before the first poll is even queued) is not lost: the endpoint applies it to the next
//! poll once the step is recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use report_core::{Artifact, Download, ReportAdapter, Result, Started, Status, Ticket, WaitPolicy};
use report_runner::{JobState, NewJob, Registry, Store, Worker, WorkerOptions, idle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const START_TAKES: Duration = Duration::from_millis(1500);

/// A vendor whose start is slow and whose reports are ready at the first poll.
#[derive(Default)]
struct Vendor {
    webhook: Mutex<Option<String>>,
    polls: Mutex<u32>,
}

struct Adapter(Arc<Vendor>);

impl ReportAdapter for Adapter {
    /// The report's name, then the webhook URL after a space if there is one.
    type Request = String;

    fn vendor(&self) -> &'static str {
        "slowstart"
    }

    async fn start(&self, request: &String) -> Result<Started> {
        let url = request.split_once(' ').map(|(_, url)| url.to_string());
        *self.0.webhook.lock().unwrap() = url;
        tokio::time::sleep(START_TAKES).await;
        Ok(Started {
            ticket: Ticket::new("slowstart", "r1", Utc::now()),
            status: None,
        })
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        *self.0.polls.lock().unwrap() += 1;
        Ok(Status::Ready(Artifact {
            url: "http://127.0.0.1/r1".into(),
            ..Artifact::default()
        }))
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

async fn post(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_during_the_start_moves_the_first_poll() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("jobs.db").display());
    let store = Store::open(&db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    tokio::spawn(report_runner::serve_webhooks(listener, store.clone()));

    let vendor = Arc::new(Vendor::default());
    let v = vendor.clone();
    let mut registry = Registry::new();
    registry.register_with_webhook(
        "slowstart",
        move |_: &str| Ok(Adapter(v.clone())),
        |_: &serde_json::Value| Ok("r1".to_string()),
        |request: String, url: &str| format!("{request} {url}"),
    );
    let job = store
        .submit(NewJob {
            vendor: "slowstart".into(),
            connection: "main".into(),
            request: serde_json::json!({}),
            out: dir.path().join("r1.txt").display().to_string(),
        })
        .await
        .unwrap();
    // Left alone, the first poll would come a minute after the start.
    let options = WorkerOptions {
        concurrency: 2,
        lease: Duration::from_secs(10),
        fetch_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        policy: WaitPolicy::default()
            .with_backoff(Duration::from_secs(60), Duration::from_secs(60))
            .with_jitter(0.0),
    };
    let base = url::Url::parse(&format!("http://{endpoint}/hooks")).unwrap();
    let worker = Worker::new(store.clone(), registry, options).with_webhook_url_base(base);
    let began = Instant::now();
    let run = tokio::spawn(tokio::time::timeout(
        Duration::from_secs(20),
        worker.run_until(idle(store.clone(), Duration::from_millis(50))),
    ));
    let url = loop {
        if let Some(url) = vendor.webhook.lock().unwrap().clone() {
            break url;
        }
        assert!(began.elapsed() < Duration::from_secs(10), "no start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The start is still under way: no ticket, no poll queued yet.
    let path = url::Url::parse(&url).unwrap().path().to_string();
    assert_eq!(post(endpoint, &path).await, 202);

    run.await
        .unwrap()
        .expect("done long before the scheduled poll")
        .unwrap();
    let job = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert_eq!(*vendor.polls.lock().unwrap(), 1);
    assert!(
        began.elapsed() < START_TAKES + Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}
