//! Helpers shared by the integration tests: a client, polling, and download checks.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use reqwest::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{RequestBuilder, StatusCode};
use sha2::{Digest, Sha256};

pub const USER_AGENT: &str = "report-sandbox-tests/0.1";

/// A reqwest builder that works in the unified workspace build too: there, reqwest gets
/// report-core's `rustls-no-provider` feature and needs a process-wide crypto provider.
pub fn builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

pub fn client() -> reqwest::Client {
    builder().user_agent(USER_AGENT).build().expect("client")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Calls `poll` every 25 ms until it returns `Some`, for at most 5 s.
pub async fn poll_until<T, F, Fut>(mut poll: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = poll().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job did not finish in time"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Downloads a file in full and again from the middle with `Range: bytes=N-`; checks the
/// headers, that both agree, and returns the full body.
pub async fn download_and_resume(request: impl Fn() -> RequestBuilder) -> Vec<u8> {
    let response = request().send().await.expect("download");
    assert_eq!(response.status(), StatusCode::OK, "full download");
    let headers = response.headers().clone();
    assert_eq!(headers[ACCEPT_RANGES], "bytes");
    let length: usize = headers[CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
    let full = response.bytes().await.expect("body").to_vec();
    assert_eq!(full.len(), length, "Content-Length matches the body");
    assert!(!full.is_empty());

    let start = full.len() / 3;
    let response = request()
        .header(RANGE, format!("bytes={start}-"))
        .send()
        .await
        .expect("ranged download");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()[CONTENT_RANGE],
        format!("bytes {start}-{}/{}", full.len() - 1, full.len()).as_str()
    );
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        (full.len() - start).to_string().as_str()
    );
    let rest = response.bytes().await.expect("ranged body");
    assert_eq!(&full[start..], &rest[..], "resumed bytes match");

    let response = request()
        .header(RANGE, format!("bytes={}-", full.len()))
        .send()
        .await
        .expect("unsatisfiable range");
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        response.headers()[CONTENT_RANGE],
        format!("bytes */{}", full.len()).as_str()
    );
    full
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}
