//! The authenticated OFD.ru client: AuthToken obtained, cached until `ExpirationDateUtc`,
//! renewed a minute early and once more after a 401/403, and attached as the `AuthToken` query
//! pair to requests for the API's own origin only.
//!
//! Below the client: how the vendor's error answers become typed errors (the `describe` the
//! spec's `x-codegen` names) and the vendor's error codes.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo, ResponseValue};
use report_core::__private::{
    self as kit, ApiFailure, Credentials, Endpoint, Redirects, Token, TokenCache, VendorError,
};
use report_core::{Clock, Error, ExposeSecret, HttpOptions, Result, SecretString};
use url::Url;

use crate::Profile;
use crate::generated::types::ErrorEnvelope;
use crate::generated::{self, types};
use crate::listing;

/// OFD.ru's production API.
pub const DEFAULT_BASE_URL: &str = "https://ofd.ru";

/// Renew the token this long before it expires.
const RENEW_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct OfdConfig {
    /// API base URL, [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// Personal-account login.
    pub login: String,
    /// Personal-account password (redacted in `Debug`).
    pub password: SecretString,
    /// Timeouts, user agent, insecure-http opt-in.
    pub http: HttpOptions,
    /// The clock token expiry is judged on (tokio's unless testing in virtual time).
    pub clock: Option<Arc<dyn Clock>>,
}

impl OfdConfig {
    /// Production URL with these credentials.
    pub fn new(login: impl Into<String>, password: impl Into<String>) -> Self {
        OfdConfig {
            base_url: DEFAULT_BASE_URL.into(),
            login: login.into(),
            password: SecretString::from(password.into()),
            http: HttpOptions::default(),
            clock: None,
        }
    }
}

/// What the generated client's hooks read: the API origin and the token cache. The token goes
/// as the `AuthToken` query pair to the API's own origin only.
#[derive(Clone, Debug)]
pub struct OfdCredentials {
    base: Url,
    pub(crate) tokens: Arc<TokenCache>,
}

impl Credentials for OfdCredentials {
    fn origin(&self) -> &Url {
        &self.base
    }

    fn authorize(&self, request: &mut reqwest::Request, operation: &str) -> Result<(), String> {
        if operation != "create_auth_token"
            && let Some(token) = self.tokens.current()
        {
            request
                .url_mut()
                .query_pairs_mut()
                .append_pair("AuthToken", token.expose_secret());
        }
        Ok(())
    }
}

/// An OFD.ru API client that handles the AuthToken for you.
///
/// Cloning is cheap; clones share the token.
#[derive(Clone, Debug)]
pub struct OfdClient {
    pub(crate) api: generated::Client,
    downloads: reqwest::Client,
    login: String,
    password: SecretString,
}

type ApiResult<T> =
    std::result::Result<ResponseValue<T>, progenitor_client::Error<types::ErrorEnvelope>>;

impl OfdClient {
    /// Checks the configuration (no request is sent).
    pub fn new(config: OfdConfig) -> Result<Self> {
        let endpoint = Endpoint::new(&config.base_url, &config.http, Redirects::SameOriginOnly)?;
        if config.login.trim().is_empty() {
            return Err(Error::InvalidInput("OFD.ru login is empty".into()));
        }
        if config.password.expose_secret().is_empty() {
            return Err(Error::InvalidInput("OFD.ru password is empty".into()));
        }
        let credentials = OfdCredentials {
            base: endpoint.base.clone(),
            tokens: kit::shared_tokens(RENEW_MARGIN, config.clock),
        };
        Ok(OfdClient {
            api: crate::generated_kit::generated_client(&endpoint, credentials),
            downloads: endpoint.downloads,
            login: config.login,
            password: config.password,
        })
    }

    async fn token_generation(&self) -> Result<u64> {
        self.api
            .inner
            .tokens
            .get_or_renew(|| self.renew_token())
            .await
    }

    pub(crate) async fn renew_token(&self) -> Result<Token> {
        let body = types::AuthTokenRequest {
            login: self.login.clone(),
            password: self.password.expose_secret().to_string(),
        };
        let answer = crate::generated_kit::answer(self.api.create_auth_token().body(body).send());
        let token = match answer.await {
            Ok(token) => token,
            Err(e) if matches!(e.status(), Some(401 | 403)) => {
                return Err(Error::auth(
                    crate::VENDOR,
                    e.status().unwrap_or(403),
                    "login or password refused by CreateAuthToken",
                ));
            }
            Err(e) => return Err(kit::map_failure::<Profile>("createAuthToken", e).await),
        };
        let value = token.auth_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            Error::auth(
                crate::VENDOR,
                200,
                "CreateAuthToken answered without an AuthToken",
            )
        })?;
        let expires = token.expiration_date_utc.as_deref().and_then(parse_utc);
        tracing::debug!(expires = ?expires, "obtained an OFD.ru AuthToken");
        Ok(Token {
            value: SecretString::from(value),
            expires,
        })
    }

    /// Opens a URL on the API origin (with the token) or elsewhere (without), from `offset`.
    pub(crate) async fn open(&self, url: &str, offset: u64) -> Result<report_core::Download> {
        let attempt = |token: Option<SecretString>| {
            kit::open::<Profile>(&self.downloads, url, offset, self.base_url(), move |rb| {
                match token {
                    Some(t) => rb.query(&[("AuthToken", t.expose_secret())]),
                    None => rb,
                }
            })
        };
        let generation = self.token_generation().await?;
        match attempt(self.api.inner.tokens.current()).await {
            Err(e) if error_is_token_refusal(&e) => {
                self.api.inner.tokens.invalidate(generation);
                self.token_generation().await?;
                attempt(self.api.inner.tokens.current()).await
            }
            other => other,
        }
    }

    /// The personal-account id (OfdAgreementId) of a legal entity, by INN and KPP.
    pub async fn agreement_id(&self, inn: &str, kpp: &str) -> Result<String> {
        let list = self
            .call("listReports", || {
                self.api
                    .list_reports()
                    .inn(inn)
                    .kpp(kpp)
                    .skip_page_filter(true)
                    .send()
            })
            .await?;
        list.data
            .and_then(|d| d.ofd_agreement_id)
            .or(list.ofd_agreement_id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                Error::detected(
                    crate::VENDOR,
                    OfdErrorCode::OfdAgreementNotFound,
                    format!("no personal account for INN {inn} / KPP {kpp}"),
                )
            })
    }

    /// Every report of the user (paging off), whichever envelope form the server uses.
    pub async fn reports(&self) -> Result<Vec<types::ReportInfo>> {
        let list = self
            .call("listReports", || {
                self.api.list_reports().skip_page_filter(true).send()
            })
            .await?;
        Ok(match list.data {
            Some(data) => data.list,
            None => list.list,
        })
    }

    /// The entry of report `id` in the report list (ASCII case-insensitive), `None` when the
    /// list does not have it: the status request of [`OfdAdapter`](crate::OfdAdapter).
    ///
    /// The same request as [`reports`](Self::reports), decoded with the same types and rules
    /// (a malformed answer is the same `Error::Decode`), but only the entry asked for is copied
    /// out of the answer (see `listing.rs`): a poll of an account with many reports allocates
    /// one entry, not every field of every report.
    pub async fn report(&self, id: &str) -> Result<Option<types::ReportInfo>> {
        self.call("listReports", || self.find_in_list(id)).await
    }

    /// `listReports` with `SkipPageFilter=true`, built and sent as the generated
    /// `list_reports()` builder does (same URL, headers and hooks: token, tracing, body limit,
    /// error normalisation), with the 200 answer read by [`listing::find_report`].
    async fn find_in_list(&self, id: &str) -> ApiResult<Option<types::ReportInfo>> {
        use progenitor_client::Error as P;
        let api = &self.api;
        let mut request = api
            .client()
            .get(format!("{}/api/customer/reports", api.baseurl()))
            .header(
                reqwest::header::ACCEPT,
                reqwest::header::HeaderValue::from_static("application/json"),
            )
            .query(&[("SkipPageFilter", "true")])
            .header(
                reqwest::header::HeaderName::from_static("api-version"),
                reqwest::header::HeaderValue::from_static(generated::Client::api_version()),
            )
            .build()?;
        let info = OperationInfo {
            operation_id: "list_reports",
        };
        api.pre(&mut request, &info).await?;
        let result = api.exec(request, &info).await;
        api.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200 => {
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await.map_err(P::ResponseBodyError)?;
                match listing::find_report(&body, id) {
                    Ok(found) => Ok(ResponseValue::new(found, status, headers)),
                    Err(e) => Err(P::InvalidResponsePayload(body, e)),
                }
            }
            400..=599 => Err(P::ErrorResponse(
                ResponseValue::from_response(response).await?,
            )),
            _ => Err(P::UnexpectedResponse(response)),
        }
    }

    /// The base report types and their fields.
    pub async fn report_templates(&self) -> Result<Vec<types::ReportTemplate>> {
        self.call("listReportTemplates", || {
            self.api.list_report_templates().send()
        })
        .await
    }

    /// The user's custom templates.
    pub async fn custom_templates(&self) -> Result<Vec<types::CustomTemplate>> {
        self.call("listCustomTemplates", || {
            self.api.list_custom_templates().send()
        })
        .await
    }
}

/// A 401, or a 403 that is not `AccessDenied`, means the token was refused.
pub(crate) fn token_refused(e: &ApiFailure<types::ErrorEnvelope>) -> bool {
    match e.status() {
        Some(401) => true,
        Some(403) => match e.body() {
            Some(body) => OfdErrorCode::find(&body.errors) != Some(OfdErrorCode::AccessDenied),
            None => true,
        },
        _ => false,
    }
}

fn error_is_token_refusal(e: &Error) -> bool {
    match e {
        Error::Auth { .. } => true,
        Error::Api {
            status: Some(403),
            code,
            ..
        } => code.as_deref() != Some(OfdErrorCode::AccessDenied.as_str()),
        _ => false,
    }
}

/// OFD.ru's dates: ISO 8601 in UTC, usually without an offset (`2021-11-12T10:55:20`), with
/// or without fractions of a second.
pub fn parse_utc(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

// ---- Error answers ----
// OFD.ru's error codes and how its failure envelope
// becomes a [`report_core::Error`].

report_core::lenient_enum! {
    /// Error codes OFD.ru documents (sections 3.1.2, 3.2.2, 4.1, 5.1.1).
    pub enum OfdErrorCode {
        /// The start date is after the end date.
        DateFromGreaterThanDateTo = "DateFromGreaterThanDateTo",
        /// The personal account (LKK) was not found.
        OfdAgreementNotFound = "OfdAgreementNotFound",
        /// Access is blocked.
        AccessDenied = "AccessDenied",
        /// The report would have too many records.
        ReportSizeError = "ReportSizeError",
        /// The account's quota is used up.
        LimitExhausted = "LimitExhausted",
        /// The report is not generated or does not exist.
        ReportNotDone = "ReportNotDone",
        /// The report to delete was not found.
        ReportNotFound = "ReportNotFound",
        /// Internal error of the report system.
        InternalError = "InternalError",
    }
}

impl OfdErrorCode {
    /// The first known code named in a list of error messages (a message may be the bare code
    /// or contain it).
    pub fn find(messages: &[String]) -> Option<OfdErrorCode> {
        messages.iter().find_map(|m| {
            OfdErrorCode::KNOWN
                .iter()
                .find(|code| m.contains(code.as_str()))
                .cloned()
        })
    }

    /// The typed code of an error from this crate, if it carries one.
    pub fn of(error: &report_core::Error) -> Option<OfdErrorCode> {
        error
            .vendor_code()
            .map(|c| c.parse().unwrap_or_else(|never| match never {}))
    }
}

/// Code and message of a failure envelope.
pub(crate) fn describe(envelope: &ErrorEnvelope) -> VendorError {
    let code = OfdErrorCode::find(&envelope.errors).map(|c| c.to_string());
    let message = if envelope.errors.is_empty() {
        "no error message (empty failure envelope)".to_string()
    } else {
        envelope.errors.join("; ")
    };
    VendorError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_without_offset_are_utc() {
        let dt = parse_utc("2021-11-12T10:55:20").unwrap();
        assert_eq!(dt.to_rfc3339(), "2021-11-12T10:55:20+00:00");
        let frac = parse_utc("2001-09-11T08:46:26.0000000").unwrap();
        assert_eq!(frac.to_rfc3339(), "2001-09-11T08:46:26+00:00");
        let offset = parse_utc("2021-11-01T00:00:00.000+03:00").unwrap();
        assert_eq!(offset.to_rfc3339(), "2021-10-31T21:00:00+00:00");
        assert!(parse_utc("yesterday").is_none());
    }

    #[test]
    fn config_debug_hides_the_password() {
        let config = OfdConfig::new("user", "hunter2-secret");
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2-secret"), "{text}");
    }

    /// The status path builds its `listReports` request by hand: it must be the generated
    /// builder's request (method, path, query, `Accept`, `api-version`, token).
    #[tokio::test]
    async fn the_status_path_sends_the_generated_list_request() {
        let server = httpmock::MockServer::start_async().await;
        server.mock(|when, then| {
            when.method("POST")
                .path("/api/Authorization/CreateAuthToken");
            then.status(200).json_body(serde_json::json!({
                "AuthToken": "t0k3n", "ExpirationDateUtc": "2099-01-01T00:00:00"
            }));
        });
        let list = server.mock(|when, then| {
            when.method("GET")
                .path("/api/customer/reports")
                .query_param("SkipPageFilter", "true")
                .query_param("AuthToken", "t0k3n")
                .header("accept", "application/json")
                .header("api-version", generated::Client::api_version());
            then.status(200).json_body(serde_json::json!({
                "Data": {"List": [{"Id": "A1", "Status": "Done"}, {"Id": "b2", "Status": "Todo"}]}
            }));
        });
        let client =
            OfdClient::new(OfdConfig::new("u", "p").with_base_url(server.base_url())).unwrap();
        let all = client.reports().await.unwrap();
        let one = client.report("a1").await.unwrap();
        assert_eq!(one.as_ref(), all.first());
        assert_eq!(client.report("c3").await.unwrap(), None);
        assert_eq!(list.calls_async().await, 3);
    }

    #[test]
    fn insecure_base_urls_are_refused() {
        let err = OfdClient::new(OfdConfig::new("u", "p").with_base_url("http://ofd.example"))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }
}
