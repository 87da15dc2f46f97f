//! OFD.ru «ИС Отчеты»: `?AuthToken=` on every request, `{Data, Status, Elapsed}` envelopes,
//! reports Todo → Processing → Done (or Error) read through the report list, relative
//! download/delete/cancel URLs, the file as a zip archive.

use std::sync::{Arc, Mutex};
use std::time::Instant as StdInstant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::Vendor;
use crate::content::{ContentKind, DownloadRequest, FileSpec, serve_file};
use crate::credentials::{OFD_INN, OFD_KPP, OFD_LOGIN, OFD_PASSWORD};
use crate::faults::{guard_status, lose_start_answer};
use crate::record::record;
use crate::server::ConnCtl;
use crate::shared::{
    JobClock, Shared, elapsed_since, field_ci, fmt_naive, json_response, later, parse_date,
    percent_encode, query_param,
};

const VENDOR: Vendor = Vendor::Ofd;
const ACCOUNT_EMAIL: &str = "demo@sandbox.invalid";
const ACCOUNT_NAME: &str = "Sandbox Demo";
/// Most report requests the demo account may make.
const AGREEMENT_LIMIT: u64 = 500_000;
/// Registers of the demo account (used for `SelectAllKkts`).
const ALL_KKTS: u64 = 59;

type Q = Query<Vec<(String, String)>>;

struct Ofd {
    shared: Arc<Shared>,
    agreement_id: String,
    reports: Mutex<Vec<Report>>,
}

struct Report {
    id: String,
    clock: JobClock,
    created: DateTime<Utc>,
    fail: bool,
    /// Deleted or cancelled: reads as `Deleted`.
    removed: bool,
    report_type: String,
    type_name: String,
    name: String,
    date_from: String,
    date_to: String,
    kkt_count: u64,
    emails: Vec<String>,
}

impl Report {
    fn status(&self) -> &'static str {
        let fraction = self.clock.fraction();
        if self.removed {
            "Deleted"
        } else if fraction < 0.25 {
            "Todo"
        } else if fraction < 1.0 {
            "Processing"
        } else if self.fail {
            "Error"
        } else {
            "Done"
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let digest = Sha256::digest(format!("ofd agreement {}", shared.config.seed));
    let agreement_id = uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes"))
        .into_uuid()
        .to_string();
    let state = Arc::new(Ofd {
        shared: shared.clone(),
        agreement_id,
        reports: Mutex::new(Vec::new()),
    });
    Router::new()
        .route("/api/Authorization/CreateAuthToken", post(create_token))
        .route(
            "/api/customer/reports",
            get(list_reports).merge(post(create_report).layer(middleware::from_fn_with_state(
                (shared.clone(), VENDOR),
                lose_start_answer,
            ))),
        )
        .route("/api/customer/reports/templates", get(templates))
        .route(
            "/api/customer/reports/custom",
            get(custom_list).post(custom_save),
        )
        .route(
            "/api/customer/reports/custom/{id}",
            get(custom_get).put(custom_update).delete(custom_delete),
        )
        .route(
            "/api/customer/reports/{id}",
            get(download_report).delete(delete_report),
        )
        .route("/api/customer/reports/{id}/cancel", get(cancel_report))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            (shared, VENDOR.name()),
            record,
        ))
}

/// The failure envelope `{"Errors": […], "Status": "Failed", "Elapsed": …}`.
fn failed(status: StatusCode, errors: &[&str], started: StdInstant) -> Response {
    json_response(
        status,
        &json!({"Errors": errors, "Status": "Failed", "Elapsed": elapsed_since(started)}),
    )
}

fn fault_error(status: StatusCode, _message: &str) -> Response {
    let code = if status == StatusCode::TOO_MANY_REQUESTS {
        "TooManyRequests"
    } else {
        "InternalError"
    };
    failed(status, &[code], StdInstant::now())
}

fn type_name(report_type: &str) -> &str {
    match report_type {
        "KKTReport" => "Отчёт по подключенным ККТ",
        "CloseShiftReport" => "Отчёт по сменам",
        "ReceiptReport" => "Сверка",
        "FiscalDocumentReport" => "Список фискальных документов",
        "RentReport" => "Отчёт арендатора",
        "EReceiptReport" => "Статистика отправки электронных чеков",
        "OpenShift24Report" => "Кассы со сменами, открытыми более 24 часов",
        "ManagerKktReport" => "Список всех касс",
        "MyKktReport" => "Отчёт-мониторинг",
        "FnScheduleReport" => "График смены ФН",
        other => other,
    }
}

/// Rounds up to a whole second, so an ETA printed without fractions is never early.
fn ceil_second(at: DateTime<Utc>) -> DateTime<Utc> {
    if at.nanosecond() == 0 {
        at
    } else {
        at.with_nanosecond(0).expect("valid") + ChronoDuration::seconds(1)
    }
}

impl Ofd {
    fn check_token(&self, query: &[(String, String)], started: StdInstant) -> Result<(), Response> {
        match query_param(query, "AuthToken") {
            Some(token) if self.shared.tokens.is_valid(VENDOR, token) => Ok(()),
            _ => Err(failed(
                StatusCode::UNAUTHORIZED,
                &["AuthToken is invalid or expired"],
                started,
            )),
        }
    }

    fn wrong_agreement(&self, query: &[(String, String)]) -> bool {
        query_param(query, "OfdAgreementId")
            .is_some_and(|a| !a.eq_ignore_ascii_case(&self.agreement_id))
    }

    fn info(&self, report: &Report) -> Value {
        let id = &report.id;
        let agreement = &self.agreement_id;
        let status = report.status();
        let eta = ceil_second(self.shared.clock.utc_at(report.clock.ends()));
        let mut info = json!({
            "Id": id,
            "CDateUtc": fmt_naive(report.created),
            "ReportTypeName": report.type_name,
            "ReportType": report.report_type,
            "DateFrom": report.date_from,
            "DateTo": report.date_to,
            "ExpiredDate": fmt_naive(report.created + ChronoDuration::days(7)),
            "KktCount": report.kkt_count,
            "Status": status,
            "AccountEmail": ACCOUNT_EMAIL,
            "AccountName": ACCOUNT_NAME,
            "Name": report.name,
            "EmailsToNotify": report.emails,
            "FileFormat": "Xlsx",
            "IsAutoReport": false,
            "AssumptiveCompleteTime": fmt_naive(eta),
            "DownloadUrl": format!("/api/customer/reports/{id}?OfdAgreementId={agreement}"),
            "DeleteUrl": format!("/api/customer/reports/{id}?ofdAgreementId={agreement}"),
            "CancelUrl": format!("/api/customer/reports/{id}/cancel?ofdAgreementId={agreement}"),
        });
        if status == "Done" {
            info["ReportSize"] = json!(self.shared.config.report_size.div_ceil(1024));
        }
        info
    }
}

async fn create_token(State(ofd): State<Arc<Ofd>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let login = field_ci(&request, "Login").and_then(Value::as_str);
    let password = field_ci(&request, "Password").and_then(Value::as_str);
    if login != Some(OFD_LOGIN) || password != Some(OFD_PASSWORD) {
        return json_response(StatusCode::FORBIDDEN, &json!({}));
    }
    let token = ofd.shared.hex32();
    let expires = later(Instant::now(), ofd.shared.config.token_ttl);
    ofd.shared.tokens.insert(VENDOR, token.clone(), expires);
    // Printed truncated to the second: never later than the real expiry.
    let expiration = fmt_naive(ofd.shared.clock.utc_at(expires));
    json_response(
        StatusCode::OK,
        &json!({"AuthToken": token, "ExpirationDateUtc": expiration}),
    )
}

async fn list_reports(State(ofd): State<Arc<Ofd>>, ctl: ConnCtl, Query(query): Q) -> Response {
    let started = StdInstant::now();
    if let Err(response) = ofd.check_token(&query, started) {
        return response;
    }
    let guard = match guard_status(&ofd.shared, VENDOR, &ctl, fault_error).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let inn = query_param(&query, "Inn");
    let kpp = query_param(&query, "Kpp");
    if inn.is_some_and(|inn| inn != OFD_INN) || kpp.is_some_and(|kpp| kpp != OFD_KPP) {
        return failed(StatusCode::NOT_FOUND, &["OfdAgreementNotFound"], started);
    }
    let (list, consumed) = {
        let reports = ofd.reports.lock().expect("ofd lock");
        let list: Vec<Value> = reports.iter().map(|r| ofd.info(r)).collect();
        (list, reports.len())
    };
    let mut data = json!({
        "OfdAgreementLimit": AGREEMENT_LIMIT,
        "ConsumedLimit": consumed,
        "TotalCount": list.len(),
        "List": list,
    });
    if inn.is_some() {
        data["OfdAgreementId"] = json!(ofd.agreement_id);
    }
    let body = json!({"Status": "Success", "Data": data, "Elapsed": elapsed_since(started)});
    guard.finish(json_response(StatusCode::OK, &body)).await
}

async fn create_report(State(ofd): State<Arc<Ofd>>, Query(query): Q, body: Bytes) -> Response {
    let started = StdInstant::now();
    if let Err(response) = ofd.check_token(&query, started) {
        return response;
    }
    let bad = |error: &str| failed(StatusCode::BAD_REQUEST, &[error], started);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return bad("InvalidRequest");
    };
    if !request.is_object() {
        return bad("InvalidRequest");
    }
    if let Some(agreement) = field_ci(&request, "OfdAgreementId").and_then(Value::as_str)
        && !agreement.eq_ignore_ascii_case(&ofd.agreement_id)
    {
        return failed(StatusCode::NOT_FOUND, &["OfdAgreementNotFound"], started);
    }
    let date = |name: &str| {
        field_ci(&request, name)
            .and_then(Value::as_str)
            .and_then(parse_date)
    };
    let (Some(from), Some(to)) = (date("DateFrom"), date("DateTo")) else {
        return bad("InvalidDateRange");
    };
    if from.0 > to.0 {
        return bad("DateFromGreaterThanDateTo");
    }
    let custom = field_ci(&request, "CustomReportId").and_then(Value::as_str);
    let report_type = match (
        field_ci(&request, "ReportType").and_then(Value::as_str),
        custom,
    ) {
        (Some(t), _) => t.to_owned(),
        (None, Some(_)) => "Custom".to_owned(),
        (None, None) => return bad("ReportTypeRequired"),
    };
    let kkts = field_ci(&request, "KktList")
        .and_then(Value::as_array)
        .map_or(0, |l| l.len() as u64);
    let all = field_ci(&request, "SelectAllKkts")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let groups = field_ci(&request, "GroupsList")
        .and_then(Value::as_array)
        .map_or(0, |l| l.len() as u64);
    // Lenient: a request selecting no register at all is read as "all registers".
    let kkt_count = match kkts + groups * 3 {
        0 => ALL_KKTS,
        _ if all => ALL_KKTS,
        n => n,
    };
    let emails: Vec<String> = field_ci(&request, "EmailsToNotify")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(';')
        .map(|e| e.trim().to_owned())
        .collect();
    let type_name = type_name(&report_type).to_owned();
    let name = field_ci(&request, "Name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map_or_else(|| type_name.clone(), str::to_owned);

    let shared = &ofd.shared;
    let id = shared.uuid();
    let fail = shared.config.fail_reports;
    if !fail {
        shared.register_file(
            VENDOR,
            &id,
            FileSpec {
                kind: ContentKind::for_ext("zip"),
                size: shared.config.report_size,
                gzip: false,
                content_type: "application/zip",
                disposition: Some(format!(
                    "attachment; filename=\"report_{id}.zip\"; filename*=UTF-8''{}.zip",
                    percent_encode(&name)
                )),
            },
        );
    }
    let report = Report {
        id,
        clock: JobClock::start(shared.config.job_duration),
        created: shared.clock.utc_now(),
        fail,
        removed: false,
        report_type,
        type_name,
        name,
        date_from: fmt_naive(from.1.and_utc()),
        date_to: fmt_naive(to.1.and_utc()),
        kkt_count,
        emails,
    };
    shared.stats(VENDOR).started();
    let info = ofd.info(&report);
    ofd.reports.lock().expect("ofd lock").push(report);
    json_response(
        StatusCode::OK,
        &json!({"Status": "Success", "Data": info, "Elapsed": elapsed_since(started)}),
    )
}

async fn download_report(
    State(ofd): State<Arc<Ofd>>,
    Path(id): Path<String>,
    Query(query): Q,
    download: DownloadRequest,
) -> Response {
    let started = StdInstant::now();
    if let Err(response) = ofd.check_token(&query, started) {
        return response;
    }
    if ofd.wrong_agreement(&query) {
        return failed(StatusCode::NOT_FOUND, &["OfdAgreementNotFound"], started);
    }
    let done = ofd
        .reports
        .lock()
        .expect("ofd lock")
        .iter()
        .any(|r| r.id == id && r.status() == "Done");
    let spec = ofd.shared.file(VENDOR, &id);
    match spec {
        Some(spec) if done => serve_file(&ofd.shared, VENDOR, &id, &spec, &download, &[]).await,
        _ => failed(StatusCode::BAD_REQUEST, &["ReportNotDone"], started),
    }
}

async fn delete_report(
    State(ofd): State<Arc<Ofd>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Response {
    let started = StdInstant::now();
    if let Err(response) = ofd.check_token(&query, started) {
        return response;
    }
    if ofd.wrong_agreement(&query) {
        return failed(StatusCode::NOT_FOUND, &["OfdAgreementNotFound"], started);
    }
    let mut reports = ofd.reports.lock().expect("ofd lock");
    let Some(report) = reports.iter_mut().find(|r| r.id == id) else {
        return failed(StatusCode::NOT_FOUND, &["ReportNotFound"], started);
    };
    report.removed = true;
    // The document's example answers the deleted report flat, without the envelope.
    json_response(StatusCode::OK, &ofd.info(report))
}

async fn cancel_report(
    State(ofd): State<Arc<Ofd>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Response {
    let started = StdInstant::now();
    if let Err(response) = ofd.check_token(&query, started) {
        return response;
    }
    if ofd.wrong_agreement(&query) {
        return failed(StatusCode::NOT_FOUND, &["OfdAgreementNotFound"], started);
    }
    let mut reports = ofd.reports.lock().expect("ofd lock");
    let Some(report) = reports.iter_mut().find(|r| r.id == id) else {
        return failed(StatusCode::NOT_FOUND, &["ReportNotFound"], started);
    };
    // Our model: a cancelled report reads as Deleted from then on.
    report.removed = true;
    json_response(
        StatusCode::OK,
        &json!({"Status": "Success", "Elapsed": elapsed_since(started)}),
    )
}

async fn templates(State(ofd): State<Arc<Ofd>>, Query(query): Q) -> Response {
    if let Err(response) = ofd.check_token(&query, StdInstant::now()) {
        return response;
    }
    let field = |name: &str, display: &str, optional: bool| json!({"Name": name, "DisplayField": display, "Optional": optional});
    json_response(
        StatusCode::OK,
        &json!([
            {
                "ReportType": "ReceiptReport",
                "DisplayName": "Сверка",
                "Description": "Список чеков за период",
                "Fields": [
                    field("KktRegNumber", "РН ККТ", false),
                    field("DocNumber", "Номер ФД", false),
                    field("DocDateTime", "Дата и время", false),
                    field("TotalSum", "Сумма", false),
                    field("OperatorName", "Кассир", true),
                ],
            },
            {
                "ReportType": "CloseShiftReport",
                "DisplayName": "Отчёт по сменам",
                "Description": "Закрытые смены за период",
                "Fields": [
                    field("KktRegNumber", "РН ККТ", false),
                    field("ShiftNumber", "Номер смены", false),
                    field("CloseDateTime", "Дата закрытия", false),
                    field("ReceiptsCount", "Количество чеков", true),
                ],
            },
        ]),
    )
}

fn custom_template(id: &str) -> Value {
    json!({
        "Name": "Sandbox template",
        "BaseReportType": "ReceiptReport",
        "CustomFields": ["KktRegNumber", "DocNumber", "TotalSum"],
        "Id": id,
        "CDateUtc": "2021-11-01T08:00:00.0000000",
        "UDateUtc": "2021-11-01T08:00:00.0000000",
    })
}

async fn custom_list(State(ofd): State<Arc<Ofd>>, Query(query): Q) -> Response {
    if let Err(response) = ofd.check_token(&query, StdInstant::now()) {
        return response;
    }
    json_response(
        StatusCode::OK,
        &json!([custom_template("00000000-0000-0000-0000-000000000001")]),
    )
}

async fn custom_get(
    State(ofd): State<Arc<Ofd>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> Response {
    if let Err(response) = ofd.check_token(&query, StdInstant::now()) {
        return response;
    }
    json_response(StatusCode::OK, &custom_template(&id))
}

async fn success(ofd: &Ofd, query: &[(String, String)]) -> Response {
    let started = StdInstant::now();
    if let Err(response) = ofd.check_token(query, started) {
        return response;
    }
    json_response(
        StatusCode::OK,
        &json!({"Status": "Success", "Elapsed": elapsed_since(started)}),
    )
}

async fn custom_save(State(ofd): State<Arc<Ofd>>, Query(query): Q) -> Response {
    success(&ofd, &query).await
}

async fn custom_update(State(ofd): State<Arc<Ofd>>, Query(query): Q) -> Response {
    success(&ofd, &query).await
}

async fn custom_delete(State(ofd): State<Arc<Ofd>>, Query(query): Q) -> Response {
    success(&ofd, &query).await
}

async fn not_found() -> Response {
    failed(StatusCode::NOT_FOUND, &["NotFound"], StdInstant::now())
}
