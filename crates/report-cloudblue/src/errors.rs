//! How CloudBlue's error answers become a [`report_core::Error`], keeping the correlation id
//! support asks for.

use progenitor_client::Error as ProgenitorError;
use report_core::Error;
use report_core::http::{VendorError, VendorErrors};

use crate::generated::types::ErrorBody;

/// The short vendor name used in errors and tickets.
pub const VENDOR: &str = "cloudblue";

/// The header every CloudBlue answer carries with the request's id on CloudBlue's side.
pub const CORRELATION_ID_HEADER: &str = "X-Correlation-ID";

/// How the API's errors are read: 401 is a refused (or expired) token.
pub(crate) const ERRORS: VendorErrors<'static> = VendorErrors {
    vendor: VENDOR,
    request_id_header: Some(CORRELATION_ID_HEADER),
    auth_statuses: &[401],
};

/// How the blob host's errors are read. Azure names its request id `x-ms-request-id`; a 403
/// (expired signature) must stay an API error so report-core refreshes the link.
pub(crate) const BLOB_ERRORS: VendorErrors<'static> = VendorErrors {
    vendor: VENDOR,
    request_id_header: Some("x-ms-request-id"),
    auth_statuses: &[],
};

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

/// The error body for a non-JSON error answer (see
/// [`report_core::http::normalize_error_response`]).
pub(crate) fn body_for(text: String) -> serde_json::Value {
    serde_json::json!({ "message": text })
}

/// Converts a generated-client error, keeping the correlation id: from the
/// `X-Correlation-ID` header, else from the body's `correlationId`.
pub(crate) async fn map(operation: &str, e: ProgenitorError<ErrorBody>) -> Error {
    let correlation = correlation_id(&e);
    let mut error = ERRORS.map(operation, e, describe).await;
    match &mut error {
        Error::Api { request_id, .. } if request_id.is_none() => *request_id = correlation,
        // `Auth` has no request-id field: keep the id in the message.
        Error::Auth { message, .. } => {
            if let Some(id) = correlation {
                message.push_str(&format!(" (correlation id {id})"));
            }
        }
        _ => {}
    }
    error
}

fn correlation_id(e: &ProgenitorError<ErrorBody>) -> Option<String> {
    let ProgenitorError::ErrorResponse(answer) = e else {
        return None;
    };
    answer
        .headers()
        .get(CORRELATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| answer.as_ref().correlation_id.clone())
        .filter(|id| !id.trim().is_empty())
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
