//! CloudBlue Commerce Marketplace API, Reporting and Data Export: a JWT from
//! `POST {base}/token` (Basic auth + `X-Subscription-Key`), Bearer + subscription key on every
//! other call, `X-Correlation-ID` on every answer, one-time reports submitted → processing →
//! completed (or error), and downloads as pre-signed URLs on a separate blob origin (JSON
//! reports gzip-compressed as `.json.gz`), which needs no credentials and refuses a bad `sig`
//! with an Azure-style XML error.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Vendor;
use crate::content::{ContentKind, DownloadRequest, FileSpec, serve_file};
use crate::credentials::{
    CLOUDBLUE_MARKETPLACE, CLOUDBLUE_PASSWORD, CLOUDBLUE_SUBSCRIPTION_KEY, CLOUDBLUE_USERNAME,
};
use crate::faults::{guard_status, lose_start_answer};
use crate::record::record;
use crate::server::ConnCtl;
use crate::shared::{
    JobClock, Shared, basic_auth, bearer, field_ci, fmt_iso, fmt_iso_millis, header, json_response,
    later, parse_date, percent_encode, query_param,
};

const VENDOR: Vendor = Vendor::CloudBlue;
const CONTAINER: &str = "rdecontainer";
const SAS_VERSION: &str = "2016-05-31";
/// Lifetime of a pre-signed download URL.
const SAS_TTL: Duration = Duration::from_secs(60 * 60);
const X_CORRELATION_ID: &str = "x-correlation-id";

struct CloudBlue {
    shared: Arc<Shared>,
    reports: Mutex<Vec<Report>>,
    /// Blob name → report id.
    blobs: Mutex<HashMap<String, String>>,
}

struct Report {
    id: String,
    name: String,
    customization: Option<String>,
    format: String,
    clock: JobClock,
    created: DateTime<Utc>,
    fail: bool,
    start_date: String,
    end_date: String,
    blob_name: String,
}

impl Report {
    fn status(&self) -> &'static str {
        let fraction = self.clock.fraction();
        if fraction < 0.2 {
            "submitted"
        } else if fraction < 1.0 {
            "processing"
        } else if self.fail {
            "error"
        } else {
            "completed"
        }
    }
}

fn extension(format: &str) -> &'static str {
    match format {
        "json" => "json.gz",
        "xml" => "xml",
        "csv" => "csv",
        _ => "xlsx",
    }
}

fn content_type(format: &str) -> &'static str {
    match format {
        "xml" => "application/xml",
        "csv" => "text/csv",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

/// The CloudBlue API router and the blob origin's router (they share the reports).
pub(crate) fn routers(shared: Arc<Shared>) -> (Router, Router) {
    let state = Arc::new(CloudBlue {
        shared: shared.clone(),
        reports: Mutex::new(Vec::new()),
        blobs: Mutex::new(HashMap::new()),
    });
    let api = Router::new()
        .route("/marketplace/{region}/token", post(create_token))
        .route(
            "/marketplace/{region}/reports",
            get(list_reports).merge(post(create_report).layer(middleware::from_fn_with_state(
                (shared.clone(), VENDOR),
                lose_start_answer,
            ))),
        )
        .route("/marketplace/{region}/reports/{id}", get(get_report))
        .fallback(not_found)
        .with_state(state.clone())
        .layer(middleware::from_fn(correlation))
        .layer(middleware::from_fn_with_state(
            (shared.clone(), VENDOR.name()),
            record,
        ));
    let blob = Router::new()
        .route(&format!("/{CONTAINER}/{{blob}}"), get(get_blob))
        .fallback(blob_not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state((shared, "blob"), record));
    (api, blob)
}

/// The correlation id of the current request (the client's `X-Correlation-ID`, or a new one).
#[derive(Clone)]
struct CorrelationId(String);

/// Middleware: every answer carries `X-Correlation-ID`.
async fn correlation(mut request: Request, next: Next) -> Response {
    let id = header(request.headers(), X_CORRELATION_ID)
        .filter(|id| !id.is_empty())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(X_CORRELATION_ID), value);
    }
    response
}

/// What an error answer needs: the request path and its correlation id.
struct Ctx {
    path: String,
    correlation_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx {
            path: parts.uri.path().to_owned(),
            correlation_id: parts
                .extensions
                .get::<CorrelationId>()
                .map(|c| c.0.clone())
                .unwrap_or_default(),
        })
    }
}

impl Ctx {
    /// `{"timestamp", "status", "error", "message", "path", "correlationId"}`.
    fn error(&self, status: StatusCode, message: &str) -> Response {
        json_response(
            status,
            &json!({
                "timestamp": fmt_iso_millis(Utc::now()),
                "status": status.as_u16(),
                "error": status.canonical_reason().unwrap_or("Error"),
                "message": message,
                "path": self.path,
                "correlationId": self.correlation_id,
            }),
        )
    }
}

impl CloudBlue {
    fn authorize(&self, headers: &HeaderMap, ctx: &Ctx) -> Result<(), Response> {
        if header(headers, "x-subscription-key") != Some(CLOUDBLUE_SUBSCRIPTION_KEY) {
            return Err(ctx.error(
                StatusCode::UNAUTHORIZED,
                "Access denied due to missing or invalid subscription key. Make sure to include \
                 the subscription key when making requests to an API.",
            ));
        }
        match bearer(headers) {
            Some(token) if self.shared.tokens.is_valid(VENDOR, token) => Ok(()),
            _ => Err(ctx.error(StatusCode::UNAUTHORIZED, "Invalid or expired token")),
        }
    }

    fn item(&self, report: &Report) -> Value {
        let status = report.status();
        let mut item = json!({
            "id": report.id,
            "name": report.name,
            "status": status,
            "type": "onetime",
            "format": report.format,
            "creationDate": fmt_iso_millis(report.created),
            "startDate": report.start_date,
            "endDate": report.end_date,
        });
        if let Some(customization) = &report.customization {
            item["customizationName"] = json!(customization);
        }
        if status == "completed" {
            item["downloadUrl"] = json!(self.presign(&report.blob_name));
        }
        item
    }

    /// A fresh pre-signed URL on the blob origin, valid for [`SAS_TTL`].
    fn presign(&self, blob_name: &str) -> String {
        let expiry = fmt_iso(self.shared.clock.utc_at(later(Instant::now(), SAS_TTL)));
        let sig = self.signature(blob_name, &expiry);
        format!(
            "{}/{CONTAINER}/{}?sig={}&se={}&sp=r&sv={SAS_VERSION}&sr=b",
            self.shared.origins.blob,
            percent_encode(blob_name),
            percent_encode(&sig),
            percent_encode(&expiry),
        )
    }

    fn signature(&self, blob_name: &str, expiry: &str) -> String {
        self.shared.sign_b64(&format!(
            "r\n{expiry}\n/{CONTAINER}/{blob_name}\n{SAS_VERSION}\nb"
        ))
    }
}

fn check_region(region: &str, ctx: &Ctx) -> Result<(), Response> {
    if region == CLOUDBLUE_MARKETPLACE {
        Ok(())
    } else {
        Err(ctx.error(
            StatusCode::NOT_FOUND,
            &format!("Marketplace {region} not found"),
        ))
    }
}

async fn create_token(
    State(cb): State<Arc<CloudBlue>>,
    Path(region): Path<String>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = check_region(&region, &ctx) {
        return response;
    }
    if header(&headers, "x-subscription-key") != Some(CLOUDBLUE_SUBSCRIPTION_KEY) {
        return ctx.error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to missing or invalid subscription key.",
        );
    }
    let Some((user, _)) = basic_auth(&headers)
        .filter(|(user, password)| user == CLOUDBLUE_USERNAME && password == CLOUDBLUE_PASSWORD)
    else {
        return ctx.error(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // cmp.yaml 1.6: the marketplace is optional (the user's default, here the only one).
    if let Some(marketplace) = field_ci(&request, "marketplace")
        && marketplace.as_str() != Some(CLOUDBLUE_MARKETPLACE)
    {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            &format!("marketplace must be \"{CLOUDBLUE_MARKETPLACE}\" or absent"),
        );
    }
    let shared = &cb.shared;
    let ttl = shared.config.token_ttl;
    let now = shared.clock.utc_now();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let claims = b64.encode(
        json!({
            "iss": "https://sandbox.cloud.invalid",
            "sub": user,
            "marketplace": CLOUDBLUE_MARKETPLACE,
            "iat": now.timestamp(),
            "exp": now.timestamp().saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            "jti": shared.hex32(),
        })
        .to_string(),
    );
    let signature = b64.encode(shared.sign(&format!("{head}.{claims}")));
    let token = format!("{head}.{claims}.{signature}");
    shared
        .tokens
        .insert(VENDOR, token.clone(), later(Instant::now(), ttl));
    json_response(
        StatusCode::OK,
        &json!({"token": token, "expiresInSeconds": ttl.as_secs()}),
    )
}

async fn create_report(
    State(cb): State<Arc<CloudBlue>>,
    Path(region): Path<String>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = check_region(&region, &ctx).and_then(|()| cb.authorize(&headers, &ctx)) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return ctx.error(StatusCode::BAD_REQUEST, "Malformed JSON request");
    };
    let text = |name: &str| {
        field_ci(&request, name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let Some(name) = text("name") else {
        return ctx.error(StatusCode::BAD_REQUEST, "name: must not be blank");
    };
    let format = text("format").unwrap_or("json").to_ascii_lowercase();
    if !matches!(format.as_str(), "json" | "xml" | "csv" | "xlsx") {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "format: must be one of json, xml, csv, xlsx",
        );
    }
    // cmp.yaml 1.6: only `name` and `startDate` are required; the period ends now by default.
    let Some(start_text) = text("startDate") else {
        return ctx.error(StatusCode::BAD_REQUEST, "startDate: must not be blank");
    };
    let now = cb.shared.clock.utc_now();
    let end = match text("endDate") {
        Some(end_text) => parse_date(end_text),
        None => Some((now, now.naive_utc())),
    };
    let (Some(start), Some(end)) = (parse_date(start_text), end) else {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "startDate and endDate must be ISO 8601 dates",
        );
    };
    if start.0 > end.0 {
        return ctx.error(StatusCode::BAD_REQUEST, "startDate must be before endDate");
    }
    let shared = &cb.shared;
    let id = shared.uuid();
    let blob_name = format!("{name}.{id}.{}", extension(&format));
    let fail = shared.config.fail_reports;
    if !fail {
        shared.register_file(
            VENDOR,
            &id,
            FileSpec {
                kind: ContentKind::for_ext(&format),
                size: shared.config.report_size,
                gzip: format == "json",
                content_type: content_type(&format),
                disposition: None,
            },
        );
        cb.blobs
            .lock()
            .expect("cloudblue lock")
            .insert(blob_name.clone(), id.clone());
    }
    let report = Report {
        id,
        name: name.to_owned(),
        customization: text("customizationName").map(str::to_owned),
        format,
        clock: JobClock::start(shared.config.job_duration),
        created: shared.clock.utc_now(),
        fail,
        start_date: fmt_iso_millis(start.0),
        end_date: fmt_iso_millis(end.0),
        blob_name,
    };
    shared.stats(VENDOR).started();
    let item = cb.item(&report);
    cb.reports.lock().expect("cloudblue lock").push(report);
    json_response(StatusCode::OK, &item)
}

async fn get_report(
    State(cb): State<Arc<CloudBlue>>,
    Path((region, id)): Path<(String, String)>,
    ctx: Ctx,
    ctl: ConnCtl,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = check_region(&region, &ctx).and_then(|()| cb.authorize(&headers, &ctx)) {
        return response;
    }
    let guard = match guard_status(&cb.shared, VENDOR, &ctl, |status, message| {
        ctx.error(status, message)
    })
    .await
    {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let item = cb
        .reports
        .lock()
        .expect("cloudblue lock")
        .iter()
        .find(|r| r.id == id)
        .map(|r| cb.item(r));
    match item {
        Some(item) => guard.finish(json_response(StatusCode::OK, &item)).await,
        None => ctx.error(StatusCode::NOT_FOUND, &format!("Report {id} not found")),
    }
}

async fn list_reports(
    State(cb): State<Arc<CloudBlue>>,
    Path(region): Path<String>,
    ctx: Ctx,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = check_region(&region, &ctx).and_then(|()| cb.authorize(&headers, &ctx)) {
        return response;
    }
    let number = |name: &str, default: usize| match query_param(&query, name) {
        None => Ok(default),
        Some(text) => text.parse::<usize>().map_err(|_| {
            ctx.error(
                StatusCode::BAD_REQUEST,
                &format!("{name}: must be a non-negative integer"),
            )
        }),
    };
    let (limit, offset) = match (number("limit", 10), number("offset", 0)) {
        // cmp.yaml 1.6: `limit` has minimum 1.
        (Ok(0), _) => return ctx.error(StatusCode::BAD_REQUEST, "limit: must be at least 1"),
        (Ok(limit), Ok(offset)) => (limit, offset),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let date = |name: &str| {
        query_param(&query, name).map(|text| {
            let bare_date = text.trim().len() == 10;
            (parse_date(text), bare_date)
        })
    };
    let from = date("from");
    let to = date("to");
    if matches!(from, Some((None, _))) || matches!(to, Some((None, _))) {
        return ctx.error(StatusCode::BAD_REQUEST, "from/to must be ISO 8601 dates");
    }
    let equals = |name: &str, value: &str| {
        query_param(&query, name).is_none_or(|wanted| wanted.eq_ignore_ascii_case(value))
    };
    let reports = cb.reports.lock().expect("cloudblue lock");
    let matching: Vec<&Report> = reports
        .iter()
        .filter(|r| {
            equals("name", &r.name)
                && equals("format", &r.format)
                && equals("status", r.status())
                && equals("type", "onetime")
                && from
                    .as_ref()
                    .is_none_or(|(at, _)| at.is_some_and(|at| r.created >= at.0))
                && to.as_ref().is_none_or(|(at, bare)| {
                    at.is_some_and(|at| {
                        if *bare {
                            r.created < at.0 + chrono::Duration::days(1)
                        } else {
                            r.created <= at.0
                        }
                    })
                })
        })
        .collect();
    let total = matching.len();
    let data: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| cb.item(r))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"data": data, "pagination": {"offset": offset, "limit": limit, "total": total}}),
    )
}

async fn not_found(ctx: Ctx) -> Response {
    ctx.error(StatusCode::NOT_FOUND, "No handler found")
}

/// An Azure Storage error: XML body, `x-ms-request-id`.
fn azure_error(status: StatusCode, code: &str, message: &str, detail: Option<String>) -> Response {
    let request_id = uuid::Uuid::new_v4();
    let now = Utc::now();
    let time = format!(
        "{}.{:07}Z",
        now.format("%Y-%m-%dT%H:%M:%S"),
        now.timestamp_subsec_nanos() / 100
    );
    let detail = detail
        .map(|d| format!("<AuthenticationErrorDetail>{d}</AuthenticationErrorDetail>"))
        .unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\n\
         RequestId:{request_id}\nTime:{time}</Message>{detail}</Error>"
    );
    let mut response = (status, [(CONTENT_TYPE, "application/xml")], body).into_response();
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-ms-request-id"), value);
    }
    response
}

fn authentication_failed(detail: String) -> Response {
    azure_error(
        StatusCode::FORBIDDEN,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header \
         is formed correctly including the signature.",
        Some(detail),
    )
}

/// The blob origin: serves a report file for a valid, unexpired signature; never needs (nor
/// looks at) credentials.
async fn get_blob(
    State(cb): State<Arc<CloudBlue>>,
    Path(blob): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    download: DownloadRequest,
) -> Response {
    let param = |name: &str| query_param(&query, name);
    let (Some(sig), Some(expiry)) = (param("sig"), param("se")) else {
        return authentication_failed("Signature or expiry is missing.".to_owned());
    };
    if param("sp") != Some("r") || param("sv") != Some(SAS_VERSION) || param("sr") != Some("b") {
        return authentication_failed(
            "Signed permissions, version or resource are invalid.".to_owned(),
        );
    }
    if sig != cb.signature(&blob, expiry) {
        return authentication_failed(format!(
            "Signature did not match. String to sign used was r\n{expiry}\n/{CONTAINER}/{blob}\n{SAS_VERSION}\nb"
        ));
    }
    let now = cb.shared.clock.utc_now();
    match DateTime::parse_from_rfc3339(expiry) {
        Ok(at) if at.with_timezone(&Utc) > now => {}
        _ => {
            return authentication_failed(format!(
                "Signed expiry time [{expiry}] has to be after current time [{}]",
                now.to_rfc2822()
            ));
        }
    }
    let id = cb.blobs.lock().expect("cloudblue lock").get(&blob).cloned();
    let spec = id.as_deref().and_then(|id| cb.shared.file(VENDOR, id));
    let (Some(id), Some(spec)) = (id, spec) else {
        return blob_not_found().await;
    };
    let extra = [
        (
            HeaderName::from_static("x-ms-request-id"),
            uuid::Uuid::new_v4().to_string(),
        ),
        (
            HeaderName::from_static("x-ms-version"),
            SAS_VERSION.to_owned(),
        ),
        (
            HeaderName::from_static("x-ms-blob-type"),
            "BlockBlob".to_owned(),
        ),
    ];
    serve_file(&cb.shared, VENDOR, &id, &spec, &download, &extra).await
}

async fn blob_not_found() -> Response {
    azure_error(
        StatusCode::NOT_FOUND,
        "BlobNotFound",
        "The specified blob does not exist.",
        None,
    )
}
