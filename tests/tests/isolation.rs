//! Credential isolation, proven on the wire:
//!
//! - `no_credential_reaches_the_blob_origin_or_another_vendor`: every vendor's whole
//!   lifecycle against the sandbox; every request every origin received is inspected.
//! - `foreign_artifact_urls_get_no_credentials`: each adapter opens an artifact on a foreign
//!   origin (marked `authenticated: true`, even) and the foreign server receives none.
//! - `download_redirects_to_another_origin_carry_no_credentials` and
//!   `api_redirects_to_another_origin_are_not_followed`: a vendor origin answering 302/307 to
//!   a foreign origin.
//! - `secrets_never_show_in_debug_or_error_messages`.
//! - `plain_http_is_refused_for_non_loopback_hosts_unless_opted_in` and
//!   `plain_http_artifact_urls_are_refused_when_the_api_is_https`.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use httpmock::{HttpMockRequest, MockServer};
use integration_tests::secrets::{basic, error_text, issued_tokens, sandbox_secrets};
use integration_tests::vendors::{
    cloudblue_adapter, cloudblue_config, cloudblue_request, docspace_adapter, docspace_request,
    evovoice_adapter, evovoice_config, evovoice_request, lifecycle, metakocka_adapter,
    metakocka_config, metakocka_request, ofd_adapter, ofd_config, ofd_request, quick_policy,
};
use report_cloudblue::{CloudBlueAdapter, CloudBlueClient};
use report_core::HttpOptions;
use report_core::{Artifact, Compression, Error, Job, ReportAdapter, Ticket};
use report_docspace::{DocSpaceAdapter, DocSpaceClient, DocSpaceConfig};
use report_evovoice::{EvoVoiceAdapter, EvoVoiceClient};
use report_metakocka::{MetaKockaAdapter, MetaKockaClient};
use report_ofd::chrono::Utc;
use report_ofd::{OfdAdapter, OfdClient};
use report_sandbox::{RecordedRequest, Sandbox, SandboxConfig, Vendor, credentials as c};

// ---------------------------------------------------------------------------------------------
// What a credential looks like on the wire.

/// Headers that carry credentials.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-subscription-key",
    "cookie",
];

/// Query keys (and JSON body keys) that carry credentials.
const CREDENTIAL_KEYS: &[&str] = &[
    "authtoken",
    "token",
    "secret_key",
    "password",
    "apikey",
    "api_key",
    "access_token",
];

/// A received request, whichever server received it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn from_sandbox(r: &RecordedRequest) -> Self {
        Received {
            method: r.method.clone(),
            path: r.path.clone(),
            query: r
                .query
                .as_deref()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }

    fn from_mock(r: &HttpMockRequest) -> Self {
        Received {
            method: r.method_str().to_string(),
            path: r.uri().path().to_string(),
            query: r.query_params(),
            headers: r
                .headers_vec()
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body: r.body_string(),
        }
    }

    /// Everything the request carried, as one text (query both raw-decoded and as pairs).
    fn text(&self) -> String {
        format!(
            "{} {} {:?} {:?} {}",
            self.method, self.path, self.query, self.headers, self.body
        )
    }

    /// Why this request carries a credential, if it does: a credential header, a credential
    /// query or JSON body key, or one of `secrets` anywhere.
    fn credential(&self, secrets: &[String]) -> Option<String> {
        if let Some((name, _)) = self
            .headers
            .iter()
            .find(|(name, _)| CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
        {
            return Some(format!("header `{name}`"));
        }
        if let Some((key, _)) = self
            .query
            .iter()
            .find(|(key, _)| CREDENTIAL_KEYS.contains(&key.to_ascii_lowercase().as_str()))
        {
            return Some(format!("query key `{key}`"));
        }
        if let Ok(serde_json::Value::Object(body)) =
            serde_json::from_str::<serde_json::Value>(&self.body)
            && let Some(key) = body
                .keys()
                .find(|key| CREDENTIAL_KEYS.contains(&key.to_ascii_lowercase().as_str()))
        {
            return Some(format!("body key `{key}`"));
        }
        let text = self.text();
        secrets
            .iter()
            .find(|s| !s.is_empty() && text.contains(s.as_str()))
            .map(|s| format!("the secret `{}…`", &s[..s.len().min(4)]))
    }
}

/// A catch-all httpmock server that records every request and answers `body`.
struct Foreign {
    server: MockServer,
    seen: Arc<Mutex<Vec<Received>>>,
}

const CONTENT: &[u8] = b"report bytes served by a foreign origin";

impl Foreign {
    async fn start() -> Foreign {
        let server = MockServer::start_async().await;
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = seen.clone();
        server
            .mock_async(move |when, then| {
                when.is_true(move |req| {
                    log.lock().unwrap().push(Received::from_mock(req));
                    true
                });
                then.status(200)
                    .header("content-type", "application/octet-stream")
                    .body(CONTENT);
            })
            .await;
        Foreign { server, seen }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Asserts no request received carried a credential; returns how many arrived.
    fn assert_clean(&self, who: &str, secrets: &[String]) -> usize {
        let received = self.received();
        for r in &received {
            if let Some(why) = r.credential(secrets) {
                panic!("{who}: the foreign origin received {why}: {r:?}");
            }
        }
        received.len()
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Whole lifecycles against the sandbox.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_the_blob_origin_or_another_vendor() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = |v| sandbox.base_url(v);
    let requests = (
        docspace_request(),
        evovoice_request(),
        cloudblue_request("isolation"),
        metakocka_request(),
        ofd_request(),
    );
    let tickets = tokio::join!(
        lifecycle(
            docspace_adapter(&base(Vendor::DocSpace), c::DOCSPACE_API_KEY),
            &requests.0,
            quick_policy(),
            dir.path()
        ),
        lifecycle(
            evovoice_adapter(&base(Vendor::EvoVoice)),
            &requests.1,
            quick_policy(),
            dir.path()
        ),
        lifecycle(
            cloudblue_adapter(&base(Vendor::CloudBlue)),
            &requests.2,
            quick_policy(),
            dir.path()
        ),
        lifecycle(
            metakocka_adapter(&base(Vendor::MetaKocka)),
            &requests.3,
            quick_policy(),
            dir.path()
        ),
        lifecycle(
            ofd_adapter(&base(Vendor::Ofd)),
            &requests.4,
            quick_policy(),
            dir.path()
        ),
    );

    let recorded = sandbox.requests();
    let mut secrets = sandbox_secrets();
    let tokens = issued_tokens(&recorded);
    assert!(
        tokens.iter().any(|(v, _)| *v == Vendor::Ofd)
            && tokens.iter().any(|(v, _)| *v == Vendor::CloudBlue),
        "the OFD.ru and CloudBlue tokens in use were not found: {tokens:?}"
    );
    secrets.extend(tokens);
    let all: Vec<String> = secrets.iter().map(|(_, s)| s.clone()).collect();

    // The blob origin: pre-signed downloads only, with no credential of any vendor.
    let blob: Vec<&RecordedRequest> = recorded.iter().filter(|r| r.origin == "blob").collect();
    assert!(
        !blob.is_empty(),
        "CloudBlue downloaded nothing from the blob origin"
    );
    for r in &blob {
        let received = Received::from_sandbox(r);
        if let Some(why) = received.credential(&all) {
            panic!("the blob origin received {why}: {r:?}");
        }
        assert!(r.body.is_empty(), "a blob download with a body: {r:?}");
    }

    // Each vendor origin: none of the other vendors' secrets (values shared between vendors,
    // like the demo password, count as the receiving vendor's own).
    let mut counts = Vec::new();
    for vendor in Vendor::ALL {
        let own: Vec<&String> = secrets
            .iter()
            .filter(|(v, _)| *v == vendor)
            .map(|(_, s)| s)
            .collect();
        let foreign: Vec<String> = secrets
            .iter()
            .filter(|(v, s)| *v != vendor && !own.contains(&s))
            .map(|(_, s)| s.clone())
            .collect();
        let mine: Vec<&RecordedRequest> = recorded
            .iter()
            .filter(|r| r.origin == vendor.name())
            .collect();
        assert!(!mine.is_empty(), "{vendor}: no request recorded");
        for r in &mine {
            let text = Received::from_sandbox(r).text();
            if let Some(s) = foreign.iter().find(|s| text.contains(s.as_str())) {
                panic!(
                    "{vendor} received another vendor's secret `{}…`: {r:?}",
                    &s[..4]
                );
            }
        }
        counts.push(format!("{vendor} {}", mine.len()));
    }

    // MetaKocka's download links work on their own: the secret key never goes with them.
    let links: Vec<&RecordedRequest> = recorded
        .iter()
        .filter(|r| r.origin == "metakocka" && r.path.starts_with("/download/"))
        .collect();
    assert!(!links.is_empty(), "MetaKocka downloaded nothing");
    for r in links {
        if let Some(why) = Received::from_sandbox(r).credential(&all) {
            panic!("a MetaKocka download link received {why}: {r:?}");
        }
    }

    // Tickets are written to disk and shared: they hold no secret.
    for ticket in [&tickets.0, &tickets.1, &tickets.2, &tickets.3, &tickets.4] {
        if let Some(s) = all.iter().find(|s| ticket.contains(s.as_str())) {
            panic!("a ticket holds the secret `{}…`: {ticket}", &s[..4]);
        }
    }
    println!(
        "requests inspected: {}, blob {}; {} secrets and tokens never crossed origins",
        counts.join(", "),
        blob.len(),
        all.len()
    );
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (b) Artifacts on a foreign origin.

fn foreign_artifact(url: String) -> Artifact {
    Artifact {
        url,
        file_name: Some("report.bin".into()),
        format: Some("bin".into()),
        size: None,
        compression: Compression::None,
        // Claimed, even: the URL's origin decides, not this flag.
        authenticated: true,
        data: Default::default(),
    }
}

/// Opens the artifact from the start and from an offset, reading every byte.
async fn open_twice<A: ReportAdapter>(adapter: &A, artifact: &Artifact) {
    let vendor = adapter.vendor();
    for offset in [0, 10] {
        let download = adapter
            .open(artifact, offset)
            .await
            .unwrap_or_else(|e| panic!("{vendor}: open at {offset}: {e:?}"));
        let bytes: Vec<_> = download.body.collect().await;
        assert!(bytes.iter().all(Result::is_ok), "{vendor}: body failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_artifact_urls_get_no_credentials() {
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let base = |v| sandbox.base_url(v);
    let mut lines = Vec::new();

    // OFD.ru: log in and use the token once (so the client holds a live token), then open.
    let ofd = ofd_adapter(&base(Vendor::Ofd));
    ofd.client().reports().await.expect("the report list");
    let foreign = Foreign::start().await;
    open_twice(&ofd, &foreign_artifact(foreign.url("/ofd/r.zip?sig=abc"))).await;

    // EvoVoice, CloudBlue (with a live JWT), MetaKocka.
    let evovoice = evovoice_adapter(&base(Vendor::EvoVoice));
    let cloudblue = cloudblue_adapter(&base(Vendor::CloudBlue));
    let _ = cloudblue
        .client()
        .report("00000000-0000-4000-8000-000000000000")
        .await;
    let metakocka = metakocka_adapter(&base(Vendor::MetaKocka));
    open_twice(&evovoice, &foreign_artifact(foreign.url("/evo/r.xlsx"))).await;
    open_twice(
        &cloudblue,
        &foreign_artifact(foreign.url("/cb/r.json?sig=x")),
    )
    .await;
    open_twice(&metakocka, &foreign_artifact(foreign.url("/mk/r.pdf"))).await;

    let mut secrets: Vec<String> = sandbox_secrets().into_iter().map(|(_, s)| s).collect();
    let tokens = issued_tokens(&sandbox.requests());
    assert_eq!(
        tokens.len(),
        2,
        "one OFD.ru and one CloudBlue token: {tokens:?}"
    );
    secrets.extend(tokens.into_iter().map(|(_, t)| t));
    let n = foreign.assert_clean("ofd/evovoice/cloudblue/metakocka", &secrets);
    // Each adapter opened the foreign URL twice (the recorder may see a request more than once).
    assert!(n >= 8, "each adapter opened the foreign URL twice: {n}");
    lines.push(format!(
        "ofd, evovoice, cloudblue, metakocka: {n} foreign requests, none with a credential"
    ));

    // DocSpace opens the file by id: the portal hands out a pre-signed URL on a bucket.
    const KEY: &str = "sk-isolation-docspace-41f7";
    let portal = MockServer::start_async().await;
    let bucket = Foreign::start().await;
    let signed = bucket.url("/bucket/77.xlsx?X-Amz-Signature=abc");
    let presign = portal
        .mock_async(|when, then| {
            when.method("GET")
                .path("/api/2.0/files/file/77/presigneduri")
                .header("authorization", format!("Bearer {KEY}"));
            then.status(200)
                .header("content-type", "application/json")
                .json_body(serde_json::json!({"response": signed, "status": 0, "statusCode": 200}));
        })
        .await;
    let docspace = docspace_adapter(&portal.base_url(), KEY);
    let mut artifact = foreign_artifact(bucket.url("/bucket/direct.xlsx"));
    artifact.data.insert("file_id".into(), "77".into());
    open_twice(&docspace, &artifact).await;
    assert_eq!(presign.calls_async().await, 2, "the key went to the portal");
    let n = bucket.assert_clean("docspace", &[KEY.to_string()]);
    assert!(n >= 2, "{n}");
    lines.push(format!(
        "docspace: portal asked with the key twice; bucket got {n} requests, none with it"
    ));
    println!("{}", lines.join("\n"));
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (c) Redirects to another origin.

/// An OFD.ru token endpoint on `vendor`.
async fn ofd_login_mock(vendor: &MockServer) {
    vendor
        .mock_async(|when, then| {
            when.method("POST")
                .path("/api/Authorization/CreateAuthToken");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(serde_json::json!({
                    "AuthToken": "0123456789abcdef0123456789abcdef",
                    "ExpirationDateUtc": "2099-01-01T00:00:00"
                }));
        })
        .await;
}

/// A CloudBlue token endpoint on `vendor`, under `/marketplace/eu`.
async fn cloudblue_token_mock(vendor: &MockServer) {
    vendor
        .mock_async(|when, then| {
            when.method("POST").path("/marketplace/eu/token");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(serde_json::json!({
                    "token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJpc29sYXRpb24ifQ.",
                    "expiresInSeconds": 1500
                }));
        })
        .await;
}

/// `vendor` answers `method path` with `status` and `Location: to`.
async fn redirect(vendor: &MockServer, method: &str, path: &str, status: u16, to: &str) {
    vendor
        .mock_async(|when, then| {
            when.method(method).path(path);
            then.status(status).header("location", to);
        })
        .await;
}

const TEST_SECRETS: &[&str] = &[
    "pw-isolation-ofd-5d2c",
    "sk-isolation-docspace-41f7",
    "pw-isolation-evovoice-9b3a",
    "pw-isolation-cloudblue-6e0f",
    "sub-isolation-cloudblue-77aa",
    "mk-isolation-secret-3c19",
    "0123456789abcdef0123456789abcdef",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJpc29sYXRpb24ifQ.",
];

fn test_secrets() -> Vec<String> {
    let mut all: Vec<String> = TEST_SECRETS.iter().map(|s| s.to_string()).collect();
    all.push(basic(c::EVOVOICE_USERNAME, "pw-isolation-evovoice-9b3a"));
    all.push(basic(c::CLOUDBLUE_USERNAME, "pw-isolation-cloudblue-6e0f"));
    all
}

fn isolated_ofd(vendor: &MockServer) -> OfdAdapter {
    OfdAdapter::new(OfdClient::new(ofd_config(&vendor.base_url(), TEST_SECRETS[0])).unwrap())
}

fn isolated_docspace(vendor: &MockServer) -> DocSpaceAdapter {
    docspace_adapter(&vendor.base_url(), TEST_SECRETS[1])
}

fn isolated_evovoice(vendor: &MockServer) -> EvoVoiceAdapter {
    EvoVoiceAdapter::new(
        EvoVoiceClient::new(evovoice_config(&vendor.base_url(), TEST_SECRETS[2])).unwrap(),
    )
}

fn isolated_cloudblue(vendor: &MockServer) -> CloudBlueAdapter {
    let base = vendor.url("/marketplace/eu");
    let config = cloudblue_config(&base, TEST_SECRETS[3], TEST_SECRETS[4]);
    CloudBlueAdapter::new(CloudBlueClient::new(config).unwrap())
}

fn isolated_metakocka(vendor: &MockServer) -> MetaKockaAdapter {
    MetaKockaAdapter::new(
        MetaKockaClient::new(metakocka_config(&vendor.base_url(), TEST_SECRETS[5])).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_redirects_to_another_origin_carry_no_credentials() {
    let secrets = test_secrets();
    let mut lines = Vec::new();

    // Vendors whose downloads carry credentials follow no redirect to another origin: the
    // open fails with the redirect's status and the foreign origin hears nothing.
    let refused = |vendor: &str, outcome: Result<report_core::Download, Error>| -> String {
        let error = outcome
            .err()
            .unwrap_or_else(|| panic!("{vendor}: the cross-origin redirect was followed"));
        assert_eq!(error.http_status(), Some(302), "{vendor}: {error:?}");
        format!("{vendor:<10} refused: {error}")
    };

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    ofd_login_mock(&vendor).await;
    redirect(
        &vendor,
        "GET",
        "/api/customer/reports/r1",
        302,
        &foreign.url("/steal"),
    )
    .await;
    let artifact = foreign_artifact(vendor.url("/api/customer/reports/r1"));
    lines.push(refused(
        "ofd",
        isolated_ofd(&vendor).open(&artifact, 0).await,
    ));
    assert_eq!(
        foreign.received().len(),
        0,
        "ofd: the foreign origin was contacted"
    );

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    let handler = vendor.url("/filehandler.ashx?action=download&fileid=77&token=t");
    vendor
        .mock_async(|when, then| {
            when.path("/api/2.0/files/file/77/presigneduri");
            then.status(200)
                .header("content-type", "application/json")
                .json_body(serde_json::json!({"response": handler}));
        })
        .await;
    redirect(
        &vendor,
        "GET",
        "/filehandler.ashx",
        302,
        &foreign.url("/steal"),
    )
    .await;
    let mut artifact = foreign_artifact(vendor.url("/filehandler.ashx?action=download&fileid=77"));
    artifact.data.insert("file_id".into(), "77".into());
    // DocSpace's file handler answers a 302 to a pre-signed storage URL that may be on another
    // host (FACTS round 2): it is followed, and the key (an `Authorization` header, which the
    // HTTP client drops on a cross-origin redirect) does not go along.
    let docspace = isolated_docspace(&vendor);
    open_twice(&docspace, &artifact).await;
    let n = foreign.assert_clean("docspace", &secrets);
    assert!(
        n > 0,
        "docspace: the file handler's redirect was not followed"
    );
    lines.push(format!(
        "docspace   file handler's 302 followed to the foreign origin: {n} requests, none with a credential"
    ));

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    redirect(
        &vendor,
        "GET",
        "/reports/r1.xlsx",
        302,
        &foreign.url("/steal"),
    )
    .await;
    let artifact = foreign_artifact(vendor.url("/reports/r1.xlsx"));
    lines.push(refused(
        "evovoice",
        isolated_evovoice(&vendor).open(&artifact, 0).await,
    ));
    assert_eq!(
        foreign.received().len(),
        0,
        "evovoice: the foreign origin was contacted"
    );

    // Vendors whose download links are pre-signed send no credential even to their own
    // origin, so a redirect may be followed: the foreign origin still receives none.
    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    cloudblue_token_mock(&vendor).await;
    redirect(
        &vendor,
        "GET",
        "/blob/r.json",
        302,
        &foreign.url("/cb/r.json"),
    )
    .await;
    let cloudblue = isolated_cloudblue(&vendor);
    cloudblue.client().ensure_token().await.unwrap();
    let mut artifact = foreign_artifact(vendor.url("/blob/r.json?sig=abc"));
    artifact.authenticated = false;
    open_twice(&cloudblue, &artifact).await;
    let n = foreign.assert_clean("cloudblue", &secrets);
    lines.push(format!(
        "cloudblue  followed to the foreign origin: {n} requests, none with a credential"
    ));

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    redirect(
        &vendor,
        "GET",
        "/download/report/tok",
        302,
        &foreign.url("/mk/r.pdf"),
    )
    .await;
    let mut artifact = foreign_artifact(vendor.url("/download/report/tok"));
    artifact.authenticated = false;
    open_twice(&isolated_metakocka(&vendor), &artifact).await;
    let n = foreign.assert_clean("metakocka", &secrets);
    lines.push(format!(
        "metakocka  followed to the foreign origin: {n} requests, none with a credential"
    ));
    println!("{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_redirects_to_another_origin_are_not_followed() {
    // 307 keeps the method and the body: followed, it would re-send MetaKocka's secret key,
    // CloudBlue's subscription key header or OFD.ru's token.
    let mut lines = Vec::new();
    let not_followed =
        |vendor: &str, outcome: report_core::Result<report_core::Status>, foreign: &Foreign| {
            let error = outcome
                .err()
                .unwrap_or_else(|| panic!("{vendor}: the redirect answered a status"));
            assert!(
                matches!(error, Error::Api { .. } | Error::Decode { .. }),
                "{vendor}: expected a typed API error, got {error:?}"
            );
            assert_eq!(
                foreign.received().len(),
                0,
                "{vendor}: the redirect was followed"
            );
            format!("{vendor:<10} {error}")
        };

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    ofd_login_mock(&vendor).await;
    redirect(
        &vendor,
        "GET",
        "/api/customer/reports",
        307,
        &foreign.url("/steal"),
    )
    .await;
    let ticket = Ticket::new("ofd", "r1", Utc::now());
    lines.push(not_followed(
        "ofd",
        isolated_ofd(&vendor).poll(&ticket).await,
        &foreign,
    ));

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    redirect(
        &vendor,
        "GET",
        "/api/2.0/portal/payment/customer/operationsreport",
        307,
        &foreign.url("/steal"),
    )
    .await;
    let ticket = Ticket::new("docspace", "DocumentBuilderTask_1_x", Utc::now());
    lines.push(not_followed(
        "docspace",
        isolated_docspace(&vendor).poll(&ticket).await,
        &foreign,
    ));

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    redirect(&vendor, "GET", "/reports", 307, &foreign.url("/steal")).await;
    let ticket = Ticket::new("evovoice", "r1", Utc::now()).with("account_id", "acct-1");
    lines.push(not_followed(
        "evovoice",
        isolated_evovoice(&vendor).poll(&ticket).await,
        &foreign,
    ));

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    cloudblue_token_mock(&vendor).await;
    redirect(
        &vendor,
        "GET",
        "/marketplace/eu/reports/r1",
        307,
        &foreign.url("/steal"),
    )
    .await;
    let ticket = Ticket::new("cloudblue", "r1", Utc::now());
    lines.push(not_followed(
        "cloudblue",
        isolated_cloudblue(&vendor).poll(&ticket).await,
        &foreign,
    ));

    let (vendor, foreign) = (MockServer::start_async().await, Foreign::start().await);
    redirect(
        &vendor,
        "POST",
        "/rest/eshop/v1/report",
        307,
        &foreign.url("/steal"),
    )
    .await;
    let ticket = Ticket::new("metakocka", "tok", Utc::now())
        .with("report_id", "149")
        .with("company_id", c::METAKOCKA_COMPANY_ID);
    lines.push(not_followed(
        "metakocka",
        isolated_metakocka(&vendor).poll(&ticket).await,
        &foreign,
    ));
    println!("{}", lines.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// (d) Secrets in Debug output and error messages.

/// Asserts none of `secrets` shows in `text`.
fn assert_hidden(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} shows a secret: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_show_in_debug_or_error_messages() {
    let secrets = test_secrets();
    let base = "https://reports.example.com";

    // Debug of every configuration, client and adapter (and of a resumed job).
    let ofd = ofd_config(base, TEST_SECRETS[0]);
    let ofd_client = OfdClient::new(ofd.clone()).unwrap();
    let docspace = DocSpaceConfig::new(base, TEST_SECRETS[1]);
    let docspace_client = DocSpaceClient::new(docspace.clone()).unwrap();
    let evovoice = evovoice_config(base, TEST_SECRETS[2]);
    let evovoice_client = EvoVoiceClient::new(evovoice.clone()).unwrap();
    let cloudblue = cloudblue_config(base, TEST_SECRETS[3], TEST_SECRETS[4]);
    let cloudblue_client = CloudBlueClient::new(cloudblue.clone()).unwrap();
    let metakocka = metakocka_config(base, TEST_SECRETS[5]);
    let metakocka_client = MetaKockaClient::new(metakocka.clone()).unwrap();
    let debug = [
        ("OfdConfig", format!("{ofd:?}")),
        ("OfdClient", format!("{ofd_client:?}")),
        (
            "OfdAdapter",
            format!("{:?}", OfdAdapter::new(ofd_client.clone())),
        ),
        ("DocSpaceConfig", format!("{docspace:?}")),
        ("DocSpaceClient", format!("{docspace_client:?}")),
        (
            "DocSpaceAdapter",
            format!("{:?}", DocSpaceAdapter::new(docspace_client.clone())),
        ),
        ("EvoVoiceConfig", format!("{evovoice:?}")),
        ("EvoVoiceClient", format!("{evovoice_client:?}")),
        (
            "EvoVoiceAdapter",
            format!("{:?}", EvoVoiceAdapter::new(evovoice_client.clone())),
        ),
        ("CloudBlueConfig", format!("{cloudblue:?}")),
        ("CloudBlueClient", format!("{cloudblue_client:?}")),
        (
            "CloudBlueAdapter",
            format!("{:?}", CloudBlueAdapter::new(cloudblue_client.clone())),
        ),
        ("MetaKockaConfig", format!("{metakocka:?}")),
        ("MetaKockaClient", format!("{metakocka_client:?}")),
        (
            "MetaKockaAdapter",
            format!("{:?}", MetaKockaAdapter::new(metakocka_client.clone())),
        ),
        (
            "MetaKocka request body",
            format!("{:?}", metakocka_client.request_body()),
        ),
        (
            "Job<OfdAdapter>",
            format!(
                "{:?}",
                Job::resume(
                    OfdAdapter::new(ofd_client),
                    Ticket::new("ofd", "r1", Utc::now()),
                    quick_policy()
                )
                .unwrap()
            ),
        ),
    ];
    for (what, text) in &debug {
        assert_hidden(what, text, &secrets);
    }

    // Refused credentials: the errors name the refusal, never the secret.
    let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
    let url = |v| sandbox.base_url(v);
    let ofd =
        OfdAdapter::new(OfdClient::new(ofd_config(&url(Vendor::Ofd), TEST_SECRETS[0])).unwrap());
    let docspace = docspace_adapter(&url(Vendor::DocSpace), TEST_SECRETS[1]);
    let evovoice = EvoVoiceAdapter::new(
        EvoVoiceClient::new(evovoice_config(&url(Vendor::EvoVoice), TEST_SECRETS[2])).unwrap(),
    );
    let cloudblue = CloudBlueAdapter::new(
        CloudBlueClient::new(cloudblue_config(
            &url(Vendor::CloudBlue),
            TEST_SECRETS[3],
            TEST_SECRETS[4],
        ))
        .unwrap(),
    );
    let metakocka = MetaKockaAdapter::new(
        MetaKockaClient::new(metakocka_config(&url(Vendor::MetaKocka), TEST_SECRETS[5])).unwrap(),
    );
    let requests = (
        ofd_request(),
        docspace_request(),
        evovoice_request(),
        cloudblue_request("isolation"),
        metakocka_request(),
    );
    let (o, d, e, cb, m) = tokio::join!(
        Job::start(ofd, &requests.0, quick_policy()),
        Job::start(docspace, &requests.1, quick_policy()),
        Job::start(evovoice, &requests.2, quick_policy()),
        Job::start(cloudblue, &requests.3, quick_policy()),
        Job::start(metakocka, &requests.4, quick_policy()),
    );
    let refusals = [
        ("ofd", o.err()),
        ("docspace", d.err()),
        ("evovoice", e.err()),
        ("cloudblue", cb.err()),
        ("metakocka", m.err()),
    ];
    let mut lines = Vec::new();
    for (vendor, error) in refusals {
        let error = error.unwrap_or_else(|| panic!("{vendor}: wrong credentials were accepted"));
        assert!(
            matches!(error, Error::Auth { .. }),
            "{vendor}: expected Error::Auth, got {error:?}"
        );
        assert_hidden(vendor, &error_text(&error), &secrets);
        lines.push(format!("{vendor:<10} {error}"));
    }
    for vendor in Vendor::ALL {
        assert_eq!(sandbox.stats(vendor).reports_started, 0, "{vendor}");
    }

    // Secrets a header cannot carry are refused without being echoed.
    let bad_key = "sk-isolation-bad\nX-Leak: 1";
    let refused = [
        DocSpaceClient::new(DocSpaceConfig::new(base, bad_key)).err(),
        CloudBlueClient::new(cloudblue_config(base, "pw", bad_key)).err(),
    ];
    for error in refused {
        let error = error.expect("a key with a newline is refused");
        assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
        assert_hidden("InvalidInput", &error_text(&error), &[bad_key.to_string()]);
        assert!(!error_text(&error).contains("X-Leak"), "{error}");
    }
    println!("{}", lines.join("\n"));
    sandbox.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (e) Plain http.

/// Builds each vendor's client for `base` with `http`; the error of each, by vendor.
fn construct_all(base: &str, http: HttpOptions) -> Vec<(&'static str, Result<(), Error>)> {
    let cloudblue_base = format!("{}/marketplace/eu", base.trim_end_matches('/'));
    vec![
        (
            "ofd",
            OfdClient::new(ofd_config(base, "p").with_http(http.clone())).map(drop),
        ),
        (
            "docspace",
            DocSpaceClient::new(DocSpaceConfig::new(base, "sk-1").with_http(http.clone()))
                .map(drop),
        ),
        (
            "evovoice",
            EvoVoiceClient::new(
                evovoice_config(base, "p")
                    .with_http(http.clone().with_user_agent(report_evovoice::USER_AGENT)),
            )
            .map(drop),
        ),
        (
            "cloudblue",
            CloudBlueClient::new(
                cloudblue_config(&cloudblue_base, "p", "k")
                    .with_http(http.clone().with_timeout(report_cloudblue::DEFAULT_TIMEOUT)),
            )
            .map(drop),
        ),
        (
            "metakocka",
            MetaKockaClient::new(metakocka_config(base, "k").with_http(http)).map(drop),
        ),
    ]
}

#[test]
fn plain_http_is_refused_for_non_loopback_hosts_unless_opted_in() {
    for base in [
        "http://reports.example.com",
        "http://10.0.0.7:8080",
        "http://[2001:db8::1]:8443",
    ] {
        for (vendor, outcome) in construct_all(base, HttpOptions::default()) {
            match outcome {
                Err(Error::InvalidInput(message)) => {
                    assert!(message.contains("http://"), "{vendor}: {message}")
                }
                other => panic!("{vendor}: {base} should be refused, got {other:?}"),
            }
        }
        for (vendor, outcome) in
            construct_all(base, HttpOptions::default().allow_insecure_http(true))
        {
            assert!(outcome.is_ok(), "{vendor}: opted in to {base}: {outcome:?}");
        }
    }
    for base in [
        "https://reports.example.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        for (vendor, outcome) in construct_all(base, HttpOptions::default()) {
            assert!(
                outcome.is_ok(),
                "{vendor}: {base} should be accepted: {outcome:?}"
            );
        }
    }
}

#[tokio::test]
async fn plain_http_artifact_urls_are_refused_when_the_api_is_https() {
    // No request is sent: the URL is refused before any connection (the hosts do not exist).
    let base = "https://api.example.invalid";
    let artifact = foreign_artifact("http://files.example.invalid/r.bin".into());
    let evovoice = EvoVoiceAdapter::new(EvoVoiceClient::new(evovoice_config(base, "p")).unwrap());
    let cloudblue = CloudBlueAdapter::new(
        CloudBlueClient::new(cloudblue_config(
            &format!("{base}/marketplace/eu"),
            "p",
            "k",
        ))
        .unwrap(),
    );
    let metakocka =
        MetaKockaAdapter::new(MetaKockaClient::new(metakocka_config(base, "k")).unwrap());
    let outcomes = [
        ("evovoice", evovoice.open(&artifact, 0).await.err()),
        ("cloudblue", cloudblue.open(&artifact, 0).await.err()),
        ("metakocka", metakocka.open(&artifact, 0).await.err()),
    ];
    for (vendor, error) in outcomes {
        let error = error.unwrap_or_else(|| panic!("{vendor}: http:// artifact opened"));
        assert!(
            matches!(&error, Error::InvalidInput(m) if m.contains("http://")),
            "{vendor}: {error:?}"
        );
    }
}

/// The detector the tests above rely on recognises each kind of credential.
#[test]
fn the_credential_detector_sees_every_kind_of_credential() {
    let clean = Received {
        method: "GET".into(),
        path: "/bucket/r.xlsx".into(),
        query: vec![("sig".into(), "abc".into()), ("se".into(), "2030".into())],
        headers: vec![("range".into(), "bytes=10-".into())],
        body: String::new(),
    };
    assert_eq!(clean.credential(&test_secrets()), None);
    let with = |f: &dyn Fn(&mut Received)| {
        let mut r = clean.clone();
        f(&mut r);
        r.credential(&test_secrets())
    };
    for header in CREDENTIAL_HEADERS {
        assert!(with(&|r| r.headers.push((header.to_string(), "x".into()))).is_some());
    }
    assert!(with(&|r| r.query.push(("AuthToken".into(), "x".into()))).is_some());
    assert!(with(&|r| r.body = r#"{"secret_key": "x"}"#.into()).is_some());
    assert!(with(&|r| r.path = format!("/leak/{}", TEST_SECRETS[5])).is_some());
    assert!(
        with(&|r| r
            .headers
            .push(("x-other".into(), format!("Basic {}", test_secrets()[8]))))
        .is_some()
    );
}
