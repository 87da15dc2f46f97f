//! The vendor kit: what every vendor crate needs from report-core, written once.
//!
//! A vendor crate describes itself with a [`VendorProfile`] (name, error body, how errors are
//! described and recognised, which statuses mean "credentials refused") and its hook state
//! with [`Credentials`] (its origin and how a request is authorized). The rest is here:
//! building the HTTP clients ([`Endpoint`]), the generated client's hooks ([`pre_hook`],
//! [`exec_hook`]), one [`call`] with an optional token cache, and the [`Error`] constructors
//! vendor crates use. What the orphan rule keeps in the vendor crate (the `ClientHooks` impl,
//! the conversion of the generated client's errors into [`ApiFailure`], the re-exports, the
//! fuzz entry) is emitted by `cargo xtask codegen` into its `src/generated_kit.rs`.
//!
//! Nothing here names progenitor: the generated code converts its errors into [`ApiFailure`],
//! so a progenitor upgrade changes generated files, not report-core's API.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
pub use futures::future::BoxFuture;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use url::Url;

use crate::auth::{Token, TokenCache};
use crate::http::{self, HttpOptions, Redirects, VendorError, VendorErrors};
use crate::{Error, Result};

/// Who a vendor is and how its error answers read.
pub trait VendorProfile: 'static {
    /// The short vendor name used in errors and tickets (`ofd`, `docspace`…).
    const NAME: &'static str;
    /// HTTP statuses that mean "credentials refused" ([`Error::Auth`]).
    const AUTH_STATUSES: &'static [u16];
    /// The response header carrying the vendor's request id, if it sends one.
    const REQUEST_ID_HEADER: Option<&'static str> = None;
    /// The one error body schema of the vendor's spec.
    type ErrorBody;

    /// Code and message of an error body.
    fn describe(body: &Self::ErrorBody) -> VendorError;

    /// The error body made for a non-JSON error answer (an HTML page, an empty 401), so that
    /// the generated code decodes it and the status survives.
    fn error_body_for(text: String) -> serde_json::Value;

    /// A request id the error body carries itself (used when the header has none).
    fn request_id_in(_body: &Self::ErrorBody) -> Option<String> {
        None
    }

    /// How report-core's HTTP helpers read this vendor's errors.
    fn errors() -> VendorErrors<'static> {
        VendorErrors {
            vendor: Self::NAME,
            request_id_header: Self::REQUEST_ID_HEADER,
            auth_statuses: Self::AUTH_STATUSES,
        }
    }
}

/// A failed generated-client call, in report-core's terms (the generated kit file converts
/// the generator's own error type into this).
#[derive(Debug)]
pub enum ApiFailure<E> {
    /// The request could not be built or a hook refused it.
    InvalidRequest(String),
    /// Connecting, sending or upgrading failed.
    Transport(reqwest::Error),
    /// Reading the body of an expected answer failed (cut, or over the size limit).
    Body(reqwest::Error),
    /// An error answer the spec lists, decoded as the vendor's error body.
    Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: E,
    },
    /// An expected answer whose body did not decode.
    Payload {
        body: Bytes,
        error: serde_json::Error,
    },
    /// An answer the spec does not list.
    Unexpected(reqwest::Response),
}

impl<E> ApiFailure<E> {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiFailure::Transport(e) | ApiFailure::Body(e) => e.status().map(|s| s.as_u16()),
            ApiFailure::Answer { status, .. } => Some(status.as_u16()),
            ApiFailure::Unexpected(response) => Some(response.status().as_u16()),
            ApiFailure::InvalidRequest(_) | ApiFailure::Payload { .. } => None,
        }
    }

    /// The decoded error body, when the answer was one the spec lists.
    pub fn body(&self) -> Option<&E> {
        match self {
            ApiFailure::Answer { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// Converts a failed call to [`Error`], keeping the vendor's request id from the header or,
/// failing that, from the body (in the message of an [`Error::Auth`], which has no field
/// for it: support asks for it).
pub async fn map_failure<V: VendorProfile>(
    operation: &str,
    failure: ApiFailure<V::ErrorBody>,
) -> Error {
    let request_id = match &failure {
        ApiFailure::Answer { headers, body, .. } => V::REQUEST_ID_HEADER
            .and_then(|name| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| V::request_id_in(body))
            .filter(|id| !id.trim().is_empty()),
        _ => None,
    };
    let mut error = V::errors().map(operation, failure, V::describe).await;
    match &mut error {
        Error::Api {
            request_id: slot, ..
        } if slot.is_none() => *slot = request_id,
        Error::Auth { message, .. } => {
            if let Some(id) = request_id {
                message.push_str(&format!(" (request id {id})"));
            }
        }
        _ => {}
    }
    error
}

/// The state the generated client's hooks read: the API origin and the credentials.
pub trait Credentials: Send + Sync {
    /// The API's own origin, the only one that gets credentials.
    fn origin(&self) -> &Url;

    /// Adds the credentials to a request for [`origin`](Self::origin). `operation` is the
    /// generated operation id (a token request authorizes differently).
    fn authorize(
        &self,
        request: &mut reqwest::Request,
        operation: &str,
    ) -> std::result::Result<(), String>;

    /// Whether a request for another origin is refused instead of sent without credentials
    /// (for vendors whose credentials travel in every body).
    fn refuses_other_origins(&self) -> bool {
        false
    }
}

/// The generated client's `pre` hook: credentials for the API's own origin only.
pub fn pre_hook(
    credentials: &impl Credentials,
    request: &mut reqwest::Request,
    operation: &str,
) -> std::result::Result<(), String> {
    if http::may_carry_credentials(credentials.origin(), request.url()) {
        credentials.authorize(request, operation)
    } else if credentials.refuses_other_origins() {
        Err(format!(
            "refusing to send credentials to {}",
            request.url().origin().ascii_serialization()
        ))
    } else {
        Ok(())
    }
}

/// The generated client's `exec` hook: traced, error answers made decodable as the vendor's
/// error body (keeping status and `Retry-After`), bodies bounded at [`http::API_BODY_LIMIT`].
pub async fn exec_hook<V: VendorProfile>(
    client: &reqwest::Client,
    request: reqwest::Request,
    operation: &str,
) -> reqwest::Result<reqwest::Response> {
    let response = http::traced_execute(client, request, operation).await?;
    http::guard_response(response, V::error_body_for).await
}

/// Credentials that are one secret header on every request for the API's own origin: an API
/// key as `Authorization: Bearer …`, `Basic` user and password.
#[derive(Clone, Debug)]
pub struct SecretHeader {
    origin: Url,
    name: reqwest::header::HeaderName,
    /// The whole header value (redacted in `Debug`).
    value: secrecy::SecretString,
}

impl SecretHeader {
    /// `None` when `value` cannot be a header value (the caller says so without echoing it).
    pub fn new(
        origin: Url,
        name: reqwest::header::HeaderName,
        value: secrecy::SecretString,
    ) -> Option<SecretHeader> {
        use secrecy::ExposeSecret;
        secret_header(value.expose_secret())?;
        Some(SecretHeader {
            origin,
            name,
            value,
        })
    }

    /// The header's name and value (marked sensitive), for requests built by hand (downloads).
    pub fn header(&self) -> (reqwest::header::HeaderName, reqwest::header::HeaderValue) {
        use secrecy::ExposeSecret;
        let value = secret_header(self.value.expose_secret())
            .unwrap_or_else(|| reqwest::header::HeaderValue::from_static(""));
        (self.name.clone(), value)
    }
}

impl Credentials for SecretHeader {
    fn origin(&self) -> &Url {
        &self.origin
    }

    fn authorize(
        &self,
        request: &mut reqwest::Request,
        _operation: &str,
    ) -> std::result::Result<(), String> {
        let (name, value) = self.header();
        request.headers_mut().insert(name, value);
        Ok(())
    }
}

/// A `reqwest::Request`'s header value holding a secret: marked sensitive, so no `Debug` of
/// the request shows it. `None` when the text cannot be a header value.
pub fn secret_header(value: &str) -> Option<reqwest::header::HeaderValue> {
    let mut value = reqwest::header::HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A vendor's API origin and the two HTTP clients every vendor crate builds: one for API
/// calls (redirects only within the origin) and one for downloads.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The checked base URL.
    pub base: Url,
    /// For the generated client: carries credentials, follows no redirect elsewhere.
    pub api: reqwest::Client,
    /// For report files: no overall timeout (the job's deadline bounds it).
    pub downloads: reqwest::Client,
}

impl Endpoint {
    /// Checks `base_url` (https, or http on loopback unless opted in) and builds the clients.
    /// `downloads` is [`Redirects::Any`] only for clients that never carry credentials, or
    /// carry them only in a header the HTTP client drops on a redirect to another origin
    /// (DocSpace's `Authorization`).
    pub fn new(base_url: &str, options: &HttpOptions, downloads: Redirects) -> Result<Endpoint> {
        let base = http::check_base_url(base_url, options.allow_insecure_http)?;
        Ok(Endpoint {
            api: http::build_client(options, Redirects::SameOriginOnly, false)?,
            downloads: http::build_client(options, downloads, true)?,
            base,
        })
    }

    /// The base URL as the generated client wants it (no trailing slash).
    pub fn base_str(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }
}

/// Opens a report file URL from `offset` on, reading its errors as `V`'s; `authorize` is called
/// only when the URL is on `base`'s origin.
pub async fn open<V: VendorProfile>(
    client: &reqwest::Client,
    url: &str,
    offset: u64,
    base: &Url,
    authorize: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<crate::Download> {
    http::open_url(client, &V::errors(), url, offset, base, authorize).await
}

/// A token cache and how a call renews it, for [`call`].
pub struct TokenUse<'a, E> {
    /// The cached token (shared by clones of a client).
    pub cache: &'a TokenCache,
    /// Asks the vendor for a new token.
    pub renew: &'a (dyn Fn() -> BoxFuture<'a, Result<Token>> + Send + Sync),
    /// Whether a failure means "this token was refused" (renew once and retry).
    pub refused: fn(&ApiFailure<E>) -> bool,
}

/// Runs one generated operation and maps its failure to [`Error`]. With a token cache, the
/// call gets a usable token first and, when the answer refuses it, renews it once and runs
/// again; a token refused even after renewal is [`Error::Auth`].
pub async fn call<V, T, F, Fut>(
    operation: &str,
    tokens: Option<TokenUse<'_, V::ErrorBody>>,
    attempt: F,
) -> Result<T>
where
    V: VendorProfile,
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<T, ApiFailure<V::ErrorBody>>>,
{
    let answer = match tokens {
        None => attempt().await,
        Some(tokens) => {
            let answer = tokens
                .cache
                .with_renewal(tokens.renew, &attempt, tokens.refused)
                .await?;
            match answer {
                Err(e) if (tokens.refused)(&e) => {
                    let status = e.status().unwrap_or(401);
                    return Err(match map_failure::<V>(operation, e).await {
                        auth @ Error::Auth { .. } => auth,
                        other => Error::auth(
                            V::NAME,
                            status,
                            format!(
                                "{operation}: the token was refused even after renewal ({other})"
                            ),
                        ),
                    });
                }
                other => other,
            }
        }
    };
    match answer {
        Ok(value) => Ok(value),
        Err(e) => Err(map_failure::<V>(operation, e).await),
    }
}

/// A token cache shared by a client's clones, renewing `margin` before expiry on `clock`
/// (tokio's clock when `None`).
pub fn shared_tokens(
    margin: std::time::Duration,
    clock: Option<Arc<dyn crate::Clock>>,
) -> Arc<TokenCache> {
    let cache = TokenCache::new(margin);
    Arc::new(match clock {
        Some(clock) => cache.with_clock(clock),
        None => cache,
    })
}

/// The constructors vendor crates use for the errors they detect themselves.
impl Error {
    /// Credentials refused (`status` is the HTTP status, 200 for a refusal inside a 200).
    pub fn auth(vendor: &'static str, status: u16, message: impl Into<String>) -> Error {
        Error::Auth {
            vendor,
            status,
            message: message.into(),
        }
    }

    /// An error the vendor crate detects in an answer, with its own typed `code` (no HTTP
    /// status: the answer itself was a success).
    pub fn detected(
        vendor: &'static str,
        code: impl ToString,
        message: impl Into<String>,
    ) -> Error {
        Error::Api {
            vendor,
            status: None,
            code: Some(code.to_string()),
            message: message.into(),
            request_id: None,
            retry_after: None,
        }
    }

    /// A success answer lacking a field `operation` cannot do without.
    pub fn missing_field(vendor: &'static str, operation: &str, field: &str) -> Error {
        Error::Decode {
            vendor,
            operation: operation.to_string(),
            message: format!("the answer has no `{field}`"),
            excerpt: String::new(),
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use chrono::{DateTime, TimeZone, Utc};
    use secrecy::{ExposeSecret, SecretString};

    use super::*;
    use crate::{Clock, VirtualClock};

    /// A vendor whose error body is a plain message.
    struct Fake;

    impl VendorProfile for Fake {
        const NAME: &'static str = "fake";
        const AUTH_STATUSES: &'static [u16] = &[401];
        const REQUEST_ID_HEADER: Option<&'static str> = Some("x-request-id");
        type ErrorBody = String;

        fn describe(body: &String) -> VendorError {
            VendorError {
                code: None,
                message: body.clone(),
            }
        }

        fn error_body_for(text: String) -> serde_json::Value {
            serde_json::Value::String(text)
        }

        fn request_id_in(body: &String) -> Option<String> {
            body.strip_prefix("id:").map(str::to_string)
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    }

    fn refused(status: u16, body: &str) -> ApiFailure<String> {
        ApiFailure::Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_string(),
        }
    }

    /// A token issued for 10 minutes, numbered in order of issue.
    async fn issue(clock: &VirtualClock, issued: &AtomicUsize) -> Result<Token> {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Token {
            value: SecretString::from(format!("token-{n}")),
            expires: Some(clock.now() + chrono::Duration::minutes(10)),
        })
    }

    #[tokio::test]
    async fn token_expiry_is_judged_on_the_injected_clock() {
        let clock = Arc::new(VirtualClock::new(start()));
        let tokens = shared_tokens(Duration::from_secs(60), Some(clock.clone()));
        let issued = AtomicUsize::new(0);
        let renew = || -> BoxFuture<'_, Result<Token>> { Box::pin(issue(&clock, &issued)) };
        let used = std::sync::Mutex::new(Vec::new());
        let attempt = || async {
            let token = tokens.current().expect("a token before the call");
            used.lock().unwrap().push(token.expose_secret().to_string());
            Ok::<_, ApiFailure<String>>(())
        };
        let with_cache = || TokenUse {
            cache: &tokens,
            renew: &renew,
            refused: |f: &ApiFailure<String>| f.status() == Some(401),
        };

        call::<Fake, _, _, _>("op", Some(with_cache()), attempt)
            .await
            .unwrap();
        // Eight virtual minutes later the token is still good for more than the margin.
        clock.advance(Duration::from_secs(8 * 60));
        call::<Fake, _, _, _>("op", Some(with_cache()), attempt)
            .await
            .unwrap();
        // One more minute and a half: within the margin of its expiry, so it is renewed first.
        clock.advance(Duration::from_secs(90));
        call::<Fake, _, _, _>("op", Some(with_cache()), attempt)
            .await
            .unwrap();
        assert_eq!(*used.lock().unwrap(), ["token-1", "token-1", "token-2"]);
        assert_eq!(issued.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_token_is_renewed_once_then_an_auth_error_with_the_request_id() {
        let clock = Arc::new(VirtualClock::new(start()));
        let tokens = shared_tokens(Duration::from_secs(60), Some(clock.clone()));
        let issued = AtomicUsize::new(0);
        let renew = || -> BoxFuture<'_, Result<Token>> { Box::pin(issue(&clock, &issued)) };
        let attempts = AtomicUsize::new(0);
        let err = call::<Fake, (), _, _>(
            "getThing",
            Some(TokenUse {
                cache: &tokens,
                renew: &renew,
                refused: |f| f.status() == Some(401),
            }),
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(refused(401, "id:req-7"))
            },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Auth { vendor: "fake", status: 401, message } if message.contains("req-7")),
            "{err:?}"
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "one retry, not a loop");
        assert_eq!(
            issued.load(Ordering::SeqCst),
            2,
            "the login and one renewal"
        );
    }

    #[tokio::test]
    async fn failures_keep_the_request_id_of_the_header_before_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "from-header".parse().unwrap());
        let failure = ApiFailure::Answer {
            status: StatusCode::BAD_REQUEST,
            headers,
            body: "id:from-body".to_string(),
        };
        let error = map_failure::<Fake>("op", failure).await;
        assert!(
            matches!(&error, Error::Api { request_id: Some(id), status: Some(400), .. } if id == "from-header"),
            "{error:?}"
        );
        let error = map_failure::<Fake>("op", refused(404, "id:from-body")).await;
        assert!(
            matches!(&error, Error::Api { request_id: Some(id), .. } if id == "from-body"),
            "{error:?}"
        );
    }

    struct Key(Url, bool);

    impl Credentials for Key {
        fn origin(&self) -> &Url {
            &self.0
        }

        fn authorize(
            &self,
            request: &mut reqwest::Request,
            _operation: &str,
        ) -> std::result::Result<(), String> {
            request
                .headers_mut()
                .insert("authorization", secret_header("Bearer k").unwrap());
            Ok(())
        }

        fn refuses_other_origins(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn credentials_go_to_the_own_origin_only() {
        let base = Url::parse("https://api.example").unwrap();
        let request = |url: &str| reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
        for refuses in [false, true] {
            let key = Key(base.clone(), refuses);
            let mut own = request("https://api.example/x");
            pre_hook(&key, &mut own, "op").unwrap();
            assert!(own.headers()["authorization"].is_sensitive());
            let mut foreign = request("https://blob.example/x");
            let outcome = pre_hook(&key, &mut foreign, "op");
            assert!(foreign.headers().get("authorization").is_none());
            assert_eq!(outcome.is_err(), refuses);
        }
    }
}
