mod common;

use std::time::Duration;

use common::{client, sha256_hex};
use report_sandbox::{Faults, Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn ofd_login(http: &reqwest::Client, base: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/Authorization/CreateAuthToken"))
        .json(&json!({"Login": credentials::OFD_LOGIN, "Password": credentials::OFD_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["AuthToken"].as_str().unwrap().to_owned()
}

async fn ofd_start(http: &reqwest::Client, base: &str, token: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&json!({
            "DateFrom": "2021-11-01T00:00:00", "DateTo": "2021-11-02T00:00:00",
            "ReportType": "ReceiptReport", "SelectAllKkts": true
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["Data"]["Id"].as_str().unwrap().to_owned()
}

#[derive(Debug, Default)]
struct Tally {
    ok: u32,
    server_errors: u32,
    html: u32,
    too_many: u32,
    truncated: u32,
    dropped: u32,
}

#[tokio::test]
async fn status_fault_smoke_test() {
    let faults = Faults {
        slow_delay: Duration::from_millis(1),
        ..Faults::uniform(0.15)
    };
    let config = SandboxConfig {
        faults,
        seed: 42,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    // Token requests and starts are never faulted.
    let token = ofd_login(&http, &base).await;
    let id = ofd_start(&http, &base, &token).await;

    let mut tally = Tally::default();
    let url = format!("{base}/api/customer/reports?AuthToken={token}");
    for _ in 0..150 {
        let response = match http.get(&url).send().await {
            Ok(response) => response,
            Err(_) => {
                tally.dropped += 1;
                continue;
            }
        };
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        match status {
            StatusCode::OK => match serde_json::from_str::<Value>(&text) {
                Ok(body) => {
                    assert_eq!(body["Status"], "Success");
                    tally.ok += 1;
                }
                Err(_) => tally.truncated += 1,
            },
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(retry_after.unwrap(), "1");
                tally.too_many += 1;
            }
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE => {
                assert!(content_type.starts_with("text/html"));
                tally.html += 1;
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["Status"], "Failed");
                tally.server_errors += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(tally.ok > 0, "{tally:?}");
    assert!(tally.server_errors + tally.html > 0, "{tally:?}");
    assert!(tally.too_many > 0, "{tally:?}");
    assert!(tally.truncated > 0, "{tally:?}");
    assert!(tally.dropped > 0, "{tally:?}");
    let stats = sandbox.stats(Vendor::Ofd);
    assert_eq!(stats.reports_started, 1, "starts are never faulted");
    assert_eq!(stats.status_requests, 150);
    let faulted =
        tally.server_errors + tally.html + tally.too_many + tally.truncated + tally.dropped;
    assert!(
        stats.faults_injected >= u64::from(faulted),
        "{stats:?} {tally:?}"
    );

    // Turning faults off at run time: every answer is clean again.
    sandbox.set_faults(Faults::none());
    for _ in 0..20 {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap();
    }
    assert!(sandbox.report_sha256(Vendor::Ofd, &id).is_some());
}

#[tokio::test]
async fn cut_download_resumes_with_range() {
    let config = SandboxConfig {
        faults: Faults {
            download_cut: 1.0,
            ..Faults::none()
        },
        job_duration: Duration::ZERO,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token = ofd_login(&http, &base).await;
    let id = ofd_start(&http, &base, &token).await;
    let url = format!("{base}/api/customer/reports/{id}?AuthToken={token}");

    let mut response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(20_000));
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("the body should have been cut"),
            Err(error) => break error,
        }
    };
    let _ = error;
    assert_eq!(received.len(), 10_000, "cut after half of the bytes");

    sandbox.set_faults(Faults::none());
    let rest = http
        .get(&url)
        .header("Range", format!("bytes={}-", received.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    received.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(
        Some(sha256_hex(&received)),
        sandbox.report_sha256(Vendor::Ofd, &id)
    );
    let stats = sandbox.stats(Vendor::Ofd);
    assert_eq!(stats.downloads, 2);
    assert_eq!(stats.faults_injected, 1);
}

#[tokio::test]
async fn every_vendor_survives_faults_with_retries() {
    let config = SandboxConfig {
        faults: Faults {
            slow_delay: Duration::from_millis(5),
            retry_after_secs: 0,
            download_cut: 0.0,
            ..Faults::uniform(0.2)
        },
        seed: 7,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let http = client();

    // A poll that retries every transient failure until the closure says "done".
    async fn poll(request: impl Fn() -> reqwest::RequestBuilder, done: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        loop {
            assert!(tokio::time::Instant::now() < deadline, "gave up");
            if let Ok(response) = request().send().await
                && response.status() == StatusCode::OK
                && let Ok(body) = response.json::<Value>().await
                && done(&body)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // OFD.
    let base = sandbox.base_url(Vendor::Ofd);
    let token = ofd_login(&http, &base).await;
    ofd_start(&http, &base, &token).await;
    poll(
        || http.get(format!("{base}/api/customer/reports?AuthToken={token}")),
        |b| b["Data"]["List"][0]["Status"] == "Done",
    )
    .await;

    // DocSpace.
    let base = sandbox.base_url(Vendor::DocSpace);
    let path = format!("{base}/api/2.0/portal/payment/customer/operationsreport");
    http.post(&path)
        .bearer_auth(credentials::DOCSPACE_API_KEY)
        .send()
        .await
        .unwrap();
    poll(
        || http.get(&path).bearer_auth(credentials::DOCSPACE_API_KEY),
        |b| b["response"]["status"] == 2,
    )
    .await;

    // EvoVoice.
    let base = sandbox.base_url(Vendor::EvoVoice);
    let auth = |r: reqwest::RequestBuilder| {
        r.basic_auth(
            credentials::EVOVOICE_USERNAME,
            Some(credentials::EVOVOICE_PASSWORD),
        )
    };
    auth(http.post(format!("{base}/reports/billing")))
        .json(&json!({"accountId": "a", "startDate": "2024-01-01", "endDate": "2024-01-02"}))
        .send()
        .await
        .unwrap();
    poll(
        || auth(http.get(format!("{base}/reports?accountId=a"))),
        |b| b["reports"][0]["status"] == "Completed",
    )
    .await;

    // CloudBlue.
    let base = sandbox.base_url(Vendor::CloudBlue);
    let token: Value = http
        .post(format!("{base}/token"))
        .basic_auth(
            credentials::CLOUDBLUE_USERNAME,
            Some(credentials::CLOUDBLUE_PASSWORD),
        )
        .header(
            "X-Subscription-Key",
            credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
        )
        .json(&json!({"marketplace": "eu"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let api = |r: reqwest::RequestBuilder| {
        r.bearer_auth(&token).header(
            "X-Subscription-Key",
            credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
        )
    };
    let item: Value = api(http.post(format!("{base}/reports")))
        .json(&json!({"name": "r", "format": "xlsx", "startDate": "2024-01-01", "endDate": "2024-01-02"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = item["id"].as_str().unwrap().to_owned();
    poll(
        || api(http.get(format!("{base}/reports/{id}"))),
        |b| b["status"] == "completed",
    )
    .await;

    // MetaKocka.
    let base = sandbox.base_url(Vendor::MetaKocka);
    let body = json!({
        "secret_key": credentials::METAKOCKA_SECRET_KEY,
        "company_id": credentials::METAKOCKA_COMPANY_ID,
        "report_id": "1", "async": "true"
    });
    let started: Value = http
        .post(format!("{base}/rest/eshop/v1/report"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut with_token = body.clone();
    with_token["token"] = started["token"].clone();
    poll(
        || {
            http.post(format!("{base}/rest/eshop/v1/report"))
                .json(&with_token)
        },
        |b| b["url"].is_string(),
    )
    .await;

    let mut injected = 0;
    for vendor in Vendor::ALL {
        let stats = sandbox.stats(vendor);
        assert_eq!(stats.reports_started, 1, "{vendor}: no duplicate start");
        injected += stats.faults_injected;
    }
    assert!(injected > 0);
}

/// `start_answer_lost`: the vendor starts the report, then closes the connection without an
/// answer; the report is in the list all the same. A refused start is never faulted, and
/// `Faults::uniform` leaves starts alone.
#[tokio::test]
async fn a_lost_start_answer_leaves_the_report_started() {
    assert_eq!(Faults::uniform(0.5).start_answer_lost, 0.0);
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            start_answer_lost: 1.0,
            ..Faults::none()
        },
        ..SandboxConfig::fast()
    })
    .await
    .unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token = ofd_login(&http, &base).await;
    let lost = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&json!({
            "DateFrom": "2021-11-01T00:00:00", "DateTo": "2021-11-02T00:00:00",
            "ReportType": "ReceiptReport", "SelectAllKkts": true
        }))
        .send()
        .await;
    assert!(lost.is_err(), "no answer: {lost:?}");
    let refused = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&json!({"DateFrom": "2021-11-02T00:00:00", "DateTo": "2021-11-01T00:00:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let list: Value = http
        .get(format!("{base}/api/customer/reports?AuthToken={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reports = list["Data"]["List"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{list}");
    let stats = sandbox.stats(Vendor::Ofd);
    assert_eq!((stats.reports_started, stats.faults_injected), (1, 1));
}
