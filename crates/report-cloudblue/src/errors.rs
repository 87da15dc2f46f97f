//! How CloudBlue's error answers become a [`report_core::Error`], keeping the correlation id
//! support asks for.

use report_core::__private::{VendorError, VendorErrors};

use crate::VENDOR;
use crate::generated::types::ErrorBody;

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
