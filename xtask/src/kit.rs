//! The vendor-kit glue emitted into `crates/report-<vendor>/src/generated_kit.rs`: what Rust's
//! orphan rule keeps in the vendor crate (the generated client's `ClientHooks` impl, the
//! conversion of its errors into report-core's `ApiFailure`, the client's `api`/`base_url`/
//! `call`, the re-exports, the fuzz entry), written from the spec's `x-codegen` settings so
//! that every vendor crate has the same shape and none writes it by hand.

use crate::spec::{Spec, SpecError};

/// The report-core items every vendor crate re-exports: a user of one vendor crate needs no
/// other dependency.
const REEXPORTS: &str = "Artifact, Clock, Compression, Download, DownloadOptions, DownloadSummary, Error, \
    HttpOptions, Job, JobStats, Progress, ReportAdapter, Result, Status, Ticket, TokioClock, \
    VirtualClock, WaitPolicy";

/// The glue's Rust source (unformatted), or `None` for a spec without kit settings.
pub fn source(spec: &Spec) -> Result<Option<String>, SpecError> {
    let s = &spec.settings;
    let (hook_state, profile, client) = match (&s.hook_state, &s.profile, &s.client) {
        (None, None, None) => return Ok(None),
        (Some(h), Some(p), Some(c)) => (h, p, c),
        _ => {
            return Err(spec.error(
                None,
                "x-codegen needs all of `hook-state`, `profile` and `client` (or none)",
            ));
        }
    };
    for (key, path) in [
        ("hook-state", Some(hook_state)),
        ("profile", Some(profile)),
        ("client", Some(client)),
        ("token-refused", s.token_refused.as_ref()),
        ("fuzz-extras", s.fuzz_extras.as_ref()),
    ] {
        if let Some(path) = path
            && syn::parse_str::<syn::Path>(path).is_err()
        {
            return Err(spec.error(None, format!("x-codegen {key} `{path}` is not a Rust path")));
        }
    }
    let error_body = format!("<{profile} as kit::VendorProfile>::ErrorBody");
    let tokens = match &s.token_refused {
        None => "None".to_string(),
        Some(refused) => format!(
            "Some(kit::TokenUse {{ cache: &self.api.inner.tokens, renew: &renew, refused: {refused} }})"
        ),
    };
    let renew = if s.token_refused.is_some() {
        "let renew = || -> kit::BoxFuture<'_, report_core::Result<kit::Token>> { Box::pin(self.renew_token()) };"
    } else {
        ""
    };
    let call_doc = if s.token_refused.is_some() {
        "/// Runs one generated operation with a usable token and maps its failure to [`Error`]; \
         a refused token is renewed once and the operation run again.\n"
    } else {
        "/// Runs one generated operation and maps its failure to [`Error`].\n"
    };
    let ensure_token = if s.token_refused.is_some() {
        "/// Makes sure a token good for at least the renewal margin is cached.\n\
         pub async fn ensure_token(&self) -> report_core::Result<()> {\n\
             self.api.inner.tokens.get_or_renew(|| self.renew_token()).await.map(|_| ())\n\
         }\n"
    } else {
        ""
    };
    let extras = s
        .fuzz_extras
        .as_ref()
        .map(|m| format!("pub use {m}::*;"))
        .unwrap_or_default();
    Ok(Some(format!(
        r#"//! The vendor kit's glue for this crate (see ARCHITECTURE.md): what the orphan rule keeps
//! here, the same in every vendor crate.

use report_core::__private as kit;

pub use report_core::{{self, {REEXPORTS}}};

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
        kit::exec_hook::<{profile}>(&self.client, request, info.operation_id).await
    }}
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

    {call_doc}pub async fn call<T, F, Fut>(&self, operation: &str, f: F) -> report_core::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<
                progenitor_client::ResponseValue<T>,
                progenitor_client::Error<{error_body}>,
            >,
        >,
    {{
        {renew}
        kit::call::<{profile}, _, _, _>(operation, {tokens}, || answer(f())).await
    }}

    {ensure_token}
}}

/// Internals the workspace's fuzzers and property tests drive directly
/// (`integration_tests::fuzzing`). Not part of the API: no stability promise.
#[doc(hidden)]
pub mod __fuzz {{
    /// The vendor's profile: name, error body, `describe`, `error_body_for`, `errors()`.
    pub use {profile} as Profile;
    {extras}

    /// A failed generated call, as the client reports it.
    pub async fn map<E>(
        operation: &str,
        error: progenitor_client::Error<E>,
    ) -> report_core::Error
    where
        {profile}: report_core::__private::VendorProfile<ErrorBody = E>,
    {{
        report_core::__private::map_failure::<{profile}>(operation, super::failure(error)).await
    }}
}}
"#
    )))
}
