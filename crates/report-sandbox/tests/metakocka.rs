mod common;

use common::{client, download_and_resume, sha256_hex};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn request(extra: Value) -> Value {
    let mut body = json!({
        "secret_key": credentials::METAKOCKA_SECRET_KEY,
        "company_id": credentials::METAKOCKA_COMPANY_ID,
        "report_id": "149",
        "params": [
            {"type": "ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", "value": "true"},
            {"type": "REPORT_TYPE", "value": "PDF"}
        ]
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

async fn call(http: &reqwest::Client, base: &str, body: &Value) -> Value {
    let response = http
        .post(format!("{base}/rest/eshop/v1/report"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "MetaKocka answers HTTP 200"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn async_lifecycle_with_changing_tokens() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::MetaKocka);
    let http = client();

    let started = call(&http, &base, &request(json!({"async": "true"}))).await;
    assert_eq!(started["opr_code"], "0");
    assert!(started["opr_time_ms"].is_string());
    assert_eq!(started["opr_time_no_lock_ms"], "0");
    let token = started["token"].as_str().unwrap().to_owned();

    let poll = request(json!({"async": "true", "token": token}));
    let mut other_token = None;
    let done = loop {
        let answer = call(&http, &base, &poll).await;
        assert_eq!(answer["opr_code"], "0");
        if let Some(progress) = answer["progress"].as_str() {
            let tail = progress
                .strip_prefix("Priprava podatkov za račun BC-MK-328 ")
                .unwrap();
            let (step, steps) = tail.split_once(" / ").unwrap();
            assert_eq!(steps, "23");
            assert!((1..=23).contains(&step.parse::<u32>().unwrap()));
            assert_ne!(
                answer["token"],
                token.as_str(),
                "in-progress answers carry another token"
            );
            other_token = answer["token"].as_str().map(str::to_owned);
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            continue;
        }
        break answer;
    };
    assert!(done.get("progress").is_none());
    assert_eq!(done["token"], token.as_str());
    let url = done["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("{base}/download/report/{token}"));

    // The token of an in-progress answer is not a report's token.
    if let Some(other) = other_token {
        let answer = call(
            &http,
            &base,
            &request(json!({"async": "true", "token": other})),
        )
        .await;
        assert_eq!(answer["opr_code"], "6");
        assert_eq!(answer["opr_desc"], "Report with this token does not exist.");
    }

    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("report_149.pdf")
    );
    let file = download_and_resume(|| http.get(&url)).await;
    assert!(file.starts_with(b"%PDF-"));
    assert_eq!(
        Some(sha256_hex(&file)),
        sandbox.report_sha256(Vendor::MetaKocka, &token)
    );
}

#[tokio::test]
async fn errors_are_http_200_with_opr_codes() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::MetaKocka);
    let http = client();

    let wrong = call(
        &http,
        &base,
        &request(json!({"secret_key": "nope", "async": "true"})),
    )
    .await;
    assert_eq!(wrong["opr_code"], "1");
    assert_eq!(wrong["opr_desc"], "Wrong secret key or company id.");

    let unknown = call(
        &http,
        &base,
        &request(json!({"async": "true", "token": "09dfb619-388c-48ec-97c3-cd56eade5fb0"})),
    )
    .await;
    assert_eq!(unknown["opr_code"], "6");

    let bad_type = call(
        &http,
        &base,
        &request(json!({"async": "true", "params": [{"type": "REPORT_TYPE", "value": "DOCX"}]})),
    )
    .await;
    assert_eq!(bad_type["opr_code"], "2");
    assert_eq!(sandbox.stats(Vendor::MetaKocka).reports_started, 0);
}

#[tokio::test]
async fn synchronous_call_answers_the_file() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::MetaKocka);
    let http = client();
    let body = request(json!({"params": [{"type": "REPORT_TYPE", "value": "CSV"}]}));
    let response = http
        .post(format!("{base}/rest/eshop/v1/report"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let id = response.headers()["x-sandbox-report-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let file = response.bytes().await.unwrap();
    assert_eq!(file.len(), 20_000);
    assert_eq!(
        Some(sha256_hex(&file)),
        sandbox.report_sha256(Vendor::MetaKocka, &id)
    );
}
