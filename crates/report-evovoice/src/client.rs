//! The authenticated EvoVoice client: HTTP Basic credentials on every request for the API's own
//! origin (and nowhere else), a User-Agent of our own, and ServiceStack errors mapped to
//! [`report_core::Error`].
//!
//! Below the client: how the vendor's error answers become typed errors (the `describe` the
//! spec's `x-codegen` names) and the vendor's error codes.

use base64::Engine;
use report_core::__private::{self as kit, Endpoint, Redirects, SecretHeader, VendorError};
use report_core::{Download, Error, ExposeSecret, HttpOptions, Result, SecretString};
use reqwest::header::AUTHORIZATION;
use url::Url;

use crate::generated::types::ErrorResponse;
use crate::generated::{self, types};
use crate::{Profile, VENDOR};

/// EvoVoice's production API.
pub const DEFAULT_BASE_URL: &str = "https://evovoice.io";

/// EvoVoice's staging API.
pub const STAGING_BASE_URL: &str = "https://team.evovoice.io";

/// The `User-Agent` sent unless you choose another: EvoVoice rejects some client defaults, so
/// every request names this crate.
pub const USER_AGENT: &str = concat!("report-evovoice/", env!("CARGO_PKG_VERSION"));

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct EvoVoiceConfig {
    /// API base URL, [`DEFAULT_BASE_URL`] unless testing or on staging.
    pub base_url: String,
    /// EvoVoice user name.
    pub user_name: String,
    /// EvoVoice password (redacted in `Debug`).
    pub password: SecretString,
    /// Timeouts, insecure-http opt-in, and the `User-Agent` ([`USER_AGENT`] by default).
    pub http: HttpOptions,
}

impl EvoVoiceConfig {
    /// Production URL with these credentials.
    pub fn new(user_name: impl Into<String>, password: impl Into<String>) -> Self {
        EvoVoiceConfig {
            base_url: DEFAULT_BASE_URL.into(),
            user_name: user_name.into(),
            password: SecretString::from(password.into()),
            http: HttpOptions::default().with_user_agent(USER_AGENT),
        }
    }
}

/// An EvoVoice API client that authenticates every request for you.
///
/// Cloning is cheap.
#[derive(Clone, Debug)]
pub struct EvoVoiceClient {
    pub(crate) api: generated::Client,
    downloads: reqwest::Client,
}

impl EvoVoiceClient {
    /// Checks the configuration (no request is sent).
    pub fn new(config: EvoVoiceConfig) -> Result<Self> {
        let endpoint = Endpoint::new(&config.base_url, &config.http, Redirects::SameOriginOnly)?;
        let user = config.user_name.trim();
        if user.is_empty() {
            return Err(Error::InvalidInput("EvoVoice user name is empty".into()));
        }
        // Basic credentials split at the first colon: a colon in the user name cannot work.
        if user.contains(':') {
            return Err(Error::InvalidInput(
                "EvoVoice user name must not contain `:` (HTTP Basic authentication)".into(),
            ));
        }
        if config.password.expose_secret().is_empty() {
            return Err(Error::InvalidInput("EvoVoice password is empty".into()));
        }
        if config.http.user_agent.trim().is_empty() {
            return Err(Error::InvalidInput(
                "EvoVoice needs a User-Agent of your own (it rejects some defaults)".into(),
            ));
        }
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", config.password.expose_secret()));
        // `Authorization: Basic …` on every request for the API's own origin only.
        let basic = SecretString::from(format!("Basic {encoded}"));
        let credentials = SecretHeader::new(endpoint.base.clone(), AUTHORIZATION, basic)
            .ok_or_else(|| {
                Error::InvalidInput(
                    "EvoVoice credentials contain characters an HTTP header cannot carry".into(),
                )
            })?;
        Ok(EvoVoiceClient {
            api: crate::generated_kit::generated_client(&endpoint, credentials),
            downloads: endpoint.downloads,
        })
    }

    /// Starts a billing report.
    pub async fn start_billing_report(
        &self,
        body: &types::BillingReport,
    ) -> Result<types::ReportInfo> {
        self.call("createBillingReport", || {
            self.api.create_billing_report().body(body.clone()).send()
        })
        .await
    }

    /// Starts a report of another type than billing.
    pub async fn start_report(
        &self,
        kind: types::ReportType,
        body: &types::ReportRequest,
    ) -> Result<types::ReportInfo> {
        self.call("createReport", || {
            self.api
                .create_report()
                .report_type(kind)
                .body(body.clone())
                .send()
        })
        .await
    }

    /// Starts an endpoints report (`/json/reply/EndpointsReport`).
    pub async fn start_endpoints_report(
        &self,
        body: &types::ReportRequest,
    ) -> Result<types::ReportInfo> {
        self.call("createEndpointsReport", || {
            self.api.create_endpoints_report().body(body.clone()).send()
        })
        .await
    }

    /// Every report of an account.
    pub async fn reports(&self, account_id: &str) -> Result<Vec<types::ReportInfo>> {
        let list = self
            .call("listReports", || {
                self.api.list_reports().account_id(account_id).send()
            })
            .await?;
        Ok(list.reports)
    }

    /// One report of an account, found in the account's report list (EvoVoice has no
    /// `GET /reports/{id}`). A report not in the list is an [`Error::Api`] with the code
    /// [`REPORT_NOT_FOUND`].
    pub async fn report(&self, account_id: &str, report_id: &str) -> Result<types::ReportInfo> {
        self.reports(account_id)
            .await?
            .into_iter()
            .find(|r| r.id.as_deref() == Some(report_id))
            .ok_or_else(|| {
                Error::detected(
                    VENDOR,
                    REPORT_NOT_FOUND,
                    format!(
                        "report {report_id} is not in the report list of account {account_id} (deleted, expired, or another account's)"
                    ),
                )
            })
    }

    /// Deletes a report.
    pub async fn delete_report(&self, report_id: &str) -> Result<()> {
        self.call("deleteReport", || {
            self.api.delete_report().id(report_id).send()
        })
        .await
    }

    /// Where a report's Excel file is: `{base}/reports/{id}.xlsx`, the id percent-encoded.
    pub fn report_file_url(&self, report_id: &str) -> Url {
        let mut url = self.base_url().clone();
        // check_base_url accepted only http(s) URLs with a host: they always have segments.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push("reports")
                .push(&format!("{report_id}.xlsx"));
        }
        url
    }

    /// Opens a file URL from `offset` on. The credentials go along only when `authenticated`
    /// and the URL is on the API's own origin; a link elsewhere gets none.
    pub async fn open(&self, url: &str, offset: u64, authenticated: bool) -> Result<Download> {
        let authorization = authenticated.then(|| self.api.inner.header());
        kit::open::<Profile>(&self.downloads, url, offset, self.base_url(), move |rb| {
            match authorization {
                Some((name, value)) => rb.header(name, value),
                None => rb,
            }
        })
        .await
    }
}

// ---- Error answers ----
// ServiceStack's error body and how it becomes a
// [`report_core::Error`].

/// The code of [`Error::Api`] when a report is not in its account's report list (deleted,
/// expired, or started under another account). EvoVoice has no such code: the list simply
/// lacks the report.
pub const REPORT_NOT_FOUND: &str = "ReportNotFound";

/// What an EvoVoice error means, by the HTTP statuses ServiceStack uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvoVoiceErrorCode {
    /// 400: the request was refused (validation, bad arguments).
    BadRequest,
    /// 401: the user name or password was refused (an [`Error::Auth`]).
    Unauthenticated,
    /// 403: the user lacks a role (billing needs SystemAdministrator, Manager or Customer).
    Forbidden,
    /// 404: no such report or route.
    NotFound,
    /// 405: the operation is not supported.
    NotSupported,
    /// 500 (or any other 5xx): a server error.
    ServerError,
    /// The report is missing from its account's report list ([`REPORT_NOT_FOUND`]).
    ReportMissing,
}

impl EvoVoiceErrorCode {
    /// The kind of an error from this crate, if it is an EvoVoice answer.
    pub fn of(error: &Error) -> Option<EvoVoiceErrorCode> {
        match error {
            Error::Auth { vendor: VENDOR, .. } => Some(EvoVoiceErrorCode::Unauthenticated),
            Error::Api {
                vendor: VENDOR,
                status,
                code,
                ..
            } => match status {
                None if code.as_deref() == Some(REPORT_NOT_FOUND) => {
                    Some(EvoVoiceErrorCode::ReportMissing)
                }
                Some(400) => Some(EvoVoiceErrorCode::BadRequest),
                Some(401) => Some(EvoVoiceErrorCode::Unauthenticated),
                Some(403) => Some(EvoVoiceErrorCode::Forbidden),
                Some(404) => Some(EvoVoiceErrorCode::NotFound),
                Some(405) => Some(EvoVoiceErrorCode::NotSupported),
                Some(500..=599) => Some(EvoVoiceErrorCode::ServerError),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Code and message of a ServiceStack error; field errors are appended to the message. The
/// stack trace (debug servers only) is left out: it is long and says nothing to a user.
pub(crate) fn describe(body: &ErrorResponse) -> VendorError {
    let Some(status) = &body.response_status else {
        return VendorError {
            code: None,
            message: "no error description (no `responseStatus`)".into(),
        };
    };
    let code = status.error_code.clone().filter(|c| !c.is_empty());
    let mut message = status
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| code.clone())
        .unwrap_or_else(|| "no error message".into());
    let fields: Vec<String> = status
        .errors
        .iter()
        .map(|e| {
            let text = e
                .message
                .as_deref()
                .or(e.error_code.as_deref())
                .unwrap_or("invalid");
            match &e.field_name {
                Some(field) => format!("{field}: {text}"),
                None => text.to_string(),
            }
        })
        .collect();
    if !fields.is_empty() {
        message = format!("{message} ({})", fields.join("; "));
    }
    VendorError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> EvoVoiceClient {
        EvoVoiceClient::new(EvoVoiceConfig::new("user", "hunter2-secret").with_base_url(base))
            .unwrap()
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = EvoVoiceConfig::new("user", "hunter2-secret");
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        let text = format!("{:?}", client("https://evovoice.io"));
        assert!(!text.contains("hunter2-secret"), "{text}");
        let encoded = base64::engine::general_purpose::STANDARD.encode("user:hunter2-secret");
        assert!(!text.contains(&encoded), "{text}");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let refused = |config: EvoVoiceConfig| match EvoVoiceClient::new(config) {
            Err(Error::InvalidInput(msg)) => msg,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        let msg = refused(EvoVoiceConfig::new("u", "p").with_base_url("http://evovoice.io"));
        assert!(msg.contains("plain http://"), "{msg}");
        assert!(refused(EvoVoiceConfig::new(" ", "p")).contains("user name is empty"));
        assert!(refused(EvoVoiceConfig::new("a:b", "p")).contains("must not contain `:`"));
        assert!(refused(EvoVoiceConfig::new("u", "")).contains("password is empty"));
        let no_agent =
            EvoVoiceConfig::new("u", "p").with_http(HttpOptions::default().with_user_agent(""));
        assert!(refused(no_agent).contains("User-Agent"));
    }

    #[test]
    fn credentials_are_added_for_the_api_origin_only() {
        let c = client("https://evovoice.io");
        let authorized = |url: &str| {
            let mut request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
            kit::pre_hook(&c.api().inner, &mut request, "any").unwrap();
            request.headers().get(AUTHORIZATION).cloned()
        };
        let value = authorized("https://evovoice.io/reports?accountId=a").expect("same origin");
        assert!(value.is_sensitive());
        let expected = base64::engine::general_purpose::STANDARD.encode("user:hunter2-secret");
        assert_eq!(value.to_str().unwrap(), format!("Basic {expected}"));
        for foreign in [
            "https://team.evovoice.io/reports",
            "http://evovoice.io/reports",
            "https://evovoice.io:8443/reports",
            "https://files.example.com/r.xlsx",
        ] {
            assert_eq!(authorized(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_default_user_agent_is_our_own() {
        assert_eq!(EvoVoiceConfig::new("u", "p").http.user_agent, USER_AGENT);
        assert!(USER_AGENT.starts_with("report-evovoice/"));
    }

    #[test]
    fn file_urls_encode_the_id_and_keep_the_base_path() {
        let c = client("https://evovoice.io");
        assert_eq!(
            c.report_file_url("r-1").as_str(),
            "https://evovoice.io/reports/r-1.xlsx"
        );
        assert_eq!(
            c.report_file_url("a/../b c").as_str(),
            "https://evovoice.io/reports/a%2F..%2Fb%20c.xlsx"
        );
        let c = client("https://example.com/api/");
        assert_eq!(
            c.report_file_url("r").as_str(),
            "https://example.com/api/reports/r.xlsx"
        );
    }
}
