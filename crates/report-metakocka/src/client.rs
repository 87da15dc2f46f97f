//! The MetaKocka client: the generated client plus the company's credentials, which travel in
//! the JSON body of API requests only, never to download links.
//!
//! Below the client: how the vendor's error answers become typed errors (the `describe` the
//! spec's `x-codegen` names) and the vendor's error codes.

use report_core::__private::{self as kit, Credentials, Endpoint, Redirects, VendorError};
use report_core::{Download, Error, ExposeSecret, HttpOptions, Result, SecretString};
use url::Url;

use crate::Profile;
use crate::VENDOR;
use crate::api::types::{self, ErrorAnswer, ReportAnswer};
use crate::generated;
use crate::request::MetaKockaReportRequest;
use crate::secret::SecretKey;

/// MetaKocka's production API.
pub const DEFAULT_BASE_URL: &str = "https://main.metakocka.si";

/// Per-request timeout of accounting exports: the call blocks until the export is done, and a
/// company's exports run one at a time.
pub const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The one report endpoint, under the base URL.
pub(crate) const REPORT_PATH: &str = "/rest/eshop/v1/report";

/// Where and as which company to connect.
#[derive(Clone, Debug)]
pub struct MetaKockaConfig {
    /// API base URL, [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// The company's id in MetaKocka (digits); not a secret.
    pub company_id: String,
    /// The company's API secret key (redacted in `Debug`).
    pub secret_key: SecretString,
    /// Timeouts, user agent, insecure-http opt-in.
    pub http: HttpOptions,
}

impl MetaKockaConfig {
    /// Production URL with these credentials.
    pub fn new(company_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        MetaKockaConfig {
            base_url: DEFAULT_BASE_URL.into(),
            company_id: company_id.into(),
            secret_key: SecretString::from(secret_key.into()),
            http: HttpOptions::default(),
        }
    }
}

/// What the generated client's hooks read: the API origin. The credentials travel in every
/// request body, so a request for any other origin is refused rather than sent.
#[derive(Clone, Debug)]
pub struct MetaKockaOrigin {
    base: Url,
}

impl Credentials for MetaKockaOrigin {
    fn origin(&self) -> &Url {
        &self.base
    }

    /// Nothing to add: the body carries the secret key already.
    fn authorize(&self, _request: &mut reqwest::Request, _operation: &str) -> Result<(), String> {
        Ok(())
    }

    fn refuses_other_origins(&self) -> bool {
        true
    }
}

/// A MetaKocka API client for one company.
///
/// Cloning is cheap. The secret key is redacted in `Debug` and written only into request
/// bodies sent to the API's own origin.
#[derive(Clone, Debug)]
pub struct MetaKockaClient {
    pub(crate) api: generated::Client,
    /// The same client with [`EXPORT_TIMEOUT`], for accounting exports.
    exports: generated::Client,
    /// Synchronous printing: the report endpoint, answering a file (read timeout, not a
    /// whole-request timeout).
    pub(crate) files: reqwest::Client,
    /// Download links: they carry no credentials, so redirects may go anywhere.
    downloads: reqwest::Client,
    company_id: String,
    secret_key: SecretKey,
}

impl MetaKockaClient {
    /// Checks the configuration (no request is sent).
    pub fn new(config: MetaKockaConfig) -> Result<Self> {
        let endpoint = Endpoint::new(&config.base_url, &config.http, Redirects::Any)?;
        let company_id = config.company_id.trim().to_string();
        if company_id.is_empty() || !company_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInput(format!(
                "MetaKocka company id {:?} must be digits, e.g. \"16\"",
                config.company_id
            )));
        }
        if config.secret_key.expose_secret().trim().is_empty() {
            return Err(Error::InvalidInput("MetaKocka secret key is empty".into()));
        }
        let files = kit::build_client(&config.http, Redirects::SameOriginOnly, true)?;
        let long = config.http.clone().with_timeout(EXPORT_TIMEOUT);
        let exports = Endpoint::new(&config.base_url, &long, Redirects::Any)?;
        let origin = MetaKockaOrigin {
            base: endpoint.base.clone(),
        };
        Ok(MetaKockaClient {
            api: crate::generated_kit::generated_client(&endpoint, origin.clone()),
            exports: crate::generated_kit::generated_client(&exports, origin),
            files,
            downloads: endpoint.downloads,
            company_id,
            secret_key: SecretKey::from(config.secret_key),
        })
    }

    /// The company id.
    pub fn company_id(&self) -> &str {
        &self.company_id
    }

    /// The report endpoint's URL.
    pub(crate) fn report_url(&self) -> String {
        format!(
            "{}{REPORT_PATH}",
            self.base_url().as_str().trim_end_matches('/')
        )
    }

    /// A request body with this company's credentials and nothing else set.
    pub fn request_body(&self) -> types::ReportRequest {
        types::ReportRequest {
            secret_key: self.secret_key.clone(),
            company_id: self.company_id.clone(),
            report_id: None,
            mk_id: None,
            async_: None,
            token: None,
            params: Vec::new(),
        }
    }

    /// The body that prints `request`: asynchronously, or synchronously (the file itself).
    pub(crate) fn print_body(
        &self,
        request: &MetaKockaReportRequest,
        asynchronous: bool,
    ) -> types::ReportRequest {
        types::ReportRequest {
            report_id: Some(request.report_id.clone()),
            mk_id: request.mk_id.clone(),
            async_: asynchronous.then(|| "true".to_string()),
            params: request.wire_params(),
            ..self.request_body()
        }
    }

    /// Starts printing a report asynchronously; the answer holds its `token`.
    ///
    /// The request is validated first; an `opr_code` other than `"0"` is an error.
    pub async fn start_report(
        &self,
        request: &MetaKockaReportRequest,
    ) -> Result<types::ReportAnswer> {
        request.validate()?;
        self.send("printReport (start)", self.print_body(request, true))
            .await
    }

    /// Asks how an asynchronous report goes: `progress` while printing, `url` when done.
    ///
    /// `token` is the one the start returned, even when later answers carry another.
    pub async fn report_status(&self, report_id: &str, token: &str) -> Result<types::ReportAnswer> {
        let body = types::ReportRequest {
            report_id: Some(report_id.to_string()),
            async_: Some("true".to_string()),
            token: Some(token.to_string()),
            ..self.request_body()
        };
        self.send("printReport (status)", body).await
    }

    async fn send(
        &self,
        operation: &str,
        body: types::ReportRequest,
    ) -> Result<types::ReportAnswer> {
        let answer = self
            .call(operation, || {
                self.api.print_report().body(body.clone()).send()
            })
            .await?;
        check_answer(&answer)?;
        Ok(answer)
    }

    /// Runs an accounting export: blocks until MetaKocka has built the ZIP (up to
    /// [`EXPORT_TIMEOUT`]). The answer's `opr_code` is not checked here.
    pub async fn accounting_export(
        &self,
        body: &types::AccountingExportRequest,
    ) -> Result<types::AccountingExportAnswer> {
        let answer = self.exports.accounting_export().body(body.clone()).send();
        match crate::generated_kit::answer(answer).await {
            Ok(answer) => Ok(answer),
            Err(e) => Err(kit::map_failure::<crate::Profile>("accountingExport", e).await),
        }
    }

    /// Opens a download link from `offset` on. Nothing secret goes with it: MetaKocka's links
    /// work on their own, and the secret key belongs in API request bodies only.
    pub async fn open(&self, url: &str, offset: u64) -> Result<Download> {
        kit::open::<Profile>(&self.downloads, url, offset, self.base_url(), |request| {
            request
        })
        .await
    }
}

// ---- Error answers ----
// How MetaKocka reports errors: inside HTTP 200, as an
// `opr_code` other than `"0"` with a message in `opr_desc` (or `error_desc`, or
// `opr_desc_app`); and, rarely, as an HTTP error status from a proxy or a failing server.

/// The `opr_code` of success.
pub const OPR_OK: &str = "0";

/// The message of an error answer: `opr_desc`, else `error_desc`, else `opr_desc_app`.
fn message(
    opr_desc: &Option<String>,
    error_desc: &Option<String>,
    opr_desc_app: &Option<String>,
) -> Option<String> {
    [opr_desc, error_desc, opr_desc_app]
        .into_iter()
        .flatten()
        .map(|m| m.trim())
        .find(|m| !m.is_empty())
        .map(str::to_string)
}

/// Code and message of an answer with an HTTP error status.
pub(crate) fn describe(answer: &ErrorAnswer) -> VendorError {
    VendorError {
        code: answer.opr_code.clone().filter(|c| !c.is_empty()),
        message: message(&answer.opr_desc, &answer.error_desc, &answer.opr_desc_app)
            .unwrap_or_else(|| "no error message".to_string()),
    }
}

/// `Ok` for `opr_code` `"0"`; otherwise the typed error the answer carries.
///
/// The error is [`Error::Api`] with `status: None` (MetaKocka answers errors with HTTP 200),
/// `code` = the `opr_code`. The one exception is a refused secret key or company id, which
/// becomes [`Error::Auth`]; see [`is_credentials_refusal`].
pub fn check_answer(answer: &ReportAnswer) -> report_core::Result<()> {
    let code = answer.opr_code.trim();
    if code == OPR_OK {
        return Ok(());
    }
    let message = message(&answer.opr_desc, &answer.error_desc, &answer.opr_desc_app)
        .unwrap_or_else(|| format!("opr_code {code} without a description"));
    if is_credentials_refusal(code, &message) {
        return Err(Error::Auth {
            vendor: VENDOR,
            status: 200,
            message: format!("opr_code {code}: {message}"),
        });
    }
    Err(Error::detected(VENDOR, code, message))
}

/// Whether an error answer means "wrong secret key or company id".
///
/// MetaKocka publishes no table of `opr_code`s, and its public documentation uses `"1"` for
/// unrelated failures too (a wrong postal code, an interrupted job), so the code alone does not
/// say the credentials were refused. Only a code-1 answer whose message names the secret key
/// or the company id counts; everything else stays a typed [`Error::Api`] with its code.
pub fn is_credentials_refusal(opr_code: &str, message: &str) -> bool {
    let text = message.to_lowercase().replace(['_', '-'], " ");
    opr_code.trim() == "1" && (text.contains("secret") || text.contains("company id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_client_debug_hide_the_secret_key() {
        let config = MetaKockaConfig::new("16", "hunter2-secret");
        assert!(!format!("{config:?}").contains("hunter2-secret"));
        let client = MetaKockaClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("hunter2-secret"));
        assert!(!format!("{:?}", client.request_body()).contains("hunter2-secret"));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let insecure = MetaKockaConfig::new("16", "k").with_base_url("http://main.metakocka.si");
        assert!(matches!(
            MetaKockaClient::new(insecure),
            Err(Error::InvalidInput(_))
        ));
        let company = MetaKockaConfig::new("acme", "k");
        assert!(matches!(
            MetaKockaClient::new(company),
            Err(Error::InvalidInput(_))
        ));
        let secret = MetaKockaConfig::new("16", "  ");
        assert!(matches!(
            MetaKockaClient::new(secret),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn the_report_url_sits_under_the_base() {
        let client = MetaKockaClient::new(
            MetaKockaConfig::new("16", "k").with_base_url("https://mk.example/"),
        )
        .unwrap();
        assert_eq!(
            client.report_url(),
            "https://mk.example/rest/eshop/v1/report"
        );
    }

    fn answer(code: &str, desc: Option<&str>) -> ReportAnswer {
        ReportAnswer {
            opr_code: code.into(),
            opr_desc: desc.map(str::to_string),
            error_desc: None,
            opr_desc_app: None,
            opr_time_ms: None,
            opr_time_no_lock_ms: None,
            progress: None,
            token: None,
            url: None,
        }
    }

    #[test]
    fn zero_is_success() {
        assert!(check_answer(&answer("0", None)).is_ok());
    }

    #[test]
    fn other_codes_are_typed_api_errors() {
        let err =
            check_answer(&answer("6", Some("Report with this token does not exist."))).unwrap_err();
        match err {
            Error::Api {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!(status, None);
                assert_eq!(code.as_deref(), Some("6"));
                assert_eq!(message, "Report with this token does not exist.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_message_fields_are_read() {
        let mut a = answer("1", None);
        a.error_desc = Some("Napačna poštna številka | ".into());
        let err = check_answer(&a).unwrap_err();
        assert!(
            matches!(&err, Error::Api { message, .. } if message == "Napačna poštna številka |"),
            "{err:?}"
        );
        let mut a = answer("2", Some("  "));
        a.opr_desc_app = Some("Unknown document type".into());
        assert!(
            check_answer(&a)
                .unwrap_err()
                .to_string()
                .contains("Unknown document type")
        );
        let bare = check_answer(&answer("5", None)).unwrap_err();
        assert!(
            bare.to_string()
                .contains("opr_code 5 without a description"),
            "{bare}"
        );
    }

    #[test]
    fn only_a_code_1_naming_the_credentials_is_an_auth_error() {
        let refused =
            check_answer(&answer("1", Some("Wrong secret_key or company_id."))).unwrap_err();
        assert!(
            matches!(refused, Error::Auth { status: 200, .. }),
            "{refused:?}"
        );
        let other = check_answer(&answer(
            "1",
            Some("java.lang.InterruptedException: sleep interrupted"),
        ))
        .unwrap_err();
        assert!(matches!(other, Error::Api { .. }), "{other:?}");
        let not_code_1 = check_answer(&answer("2", Some("secret key missing"))).unwrap_err();
        assert!(matches!(not_code_1, Error::Api { .. }), "{not_code_1:?}");
    }
}
