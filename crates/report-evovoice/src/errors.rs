//! ServiceStack's error body and how it becomes a [`report_core::Error`].

use report_core::__private::VendorError;
use report_core::Error;

use crate::VENDOR;
use crate::generated::types::ErrorResponse;

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
