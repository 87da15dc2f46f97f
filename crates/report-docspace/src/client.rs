//! The authenticated DocSpace client: the API key goes as `Authorization: Bearer …` to the
//! portal's own origin only, error answers (HTML ones included) become typed errors, and the
//! result file is opened through a pre-signed URL or, failing that, the portal's file handler.
//!
//! Below the client: how the vendor's error answers become typed errors (the `describe` the
//! spec's `x-codegen` names) and the vendor's error codes.

use report_core::__private::{self as kit, Endpoint, Redirects, SecretHeader, VendorError};
use report_core::{Download, Error, ExposeSecret, HttpOptions, Result, SecretString};
use reqwest::header::AUTHORIZATION;
use url::Url;

use crate::Profile;
use crate::VENDOR;
use crate::generated::types::ErrorEnvelope;
use crate::generated::{self, types};
use crate::lenient::FileId;

/// Where and as whom to connect. DocSpace has no default URL: every portal has its own.
#[derive(Clone, Debug)]
pub struct DocSpaceConfig {
    /// The portal, e.g. `https://yourportal.onlyoffice.com`.
    pub base_url: String,
    /// API key (personal access token, `sk-…`; redacted in `Debug`).
    pub api_key: SecretString,
    /// Timeouts, user agent, insecure-http opt-in.
    pub http: HttpOptions,
}

impl DocSpaceConfig {
    /// This portal with this API key.
    pub fn new(portal_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        DocSpaceConfig {
            base_url: portal_url.into(),
            api_key: SecretString::from(api_key.into()),
            http: HttpOptions::default(),
        }
    }
}

/// A DocSpace API client that sends your API key, and only to your portal.
///
/// Cloning is cheap.
#[derive(Clone, Debug)]
pub struct DocSpaceClient {
    pub(crate) api: generated::Client,
    /// Downloads. The file handler answers a 302 to a pre-signed storage URL that may be on
    /// another host, so redirects are followed; the key is an `Authorization` header, which the
    /// HTTP client drops on a redirect to another origin, and is only ever added for the
    /// portal's own URLs.
    downloads: reqwest::Client,
}

impl DocSpaceClient {
    /// Checks the configuration (no request is sent).
    pub fn new(config: DocSpaceConfig) -> Result<Self> {
        let endpoint = Endpoint::new(&config.base_url, &config.http, Redirects::Any)?;
        let key = config.api_key.expose_secret();
        if key.trim().is_empty() {
            return Err(Error::InvalidInput("DocSpace API key is empty".into()));
        }
        // The key goes as `Authorization: Bearer …` to the portal's own origin only.
        let bearer = SecretString::from(format!("Bearer {key}"));
        let credentials = SecretHeader::new(endpoint.base.clone(), AUTHORIZATION, bearer)
            .filter(|_| key.trim() == key)
            // Never echo the key itself.
            .ok_or_else(|| {
                Error::InvalidInput(
                    "DocSpace API key has spaces or characters an HTTP header cannot carry".into(),
                )
            })?;
        Ok(DocSpaceClient {
            api: crate::generated_kit::generated_client(&endpoint, credentials),
            downloads: endpoint.downloads,
        })
    }

    /// The user's current report task; `None` when there is none.
    pub async fn current_task(&self) -> Result<Option<types::DocumentBuilderTaskDto>> {
        let envelope = self
            .call("getCustomerOperationsReport", || {
                self.api.get_customer_operations_report().send()
            })
            .await?;
        Ok(envelope.response)
    }

    /// Starts a report; answers the new task, or the running one if there is one.
    pub async fn start_task(
        &self,
        body: &types::CustomerOperationsReportRequest,
    ) -> Result<types::DocumentBuilderTaskDto> {
        const OPERATION: &str = "createCustomerOperationsReport";
        let envelope = self
            .call(OPERATION, || {
                self.api
                    .create_customer_operations_report()
                    .body(body.clone())
                    .send()
            })
            .await?;
        envelope
            .response
            .ok_or_else(|| missing(OPERATION, "response"))
    }

    /// Terminates the user's report task; answers the task if the server returned it.
    pub async fn terminate_task(&self) -> Result<Option<types::DocumentBuilderTaskDto>> {
        let envelope = self
            .call("terminateCustomerOperationsReport", || {
                self.api.terminate_customer_operations_report().send()
            })
            .await?;
        Ok(envelope.response)
    }

    /// A pre-signed download URL of a file (relative answers are resolved against the portal).
    pub async fn presigned_uri(&self, file_id: &FileId) -> Result<Url> {
        const OPERATION: &str = "getPresignedUri";
        let id = file_id.to_string();
        let envelope = self
            .call(OPERATION, || {
                self.api.get_presigned_uri().file_id(id.as_str()).send()
            })
            .await?;
        let text = envelope
            .response
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| missing(OPERATION, "response"))?;
        self.base_url()
            .join(text.trim())
            .map_err(|e| Error::Decode {
                vendor: crate::VENDOR,
                operation: OPERATION.into(),
                message: format!("the answer is not a URL: {e}"),
                excerpt: report_core::excerpt(text.as_bytes()),
                source: None,
            })
    }

    /// The portal's file-handler URL of a file, opened with the API key.
    pub fn file_handler_url(&self, file_id: &FileId) -> Url {
        let mut url = self.base_url().clone();
        let path = format!("{}/filehandler.ashx", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.query_pairs_mut()
            .append_pair("action", "download")
            .append_pair("fileid", &file_id.to_string());
        url
    }

    /// Opens a file of Documents from `offset` on: through a fresh pre-signed URL (so a lapsed
    /// link is never reused), or through the file handler when the portal gives none.
    pub async fn open_file(&self, file_id: &FileId, offset: u64) -> Result<Download> {
        match self.presigned_uri(file_id).await {
            Ok(url) => self.open(&url, offset).await,
            Err(e) if falls_back(&e) => {
                tracing::debug!(error = %e, "no pre-signed URL; downloading through the file handler");
                self.open(&self.file_handler_url(file_id), offset).await
            }
            Err(e) => Err(e),
        }
    }

    /// Opens a URL: with the key on the portal's origin, without it anywhere else.
    pub async fn open(&self, url: &Url, offset: u64) -> Result<Download> {
        let (name, value) = self.api.inner.header();
        // open_url calls the closure only for the portal's origin: a foreign pre-signed URL
        // never receives the key.
        kit::open::<Profile>(
            &self.downloads,
            url.as_str(),
            offset,
            self.base_url(),
            move |rb| rb.header(name, value),
        )
        .await
    }
}

/// Whether a failed pre-signed URL request is worth the file-handler fallback: the portal
/// lacks the operation or refuses it for this file, or answered without a usable URL. Not for
/// a refused key (the fallback would fail the same way) or transient errors (the job retries).
fn falls_back(e: &Error) -> bool {
    match e {
        Error::Api {
            status: Some(status),
            ..
        } => matches!(status, 400 | 403 | 404 | 405 | 501),
        Error::Decode { .. } => true,
        _ => false,
    }
}

// ---- Error answers ----
// How DocSpace's failure envelope becomes a
// [`report_core::Error`], and the codes this crate gives the errors it detects itself.

report_core::lenient_enum! {
    /// Codes of the errors and failed statuses this crate reports on its own (DocSpace's own
    /// errors carry the server's exception type as their code instead, e.g.
    /// `System.Security.SecurityException`).
    pub enum DocSpaceErrorCode {
        /// A report task of this user is already running; starting would only return it.
        TaskAlreadyRunning = "TaskAlreadyRunning",
        /// The user has no report task any more (terminated, expired, or the portal restarted).
        TaskNotFound = "TaskNotFound",
        /// The task says it completed but names no result file.
        NoResultFile = "NoResultFile",
        /// The user's task now holds another report: a later start replaced the ticket's.
        TaskReplaced = "TaskReplaced",
    }
}

impl DocSpaceErrorCode {
    /// The typed code of an error from this crate, if it carries one of these.
    pub fn of(error: &Error) -> Option<DocSpaceErrorCode> {
        error
            .vendor_code()
            .map(|c| c.parse().unwrap_or_else(|never| match never {}))
            .filter(|code| !matches!(code, DocSpaceErrorCode::Unknown(_)))
    }
}

/// Code and message of a failure envelope: the exception's message and type, or the messages
/// of ASP.NET problem details (a validation 400), wrapped under `response` or bare.
pub(crate) fn describe(envelope: &ErrorEnvelope) -> VendorError {
    let info = envelope.error.as_ref();
    let code = info
        .and_then(|e| e.type_.clone())
        .filter(|t| !t.trim().is_empty());
    let message = info
        .and_then(|e| e.message.clone())
        .filter(|m| !m.trim().is_empty())
        .or_else(|| problem_details(envelope))
        .unwrap_or_else(|| match envelope.status_code {
            Some(status) => format!("no error message (statusCode {status})"),
            None => "no error message (empty failure envelope)".to_string(),
        });
    VendorError { code, message }
}

/// `title (field: message; …)` of problem details, wrapped or bare.
fn problem_details(envelope: &ErrorEnvelope) -> Option<String> {
    let wrapped = envelope.response.as_ref();
    let title = wrapped
        .and_then(|p| p.title.clone())
        .or_else(|| envelope.title.clone())
        .filter(|t| !t.trim().is_empty());
    let errors = wrapped
        .and_then(|p| p.errors.as_ref())
        .or(envelope.errors.as_ref());
    let fields: Vec<String> = errors
        .into_iter()
        .flatten()
        .map(|(field, messages)| format!("{field}: {}", messages.join(" ")))
        .collect();
    match (title, fields.is_empty()) {
        (None, true) => None,
        (Some(title), true) => Some(title),
        (title, false) => Some(format!(
            "{} ({})",
            title.as_deref().unwrap_or("invalid request"),
            fields.join("; ")
        )),
    }
}

/// Our own error: DocSpace answered, but not what a job can continue with.
pub(crate) fn own_error(code: DocSpaceErrorCode, message: String) -> Error {
    Error::detected(VENDOR, code, message)
}

/// A success answer lacking a field the operation cannot do without.
pub(crate) fn missing(operation: &str, field: &str) -> Error {
    Error::missing_field(VENDOR, operation, field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> DocSpaceClient {
        DocSpaceClient::new(DocSpaceConfig::new(url, "sk-test")).unwrap()
    }

    #[test]
    fn config_debug_hides_the_key() {
        let config = DocSpaceConfig::new("https://portal.example", "sk-hunter2-secret");
        let text = format!("{config:?} {:?}", client("https://portal.example"));
        assert!(
            !text.contains("hunter2") && !text.contains("sk-test"),
            "{text}"
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let err =
            |url: &str, key: &str| DocSpaceClient::new(DocSpaceConfig::new(url, key)).unwrap_err();
        assert!(matches!(
            err("http://portal.example", "sk-1"),
            Error::InvalidInput(_)
        ));
        assert!(matches!(err("", "sk-1"), Error::InvalidInput(_)));
        assert!(matches!(
            err("https://portal.example", " "),
            Error::InvalidInput(_)
        ));
        let bad = err("https://portal.example", "sk-1\nX-Evil: 1");
        assert!(
            matches!(&bad, Error::InvalidInput(m) if !m.contains("Evil")),
            "{bad}"
        );
    }

    #[test]
    fn the_file_handler_url_keeps_the_portal_path() {
        let url = client("https://example.com/docspace/").file_handler_url(&FileId::Number(42));
        assert_eq!(
            url.as_str(),
            "https://example.com/docspace/filehandler.ashx?action=download&fileid=42"
        );
        let url = client("https://portal.example").file_handler_url(&FileId::Text("a b".into()));
        assert_eq!(
            url.as_str(),
            "https://portal.example/filehandler.ashx?action=download&fileid=a+b"
        );
    }

    #[test]
    fn the_key_goes_to_the_portal_origin_only() {
        let c = client("https://portal.example");
        let mut own = reqwest::Request::new(
            reqwest::Method::GET,
            "https://portal.example/api/2.0/x".parse().unwrap(),
        );
        kit::pre_hook(&c.api.inner, &mut own, "any").unwrap();
        assert_eq!(
            own.headers()[AUTHORIZATION].to_str().unwrap(),
            "Bearer sk-test"
        );
        let mut foreign = reqwest::Request::new(
            reqwest::Method::GET,
            "https://bucket.example/f".parse().unwrap(),
        );
        kit::pre_hook(&c.api.inner, &mut foreign, "any").unwrap();
        assert!(foreign.headers().get(AUTHORIZATION).is_none());
    }

    use crate::generated::types::ErrorInfo;

    #[test]
    fn the_envelope_gives_message_and_exception_type() {
        let envelope = ErrorEnvelope {
            error: Some(ErrorInfo {
                message: Some("Access denied".into()),
                type_: Some("System.Security.SecurityException".into()),
                stack: None,
                hresult: Some(-2146233078),
            }),
            status: Some(1),
            status_code: Some(403),
            ..ErrorEnvelope::default()
        };
        let described = describe(&envelope);
        assert_eq!(described.message, "Access denied");
        assert_eq!(
            described.code.as_deref(),
            Some("System.Security.SecurityException")
        );
        let empty = describe(&ErrorEnvelope::default());
        assert!(empty.message.contains("empty failure envelope"));
    }

    /// A validation 400 carries ASP.NET problem details, under `response` or bare; null
    /// exception fields are accepted.
    #[test]
    fn problem_details_are_read_wrapped_or_bare() {
        let details = serde_json::json!({
            "title": "One or more validation errors occurred.",
            "status": 400,
            "errors": {"$.orderType": ["The JSON value could not be converted."]},
            "traceId": "00-abc-01"
        });
        let wrapped: ErrorEnvelope = serde_json::from_value(serde_json::json!({
            "response": details, "count": 1, "status": 1, "statusCode": 400
        }))
        .unwrap();
        let bare: ErrorEnvelope = serde_json::from_value(details).unwrap();
        for envelope in [wrapped, bare] {
            let described = describe(&envelope);
            assert_eq!(
                described.message,
                "One or more validation errors occurred. ($.orderType: The JSON value could not be converted.)"
            );
        }
        let nulls: ErrorEnvelope = serde_json::from_value(serde_json::json!({
            "error": {"message": "Tariff service is not configured", "type": null, "stack": null, "hresult": 0},
            "status": 1, "statusCode": 403
        }))
        .unwrap();
        assert_eq!(describe(&nulls).message, "Tariff service is not configured");
        assert_eq!(describe(&nulls).code, None);
    }

    #[test]
    fn own_codes_are_typed() {
        let e = own_error(DocSpaceErrorCode::TaskAlreadyRunning, "busy".into());
        assert_eq!(
            DocSpaceErrorCode::of(&e),
            Some(DocSpaceErrorCode::TaskAlreadyRunning)
        );
        assert!(!e.is_transient());
    }
}
