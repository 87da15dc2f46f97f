mod common;

use common::{client, download_and_resume, gunzip, poll_until, sha256_hex};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn token(http: &reqwest::Client, base: &str) -> String {
    let response = http
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
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-correlation-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expiresInSeconds"], 1500);
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "looks like a JWT");
    token
}

fn api(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request.bearer_auth(token).header(
        "X-Subscription-Key",
        credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
    )
}

async fn run_report(sandbox: &Sandbox, format: &str) -> (String, String) {
    let base = sandbox.base_url(Vendor::CloudBlue);
    let http = client();
    let token = token(&http, &base).await;
    let created: Value = api(http.post(format!("{base}/reports")), &token)
        .json(&json!({
            "name": "Daily report",
            "customizationName": "string",
            "format": format,
            "startDate": "2019-11-07T17:02:59.000Z",
            "endDate": "2019-12-07T17:02:59.000Z"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["status"], "submitted");
    assert_eq!(created["type"], "onetime");
    assert_eq!(created["format"], format);
    assert!(created.get("downloadUrl").is_none());
    let id = created["id"].as_str().unwrap().to_owned();
    let url = format!("{base}/reports/{id}");
    let done = poll_until(|| {
        let request = api(http.get(&url), &token);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.headers().contains_key("x-correlation-id"));
            let item: Value = response.json().await.unwrap();
            (item["status"] == "completed").then_some(item)
        }
    })
    .await;
    (id, done["downloadUrl"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn json_report_is_a_gzip_blob_needing_no_credentials() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let (id, url) = run_report(&sandbox, "json").await;
    let blob = sandbox.blob_origin();
    assert!(url.starts_with(&format!(
        "{blob}/rdecontainer/Daily%20report.{id}.json.gz?sig="
    )));
    for part in ["&se=", "&sp=r", "&sv=2016-05-31", "&sr=b"] {
        assert!(url.contains(part), "{part}");
    }

    sandbox.clear_requests();
    let http = client();
    let compressed = download_and_resume(|| http.get(&url)).await;
    assert_eq!(&compressed[..2], &[0x1f, 0x8b], "gzip magic");
    let plain = gunzip(&compressed);
    assert_eq!(plain.len(), 20_000);
    assert!(plain.starts_with(b"[\n"));
    assert_eq!(
        Some(sha256_hex(&plain)),
        sandbox.report_sha256(Vendor::CloudBlue, &id)
    );

    let blob_requests = sandbox.requests();
    assert!(!blob_requests.is_empty());
    for request in &blob_requests {
        assert_eq!(request.origin, "blob");
        assert!(!request.has_header("authorization"));
        assert!(!request.has_header("x-subscription-key"));
    }
    assert_eq!(sandbox.stats(Vendor::CloudBlue).downloads, 2);
}

#[tokio::test]
async fn blob_refuses_bad_or_missing_signatures() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let (_, url) = run_report(&sandbox, "csv").await;
    let http = client();
    assert!(url.contains(".csv?"));
    let file = http.get(&url).send().await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert!(file.bytes().await.unwrap().starts_with(b"date;"));

    let (path, query) = url.split_once('?').unwrap();
    let tampered = url.replace("sig=", "sig=AAAA");
    let expiry_changed = url.replace("&se=", "&se=2099");
    for bad in [path.to_owned(), tampered, expiry_changed] {
        let response = http.get(&bad).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{bad}");
        assert_eq!(response.headers()["content-type"], "application/xml");
        let body = response.text().await.unwrap();
        assert!(body.contains("<Code>AuthenticationFailed</Code>"), "{body}");
    }
    // Another blob name with a valid signature of the first: refused as well.
    let other = format!("{}/rdecontainer/other.csv?{query}", sandbox.blob_origin());
    let response = http.get(&other).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn auth_refusals_token_expiry_and_errors() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::CloudBlue);
    assert!(base.ends_with("/marketplace/eu"));
    let http = client();

    let bad_login = http
        .post(format!("{base}/token"))
        .basic_auth(credentials::CLOUDBLUE_USERNAME, Some("wrong"))
        .header(
            "X-Subscription-Key",
            credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
        )
        .json(&json!({"marketplace": "eu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), StatusCode::UNAUTHORIZED);
    let body: Value = bad_login.json().await.unwrap();
    assert_eq!(body["status"], 401);
    for key in ["timestamp", "error", "message", "path", "correlationId"] {
        assert!(body[key].is_string(), "{key}");
    }

    let token = token(&http, &base).await;
    let list = format!("{base}/reports");
    let no_key = http.get(&list).bearer_auth(&token).send().await.unwrap();
    assert_eq!(no_key.status(), StatusCode::UNAUTHORIZED);
    let no_token = http
        .get(&list)
        .header(
            "X-Subscription-Key",
            credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
        )
        .header("X-Correlation-ID", "corr-123")
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(no_token.headers()["x-correlation-id"], "corr-123");
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["correlationId"], "corr-123");
    assert_eq!(body["path"], "/marketplace/eu/reports");

    let ok = api(http.get(&list), &token).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    sandbox.expire_tokens();
    let expired = api(http.get(&list), &token).send().await.unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);

    let token = self::token(&http, &base).await;
    let bad_format = api(http.post(format!("{base}/reports")), &token)
        .json(&json!({"name": "r", "format": "pdf", "startDate": "2024-01-01", "endDate": "2024-01-02"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_format.status(), StatusCode::BAD_REQUEST);
    let missing = api(http.get(format!("{base}/reports/nope")), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::CloudBlue);
    let http = client();
    let token = token(&http, &base).await;
    for (name, format) in [("a", "json"), ("b", "csv"), ("c", "json")] {
        let response = api(http.post(format!("{base}/reports")), &token)
            .json(&json!({"name": name, "format": format, "startDate": "2024-01-01", "endDate": "2024-01-31"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let page: Value = api(
        http.get(format!("{base}/reports?limit=1&offset=1&format=json")),
        &token,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        page["pagination"],
        json!({"offset": 1, "limit": 1, "total": 2})
    );
    assert_eq!(page["data"][0]["name"], "c");
    let all: Value = api(http.get(format!("{base}/reports")), &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
}

/// cmp.yaml 1.6: the token request's marketplace is optional, `createReport` needs only
/// `name` and `startDate`, and `limit` has minimum 1.
#[tokio::test]
async fn the_published_shapes_are_accepted() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::CloudBlue);
    let http = client();
    let without_marketplace = http
        .post(format!("{base}/token"))
        .basic_auth(
            credentials::CLOUDBLUE_USERNAME,
            Some(credentials::CLOUDBLUE_PASSWORD),
        )
        .header(
            "X-Subscription-Key",
            credentials::CLOUDBLUE_SUBSCRIPTION_KEY,
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(without_marketplace.status(), StatusCode::OK);
    let token = token(&http, &base).await;
    let minimal = api(http.post(format!("{base}/reports")), &token)
        .json(&json!({"name": "minimal", "startDate": "2024-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), StatusCode::OK);
    let report: Value = minimal.json().await.unwrap();
    assert_eq!(report["name"], "minimal");
    assert_eq!(report["format"], "json");
    let zero = api(http.get(format!("{base}/reports?limit=0")), &token)
        .send()
        .await
        .unwrap();
    assert_eq!(zero.status(), StatusCode::BAD_REQUEST);
}
