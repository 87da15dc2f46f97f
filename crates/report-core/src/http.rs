//! HTTP plumbing shared by every vendor crate: base-URL checks, client construction (TLS,
//! timeouts, redirect rules), credential isolation, one tracing span per request, mapping
//! failed generated-client calls to [`Error`], and opening artifact URLs as byte streams.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

use crate::adapter::Download;
use crate::vendor_kit::ApiFailure;
use crate::{BoxError, Compression, Error, Result, excerpt};

/// Most bytes read of an error or unexpected body (HTML error pages can be large).
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Most bytes of a JSON (or text) API answer a generated client may read into memory. Report
/// files are streamed and not limited; an API answer this large is hostile or broken.
pub const API_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The error a guarded body stream ends with when it passes [`API_BODY_LIMIT`].
#[derive(Debug, thiserror::Error)]
#[error("the answer is larger than {limit} bytes; refusing to read it into memory")]
pub struct BodyTooLarge {
    pub limit: usize,
}

/// Options of the HTTP clients a vendor crate builds.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Per-request timeout (the whole request, body included, for API calls). The job's
    /// deadline ([`WaitPolicy::deadline`](crate::WaitPolicy::deadline)) bounds every request
    /// too: whichever comes first ends it.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Idle-read timeout of downloads (time without any byte), instead of a whole-request
    /// timeout: a stalled body is a transient error (the download resumes with `Range`).
    pub download_read_timeout: Duration,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
    /// Allow plain `http://` to hosts other than loopback.
    pub allow_insecure_http: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            download_read_timeout: Duration::from_secs(30),
            user_agent: concat!("async-report-clients/", env!("CARGO_PKG_VERSION")).into(),
            allow_insecure_http: false,
        }
    }
}

impl HttpOptions {
    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the idle-read timeout of downloads.
    pub fn with_download_read_timeout(mut self, timeout: Duration) -> Self {
        self.download_read_timeout = timeout;
        self
    }

    /// Allows `http://` to non-loopback hosts.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Sets the `User-Agent`.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }
}

/// Parses and checks a vendor base URL: `https://`, or `http://` only for loopback hosts unless
/// the caller opted in. The result has no trailing slash in its path.
pub fn check_base_url(raw: &str, allow_insecure_http: bool) -> Result<Url> {
    let url = Url::parse(raw.trim())
        .map_err(|e| Error::InvalidInput(format!("base URL `{raw}` is not a URL: {e}")))?;
    check_url_scheme(&url, allow_insecure_http)?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidInput(format!("base URL `{raw}` has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidInput(format!(
            "base URL `{raw}` must not have a query or fragment"
        )));
    }
    let mut url = url;
    let trimmed = url.path().trim_end_matches('/').to_string();
    url.set_path(&trimmed);
    Ok(url)
}

fn check_url_scheme(url: &Url, allow_insecure_http: bool) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback(url) => Ok(()),
        "http" => Err(Error::InvalidInput(format!(
            "refusing plain http:// to {}: credentials would cross the network unencrypted (use https, or opt in to insecure http)",
            url.host_str().unwrap_or("?")
        ))),
        other => Err(Error::InvalidInput(format!(
            "unsupported URL scheme `{other}` in {url}"
        ))),
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Same scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Which redirects a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirects {
    /// Only to the same origin: for clients that carry credentials (custom credential headers
    /// and query tokens are not stripped by a cross-origin redirect, so none is followed).
    SameOriginOnly,
    /// Up to 5 hops anywhere: only for clients that carry no credentials.
    Any,
}

/// Builds a `reqwest::Client` with the crate's TLS choice, timeouts and redirect rule.
///
/// `streaming` clients (downloads) get a read timeout instead of a whole-request timeout, so a
/// large file is not cut at an arbitrary point.
pub fn build_client(
    options: &HttpOptions,
    redirects: Redirects,
    streaming: bool,
) -> Result<reqwest::Client> {
    let policy = match redirects {
        Redirects::Any => reqwest::redirect::Policy::limited(5),
        Redirects::SameOriginOnly => reqwest::redirect::Policy::custom(|attempt| {
            let first = attempt.previous().first().cloned();
            match first {
                _ if attempt.previous().len() > 5 => attempt.error("too many redirects"),
                Some(first) if same_origin(&first, attempt.url()) => attempt.follow(),
                _ => attempt.stop(),
            }
        }),
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(options.user_agent.clone())
        .connect_timeout(options.connect_timeout)
        .redirect(policy);
    builder = if streaming {
        builder.read_timeout(options.download_read_timeout)
    } else {
        builder.timeout(options.timeout)
    };
    builder = tls(builder);
    builder
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot build the HTTP client: {e}")))
}

#[cfg(feature = "rustls")]
fn tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    builder.tls_backend_preconfigured(config)
}

#[cfg(all(not(feature = "rustls"), feature = "native-tls"))]
fn tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder.tls_backend_native()
}

#[cfg(all(not(feature = "rustls"), not(feature = "native-tls")))]
fn tls(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
}

/// Whether a request may carry the vendor's credentials: only when it goes to the configured
/// base URL's origin.
pub fn may_carry_credentials(base: &Url, request_url: &Url) -> bool {
    same_origin(base, request_url)
}

/// Executes a request inside one tracing span (`http.request`: method, path, status,
/// duration). Neither query string nor headers are recorded: they may carry credentials.
pub async fn traced_execute(
    client: &reqwest::Client,
    request: reqwest::Request,
    operation: &str,
) -> reqwest::Result<reqwest::Response> {
    use tracing::Instrument;
    let span = tracing::debug_span!(
        "http.request",
        operation,
        method = %request.method(),
        host = request.url().host_str().unwrap_or(""),
        path = request.url().path(),
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = client.execute(request).instrument(span.clone()).await;
    span.record("duration_ms", started.elapsed().as_millis() as u64);
    match &result {
        Ok(response) => {
            span.record("status", response.status().as_u16());
            span.in_scope(|| tracing::debug!("response"));
        }
        Err(e) => span.in_scope(|| tracing::debug!(error = %transport_cause(e), "request failed")),
    }
    result
}

/// A reqwest error with its URL removed (URLs can carry query tokens).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), &redact_query(url));
    }
    text
}

/// A transport failure for error messages: the root cause first (connection refused, DNS
/// failure, TLS error, timeout, connection reset…), then the whole source chain, URLs
/// redacted. reqwest's own text ("error sending request for url …") hides the cause.
pub fn transport_cause(e: &reqwest::Error) -> String {
    let mut chain = vec![without_url(e)];
    let mut source = std::error::Error::source(e);
    let mut io_kind = None;
    let mut tls = false;
    while let Some(cause) = source {
        // An `io::Error`'s `source()` skips the error it wraps: look inside by hand.
        let mut inner = Some(cause);
        while let Some(e) = inner {
            tls |= is_tls_error(e);
            let io = e.downcast_ref::<std::io::Error>();
            if let Some(io) = io
                && io.kind() != std::io::ErrorKind::Other
            {
                io_kind.get_or_insert(io.kind());
            }
            inner = io
                .and_then(|io| io.get_ref())
                .map(|e| e as &(dyn std::error::Error + 'static));
        }
        let text = cause.to_string();
        if !chain.last().is_some_and(|last| last.contains(&text)) {
            chain.push(text);
        }
        source = cause.source();
    }
    let all = chain.join(": ");
    let lower = all.to_ascii_lowercase();
    use std::io::ErrorKind as K;
    let cause = match io_kind {
        _ if tls => "TLS error",
        Some(K::ConnectionRefused) => "connection refused",
        Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe) => "connection reset",
        Some(K::TimedOut) => "timeout",
        _ if lower.contains("dns error") || lower.contains("failed to lookup address") => {
            "DNS failure"
        }
        _ if lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl") => {
            "TLS error"
        }
        _ if e.is_timeout() => "timeout",
        _ if lower.contains("connection refused") => "connection refused",
        _ if lower.contains("reset") => "connection reset",
        _ if e.is_connect() => "cannot connect",
        _ if e.is_body() || e.is_decode() => "the answer was cut short",
        _ => "request failed",
    };
    format!("{cause} ({all})")
}

#[cfg(feature = "rustls")]
fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<rustls::Error>()
}

#[cfg(not(feature = "rustls"))]
fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("tls") || text.contains("ssl") || text.contains("certificate")
}

/// The URL with its query values and userinfo blanked, safe for messages and logs.
pub fn redact_query(url: &Url) -> String {
    let mut safe = url.clone();
    let _ = safe.set_password(None);
    let _ = safe.set_username("");
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), "…".to_string()))
            .collect();
        safe.query_pairs_mut().clear().extend_pairs(pairs);
    }
    safe.to_string()
}

/// How a vendor describes its error bodies, for [`map_error`].
pub struct VendorErrors<'a> {
    /// The vendor's short name.
    pub vendor: &'static str,
    /// The response header carrying a request or correlation id, if the vendor sends one.
    pub request_id_header: Option<&'a str>,
    /// HTTP statuses that mean "credentials rejected" for this vendor.
    pub auth_statuses: &'a [u16],
}

/// A vendor's error body, reduced to code and message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VendorError {
    pub code: Option<String>,
    pub message: String,
}

impl<'a> VendorErrors<'a> {
    /// Converts a failed generated-client call to [`Error`], describing the typed error body with
    /// `describe`. Bodies of unexpected responses are read up to [`ERROR_BODY_LIMIT`].
    pub async fn map<E>(
        &self,
        operation: &str,
        err: ApiFailure<E>,
        describe: impl FnOnce(&E) -> VendorError,
    ) -> Error {
        use ApiFailure as P;
        match err {
            P::InvalidRequest(msg) => Error::InvalidInput(msg),
            P::Transport(e) => self.transport(operation, e),
            P::Body(e) if caused_by_size_limit(&e) => Error::Decode {
                vendor: self.vendor,
                operation: operation.to_string(),
                message: BodyTooLarge {
                    limit: API_BODY_LIMIT,
                }
                .to_string(),
                excerpt: String::new(),
                source: None,
            },
            P::Body(e) => Error::Transport {
                operation: operation.to_string(),
                maybe_sent: true,
                source: transport_cause(&e).into(),
            },
            P::Answer {
                status,
                headers,
                body,
            } => self.api(status.as_u16(), &headers, describe(&body)),
            P::Payload { body, error } => {
                // serde quotes the offending value: a token of an unexpected type must not be.
                let message = crate::hide_credentials_of(&error.to_string(), &body);
                let source: Option<BoxError> = if message == error.to_string() {
                    Some(Box::new(error))
                } else {
                    None
                };
                Error::Decode {
                    vendor: self.vendor,
                    operation: operation.to_string(),
                    message,
                    excerpt: excerpt(&body),
                    source,
                }
            }
            P::Unexpected(response) => self.unexpected(operation, response).await,
        }
    }

    /// A transport error; `maybe_sent` is false for connect failures.
    pub fn transport(&self, operation: &str, e: reqwest::Error) -> Error {
        Error::Transport {
            operation: operation.to_string(),
            maybe_sent: !e.is_connect(),
            source: transport_cause(&e).into(),
        }
    }

    /// An error answer with a known status and a described body.
    pub fn api(&self, status: u16, headers: &HeaderMap, described: VendorError) -> Error {
        // A vendor's message may echo what it was sent (`AuthToken=…`, `"password": …`).
        let message = crate::mask_credentials(&described.message);
        if self.auth_statuses.contains(&status) {
            return Error::Auth {
                vendor: self.vendor,
                status,
                message,
            };
        }
        Error::Api {
            vendor: self.vendor,
            status: Some(status),
            code: described.code,
            message,
            request_id: self.request_id(headers),
            retry_after: retry_after(headers),
        }
    }

    fn request_id(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.request_id_header?;
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// A response the spec does not list: an HTML error page, a 502 from a proxy, a 200 with
    /// the wrong content type.
    pub async fn unexpected(&self, operation: &str, response: reqwest::Response) -> Error {
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_string();
        let body = read_limited(response, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        if status.is_success() {
            return Error::Decode {
                vendor: self.vendor,
                operation: operation.to_string(),
                message: format!(
                    "unexpected HTTP {} answer ({content_type})",
                    status.as_u16()
                ),
                excerpt: excerpt(&body),
                source: None,
            };
        }
        let reason = status.canonical_reason().unwrap_or("error");
        // Some servers answer errors with no body at all (DocSpace's file handler: 403, 404):
        // say so rather than end the message on an empty excerpt.
        let message = if body.is_empty() {
            format!("{reason} (empty answer)")
        } else {
            format!("{reason} ({content_type}): {}", excerpt(&body))
        };
        self.api(
            status.as_u16(),
            &headers,
            VendorError {
                code: None,
                message,
            },
        )
    }
}

/// What every vendor's `exec` hook runs on a response before the generated code reads it:
/// error answers become decodable as the vendor's error schema
/// ([`normalize_error_response`]), and every answer, whatever its content type, is cut off at
/// [`API_BODY_LIMIT`] so a hostile server cannot exhaust memory. Report files do not come
/// this way: they are streamed by [`open_url`] and [`Job::download_to`](crate::Job::download_to).
pub async fn guard_response(
    response: reqwest::Response,
    envelope: impl FnOnce(String) -> serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    let response = normalize_error_response(response, envelope).await?;
    Ok(limit_body(response, API_BODY_LIMIT))
}

/// Wraps an API answer's body so reading past `limit` bytes fails with [`BodyTooLarge`],
/// whatever its content type: a status answer declared `application/octet-stream` is read
/// into memory by the generated code just the same.
pub fn limit_body(response: reqwest::Response, limit: usize) -> reqwest::Response {
    // A body of a declared length cannot grow past it (hyper reads exactly `Content-Length`
    // bytes; h2 refuses DATA beyond it): within the limit, nothing to guard, and the answer
    // is read as received instead of through a rebuilt response and a stream adapter.
    if response.content_length().is_some_and(|n| n <= limit as u64) {
        return response;
    }
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let mut seen = 0usize;
    let body = response.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(|e| -> BoxError { Box::new(e) })?;
        seen += chunk.len();
        if seen > limit {
            return Err(Box::new(BodyTooLarge { limit }) as BoxError);
        }
        Ok(chunk)
    });
    let mut rebuilt = http::Response::new(reqwest::Body::wrap_stream(body));
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}

/// Makes an error answer decodable as the vendor's error schema.
///
/// Generated clients decode every error body as the vendor's JSON error type, so an HTML page
/// from a proxy (502), an empty 401 or a cut-off body would surface as a decode error and lose
/// the HTTP status and `Retry-After`. For an error status whose body is not JSON, this returns
/// a response with the same status and headers whose body is `envelope(text)`: the vendor's
/// error shape carrying a short excerpt of the original body. Success answers pass untouched.
pub async fn normalize_error_response(
    response: reqwest::Response,
    envelope: impl FnOnce(String) -> serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() || status.is_redirection() {
        return Ok(response);
    }
    let mut headers = response.headers().clone();
    let version = response.version();
    let body = match read_limited(response, ERROR_BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => Bytes::new(),
    };
    let body = if serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object()) {
        body
    } else {
        let text = if body.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            format!(
                "{} ({}): {}",
                status.canonical_reason().unwrap_or("error"),
                headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("no content type"),
                excerpt(&body)
            )
        };
        Bytes::from(serde_json::to_vec(&envelope(text)).expect("JSON values serialize"))
    };
    headers.remove(reqwest::header::CONTENT_LENGTH);
    headers.remove(reqwest::header::CONTENT_ENCODING);
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static("application/json"),
    );
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok(reqwest::Response::from(rebuilt))
}

fn caused_by_size_limit(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<BodyTooLarge>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Reads at most `limit` bytes of a body (the rest is dropped).
pub async fn read_limited(response: reqwest::Response, limit: usize) -> Result<Bytes> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Transport {
            operation: "read body".into(),
            maybe_sent: true,
            source: transport_cause(&e).into(),
        })?;
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(Bytes::from(out))
}

/// `Retry-After` as a duration: delta-seconds or an HTTP date; capped at one day.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs = if let Ok(secs) = value.parse::<u64>() {
        secs
    } else {
        let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .num_seconds()
            .max(0) as u64
    };
    Some(Duration::from_secs(secs.min(86_400)))
}

/// The file name from a `Content-Disposition` header (`filename*=` preferred), without any
/// folder part.
pub fn content_disposition_file_name(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(reqwest::header::CONTENT_DISPOSITION)?
        .to_str()
        .ok()?;
    let mut plain = None;
    let mut extended = None;
    for part in value.split(';').map(str::trim) {
        if let Some(v) = part.strip_prefix("filename*=") {
            // RFC 5987: charset'lang'percent-encoded
            let encoded = v.rsplit('\'').next().unwrap_or(v);
            extended = percent_decode(encoded);
        } else if let Some(v) = part.strip_prefix("filename=") {
            plain = Some(v.trim_matches('"').to_string());
        }
    }
    let name = extended.or(plain)?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or(&name).trim();
    (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Opens `url` from `offset` on (with `Range`), as an artifact byte stream.
///
/// `authorize` adds credentials to the request; it is called only when the URL is on the
/// `base` origin, so a pre-signed or foreign URL never receives them.
pub async fn open_url(
    client: &reqwest::Client,
    errors: &VendorErrors<'_>,
    url: &str,
    offset: u64,
    base: &Url,
    authorize: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<Download> {
    let parsed = Url::parse(url)
        .map_err(|e| Error::InvalidInput(format!("artifact URL is not a URL: {e}")))?;
    check_url_scheme(&parsed, is_loopback(base) || base.scheme() == "http")?;
    let mut request = client.get(parsed.clone());
    if offset > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
    }
    if may_carry_credentials(base, &parsed) {
        request = authorize(request);
    }
    let request = request
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot build the download request: {e}")))?;
    let response = traced_execute(client, request, "download")
        .await
        .map_err(|e| errors.transport("download", e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(errors.unexpected("download", response).await);
    }
    let headers = response.headers();
    let partial = status == reqwest::StatusCode::PARTIAL_CONTENT;
    let (start, total) = if partial {
        content_range(headers).unwrap_or((offset, None))
    } else {
        (0, response.content_length())
    };
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let compression = if headers
        .get(reqwest::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"))
        || content_type.as_deref().is_some_and(|t| t.contains("gzip"))
    {
        Compression::Gzip
    } else {
        Compression::None
    };
    let file_name = content_disposition_file_name(headers);
    let vendor = errors.vendor;
    let body = response
        .bytes_stream()
        .map_err(move |e| Error::Transport {
            operation: format!("{vendor} download"),
            maybe_sent: true,
            source: transport_cause(&e).into(),
        })
        .boxed();
    Ok(Download {
        file_name,
        content_type,
        total_size: total,
        offset: start,
        compression,
        body,
    })
}

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL).
fn content_range(headers: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let value = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(check_base_url("https://ofd.ru/", false).is_ok());
        assert_eq!(
            check_base_url("https://api.cloud.im/marketplace/eu/", false)
                .unwrap()
                .as_str(),
            "https://api.cloud.im/marketplace/eu"
        );
        assert!(check_base_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_base_url("http://localhost:8080", false).is_ok());
        assert!(check_base_url("http://[::1]:8080", false).is_ok());
        let err = check_base_url("http://ofd.ru", false).unwrap_err();
        assert!(err.to_string().contains("refusing plain http://"), "{err}");
        assert!(check_base_url("http://ofd.ru", true).is_ok());
        assert!(check_base_url("ftp://ofd.ru", true).is_err());
        assert!(check_base_url("not a url", true).is_err());
        assert!(check_base_url("https://ofd.ru/?AuthToken=x", true).is_err());
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Url::parse("https://ofd.ru/api").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://ofd.ru/x?y=1").unwrap()
        ));
        assert!(!same_origin(&a, &Url::parse("http://ofd.ru/x").unwrap()));
        assert!(!same_origin(
            &a,
            &Url::parse("https://ofd.ru:8443/x").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://evil.ofd.ru/x").unwrap()
        ));
    }

    #[test]
    fn query_values_are_redacted() {
        let url = Url::parse("https://u:p@ofd.ru/r?AuthToken=secret&Id=1").unwrap();
        let safe = redact_query(&url);
        assert!(!safe.contains("secret") && !safe.contains("u:p"), "{safe}");
        assert!(safe.contains("AuthToken="), "{safe}");
    }

    #[test]
    fn vendor_messages_echoing_credentials_are_masked() {
        let errors = VendorErrors {
            vendor: "v",
            request_id_header: None,
            auth_statuses: &[401],
        };
        for status in [401, 400] {
            let e = errors.api(
                status,
                &HeaderMap::new(),
                VendorError {
                    code: None,
                    message: "bad request AuthToken=s3cr3t-tok, password: hunter2".into(),
                },
            );
            let text = format!("{e} {e:?}");
            assert!(
                !text.contains("s3cr3t") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }

    #[test]
    fn retry_after_parses_seconds_and_caps() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(120)));
        h.insert(RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(86_400)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn content_disposition_names_are_sanitised() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::CONTENT_DISPOSITION,
            "attachment; filename=\"../../etc/passwd\"".parse().unwrap(),
        );
        assert_eq!(content_disposition_file_name(&h).as_deref(), Some("passwd"));
        h.insert(
            reqwest::header::CONTENT_DISPOSITION,
            "attachment; filename=\"a.xlsx\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D0%B5%D1%82.xlsx"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            content_disposition_file_name(&h).as_deref(),
            Some("отчет.xlsx")
        );
    }

    #[test]
    fn content_range_is_parsed() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::CONTENT_RANGE,
            "bytes 100-199/1000".parse().unwrap(),
        );
        assert_eq!(content_range(&h), Some((100, Some(1000))));
        h.insert(
            reqwest::header::CONTENT_RANGE,
            "bytes 100-199/*".parse().unwrap(),
        );
        assert_eq!(content_range(&h), Some((100, None)));
    }
}
