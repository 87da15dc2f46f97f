//! The runner's webhook endpoint end to end, in process: the sandbox's EvoVoice calls each
//! job's own URL when its report is done, the endpoint turns the call into a poll at once, and
//! that poll decides. Forged, repeated, early and lost calls: polls counted at the sandbox.

mod support;

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use report_evovoice::{EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig, EvoVoiceReportRequest};
use report_runner::{JobState, NewJob, Registry, Store, Worker, WorkerOptions, idle};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, WebhookDelivery, credentials as c};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A report takes this long at the sandbox.
const REPORT_TAKES: Duration = Duration::from_secs(2);

async fn sandbox(delivery: WebhookDelivery) -> Sandbox {
    Sandbox::start(SandboxConfig {
        job_duration: REPORT_TAKES,
        report_size: 4096,
        evovoice_webhook: delivery,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap()
}

fn registry(sandbox: &Sandbox) -> Registry {
    let base = sandbox.base_url(Vendor::EvoVoice);
    let mut registry = Registry::new();
    registry.register_with_webhook(
        "evovoice",
        move |_: &str| {
            let config = EvoVoiceConfig::new(c::EVOVOICE_USERNAME, c::EVOVOICE_PASSWORD)
                .with_base_url(&base);
            Ok(EvoVoiceAdapter::new(
                EvoVoiceClient::new(config).map_err(|e| e.to_string())?,
            ))
        },
        |_: &serde_json::Value| {
            let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
            Ok(EvoVoiceReportRequest::new(
                c::EVOVOICE_ACCOUNT_ID,
                day(1),
                day(31),
            ))
        },
        |request: EvoVoiceReportRequest, url: &str| request.with_webhook_url(url),
    );
    registry
}

/// Polls every `every` (no hints): a report is noticed up to `every` late without a call.
fn options(every: Duration) -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        lease: Duration::from_secs(10),
        fetch_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        policy: report_core::WaitPolicy::default()
            .with_backoff(every, every)
            .with_jitter(0.0)
            .with_hints(false)
            .with_deadline(Some(Duration::from_secs(120))),
    }
}

struct Setup {
    sandbox: Sandbox,
    store: Store,
    endpoint: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

async fn setup(delivery: WebhookDelivery) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("jobs.db").display());
    setup_on(delivery, dir, &db).await
}

/// The endpoint has a database pool of its own, as in another process.
async fn setup_on(delivery: WebhookDelivery, dir: tempfile::TempDir, db: &str) -> Setup {
    let sandbox = sandbox(delivery).await;
    let store = Store::open(db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = listener.local_addr().unwrap();
    tokio::spawn(report_runner::serve_webhooks(
        listener,
        Store::open(db).await.unwrap(),
    ));
    Setup {
        sandbox,
        store,
        endpoint,
        dir,
    }
}

impl Setup {
    async fn submit(&self) -> String {
        self.store
            .submit(NewJob {
                vendor: "evovoice".into(),
                connection: "main".into(),
                request: serde_json::json!({}),
                out: self.dir.path().join("report.xlsx").display().to_string(),
            })
            .await
            .unwrap()
            .id
    }

    /// Runs a worker polling every `every` until the queue is empty (at most 60 s).
    fn worker(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let base = url::Url::parse(&format!("http://{}/hooks", self.endpoint)).unwrap();
        let worker = Worker::new(self.store.clone(), registry(&self.sandbox), options(every))
            .with_webhook_url_base(base);
        let store = self.store.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(60),
                worker.run_until(idle(store, Duration::from_millis(50))),
            )
            .await
            .expect("the queue drains in time")
            .unwrap();
        })
    }

    fn polls(&self) -> u64 {
        self.sandbox.stats(Vendor::EvoVoice).status_requests
    }

    /// The webhook URL the sandbox got with the job's start.
    async fn given_url(&self) -> String {
        for _ in 0..500 {
            let started = self.sandbox.requests().into_iter().find(|r| {
                r.origin == "evovoice" && r.method == "POST" && r.body.contains("webhookUrl")
            });
            if let Some(request) = started {
                let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
                return body["webhookUrl"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no start with a webhookUrl");
    }

    async fn dump(&self) -> String {
        let jobs = self.store.list().await.unwrap();
        format!("{jobs:?}")
    }
}

/// POSTs `body` to `path` on the endpoint; the status code.
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> u16 {
    post_claiming(addr, path, body, body.len()).await
}

/// POSTs `body` with a `Content-Length` of `length`; the status code.
async fn post_claiming(addr: std::net::SocketAddr, path: &str, body: &str, length: usize) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

fn path_of(url: &str) -> String {
    url::Url::parse(url).unwrap().path().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_makes_the_job_finish_at_once_and_its_repeats_cost_nothing() {
    // Three copies of each call; the worker would poll only after 60 s on its own.
    let setup = setup(WebhookDelivery {
        copies: 3,
        ..WebhookDelivery::default()
    })
    .await;
    let id = setup.submit().await;
    let began = Instant::now();
    let worker = setup.worker(Duration::from_secs(60));
    let url = setup.given_url().await;
    assert!(url.starts_with(&format!("http://{}/hooks/", setup.endpoint)));
    worker.await.unwrap();
    let took = began.elapsed();

    let job = setup.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    // Ready after 2 s and called back at once: done within about a second of the call.
    assert!(
        took < REPORT_TAKES + Duration::from_millis(1500),
        "done {took:?} after the start; the report was ready after {REPORT_TAKES:?}"
    );
    assert_eq!(setup.polls(), 1, "one poll, the one the call caused");
    assert_eq!(job.polls, 1);
    // The token is a capability: the database keeps its digest only, the record shows neither.
    let token = url.rsplit('/').next().unwrap();
    assert!(!serde_json::to_string(&job).unwrap().contains(token));
    let mut files = 0;
    for entry in std::fs::read_dir(setup.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("jobs.db") {
            let bytes = std::fs::read(&path).unwrap();
            files += 1;
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{} holds the token",
                path.display()
            );
        }
    }
    assert!(files >= 1);
    // The job is done: its URL now changes nothing, and is still no 404 (it exists).
    assert_eq!(post(setup.endpoint, &path_of(&url), "{}").await, 202);
    assert_eq!(setup.polls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_calls_are_404_and_write_nothing_and_a_lost_callback_is_made_up_by_polling() {
    let setup = setup(WebhookDelivery {
        lost: true,
        ..WebhookDelivery::default()
    })
    .await;
    let id = setup.submit().await;
    let began = Instant::now();
    let worker = setup.worker(Duration::from_secs(4));
    let url = setup.given_url().await;
    let path = path_of(&url);
    // Let the start be recorded, then forge: another token of the right form, a token with a
    // digit changed, garbage, the bare prefix, another method.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = setup.dump().await;
    let token = path.rsplit('/').next().unwrap();
    let flipped: String = token
        .char_indices()
        .map(|(i, ch)| match (i, ch) {
            (0, '0') => '1',
            (0, _) => '0',
            (_, ch) => ch,
        })
        .collect();
    for forged in [
        format!("/hooks/{}", "ab".repeat(32)),
        format!("/hooks/{flipped}"),
        "/hooks/../../etc/passwd".to_string(),
        "/hooks/".to_string(),
        "/".to_string(),
    ] {
        assert_eq!(post(setup.endpoint, &forged, "{}").await, 404, "{forged}");
    }
    assert_eq!(setup.dump().await, before, "a forged call writes nothing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(setup.polls(), 0, "no poll before the first scheduled one");

    worker.await.unwrap();
    let job = setup.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    // No call came: the first scheduled poll (after 4 s) found the 2 s report ready.
    assert!(began.elapsed() >= Duration::from_secs(4));
    assert_eq!(setup.polls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_call_costs_one_poll_however_often_it_is_repeated() {
    // The sandbox's own call is lost; someone holding the URL calls while the report is pending.
    let setup = setup(WebhookDelivery {
        lost: true,
        ..WebhookDelivery::default()
    })
    .await;
    let id = setup.submit().await;
    let worker = setup.worker(Duration::from_secs(3));
    let path = path_of(&setup.given_url().await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Bodies are read (bounded) and ignored; a body over the bound is refused.
    assert_eq!(post(setup.endpoint, &path, "not even JSON").await, 202);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        setup.polls(),
        1,
        "the call's poll (the report is still pending)"
    );
    for _ in 0..3 {
        assert_eq!(post(setup.endpoint, &path, "{}").await, 202);
    }
    assert_eq!(
        post_claiming(setup.endpoint, &path, "", 10 << 20).await,
        413
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        setup.polls(),
        1,
        "the job has had its call: repeats cost nothing"
    );

    worker.await.unwrap();
    let job = setup.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    // Then on its schedule: one poll 3 s after the call's, which finds the 2 s report ready.
    assert_eq!(setup.polls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_nudges_a_job_on_postgresql_too() {
    let Some(cluster) = support::postgres::Cluster::start() else {
        return;
    };
    let setup = setup_on(
        WebhookDelivery {
            copies: 2,
            ..WebhookDelivery::default()
        },
        tempfile::tempdir().unwrap(),
        &cluster.url,
    )
    .await;
    let id = setup.submit().await;
    let began = Instant::now();
    let worker = setup.worker(Duration::from_secs(60));
    let path = path_of(&setup.given_url().await);
    assert_eq!(
        post(setup.endpoint, &format!("/hooks/{}", "ab".repeat(32)), "{}").await,
        404
    );
    worker.await.unwrap();
    let job = setup.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done, "{job:?}");
    assert!(began.elapsed() < REPORT_TAKES + Duration::from_millis(1500));
    assert_eq!(setup.polls(), 1);
    assert_eq!(post(setup.endpoint, &path, "{}").await, 202);
}
