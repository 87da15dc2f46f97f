//! How DocSpace's failure envelope becomes a [`report_core::Error`], and the codes this crate
//! gives the errors it detects itself.

use report_core::__private::VendorError;
use report_core::Error;

use crate::VENDOR;
use crate::generated::types::ErrorEnvelope;

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
