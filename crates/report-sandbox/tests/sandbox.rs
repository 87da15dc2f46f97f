mod common;

use std::time::Duration;

use common::client;
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[test]
fn vendor_names_round_trip() {
    for vendor in Vendor::ALL {
        assert_eq!(vendor.name().parse::<Vendor>().unwrap(), vendor);
        assert_eq!(vendor.to_string(), vendor.name());
    }
    assert_eq!("OFD".parse::<Vendor>().unwrap(), Vendor::Ofd);
    assert!("acme".parse::<Vendor>().is_err());
}

#[tokio::test]
async fn origins_are_distinct_loopback_servers() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let mut origins: Vec<String> = Vendor::ALL.iter().map(|v| sandbox.origin(*v)).collect();
    origins.push(sandbox.blob_origin());
    for origin in &origins {
        assert!(origin.starts_with("http://127.0.0.1:"), "{origin}");
    }
    origins.sort();
    origins.dedup();
    assert_eq!(origins.len(), 6);
    assert_eq!(
        sandbox.base_url(Vendor::CloudBlue),
        format!("{}/marketplace/eu", sandbox.origin(Vendor::CloudBlue))
    );
    assert_eq!(sandbox.base_url(Vendor::Ofd), sandbox.origin(Vendor::Ofd));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let http = client();
    let ofd = sandbox.base_url(Vendor::Ofd);
    http.post(format!("{ofd}/api/Authorization/CreateAuthToken"))
        .json(&json!({"Login": "demo", "Password": "x"}))
        .send()
        .await
        .unwrap();
    http.get(format!("{}/nothing?a=1", sandbox.blob_origin()))
        .send()
        .await
        .unwrap();
    let requests = sandbox.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].origin, "ofd");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/api/Authorization/CreateAuthToken");
    assert_eq!(requests[0].query, None);
    assert_eq!(requests[0].body, r#"{"Login":"demo","Password":"x"}"#);
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert_eq!(requests[0].header("User-Agent"), Some(common::USER_AGENT));
    assert_eq!(requests[1].origin, "blob");
    assert_eq!(requests[1].query.as_deref(), Some("a=1"));
    sandbox.clear_requests();
    assert!(sandbox.requests().is_empty());
}

/// Jobs follow tokio's clock: with paused time they finish as soon as time is advanced.
#[tokio::test(start_paused = true)]
async fn jobs_follow_paused_tokio_time() {
    let config = SandboxConfig {
        job_duration: Duration::from_secs(3600),
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::DocSpace);
    let http = client();
    let path = format!("{base}/api/2.0/portal/payment/customer/operationsreport");
    let started: Value = http
        .post(&path)
        .bearer_auth(credentials::DOCSPACE_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["response"]["isCompleted"], false);

    tokio::time::advance(Duration::from_secs(1800)).await;
    let halfway: Value = http
        .get(&path)
        .bearer_auth(credentials::DOCSPACE_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(halfway["response"]["percentage"], 30);

    tokio::time::advance(Duration::from_secs(1800)).await;
    let done: Value = http
        .get(&path)
        .bearer_auth(credentials::DOCSPACE_API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["response"]["status"], 2);
}

#[tokio::test]
async fn head_requests_give_the_length_without_downloading() {
    let config = SandboxConfig {
        job_duration: Duration::ZERO,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::EvoVoice);
    let http = client();
    let auth = |r: reqwest::RequestBuilder| {
        r.basic_auth(
            credentials::EVOVOICE_USERNAME,
            Some(credentials::EVOVOICE_PASSWORD),
        )
    };
    let report: Value = auth(http.post(format!("{base}/reports/billing")))
        .json(&json!({"accountId": "a", "startDate": "2024-01-01", "endDate": "2024-01-02"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = report["id"].as_str().unwrap();
    let head = auth(http.head(format!("{base}/reports/{id}.xlsx")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "20000");
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    assert_eq!(sandbox.stats(Vendor::EvoVoice).downloads, 0);
}

#[tokio::test]
async fn large_files_stream_with_the_right_digest() {
    let config = SandboxConfig {
        job_duration: Duration::ZERO,
        report_size: 8 * 1024 * 1024 + 13,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::MetaKocka);
    let http = client();
    let started: Value = http
        .post(format!("{base}/rest/eshop/v1/report"))
        .json(&json!({
            "secret_key": credentials::METAKOCKA_SECRET_KEY,
            "company_id": credentials::METAKOCKA_COMPANY_ID,
            "report_id": "7", "async": "true"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = started["token"].as_str().unwrap();
    let mut response = http
        .get(format!("{base}/download/report/{token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.content_length(), Some(8 * 1024 * 1024 + 13));
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut total = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        total += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!(total, 8 * 1024 * 1024 + 13);
    assert_eq!(
        Some(hex::encode(hasher.finalize())),
        sandbox.report_sha256(Vendor::MetaKocka, token)
    );
}

#[test]
fn public_types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Sandbox>();
    assert_send_sync::<SandboxConfig>();
    assert_send_sync::<report_sandbox::RecordedRequest>();
    assert_send_sync::<report_sandbox::VendorStats>();
}

#[tokio::test]
async fn huge_durations_mean_never() {
    let config = SandboxConfig {
        job_duration: Duration::MAX,
        token_ttl: Duration::MAX,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token: Value = http
        .post(format!("{base}/api/Authorization/CreateAuthToken"))
        .json(&json!({"Login": credentials::OFD_LOGIN, "Password": credentials::OFD_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["AuthToken"].as_str().unwrap();
    let created: Value = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&json!({"DateFrom": "2021-11-01", "DateTo": "2021-11-02", "ReportType": "KKTReport"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["Data"]["Status"], "Todo");
}
