mod common;

use common::{client, download_and_resume, poll_until, sha256_hex};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATH: &str = "/api/2.0/portal/payment/customer/operationsreport";

fn body() -> Value {
    json!({
        "startDate": "2024-01-01T00:00:00.000Z",
        "endDate": "2024-01-31T23:59:59.000Z",
        "participantName": null,
        "credit": true,
        "debit": true
    })
}

#[tokio::test]
async fn lifecycle_start_poll_download() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::DocSpace);
    let http = client();
    let key = credentials::DOCSPACE_API_KEY;

    // No task yet: no `response` key, count 0.
    let empty: Value = http
        .get(format!("{base}{PATH}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty["count"], 0);
    assert!(empty.get("response").is_none());
    assert_eq!(empty["status"], 0);
    assert_eq!(empty["statusCode"], 200);
    assert_eq!(empty["links"][0]["action"], "GET");

    let started: Value = http
        .post(format!("{base}{PATH}"))
        .bearer_auth(key)
        .json(&body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = &started["response"];
    assert!(
        task["id"]
            .as_str()
            .unwrap()
            .starts_with("DocumentBuilderTask_1_")
    );
    assert_eq!(task["error"], "");
    assert_eq!(task["percentage"], 0);
    assert_eq!(task["isCompleted"], false);
    assert!(task["status"].is_u64(), "status is an integer");
    assert_eq!(task["resultFileId"], 0);

    let mut percentages = Vec::new();
    let done = loop {
        let status: Value = http
            .get(format!("{base}{PATH}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task = status["response"].clone();
        let percentage = task["percentage"].as_u64().unwrap();
        if percentages.last() != Some(&percentage) {
            percentages.push(percentage);
        }
        if task["isCompleted"] == true {
            break task;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(done["status"], 2);
    assert_eq!(done["percentage"], 100);
    // Named by the requested period, as DocSpace does.
    assert_eq!(
        done["resultFileName"],
        "Customer operations report (01.01.2024-31.01.2024).xlsx"
    );
    assert!(percentages.windows(2).all(|w| w[0] < w[1]));
    assert!(percentages.iter().all(|p| [0, 30, 60, 100].contains(p)));
    let file_id = done["resultFileId"].as_u64().unwrap();
    assert!(file_id > 0);
    assert!(
        done["resultFileUrl"]
            .as_str()
            .unwrap()
            .contains("doceditor")
    );

    let presigned: Value = http
        .get(format!("{base}/api/2.0/files/file/{file_id}/presigneduri"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = presigned["response"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!(
        "{base}/filehandler.ashx?action=download&fileid={file_id}"
    )));
    let file = download_and_resume(|| http.get(&url)).await;
    assert!(file.starts_with(b"PK\x03\x04"));
    assert_eq!(
        Some(sha256_hex(&file)),
        sandbox.report_sha256(Vendor::DocSpace, &file_id.to_string())
    );

    // The file handler with the Bearer key (no pre-signed token) serves the same bytes.
    let direct = http
        .get(format!(
            "{base}/filehandler.ashx?action=download&fileid={file_id}"
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
    assert_eq!(direct.bytes().await.unwrap(), file);
    // Without any credential it is refused.
    let anonymous = http
        .get(format!(
            "{base}/filehandler.ashx?action=download&fileid={file_id}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn one_task_per_user() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::DocSpace);
    let http = client();
    let start = |key: &'static str| {
        let request = http
            .post(format!("{base}{PATH}"))
            .bearer_auth(key)
            .json(&body());
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["response"].clone()
        }
    };

    let first = start(credentials::DOCSPACE_API_KEY).await;
    let again = start(credentials::DOCSPACE_API_KEY).await;
    assert_eq!(first["id"], again["id"]);
    assert_eq!(sandbox.stats(Vendor::DocSpace).reports_started, 1);

    // Another user has a task of their own.
    let other = start(credentials::DOCSPACE_API_KEY_2).await;
    assert_ne!(other["id"], first["id"]);
    assert_eq!(sandbox.stats(Vendor::DocSpace).reports_started, 2);

    // Terminate: status 3 (Canceled), completed.
    let terminated: Value = http
        .delete(format!("{base}{PATH}"))
        .bearer_auth(credentials::DOCSPACE_API_KEY_2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(terminated["response"]["status"], 3);
    assert_eq!(terminated["response"]["isCompleted"], true);

    // A finished task is replaced by a new one.
    let url = format!("{base}{PATH}");
    let finished = poll_until(|| {
        let request = http.get(&url).bearer_auth(credentials::DOCSPACE_API_KEY);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            (body["response"]["status"] == 2).then(|| body["response"].clone())
        }
    })
    .await;
    let replaced = start(credentials::DOCSPACE_API_KEY).await;
    assert_eq!(replaced["status"], 0);
    assert_eq!(replaced["isCompleted"], false);
    assert_eq!(sandbox.stats(Vendor::DocSpace).reports_started, 3);
    // The earlier result file stays downloadable.
    let file_id = finished["resultFileId"].as_u64().unwrap();
    let response = http
        .get(format!(
            "{base}/filehandler.ashx?action=download&fileid={file_id}"
        ))
        .bearer_auth(credentials::DOCSPACE_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn auth_refusal_and_failure_state() {
    let config = SandboxConfig {
        fail_reports: true,
        ..SandboxConfig::fast()
    };
    let sandbox = Sandbox::start(config).await.unwrap();
    let base = sandbox.base_url(Vendor::DocSpace);
    let http = client();

    for request in [
        http.get(format!("{base}{PATH}")),
        http.get(format!("{base}{PATH}")).bearer_auth("sk-wrong"),
        http.post(format!("{base}{PATH}"))
            .basic_auth("a", Some("b")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 1);
        assert_eq!(body["statusCode"], 401);
        assert!(body["error"]["message"].is_string());
    }

    // An empty body is fine (everything since the portal's creation).
    let started = http
        .post(format!("{base}{PATH}"))
        .bearer_auth(credentials::DOCSPACE_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::OK);
    let url = format!("{base}{PATH}");
    let failed = poll_until(|| {
        let request = http.get(&url).bearer_auth(credentials::DOCSPACE_API_KEY);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "failures answer HTTP 200"
            );
            let body: Value = response.json().await.unwrap();
            (body["response"]["isCompleted"] == true).then(|| body["response"].clone())
        }
    })
    .await;
    assert_eq!(failed["status"], 4);
    assert_ne!(failed["error"], "");
}

/// `orderType` is an integer on the server: a name fails model validation with ASP.NET
/// problem details wrapped under `response`; the integer starts the task.
#[tokio::test]
async fn a_sort_order_name_is_refused_with_problem_details() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = sandbox.base_url(Vendor::DocSpace);
    let http = client();
    let key = credentials::DOCSPACE_API_KEY;
    let named = http
        .post(format!("{base}{PATH}"))
        .bearer_auth(key)
        .json(&json!({"orderType": "Ascending"}))
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::BAD_REQUEST);
    let details: Value = named.json().await.unwrap();
    assert_eq!(details["statusCode"], 400);
    assert!(
        details["response"]["errors"]["$.orderType"].is_array(),
        "{details}"
    );
    let numbered = http
        .post(format!("{base}{PATH}"))
        .bearer_auth(key)
        .json(&json!({"orderType": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(numbered.status(), StatusCode::OK);
}
