//! `reports worker --webhook-listen ADDR --webhook-url-base URL` against the sandbox: the
//! EvoVoice job gets its own URL, the sandbox calls it when the report is done, and the job
//! finishes at once instead of at its next scheduled poll.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use report_sandbox::{Sandbox, SandboxConfig, Vendor};
use support::jobs::*;

/// The report takes 8 s: the default doubling polls at about 1, 3, 7 and 15 s, so without
/// the call it would be noticed about 7 s late.
const REPORT_TAKES: Duration = Duration::from_secs(8);

fn post(port: u16, path: &str) -> Option<u16> {
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    socket.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    socket.read_to_string(&mut text).ok()?;
    text.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_webhook_endpoint_finishes_an_evovoice_job_when_called() {
    let sandbox = Sandbox::start(SandboxConfig {
        job_duration: REPORT_TAKES,
        report_size: 4096,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let out = dir.path().join("evovoice.xlsx");
    bare(&db)
        .arg("submit")
        .args(SUBMITS[1].1)
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .success();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://127.0.0.1:{port}/hooks");

    // A base that would send the token over the network in the clear is refused.
    bare(&db)
        .envs(worker_env(&sandbox))
        .args(["worker", "--exit-when-idle", "--webhook-url-base"])
        .arg("http://hooks.example.com/x")
        .assert()
        .code(2);

    let env = worker_env(&sandbox);
    let db2 = db.clone();
    let worker = tokio::task::spawn_blocking(move || {
        bare(&db2)
            .envs(env)
            .args(["worker", "--exit-when-idle", "--quiet", "--fetch-ms", "100"])
            .args(["--webhook-listen", &listen, "--webhook-url-base", &base])
            .assert()
            .success();
    });
    // A forged call is 404 (once the endpoint is up).
    let forged = format!("/hooks/{}", "0f".repeat(32));
    let mut answer = None;
    for _ in 0..100 {
        answer = post(port, &forged);
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer, Some(404));
    worker.await.unwrap();

    let jobs = jobs_json(&db);
    verify_done(&sandbox, &jobs[0]);
    let at =
        |name: &str| chrono::DateTime::parse_from_rfc3339(jobs[0][name].as_str().unwrap()).unwrap();
    let took = (at("finished_at") - at("started_at")).to_std().unwrap();
    assert!(
        took < REPORT_TAKES + Duration::from_millis(1500),
        "done {took:?} after the start of an {REPORT_TAKES:?} report"
    );
    // The job's URL went to the sandbox; neither it nor its token is in `jobs --json`.
    let start = sandbox
        .requests()
        .into_iter()
        .find(|r| r.origin == "evovoice" && r.body.contains("webhookUrl"))
        .expect("the start carried a webhookUrl");
    let body: serde_json::Value = serde_json::from_str(&start.body).unwrap();
    let url = body["webhookUrl"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/hooks/")) && token.len() == 64);
    assert!(!jobs[0].to_string().contains(token));
    assert!(sandbox.stats(Vendor::EvoVoice).status_requests <= 4);
}
