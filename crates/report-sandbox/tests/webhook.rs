//! EvoVoice's `webhookUrl`: the sandbox POSTs the report's JSON to it once the report is done
//! (loopback only), late, lost or repeated as configured. A hook server of the test's own on
//! 127.0.0.1; every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::client;

use report_sandbox::{Sandbox, SandboxConfig, Vendor, WebhookDelivery, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A hook server: every POST's path and JSON body, in order of arrival.
async fn hook_server() -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                let body = serde_json::from_slice(&buf[head_end..head_end + length])
                    .unwrap_or(Value::Null);
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = tx.send((path, body));
            });
        }
    });
    (format!("http://{addr}"), rx)
}

async fn start_report(sandbox: &Sandbox, webhook_url: &str) -> reqwest::Response {
    client()
        .post(format!(
            "{}/reports/billing",
            sandbox.base_url(Vendor::EvoVoice)
        ))
        .basic_auth(
            credentials::EVOVOICE_USERNAME,
            Some(credentials::EVOVOICE_PASSWORD),
        )
        .json(&json!({
            "startDate": "2024-01-01",
            "endDate": "2024-01-31",
            "accountId": credentials::EVOVOICE_ACCOUNT_ID,
            "webhookUrl": webhook_url,
        }))
        .send()
        .await
        .unwrap()
}

async fn sandbox(delivery: WebhookDelivery) -> Sandbox {
    Sandbox::start(SandboxConfig {
        evovoice_webhook: delivery,
        ..SandboxConfig::fast()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_webhook_is_called_late_and_repeated_once_the_report_is_done() {
    let sandbox = sandbox(WebhookDelivery {
        delay: Duration::from_millis(200),
        lost: false,
        copies: 2,
    })
    .await;
    let (base, mut calls) = hook_server().await;
    let began = Instant::now();
    let started: Value = start_report(&sandbox, &format!("{base}/hooks/job-7?k=1"))
        .await
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap();
    for _ in 0..2 {
        let (path, body) = tokio::time::timeout(Duration::from_secs(10), calls.recv())
            .await
            .expect("the webhook is called")
            .unwrap();
        assert_eq!(path, "/hooks/job-7?k=1");
        assert_eq!(body["id"], id);
        assert_eq!(body["status"], "Completed");
        // 300 ms of work, then the 200 ms delay.
        assert!(began.elapsed() >= Duration::from_millis(500));
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_lost_webhook_is_never_called() {
    let sandbox = sandbox(WebhookDelivery {
        lost: true,
        ..WebhookDelivery::default()
    })
    .await;
    let (base, mut calls) = hook_server().await;
    let response = start_report(&sandbox, &format!("{base}/hook")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Three times the report's duration: it is done, and nothing called.
    let waited = tokio::time::timeout(Duration::from_millis(900), calls.recv()).await;
    assert!(waited.is_err(), "a lost callback arrived: {waited:?}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_calls_loopback_only() {
    let sandbox = sandbox(WebhookDelivery::default()).await;
    for url in ["http://example.com:80/hook", "https://127.0.0.1:9/hook"] {
        let response = start_report(&sandbox, url).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            error["responseStatus"]["errors"][0]["fieldName"],
            "WebhookUrl"
        );
    }
    sandbox.shutdown().await;
}
