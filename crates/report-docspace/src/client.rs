//! The authenticated DocSpace client: the API key goes as `Authorization: Bearer …` to the
//! portal's own origin only, error answers (HTML ones included) become typed errors, and the
//! result file is opened through a pre-signed URL or, failing that, the portal's file handler.

use report_core::__private::{self as kit, Endpoint, Redirects, SecretHeader};
use report_core::{Download, Error, ExposeSecret, HttpOptions, Result, SecretString};
use reqwest::header::AUTHORIZATION;
use url::Url;

use crate::Profile;
use crate::errors;
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
            .ok_or_else(|| errors::missing(OPERATION, "response"))
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
            .ok_or_else(|| errors::missing(OPERATION, "response"))?;
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
}
