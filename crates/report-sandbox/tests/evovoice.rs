mod common;

use common::{client, download_and_resume, poll_until, sha256_hex};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn billing() -> Value {
    json!({
        "startDate": "2024-01-01",
        "endDate": "2024-01-31",
        "includeCustomerIds": false,
        "accountId": credentials::EVOVOICE_ACCOUNT_ID,
        "emailAddressToNotify": "ops@example.invalid",
        "webhookUrl": null
    })
}

fn auth(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.basic_auth(
        credentials::EVOVOICE_USERNAME,
        Some(credentials::EVOVOICE_PASSWORD),
    )
}

#[tokio::test]
async fn lifecycle_start_list_download_delete() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::EvoVoice);
    let http = client();

    let started: Value = auth(http.post(format!("{base}/reports/billing")))
        .json(&billing())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["status"], "Queued");
    assert!(started.get("downloadLink").is_none());
    assert_eq!(started["emailAddressToNotify"], "ops@example.invalid");
    for field in [
        "id",
        "name",
        "statusMessage",
        "dateCreated",
        "dateUpdated",
        "jobId",
        "server",
    ] {
        assert!(started[field].is_string(), "{field}");
    }
    let id = started["id"].as_str().unwrap().to_owned();

    // There is no GET /reports/{id}.
    let by_id = auth(http.get(format!("{base}/reports/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.status(), StatusCode::METHOD_NOT_ALLOWED);

    let url = format!(
        "{base}/reports?accountId={}",
        credentials::EVOVOICE_ACCOUNT_ID
    );
    let done = poll_until(|| {
        let request = auth(http.get(&url));
        let id = id.clone();
        async move {
            let list: Value = request.send().await.unwrap().json().await.unwrap();
            let report = list["reports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id.as_str())
                .cloned()
                .unwrap();
            assert!(
                ["Queued", "Running", "Completed"].contains(&report["status"].as_str().unwrap())
            );
            (report["status"] == "Completed").then_some(report)
        }
    })
    .await;
    let link = done["downloadLink"].as_str().unwrap().to_owned();
    assert_eq!(link, format!("{base}/reports/{id}.xlsx"));

    // Another account sees nothing.
    let other: Value = auth(http.get(format!("{base}/reports?accountId=someone-else")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["reports"], json!([]));

    let response = auth(http.get(&link)).send().await.unwrap();
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".xlsx")
    );
    let file = download_and_resume(|| auth(http.get(&link))).await;
    assert_eq!(
        Some(sha256_hex(&file)),
        sandbox.report_sha256(Vendor::EvoVoice, &id)
    );

    let deleted = auth(http.delete(format!("{base}/reports/{id}")))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let gone = auth(http.get(&link)).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["responseStatus"]["errorCode"], "NotFound");
}

#[tokio::test]
async fn refusals_and_validation() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::EvoVoice);
    let url = format!("{base}/reports?accountId=x");

    // No User-Agent, or python-requests': 403.
    let bare = common::builder().build().unwrap();
    let response = auth(bare.get(&url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let python = common::builder()
        .user_agent("python-requests/2.31.0")
        .build()
        .unwrap();
    let response = auth(python.get(&url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let http = client();
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["responseStatus"]["errorCode"], "Unauthorized");
    let response = http
        .get(&url)
        .basic_auth(credentials::EVOVOICE_USERNAME, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Missing accountId, reversed dates: 400 with field errors.
    let mut missing = billing();
    missing["accountId"] = Value::Null;
    let response = auth(http.post(format!("{base}/reports/billing")))
        .json(&missing)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["responseStatus"]["errors"][0]["fieldName"],
        "AccountId"
    );

    let mut reversed = billing();
    reversed["startDate"] = json!("2024-02-01");
    let response = auth(http.post(format!("{base}/reports/billing")))
        .json(&reversed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["responseStatus"]["errors"][0]["fieldName"],
        "StartDate"
    );
    assert_eq!(sandbox.stats(Vendor::EvoVoice).reports_started, 0);

    let response = auth(http.get(format!("{base}/reports/nope.xlsx")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cookie_session_works_like_basic_auth() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::EvoVoice);
    let http = client();
    let login = http
        .post(format!("{base}/auth/credentials"))
        .json(&json!({
            "provider": "credentials",
            "userName": credentials::EVOVOICE_USERNAME,
            "password": credentials::EVOVOICE_PASSWORD,
            "rememberMe": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let response = http
        .get(format!("{base}/reports?accountId=x"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// FACTS round 2: the endpoints report starts at ServiceStack's predefined route
/// `/json/reply/EndpointsReport` and is then listed and downloaded like billing.
#[tokio::test]
async fn the_endpoints_report_starts_at_its_predefined_route() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::EvoVoice);
    let http = client();
    let mut body = billing();
    body["types"] = json!(["User", "PhoneNumber"]);
    let started: Value = auth(http.post(format!("{base}/json/reply/EndpointsReport")))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["status"], "Queued");
    assert!(
        started["name"]
            .as_str()
            .unwrap()
            .starts_with("Endpoints Report"),
        "{started}"
    );
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(sandbox.stats(Vendor::EvoVoice).reports_started, 1);
    let url = format!(
        "{base}/reports?accountId={}",
        credentials::EVOVOICE_ACCOUNT_ID
    );
    poll_until(|| {
        let request = auth(http.get(&url));
        let id = id.clone();
        async move {
            let list: Value = request.send().await.unwrap().json().await.unwrap();
            list["reports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == id.as_str() && r["status"] == "Completed")
                .then_some(())
        }
    })
    .await;
    let file = download_and_resume(|| auth(http.get(format!("{base}/reports/{id}.xlsx")))).await;
    assert_eq!(
        Some(sha256_hex(&file)),
        sandbox.report_sha256(Vendor::EvoVoice, &id)
    );
    // Without credentials, refused like every route.
    let anonymous = http
        .post(format!("{base}/json/reply/EndpointsReport"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
