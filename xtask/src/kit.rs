//! The vendor-kit glue emitted into `crates/report-<vendor>/src/generated_kit.rs`: what every
//! vendor crate would otherwise write again by hand, and what Rust's orphan rule keeps in the
//! vendor crate, written from the spec's `x-codegen` settings so that every vendor crate has
//! the same shape:
//!
//! - the vendor's `VENDOR` name and `Profile` (report-core's `VendorProfile`: error body,
//!   auth statuses, request-id header, the error body made for a non-JSON answer);
//! - the generated client's `ClientHooks` impl (credentials to the API's origin only, tracing,
//!   bounded bodies) and the conversion of its errors into report-core's `ApiFailure`;
//! - the client's `api()`, `base_url()`, `call()` (and `ensure_token()`), the configuration's
//!   `with_base_url()`, `with_http()` (and `with_clock()`);
//! - the `api` and `mock` modules, the re-exports of report-core, and the fuzz entry.

use std::fmt::Write as _;

use crate::spec::{Spec, SpecError, VendorSettings};

/// The report-core items every vendor crate re-exports: a user of one vendor crate needs no
/// other dependency.
const REEXPORTS: &str = "Artifact, BoxError, Clock, Compression, Download, DownloadOptions, \
    DownloadSummary, DurationPrior, Error, ExposeSecret, HttpOptions, Job, JobStats, MaxLag, \
    Nudge, Progress, ReportAdapter, Result, SecretString, Started, Status, Step, Ticket, \
    TokioClock, VirtualClock, WaitPolicy, WaitState";

/// The glue's Rust source (unformatted), or `None` for a spec without kit settings.
pub fn source(spec: &Spec) -> Result<Option<String>, SpecError> {
    let s = &spec.settings;
    let (vendor, hook_state, client, config) =
        match (&s.vendor, &s.hook_state, &s.client, &s.config) {
            (None, None, None, None) => return Ok(None),
            (Some(v), Some(h), Some(c), Some(g)) => (v, h, c, g),
            _ => {
                return Err(spec.error(
                None,
                "x-codegen needs all of `vendor`, `hook-state`, `client` and `config` (or none)",
            ));
            }
        };
    for (key, path) in [
        ("hook-state", Some(hook_state)),
        ("client", Some(client)),
        ("config", Some(config)),
        ("vendor.describe", Some(&vendor.describe)),
        ("vendor.request-id-in", vendor.request_id_in.as_ref()),
        ("token-refused", s.token_refused.as_ref()),
        ("fuzz-extras", s.fuzz_extras.as_ref()),
    ] {
        if let Some(path) = path
            && syn::parse_str::<syn::Path>(path).is_err()
        {
            return Err(spec.error(None, format!("x-codegen {key} `{path}` is not a Rust path")));
        }
    }
    if !spec
        .api
        .components
        .as_ref()
        .is_some_and(|c| c.schemas.contains_key(&vendor.error_body))
    {
        return Err(spec.error(
            None,
            format!(
                "x-codegen vendor.error-body `{}` is not a schema of the spec",
                vendor.error_body
            ),
        ));
    }
    let title = &spec.api.info.title;
    let mut out = String::new();
    write!(
        out,
        r#"//! The vendor kit's glue for this crate (see ARCHITECTURE.md): the same in every vendor
//! crate, from the spec's `x-codegen` settings.

use report_core::__private as kit;

pub use report_core::{{self, {REEXPORTS}}};

/// The generated {title} client and its types.
pub mod api {{
    pub use crate::generated::*;
}}

/// Typed httpmock helpers generated from the same spec, for testing code that uses this crate.
#[cfg(feature = "mock")]
#[allow(clippy::all, clippy::pedantic, missing_docs, unused)]
#[path = "generated_mock.rs"]
pub mod mock;
"#
    )
    .expect("writing to a String");
    out.push_str(&profile(vendor)?);
    out.push_str(&hooks(hook_state));
    out.push_str(&client_methods(spec, client));
    out.push_str(&config_methods(spec, config));
    out.push_str(&fuzz_entry(spec));
    Ok(Some(out))
}

/// `VENDOR` and the `Profile` the kit reads errors with.
fn profile(v: &VendorSettings) -> Result<String, SpecError> {
    let name = &v.name;
    let body = &v.error_body;
    let statuses = v
        .auth_statuses
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let header = match &v.request_id_header {
        Some(h) => format!("Some({h:?})"),
        None => "None".into(),
    };
    let describe = &v.describe;
    let request_id_in = match &v.request_id_in {
        Some(path) => format!(
            "fn request_id_in(body: &crate::generated::types::{body}) -> Option<String> {{ {path}(body) }}"
        ),
        None => String::new(),
    };
    let text = json_macro(&v.error_text);
    Ok(format!(
        r#"
/// The short vendor name used in errors and tickets.
pub const VENDOR: &str = {name:?};

/// How the vendor kit reads this vendor's answers.
#[doc(hidden)]
#[derive(Debug)]
pub struct Profile;

impl kit::VendorProfile for Profile {{
    const NAME: &'static str = VENDOR;
    const AUTH_STATUSES: &'static [u16] = &[{statuses}];
    const REQUEST_ID_HEADER: Option<&'static str> = {header};
    type ErrorBody = crate::generated::types::{body};

    fn describe(body: &crate::generated::types::{body}) -> kit::VendorError {{
        {describe}(body)
    }}

    fn error_body_for(text: String) -> serde_json::Value {{
        serde_json::json!({text})
    }}

    {request_id_in}
}}
"#
    ))
}

/// A `serde_json::json!` body for `value`, with the string `$text` standing for the variable.
fn json_macro(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) if s == "$text" => "text".into(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(json_macro).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), json_macro(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

fn hooks(hook_state: &str) -> String {
    format!(
        r#"
impl progenitor_client::ClientHooks<{hook_state}> for crate::generated::Client {{
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        info: &progenitor_client::OperationInfo,
    ) -> std::result::Result<(), progenitor_client::Error<E>> {{
        kit::pre_hook(&self.inner, request, info.operation_id)
            .map_err(progenitor_client::Error::InvalidRequest)
    }}

    async fn exec(
        &self,
        request: reqwest::Request,
        info: &progenitor_client::OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {{
        kit::exec_hook::<Profile>(&self.client, request, info.operation_id).await
    }}
}}

/// The generated client on an endpoint, its hooks reading `state`.
pub(crate) fn generated_client(endpoint: &kit::Endpoint, state: {hook_state}) -> crate::generated::Client {{
    crate::generated::Client::new_with_client(endpoint.base_str(), endpoint.api.clone(), state)
}}

/// A generated call's answer in report-core's terms.
pub(crate) async fn answer<T, E>(
    call: impl std::future::Future<
        Output = std::result::Result<
            progenitor_client::ResponseValue<T>,
            progenitor_client::Error<E>,
        >,
    >,
) -> std::result::Result<T, kit::ApiFailure<E>> {{
    call.await
        .map(progenitor_client::ResponseValue::into_inner)
        .map_err(failure)
}}

/// The generated client's error as report-core's `ApiFailure`.
pub(crate) fn failure<E>(error: progenitor_client::Error<E>) -> kit::ApiFailure<E> {{
    use progenitor_client::Error as P;
    match error {{
        P::InvalidRequest(message) | P::Custom(message) => kit::ApiFailure::InvalidRequest(message),
        P::CommunicationError(e) | P::InvalidUpgrade(e) => kit::ApiFailure::Transport(e),
        P::ResponseBodyError(e) => kit::ApiFailure::Body(e),
        P::ErrorResponse(value) => kit::ApiFailure::Answer {{
            status: value.status(),
            headers: value.headers().clone(),
            body: value.into_inner(),
        }},
        P::InvalidResponsePayload(body, error) => kit::ApiFailure::Payload {{ body, error }},
        P::UnexpectedResponse(response) => kit::ApiFailure::Unexpected(response),
    }}
}}
"#
    )
}

fn client_methods(spec: &Spec, client: &str) -> String {
    let tokens = spec.settings.token_refused.as_ref();
    let (call_doc, renew, token_use, ensure_token) = match tokens {
        None => (
            "/// Runs one generated operation and maps its failure to [`Error`].",
            String::new(),
            "None".to_string(),
            String::new(),
        ),
        Some(refused) => (
            "/// Runs one generated operation with a usable token and maps its failure to \
             [`Error`]; a refused token is renewed once and the operation run again.",
            "let renew = || -> kit::BoxFuture<'_, report_core::Result<kit::Token>> { \
             Box::pin(self.renew_token()) };"
                .to_string(),
            format!(
                "Some(kit::TokenUse {{ cache: &self.api.inner.tokens, renew: &renew, refused: {refused} }})"
            ),
            "/// Makes sure a token good for at least the renewal margin is cached.\n\
             pub async fn ensure_token(&self) -> report_core::Result<()> {\n\
                 self.api.inner.tokens.get_or_renew(|| self.renew_token()).await.map(|_| ())\n\
             }\n\
             /// The opening of every start: the request's own check (`checked`, its error as it\n\
             /// is), then [`ensure_token`](Self::ensure_token), whose failure started nothing,\n\
             /// so the job may retry it ([`Error::before_start`]).\n\
             pub(crate) async fn before_start(&self, checked: report_core::Result<()>) -> report_core::Result<()> {\n\
                 checked?;\n\
                 self.ensure_token().await.map_err(Error::before_start)\n\
             }"
            .to_string(),
        ),
    };
    format!(
        r#"
impl {client} {{
    /// The API base URL: the only origin that gets credentials.
    pub fn base_url(&self) -> &url::Url {{
        kit::Credentials::origin(&self.api.inner)
    }}

    /// The generated client, for operations this wrapper does not cover. Its requests carry
    /// the credentials (to the API's own origin only); run them with [`call`](Self::call).
    pub fn api(&self) -> &crate::generated::Client {{
        &self.api
    }}

    {call_doc}
    pub async fn call<T, F, Fut>(&self, operation: &str, f: F) -> report_core::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<
                progenitor_client::ResponseValue<T>,
                progenitor_client::Error<<Profile as kit::VendorProfile>::ErrorBody>,
            >,
        >,
    {{
        {renew}
        kit::call::<Profile, _, _, _>(operation, {token_use}, || answer(f())).await
    }}

    {ensure_token}
}}
"#
    )
}

fn config_methods(spec: &Spec, config: &str) -> String {
    let with_clock = if spec.settings.token_refused.is_some() {
        "/// Another clock for token expiry (a [`VirtualClock`] in tests).\n\
         pub fn with_clock(mut self, clock: std::sync::Arc<dyn Clock>) -> Self {\n\
             self.clock = Some(clock);\n\
             self\n\
         }"
    } else {
        ""
    };
    format!(
        r#"
impl {config} {{
    /// Another base URL (a sandbox, a mock, another region or portal).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {{
        self.base_url = base_url.into();
        self
    }}

    /// Other HTTP options (timeouts, user agent, the insecure-http opt-in).
    pub fn with_http(mut self, http: HttpOptions) -> Self {{
        self.http = http;
        self
    }}

    {with_clock}
}}
"#
    )
}

fn fuzz_entry(spec: &Spec) -> String {
    let extras = spec
        .settings
        .fuzz_extras
        .as_ref()
        .map(|m| format!("pub use {m}::*;"))
        .unwrap_or_default();
    format!(
        r#"
/// Internals the workspace's fuzzers and property tests drive directly
/// (`integration_tests::fuzzing`). Not part of the API: no stability promise.
#[doc(hidden)]
pub mod __fuzz {{
    pub use super::Profile;
    {extras}

    /// A failed generated call, as the client reports it.
    pub async fn map(
        operation: &str,
        error: progenitor_client::Error<<Profile as report_core::__private::VendorProfile>::ErrorBody>,
    ) -> report_core::Error {{
        report_core::__private::map_failure::<Profile>(operation, super::failure(error)).await
    }}
}}
"#
    )
}
