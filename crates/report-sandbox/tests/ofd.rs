mod common;

use common::{client, download_and_resume, poll_until, sha256_hex};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn login(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/api/Authorization/CreateAuthToken"))
        .json(&json!({"Login": credentials::OFD_LOGIN, "Password": credentials::OFD_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let token = body["AuthToken"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let expiry = body["ExpirationDateUtc"].as_str().unwrap();
    chrono::NaiveDateTime::parse_from_str(expiry, "%Y-%m-%dT%H:%M:%S").expect("no offset");
    token
}

fn report_request() -> Value {
    json!({
        "OfdAgreementId": null,
        "CustomReportId": null,
        "Name": "Сверка",
        "DateFrom": "2021-11-01T00:00:00.000+03:00",
        "DateTo": "2021-11-02T23:59:59.000+03:00",
        "EmailsToNotify": "",
        "FfdType": 0,
        "GroupsList": [],
        "KktList": ["7961d10e-f36a-4cce-a8db-add93309bb9e"],
        "ReportType": "ReceiptReport",
        "SelectAllKkts": false,
        "UseXlsxFile": true
    })
}

#[tokio::test]
async fn lifecycle_start_poll_download_delete() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token = login(&http, &base).await;

    // The agreement id by INN and KPP.
    let lookup: Value = http
        .get(format!(
            "{base}/api/customer/reports?Inn={}&Kpp={}&SkipPageFilter=true&AuthToken={token}",
            credentials::OFD_INN,
            credentials::OFD_KPP
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lookup["Status"], "Success");
    let agreement = lookup["Data"]["OfdAgreementId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(lookup["Data"]["OfdAgreementLimit"], 500000);
    assert_eq!(lookup["Data"]["TotalCount"], 0);

    let mut request = report_request();
    request["OfdAgreementId"] = json!(agreement);
    let created: Value = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["Status"], "Success");
    assert!(
        created["Elapsed"]
            .as_str()
            .unwrap()
            .starts_with("00:00:00.")
    );
    let info = &created["Data"];
    assert_eq!(info["Status"], "Todo");
    assert_eq!(info["DateFrom"], "2021-11-01T00:00:00");
    let id = info["Id"].as_str().unwrap().to_owned();
    assert_eq!(
        info["DownloadUrl"],
        format!("/api/customer/reports/{id}?OfdAgreementId={agreement}").as_str()
    );
    assert_eq!(
        info["CancelUrl"],
        format!("/api/customer/reports/{id}/cancel?ofdAgreementId={agreement}").as_str()
    );
    let eta = info["AssumptiveCompleteTime"].as_str().unwrap().to_owned();
    chrono::NaiveDateTime::parse_from_str(&eta, "%Y-%m-%dT%H:%M:%S").unwrap();

    // Not done yet: the download is refused.
    let early = http
        .get(format!(
            "{base}{}&AuthToken={token}",
            info["DownloadUrl"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::BAD_REQUEST);
    let early: Value = early.json().await.unwrap();
    assert_eq!(early["Errors"], json!(["ReportNotDone"]));

    let mut seen: Vec<String> = Vec::new();
    let list_url = format!("{base}/api/customer/reports?AuthToken={token}");
    let done = loop {
        let list: Value = http
            .get(&list_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let report = list["Data"]["List"][0].clone();
        assert_eq!(report["Id"], id.as_str());
        let status = report["Status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "Done" {
            break report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    assert_eq!(seen.last().unwrap(), "Done");
    assert!(
        seen.iter()
            .all(|s| ["Todo", "Processing", "Done"].contains(&s.as_str()))
    );
    assert_eq!(
        done["AssumptiveCompleteTime"],
        eta.as_str(),
        "the ETA is stable"
    );
    assert_eq!(done["ReportSize"], 20); // ceil(20000 / 1024) kilobytes

    let url = format!(
        "{base}{}&AuthToken={token}",
        done["DownloadUrl"].as_str().unwrap()
    );
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=")
    );
    let file = download_and_resume(|| http.get(&url)).await;
    assert!(file.starts_with(b"PK\x03\x04"));
    assert_eq!(file.len(), 20_000);
    assert_eq!(
        Some(sha256_hex(&file)),
        sandbox.report_sha256(Vendor::Ofd, &id)
    );

    let deleted: Value = http
        .delete(format!(
            "{base}{}&AuthToken={token}",
            done["DeleteUrl"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["Status"], "Deleted");
    assert_eq!(deleted["Id"], id.as_str());

    let stats = sandbox.stats(Vendor::Ofd);
    assert_eq!(stats.reports_started, 1);
    assert!(stats.status_requests >= 2);
    // The header check, the full download and the ranged one (416 does not count).
    assert_eq!(stats.downloads, 3);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn auth_refusals_and_token_expiry() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();

    let refused = http
        .post(format!("{base}/api/Authorization/CreateAuthToken"))
        .json(&json!({"Login": "demo", "Password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(refused.text().await.unwrap(), "{}");

    let no_token = http
        .get(format!("{base}/api/customer/reports"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["Errors"], json!(["AuthToken is invalid or expired"]));
    assert_eq!(body["Status"], "Failed");

    let token = login(&http, &base).await;
    let list = format!("{base}/api/customer/reports?AuthToken={token}");
    assert_eq!(
        http.get(&list).send().await.unwrap().status(),
        StatusCode::OK
    );
    sandbox.expire_tokens();
    assert_eq!(
        http.get(&list).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let renewed = login(&http, &base).await;
    assert_ne!(renewed, token);
    let list = format!("{base}/api/customer/reports?AuthToken={renewed}");
    assert_eq!(
        http.get(&list).send().await.unwrap().status(),
        StatusCode::OK
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn token_lifetime_follows_tokio_clock() {
    let config = SandboxConfig {
        token_ttl: std::time::Duration::from_millis(200),
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token = login(&http, &base).await;
    let list = format!("{base}/api/customer/reports?AuthToken={token}");
    assert_eq!(
        http.get(&list).send().await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    assert_eq!(
        http.get(&list).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn validation_cancel_and_lookups() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token = login(&http, &base).await;

    let mut reversed = report_request();
    reversed["DateFrom"] = json!("2021-11-03T00:00:00");
    let response = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&reversed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Errors"], json!(["DateFromGreaterThanDateTo"]));
    assert_eq!(body["Status"], "Failed");

    let unknown = http
        .get(format!(
            "{base}/api/customer/reports?Inn=0000000000&Kpp=000000000&AuthToken={token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["Errors"], json!(["OfdAgreementNotFound"]));

    let created: Value = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&report_request())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cancel = created["Data"]["CancelUrl"].as_str().unwrap();
    let cancelled: Value = http
        .get(format!("{base}{cancel}&AuthToken={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancelled["Status"], "Success");
    let list: Value = http
        .get(format!("{base}/api/customer/reports?AuthToken={token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["Data"]["List"][0]["Status"], "Deleted");
    assert!(list["Data"].get("OfdAgreementId").is_none());

    let templates: Value = http
        .get(format!(
            "{base}/api/customer/reports/templates?AuthToken={token}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(templates.as_array().is_some_and(|t| !t.is_empty()));
    let custom: Value = http
        .get(format!(
            "{base}/api/customer/reports/custom/abc?AuthToken={token}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(custom["Id"], "abc");
}

#[tokio::test]
async fn failed_reports_end_in_error() {
    let config = SandboxConfig {
        fail_reports: true,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::Ofd);
    let http = client();
    let token = login(&http, &base).await;
    let created: Value = http
        .post(format!("{base}/api/customer/reports?AuthToken={token}"))
        .json(&report_request())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["Data"]["Id"].as_str().unwrap().to_owned();
    let url = format!("{base}/api/customer/reports?AuthToken={token}");
    poll_until(|| {
        let request = http.get(&url);
        async move {
            let list: Value = request.send().await.unwrap().json().await.unwrap();
            (list["Data"]["List"][0]["Status"] == "Error").then_some(())
        }
    })
    .await;
    assert_eq!(sandbox.report_sha256(Vendor::Ofd, &id), None);
}
