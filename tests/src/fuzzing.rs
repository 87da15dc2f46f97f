//! One deterministic entry point that feeds arbitrary bytes to everything that decodes vendor
//! answers, shared by the property tests (`tests/fuzz_decode.rs`) and the cargo-fuzz targets
//! (`fuzz/`).
//!
//! [`decode_everything`] must never panic, whatever the bytes: errors are fine, they are what a
//! hostile or broken server should get. It runs, for one vendor:
//!
//! - `serde_json` into every success and error body type of the vendor's generated client
//!   (straight from the bytes, as the generated code does, and through a `serde_json::Value`);
//! - the adapter's status mapping (`status_of`) on whatever decodes, and what the job does with
//!   a status next (scheduling the next poll, serializing the status, the artifact's URL);
//! - the vendor's error description (`describe`, MetaKocka's `check_answer` and synchronous
//!   print envelope), its typed error codes and its lenient enums (`FromStr` on the input);
//! - report-core's [`Ticket::from_json`], `Content-Disposition` and `Retry-After` parsing on
//!   header values made of the input, and URL redaction;
//! - the asynchronous path a real answer takes: a `reqwest::Response` with the input as body and
//!   an assortment of statuses and content types goes through the vendor's `exec` hook
//!   ([`guard_response`]), the generated code's status dispatch and
//!   the vendor kit's `map_failure`, on a current-thread runtime
//!   built once per thread.
//!
//! No request is sent: adapters are built against `http://127.0.0.1:9` and only their pure
//! mapping functions are called.

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use progenitor_client::{Error as ApiError, ResponseValue};
use report_core::__private::{
    VendorError, VendorErrors, VendorProfile, content_disposition_file_name, guard_response,
    limit_body, normalize_error_response, redact_query, retry_after,
};
use report_core::{Status, Ticket, WaitPolicy};
use reqwest::header::{CONTENT_DISPOSITION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::de::DeserializeOwned;
use url::Url;

/// The dummy base URL of every adapter: loopback, discard port, never contacted.
pub const DUMMY_BASE_URL: &str = "http://127.0.0.1:9";

/// The vendors [`decode_everything`] decodes: the workspace's one list.
pub use report_sandbox::Vendor;

/// `crates/report-<name>/tests/fixtures`: the vendor's recorded answers and requests.
pub fn fixtures_dir(vendor: Vendor) -> PathBuf {
    crate::workspace_root()
        .join("crates")
        .join(format!("report-{}", vendor.name()))
        .join("tests")
        .join("fixtures")
}

/// The vendor's JSON fixture files, sorted by name.
pub fn fixtures(vendor: Vendor) -> Vec<(String, Vec<u8>)> {
    let dir = fixtures_dir(vendor);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "json").then(|| {
                let name = path.file_name()?.to_string_lossy().into_owned();
                Some((name, std::fs::read(&path).ok()?))
            })?
        })
        .collect();
    out.sort();
    out
}

/// Feeds `data` to everything of `vendor` (and of report-core) that decodes vendor answers.
///
/// Deterministic (fixed clock, seeded jitter, no network) and never panics; see the module
/// documentation for what it covers.
pub fn decode_everything(vendor: Vendor, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let value = serde_json::from_slice::<serde_json::Value>(data).ok();
    core(data, &text);
    decode_vendor(vendor, data, &text, value.as_ref());
    block_on(answers(vendor, data));
}

/// The per-vendor arms, from the workspace's one list: each vendor has a module below (named
/// as in the list) with `decode` and `answer`, so a vendor added to the list does not compile
/// here until it has them.
macro_rules! vendor_arms {
    ($($(#[doc = $doc:literal])* $variant:ident = $module:ident;)+) => {
        fn decode_vendor(
            vendor: Vendor,
            data: &[u8],
            text: &str,
            value: Option<&serde_json::Value>,
        ) {
            match vendor {
                $(Vendor::$variant => $module::decode(data, text, value),)+
            }
        }

        async fn answer_vendor(vendor: Vendor, response: reqwest::Response, tiny: bool) {
            match vendor {
                $(Vendor::$variant => $module::answer(response, tiny).await,)+
            }
        }
    };
}

report_sandbox::for_each_vendor!(vendor_arms);

/// Decodes `T` from the bytes as the generated code does, and from the parsed value.
fn parse_as<T: DeserializeOwned>(data: &[u8], value: Option<&serde_json::Value>) -> Vec<T> {
    let direct = serde_json::from_slice::<T>(data).ok();
    let via_value = value.and_then(|v| T::deserialize(v).ok());
    direct.into_iter().chain(via_value).collect()
}

/// Parses a lenient enum (they never fail) and looks at it.
fn lenient<T: FromStr + Debug + ToString>(text: &str) {
    if let Ok(parsed) = text.parse::<T>() {
        std::hint::black_box((parsed.to_string(), format!("{parsed:?}")));
    }
}

/// report-core's own parsers of answer parts: tickets, header values, URLs.
fn core(data: &[u8], text: &str) {
    if let Ok(ticket) = Ticket::from_json(text) {
        let _ = Ticket::from_json(&ticket.to_json());
        let _ = ticket.expect_vendor("ofd");
        let _ = ticket.require("agreement_id");
    }
    let _ = report_core::excerpt(data);
    for value in header_values(data) {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_DISPOSITION, value.clone());
        headers.insert(RETRY_AFTER, value);
        std::hint::black_box(content_disposition_file_name(&headers));
        std::hint::black_box(retry_after(&headers));
    }
    if let Ok(url) = Url::parse(text.trim()) {
        std::hint::black_box(redact_query(&url));
    }
    for insecure in [false, true] {
        let _ = report_core::__private::check_base_url(text, insecure);
    }
}

/// Header values made of the input, when they are valid header bytes: as is, and inside the
/// `Content-Disposition` forms the parser looks into.
fn header_values(data: &[u8]) -> Vec<HeaderValue> {
    let mut forms: Vec<Vec<u8>> = vec![data.to_vec()];
    for (prefix, suffix) in [
        (&b"attachment; filename=\""[..], &b"\""[..]),
        (b"attachment; filename*=UTF-8''", b""),
        (b"attachment; filename=\"a.xlsx\"; filename*=", b""),
    ] {
        forms.push([prefix, data, suffix].concat());
    }
    forms
        .into_iter()
        .filter_map(|f| HeaderValue::from_bytes(&f).ok())
        .collect()
}

/// The fixed "now" of every scheduling decision, so a run is reproducible.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 2, 10, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// What a job does with a status: log it, serialize it, schedule the next poll after a pending
/// one (with the vendor's ETA and progress), check an artifact's URL.
fn status(status: &Status) {
    std::hint::black_box((status.is_terminal(), status.name(), format!("{status:?}")));
    if let Ok(json) = serde_json::to_string(status) {
        let _ = serde_json::from_str::<Status>(&json);
    }
    match status {
        Status::Pending(progress) => {
            let mut scheduler = WaitPolicy::default().with_seed(7).scheduler();
            let start = now();
            std::hint::black_box(scheduler.first_delay());
            std::hint::black_box(scheduler.after_pending(start, progress));
            std::hint::black_box(
                scheduler.after_pending(start + chrono::Duration::seconds(30), progress),
            );
            let mut plain = WaitPolicy::default()
                .with_seed(7)
                .with_hints(false)
                .scheduler();
            std::hint::black_box(plain.after_pending(start, progress));
        }
        Status::Ready(artifact) => {
            if let Ok(url) = Url::parse(&artifact.url) {
                std::hint::black_box(redact_query(&url));
            }
        }
        _ => {}
    }
}

/// Looks at an error the way callers do: message, chain of sources, classification.
fn error(e: &report_core::Error) {
    let mut text = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    std::hint::black_box((
        text,
        e.is_transient(),
        e.request_maybe_sent(),
        e.retry_after(),
        e.vendor_code(),
        e.http_status(),
    ));
}

/// A vendor error description, reported as the clients do.
fn described(errors: &VendorErrors<'_>, described: VendorError) {
    for status in [400, 401, 403, 500] {
        error(&errors.api(status, &HeaderMap::new(), described.clone()));
    }
}

thread_local! {
    /// One current-thread runtime per thread, built once.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
}

fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(future))
}

/// An answer's HTTP status, content type and other headers.
type Answer = (
    u16,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
);

/// Statuses, content types and headers of the answers the body is wrapped in.
const ANSWERS: &[Answer] = &[
    (200, Some("application/json"), &[]),
    (200, Some("application/json; charset=utf-8"), &[]),
    (200, Some("text/html; charset=utf-8"), &[]),
    (200, None, &[]),
    (200, Some("application/octet-stream"), &[]),
    (201, Some("application/json"), &[]),
    (204, None, &[]),
    (302, Some("text/html"), &[("location", "/login")]),
    (
        400,
        Some("application/json"),
        &[("x-correlation-id", "c-400")],
    ),
    (401, None, &[("www-authenticate", "Bearer")]),
    (403, Some("application/json; charset=utf-8"), &[]),
    (404, Some("text/plain"), &[]),
    (429, Some("application/json"), &[("retry-after", "120")]),
    (500, Some("text/html"), &[("x-correlation-id", "c-500")]),
    (
        503,
        Some("application/problem+json"),
        &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
    ),
];

/// A response as the HTTP client would hand it to the vendor's `exec` hook.
fn response(
    status: u16,
    content_type: Option<&'static str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> reqwest::Response {
    let mut answer = http::Response::new(Bytes::copy_from_slice(body));
    *answer.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let map = answer.headers_mut();
    if let Some(ct) = content_type {
        map.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    reqwest::Response::from(answer)
}

/// How many of [`ANSWERS`] besides the first wrap one body. Each costs tens of microseconds in
/// a debug build, so a body gets a few, chosen by its hash: across inputs every one is used.
const ANSWERS_PER_INPUT: usize = 4;

/// FNV-1a: a stable hash of the input, to choose its answers deterministically.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The wrapped answers for one body: a JSON 200, a few more of [`ANSWERS`] chosen by the body's
/// hash, and an error answer whose `Retry-After` and correlation id are the input itself (when
/// it is a valid header value).
fn responses(body: &[u8]) -> Vec<reqwest::Response> {
    let mut hash = fnv1a(body);
    let mut picked = vec![0];
    for _ in 0..ANSWERS_PER_INPUT {
        picked.push(1 + (hash % (ANSWERS.len() as u64 - 1)) as usize);
        hash = hash.rotate_right(17).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    let mut out: Vec<reqwest::Response> = picked
        .into_iter()
        .map(|i| {
            let (status, ct, headers) = ANSWERS[i];
            response(status, ct, headers, body)
        })
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(body) {
        let status = if hash.is_multiple_of(2) { 429 } else { 503 };
        let mut r = response(status, Some("application/json"), &[], body);
        r.headers_mut().insert(RETRY_AFTER, value.clone());
        r.headers_mut()
            .insert(HeaderName::from_static("x-correlation-id"), value);
        out.push(r);
    }
    out
}

/// The generated code's handling of one answer: the `exec` hook's guard, then 200 → `T`,
/// 4xx/5xx → the error body `E`, anything else unexpected.
async fn dispatch<T: DeserializeOwned, E: DeserializeOwned>(
    response: reqwest::Response,
    envelope: fn(String) -> serde_json::Value,
    tiny_limit: bool,
) -> Result<T, ApiError<E>> {
    let response = if tiny_limit {
        // The body-size guard, with a limit small enough for fuzz inputs to pass it.
        let normalized = normalize_error_response(response, envelope).await?;
        limit_body(normalized, 64)
    } else {
        guard_response(response, envelope).await?
    };
    match response.status().as_u16() {
        200 => ResponseValue::from_response(response)
            .await
            .map(ResponseValue::into_inner),
        400..=599 => Err(ApiError::ErrorResponse(
            ResponseValue::from_response(response).await?,
        )),
        _ => Err(ApiError::UnexpectedResponse(response)),
    }
}

/// Runs every wrapped answer of `data` through the vendor's asynchronous path.
async fn answers(vendor: Vendor, data: &[u8]) {
    let tiny_one = (fnv1a(data) % 3) as usize;
    for (i, response) in responses(data).into_iter().enumerate() {
        // One answer in three goes through a tiny body limit instead of the real one.
        let tiny = i % 3 == tiny_one;
        answer_vendor(vendor, response, tiny).await;
    }
}

mod ofd {
    use super::*;
    use report_ofd::__fuzz::{Profile, map, parse_utc};
    use report_ofd::api::types;
    use report_ofd::{OfdAdapter, OfdClient, OfdConfig, OfdErrorCode, ReportStatus, ReportType};

    static ADAPTER: LazyLock<OfdAdapter> = LazyLock::new(|| {
        let config = OfdConfig::new("fuzz", "fuzz").with_base_url(DUMMY_BASE_URL);
        OfdAdapter::new(OfdClient::new(config).expect("a valid configuration"))
    });

    const AGREEMENT: &str = "6f1c2b1e-8a55-4c1e-9d3a-0d2b4f5e6a7b";

    fn report(report: &types::ReportInfo) {
        for agreement in [None, Some(AGREEMENT)] {
            status(&ADAPTER.status_of(report, agreement));
        }
    }

    fn list(envelope: types::ReportListEnvelope) {
        // As `OfdClient::agreement_id` and `OfdClient::reports` read it.
        let agreement = envelope
            .data
            .as_ref()
            .and_then(|d| d.ofd_agreement_id.clone())
            .or(envelope.ofd_agreement_id.clone());
        std::hint::black_box(agreement);
        let reports = match envelope.data {
            Some(data) => data.list,
            None => envelope.list,
        };
        reports.iter().for_each(report);
    }

    fn error_envelope(envelope: &types::ErrorEnvelope) {
        std::hint::black_box(OfdErrorCode::find(&envelope.errors));
        described(&Profile::errors(), Profile::describe(envelope));
    }

    pub(super) fn decode(data: &[u8], text: &str, value: Option<&serde_json::Value>) {
        parse_as::<types::ReportListEnvelope>(data, value)
            .into_iter()
            .for_each(list);
        // The status path reads the list with a borrowing mirror of the generated types:
        // both must accept and refuse the same documents, with the same values.
        report_ofd::__fuzz::check_list_decoders_agree(data);
        if let Some(value) = value {
            report_ofd::__fuzz::check_list_decoders_agree(value.to_string().as_bytes());
        }
        for envelope in parse_as::<types::ReportEnvelope>(data, value) {
            envelope.data.iter().for_each(report);
        }
        for envelope in parse_as::<types::StatusEnvelope>(data, value) {
            envelope.data.iter().for_each(report);
        }
        for deleted in parse_as::<types::DeletedReport>(data, value) {
            deleted.data.iter().for_each(report);
            if let Some(state) = &deleted.status {
                lenient::<ReportStatus>(state);
            }
        }
        for list in parse_as::<types::ReportList>(data, value) {
            list.list.iter().for_each(report);
        }
        parse_as::<types::ReportInfo>(data, value)
            .iter()
            .for_each(report);
        for token in parse_as::<types::AuthToken>(data, value) {
            std::hint::black_box(token.expiration_date_utc.as_deref().and_then(parse_utc));
        }
        std::hint::black_box(parse_as::<Vec<types::CustomTemplate>>(data, value));
        std::hint::black_box(parse_as::<types::CustomTemplate>(data, value));
        std::hint::black_box(parse_as::<Vec<types::ReportTemplate>>(data, value));
        parse_as::<types::ErrorEnvelope>(data, value)
            .iter()
            .for_each(error_envelope);
        lenient::<ReportStatus>(text);
        lenient::<ReportType>(text);
        lenient::<OfdErrorCode>(text);
        std::hint::black_box(parse_utc(text));
    }

    pub(super) async fn answer(response: reqwest::Response, tiny: bool) {
        match dispatch::<types::ReportListEnvelope, types::ErrorEnvelope>(
            response,
            Profile::error_body_for,
            tiny,
        )
        .await
        {
            Ok(envelope) => list(envelope),
            Err(e) => {
                if let ApiError::ErrorResponse(body) = &e {
                    std::hint::black_box(OfdErrorCode::find(&body.as_ref().errors));
                }
                let mapped = map("listReports", e).await;
                std::hint::black_box(OfdErrorCode::of(&mapped));
                error(&mapped);
            }
        }
    }
}

mod docspace {
    use super::*;
    use report_docspace::__fuzz::{Profile, map};
    use report_docspace::api::types;
    use report_docspace::{
        DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceErrorCode, FileId, TaskStatus,
    };

    static ADAPTER: LazyLock<DocSpaceAdapter> = LazyLock::new(|| {
        let config = DocSpaceConfig::new(DUMMY_BASE_URL, "sk-fuzz");
        DocSpaceAdapter::new(DocSpaceClient::new(config).expect("a valid configuration"))
    });

    fn task(task: &types::DocumentBuilderTaskDto) {
        status(&ADAPTER.status_of(task));
        std::hint::black_box((task.status.code(), task.status.is_active()));
        if let Some(id) = &task.result_file_id {
            std::hint::black_box(ADAPTER.client().file_handler_url(id));
        }
    }

    pub(super) fn decode(data: &[u8], text: &str, value: Option<&serde_json::Value>) {
        for envelope in parse_as::<types::DocumentBuilderTaskEnvelope>(data, value) {
            envelope.response.iter().for_each(task);
        }
        parse_as::<types::DocumentBuilderTaskDto>(data, value)
            .iter()
            .for_each(task);
        for envelope in parse_as::<types::StringEnvelope>(data, value) {
            // As `DocSpaceClient::presigned_uri` resolves the answer.
            if let Some(uri) = envelope.response.filter(|u| !u.trim().is_empty()) {
                std::hint::black_box(ADAPTER.client().base_url().join(uri.trim()).ok());
            }
        }
        for envelope in parse_as::<types::ErrorEnvelope>(data, value) {
            described(&Profile::errors(), Profile::describe(&envelope));
        }
        for id in parse_as::<FileId>(data, value) {
            std::hint::black_box(ADAPTER.client().file_handler_url(&id));
        }
        for state in parse_as::<TaskStatus>(data, value) {
            std::hint::black_box((state.code(), state.is_active(), state.to_string()));
        }
        lenient::<TaskStatus>(text);
        lenient::<DocSpaceErrorCode>(text);
        let Ok(id) = text.parse::<FileId>();
        std::hint::black_box(ADAPTER.client().file_handler_url(&id));
    }

    pub(super) async fn answer(response: reqwest::Response, tiny: bool) {
        match dispatch::<types::DocumentBuilderTaskEnvelope, types::ErrorEnvelope>(
            response,
            Profile::error_body_for,
            tiny,
        )
        .await
        {
            Ok(envelope) => envelope.response.iter().for_each(task),
            Err(e) => {
                let mapped = map("getCustomerOperationsReport", e).await;
                std::hint::black_box(DocSpaceErrorCode::of(&mapped));
                error(&mapped);
            }
        }
    }
}

mod evovoice {
    use super::*;
    use report_evovoice::__fuzz::{Profile, map};
    use report_evovoice::api::types;
    use report_evovoice::{
        EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig, EvoVoiceErrorCode, ReportStatus,
    };

    static ADAPTER: LazyLock<EvoVoiceAdapter> = LazyLock::new(|| {
        let config = EvoVoiceConfig::new("fuzz", "fuzz").with_base_url(DUMMY_BASE_URL);
        EvoVoiceAdapter::new(EvoVoiceClient::new(config).expect("a valid configuration"))
    });

    fn report(report: &types::ReportInfo) {
        let mapped = ADAPTER.status_of(report);
        status(&mapped);
        if let Status::Ready(artifact) = &mapped {
            std::hint::black_box(ADAPTER.download_link_artifact(artifact));
        }
    }

    pub(super) fn decode(data: &[u8], text: &str, value: Option<&serde_json::Value>) {
        for list in parse_as::<types::ReportList>(data, value) {
            list.reports.iter().for_each(report);
        }
        parse_as::<types::ReportInfo>(data, value)
            .iter()
            .for_each(report);
        for body in parse_as::<types::ErrorResponse>(data, value) {
            described(&Profile::errors(), Profile::describe(&body));
        }
        lenient::<ReportStatus>(text);
        std::hint::black_box(ADAPTER.client().report_file_url(text));
    }

    pub(super) async fn answer(response: reqwest::Response, tiny: bool) {
        match dispatch::<types::ReportList, types::ErrorResponse>(
            response,
            Profile::error_body_for,
            tiny,
        )
        .await
        {
            Ok(list) => list.reports.iter().for_each(report),
            Err(e) => {
                let mapped = map("listReports", e).await;
                std::hint::black_box(EvoVoiceErrorCode::of(&mapped));
                error(&mapped);
            }
        }
    }
}

mod cloudblue {
    use super::*;
    use report_cloudblue::__fuzz::{BLOB_ERRORS, Profile, map};
    use report_cloudblue::api::types;
    use report_cloudblue::{CloudBlueAdapter, ReportFormat, ReportStatus, ReportType};

    fn item(item: &types::ReportItem) {
        match CloudBlueAdapter::status_of(item) {
            Ok(mapped) => status(&mapped),
            Err(e) => error(&e),
        }
    }

    pub(super) fn decode(data: &[u8], text: &str, value: Option<&serde_json::Value>) {
        parse_as::<types::ReportItem>(data, value)
            .iter()
            .for_each(item);
        for list in parse_as::<types::ReportList>(data, value) {
            list.data.iter().for_each(item);
        }
        for token in parse_as::<types::Token>(data, value) {
            std::hint::black_box(report_cloudblue::__fuzz::token_expiry(
                now(),
                token.expires_in_seconds,
            ));
        }
        for body in parse_as::<types::ErrorBody>(data, value) {
            described(&Profile::errors(), Profile::describe(&body));
            described(&BLOB_ERRORS, Profile::describe(&body));
        }
        let Ok(state) = text.parse::<ReportStatus>();
        std::hint::black_box(state.normalized());
        lenient::<ReportFormat>(text);
        lenient::<ReportType>(text);
    }

    pub(super) async fn answer(response: reqwest::Response, tiny: bool) {
        match dispatch::<types::ReportItem, types::ErrorBody>(
            response,
            Profile::error_body_for,
            tiny,
        )
        .await
        {
            Ok(report) => item(&report),
            Err(e) => error(&map("getReport", e).await),
        }
    }
}

mod metakocka {
    use super::*;
    use report_metakocka::__fuzz::{Profile, error_status, map, reject_envelope};
    use report_metakocka::api::types;
    use report_metakocka::{
        MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, ReportFormat, check_answer,
        is_credentials_refusal, progress_fraction,
    };

    static ADAPTER: LazyLock<MetaKockaAdapter> = LazyLock::new(|| {
        let config = MetaKockaConfig::new("16", "fuzz").with_base_url(DUMMY_BASE_URL);
        MetaKockaAdapter::new(MetaKockaClient::new(config).expect("a valid configuration"))
    });

    fn report(answer: &types::ReportAnswer) {
        if let Err(e) = check_answer(answer) {
            error(&e);
        }
        for format in [None, Some(&ReportFormat::Poi), Some(&ReportFormat::Pdf)] {
            match ADAPTER.status_of(answer, format) {
                Ok(mapped) => status(&mapped),
                Err(e) => error(&e),
            }
        }
    }

    pub(super) fn decode(data: &[u8], text: &str, value: Option<&serde_json::Value>) {
        parse_as::<types::ReportAnswer>(data, value)
            .iter()
            .for_each(report);
        for answer in parse_as::<types::ErrorAnswer>(data, value) {
            described(&Profile::errors(), Profile::describe(&answer));
        }
        if let Err(e) = reject_envelope(data) {
            error(&e);
        }
        std::hint::black_box(progress_fraction(text));
        let Ok(format) = text.parse::<ReportFormat>();
        std::hint::black_box(format.extension());
        let code = text.split_whitespace().next().unwrap_or_default();
        std::hint::black_box(is_credentials_refusal(code, text));
        std::hint::black_box(is_credentials_refusal("1", text));
    }

    pub(super) async fn answer(response: reqwest::Response, tiny: bool) {
        if !response.status().is_success() && tiny {
            // The synchronous print's reading of an error status, instead of the generated one.
            error(&error_status(response).await);
            return;
        }
        match dispatch::<types::ReportAnswer, types::ErrorAnswer>(
            response,
            Profile::error_body_for,
            tiny,
        )
        .await
        {
            Ok(answer) => report(&answer),
            Err(e) => error(&map("printReport", e).await),
        }
    }
}
