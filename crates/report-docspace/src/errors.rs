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

/// Code and message of a failure envelope.
pub(crate) fn describe(envelope: &ErrorEnvelope) -> VendorError {
    let info = envelope.error.as_ref();
    let code = info
        .and_then(|e| e.type_.clone())
        .filter(|t| !t.trim().is_empty());
    let message = info
        .and_then(|e| e.message.clone())
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| match envelope.status_code {
            Some(status) => format!("no error message (statusCode {status})"),
            None => "no error message (empty failure envelope)".to_string(),
        });
    VendorError { code, message }
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
