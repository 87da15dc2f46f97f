//! The authenticated CloudBlue client: a JWT from `POST /token` (Basic user:password and the
//! subscription key), cached, renewed a minute before `expiresInSeconds` runs out and once more
//! after a 401, and sent with the subscription key to the API's own origin only.
//!
//! Below the client: how the vendor's error answers become typed errors (the `describe` the
//! spec's `x-codegen` names) and the vendor's error codes.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use report_core::__private::{
    self as kit, ApiFailure, Credentials, Endpoint, Redirects, Token, TokenCache, VendorError,
    VendorErrors, secret_header,
};
use report_core::{
    Clock, Compression, Download, Error, ExposeSecret, HttpOptions, Result, SecretString,
};
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use url::Url;

use crate::filter::ReportFilter;
use crate::generated::types::ErrorBody;
use crate::generated::{self, types};
use crate::{Profile, VENDOR};

/// The production API root, region included.
pub const DEFAULT_BASE_URL: &str = "https://api.cloud.im/marketplace/eu";

/// The lab (testing) API root.
pub const LAB_BASE_URL: &str = "https://api-lab.cloud.im/marketplace/dev";

/// The marketplace of [`DEFAULT_BASE_URL`], sent in the token request.
pub const DEFAULT_MARKETPLACE: &str = "eu";

/// Per-request timeout of API calls: the API is slow, so minutes rather than report-core's
/// one-minute default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Renew the token this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

const SUBSCRIPTION_KEY: HeaderName = HeaderName::from_static("x-subscription-key");

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct CloudBlueConfig {
    /// API root including `/marketplace/<region>`, [`DEFAULT_BASE_URL`] unless testing.
    pub base_url: String,
    /// The marketplace sent to `POST /token` (`eu` for [`DEFAULT_BASE_URL`]); empty: none is
    /// sent and the user's default applies (the field is optional in cmp.yaml 1.6).
    pub marketplace: String,
    /// User name of the API user.
    pub username: String,
    /// Password of the API user (redacted in `Debug`).
    pub password: SecretString,
    /// The API subscription key, sent as `X-Subscription-Key` (redacted in `Debug`).
    pub subscription_key: SecretString,
    /// Timeouts (default [`DEFAULT_TIMEOUT`] per request), user agent, insecure-http opt-in.
    pub http: HttpOptions,
    /// The clock token expiry is judged on (tokio's unless testing in virtual time).
    pub clock: Option<Arc<dyn Clock>>,
}

impl CloudBlueConfig {
    /// The production `eu` marketplace with these credentials.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        subscription_key: impl Into<String>,
    ) -> Self {
        CloudBlueConfig {
            base_url: DEFAULT_BASE_URL.into(),
            marketplace: DEFAULT_MARKETPLACE.into(),
            username: username.into(),
            password: SecretString::from(password.into()),
            subscription_key: SecretString::from(subscription_key.into()),
            http: HttpOptions::default().with_timeout(DEFAULT_TIMEOUT),
            clock: None,
        }
    }

    /// Another marketplace for the token request.
    pub fn with_marketplace(mut self, marketplace: impl Into<String>) -> Self {
        self.marketplace = marketplace.into();
        self
    }
}

/// What the generated client's hooks read: the API origin, the credentials and the token.
#[derive(Clone, Debug)]
pub struct CloudBlueCredentials {
    base: Url,
    pub(crate) tokens: Arc<TokenCache>,
    /// `Basic base64(user:password)`, for `POST /token` only.
    basic: SecretString,
    subscription_key: SecretString,
}

impl Credentials for CloudBlueCredentials {
    fn origin(&self) -> &Url {
        &self.base
    }

    /// The subscription key, and the Basic (token request) or Bearer (everything else)
    /// authorization.
    fn authorize(&self, request: &mut reqwest::Request, operation: &str) -> Result<(), String> {
        let authorization = if operation == "generate_auth_token" {
            Some(self.basic.expose_secret().to_string())
        } else {
            self.tokens
                .current()
                .map(|token| format!("Bearer {}", token.expose_secret()))
        };
        let headers = request.headers_mut();
        headers.insert(
            SUBSCRIPTION_KEY,
            secret_header(self.subscription_key.expose_secret())
                .ok_or("the subscription key is not a valid header value")?,
        );
        if let Some(value) = authorization {
            headers.insert(
                AUTHORIZATION,
                secret_header(&value).ok_or("the token is not a valid header value")?,
            );
        }
        Ok(())
    }
}

/// A CloudBlue RDE client that handles the token for you.
///
/// Cloning is cheap; clones share the token.
#[derive(Clone, Debug)]
pub struct CloudBlueClient {
    pub(crate) api: generated::Client,
    /// For pre-signed download URLs: carries no credentials, so it may follow any redirect.
    downloads: reqwest::Client,
    marketplace: String,
}

impl CloudBlueClient {
    /// Checks the configuration (no request is sent).
    pub fn new(config: CloudBlueConfig) -> Result<Self> {
        let endpoint = Endpoint::new(&config.base_url, &config.http, Redirects::Any)?;
        let bad = |m: &str| Err(Error::InvalidInput(format!("CloudBlue {m}")));
        if config.username.trim().is_empty() {
            return bad("user name is empty");
        }
        if config.username.contains(':') {
            return bad("user name contains `:`, which Basic authorization cannot carry");
        }
        if config.password.expose_secret().is_empty() {
            return bad("password is empty");
        }
        let key = config.subscription_key.expose_secret();
        if key.trim().is_empty() {
            return bad("subscription key is empty");
        }
        if HeaderValue::from_str(key).is_err() {
            return bad("subscription key has characters a header cannot carry");
        }
        let credentials = format!("{}:{}", config.username, config.password.expose_secret());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        );
        let credentials = CloudBlueCredentials {
            base: endpoint.base.clone(),
            tokens: kit::shared_tokens(RENEW_MARGIN, config.clock),
            basic: SecretString::from(basic),
            subscription_key: config.subscription_key.clone(),
        };
        Ok(CloudBlueClient {
            api: crate::generated_kit::generated_client(&endpoint, credentials),
            downloads: endpoint.downloads,
            marketplace: config.marketplace,
        })
    }

    /// The marketplace the token is asked for.
    pub fn marketplace(&self) -> &str {
        &self.marketplace
    }

    pub(crate) async fn renew_token(&self) -> Result<Token> {
        let body = types::TokenRequest {
            marketplace: Some(self.marketplace.trim())
                .filter(|m| !m.is_empty())
                .map(str::to_string),
        };
        let answer = crate::generated_kit::answer(self.api.generate_auth_token().body(body).send());
        let answer = match answer.await {
            Ok(answer) => answer,
            Err(e) => {
                // The token endpoint refusing is always about the credentials.
                return Err(
                    match kit::map_failure::<Profile>("generateAuthToken", e).await {
                        Error::Api {
                            status: Some(403),
                            message,
                            ..
                        } => Error::Auth {
                            vendor: VENDOR,
                            status: 403,
                            message,
                        },
                        other => other,
                    },
                );
            }
        };
        if answer.token.trim().is_empty() {
            return Err(Error::Auth {
                vendor: VENDOR,
                status: 200,
                message: "POST /token answered with an empty token".into(),
            });
        }
        let expires = token_expiry(self.api.inner.tokens.now(), answer.expires_in_seconds);
        tracing::debug!(expires = ?expires, "obtained a CloudBlue token");
        Ok(Token {
            value: SecretString::from(answer.token),
            expires,
        })
    }

    /// One report by id.
    pub async fn report(&self, id: &str) -> Result<types::ReportItem> {
        self.call("getReportById", || {
            self.api.get_report_by_id().report_id(id).send()
        })
        .await
    }

    /// Asks for a one-time report (`POST /reports`, *unverified*: see the spec).
    pub async fn create_report(
        &self,
        body: &types::CreateReportRequest,
    ) -> Result<types::ReportItem> {
        self.call("createReport", || {
            self.api.create_report().body(body.clone()).send()
        })
        .await
    }

    /// The reports matching `filter` (one page: see [`ReportFilter`]).
    pub async fn reports(&self, filter: &ReportFilter) -> Result<types::ReportList> {
        filter.validate()?;
        self.call("getReports", || filter.apply(self.api.get_reports()).send())
            .await
    }

    /// Opens a pre-signed download URL from `offset` on, WITHOUT any credential: whatever its
    /// host, the URL is signed already. `gzip` marks the bytes as gzip-compressed.
    pub(crate) async fn open(&self, url: &str, offset: u64, gzip: bool) -> Result<Download> {
        let mut download = kit::open_url(
            &self.downloads,
            &BLOB_ERRORS,
            url,
            offset,
            self.base_url(),
            |rb| rb,
        )
        .await?;
        if gzip {
            download.compression = Compression::Gzip;
        }
        Ok(download)
    }
}

/// When a token issued at `now` with `expiresInSeconds` expires. Without a (positive) lifetime,
/// or with one beyond what a date can hold, the token is used until the server refuses it.
pub fn token_expiry(now: DateTime<Utc>, expires_in_seconds: Option<i64>) -> Option<DateTime<Utc>> {
    let secs = expires_in_seconds.filter(|secs| *secs > 0)?;
    // `Duration::seconds` and `DateTime + Duration` panic out of range: the server's number
    // must not crash the client.
    now.checked_add_signed(chrono::Duration::try_seconds(secs)?)
}

/// A 401 means the token was refused (or expired early).
pub(crate) fn token_refused(e: &ApiFailure<types::ErrorBody>) -> bool {
    e.status() == Some(401)
}

// ---- Error answers ----
// How CloudBlue's error answers become a
// [`report_core::Error`], keeping the correlation id support asks for.

/// The header every CloudBlue answer carries with the request's id on CloudBlue's side.
pub const CORRELATION_ID_HEADER: &str = "X-Correlation-ID";

/// How the blob host's errors are read. Azure names its request id `x-ms-request-id`; a 403
/// (expired signature) must stay an API error so report-core refreshes the link.
pub const BLOB_ERRORS: VendorErrors<'static> = VendorErrors {
    vendor: VENDOR,
    request_id_header: Some("x-ms-request-id"),
    auth_statuses: &[],
};

/// The correlation id an error body carries itself (when the header has none).
pub(crate) fn correlation_id(body: &ErrorBody) -> Option<String> {
    body.correlation_id.clone()
}

fn present(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The message of an error body, whichever spelling the server used: `message`, `error`, or
/// Spring's pair of reason phrase (`error`) and detail (`message`).
pub(crate) fn describe(body: &ErrorBody) -> VendorError {
    let message = match (present(&body.message), present(&body.error)) {
        (Some(message), Some(error)) if message != error => format!("{error}: {message}"),
        (Some(message), _) => message.to_string(),
        (None, Some(error)) => error.to_string(),
        (None, None) => "no error message".to_string(),
    };
    VendorError {
        code: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_the_secrets() {
        let config = CloudBlueConfig::new("user", "hunter2-secret", "key-0123-secret");
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(!text.contains("key-0123-secret"), "{text}");
        let client = CloudBlueClient::new(config).unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        assert!(!text.contains("key-0123-secret"), "{text}");
        // base64("user:hunter2-secret")
        assert!(!text.contains("dXNlcjpodW50ZXIyLXNlY3JldA"), "{text}");
    }

    #[test]
    fn token_lifetimes_out_of_range_do_not_panic() {
        let now = DateTime::UNIX_EPOCH;
        assert_eq!(
            token_expiry(now, Some(3600)),
            Some(now + chrono::Duration::seconds(3600))
        );
        assert_eq!(token_expiry(now, None), None);
        assert_eq!(token_expiry(now, Some(0)), None);
        assert_eq!(token_expiry(now, Some(-5)), None);
        // Past the last representable date, and past what a `Duration` holds: no expiry.
        assert_eq!(token_expiry(now, Some(10_000_000_000_000)), None);
        assert_eq!(token_expiry(now, Some(i64::MAX)), None);
    }

    #[test]
    fn the_api_is_slow_so_timeouts_are_long() {
        let config = CloudBlueConfig::new("u", "p", "k");
        assert_eq!(config.http.timeout, DEFAULT_TIMEOUT);
        assert!(DEFAULT_TIMEOUT >= Duration::from_secs(180));
    }

    #[test]
    fn bad_configurations_are_refused_before_any_request() {
        let refused = |config: CloudBlueConfig| {
            let err = CloudBlueClient::new(config).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
            err.to_string()
        };
        let ok = || CloudBlueConfig::new("u", "p", "k");
        refused(ok().with_base_url("http://api.cloud.example/marketplace/eu"));
        refused(CloudBlueConfig::new("", "p", "k"));
        refused(CloudBlueConfig::new("a:b", "p", "k"));
        refused(CloudBlueConfig::new("u", "", "k"));
        refused(CloudBlueConfig::new("u", "p", " "));
        refused(CloudBlueConfig::new("u", "p", "bad\nkey"));
        let client = CloudBlueClient::new(ok().with_base_url(LAB_BASE_URL)).unwrap();
        assert_eq!(client.base_url().as_str(), LAB_BASE_URL);
    }

    fn body(json: serde_json::Value) -> ErrorBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn both_spellings_give_a_message() {
        let spring = body(serde_json::json!({
            "timestamp": "2024-05-02T10:00:00.000+00:00", "status": 400,
            "error": "Bad Request", "message": "startDate must be before endDate",
            "path": "/marketplace/eu/reports", "correlationId": "c-1"
        }));
        assert_eq!(
            describe(&spring).message,
            "Bad Request: startDate must be before endDate"
        );
        let legacy = body(serde_json::json!({
            "timeStamp": "2024-05-02T10:00:00Z", "status": 404, "message": "Report not found"
        }));
        assert_eq!(describe(&legacy).message, "Report not found");
        let error_only = body(serde_json::json!({"status": 401, "error": "Invalid token"}));
        assert_eq!(describe(&error_only).message, "Invalid token");
        assert_eq!(describe(&ErrorBody::default()).message, "no error message");
    }
}
