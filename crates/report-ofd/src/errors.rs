//! OFD.ru's error codes and how its failure envelope becomes a [`report_core::Error`].

use report_core::__private::VendorError;

use crate::generated::types::ErrorEnvelope;

report_core::lenient_enum! {
    /// Error codes OFD.ru documents (sections 3.1.2, 3.2.2, 4.1, 5.1.1).
    pub enum OfdErrorCode {
        /// The start date is after the end date.
        DateFromGreaterThanDateTo = "DateFromGreaterThanDateTo",
        /// The personal account (LKK) was not found.
        OfdAgreementNotFound = "OfdAgreementNotFound",
        /// Access is blocked.
        AccessDenied = "AccessDenied",
        /// The report would have too many records.
        ReportSizeError = "ReportSizeError",
        /// The account's quota is used up.
        LimitExhausted = "LimitExhausted",
        /// The report is not generated or does not exist.
        ReportNotDone = "ReportNotDone",
        /// The report to delete was not found.
        ReportNotFound = "ReportNotFound",
        /// Internal error of the report system.
        InternalError = "InternalError",
    }
}

impl OfdErrorCode {
    /// The first known code named in a list of error messages (a message may be the bare code
    /// or contain it).
    pub fn find(messages: &[String]) -> Option<OfdErrorCode> {
        messages.iter().find_map(|m| {
            OfdErrorCode::KNOWN
                .iter()
                .find(|code| m.contains(code.as_str()))
                .cloned()
        })
    }

    /// The typed code of an error from this crate, if it carries one.
    pub fn of(error: &report_core::Error) -> Option<OfdErrorCode> {
        error
            .vendor_code()
            .map(|c| c.parse().unwrap_or_else(|never| match never {}))
    }
}

/// Code and message of a failure envelope.
pub(crate) fn describe(envelope: &ErrorEnvelope) -> VendorError {
    let code = OfdErrorCode::find(&envelope.errors).map(|c| c.to_string());
    let message = if envelope.errors.is_empty() {
        "no error message (empty failure envelope)".to_string()
    } else {
        envelope.errors.join("; ")
    };
    VendorError { code, message }
}
