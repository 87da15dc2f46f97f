//! How MetaKocka reports errors: inside HTTP 200, as an `opr_code` other than `"0"` with a
//! message in `opr_desc` (or `error_desc`, or `opr_desc_app`); and, rarely, as an HTTP error
//! status from a proxy or a failing server.

use report_core::__private::VendorError;
use report_core::Error;

use crate::VENDOR;
use crate::api::types::{ErrorAnswer, ReportAnswer};

/// The `opr_code` of success.
pub const OPR_OK: &str = "0";

/// The message of an error answer: `opr_desc`, else `error_desc`, else `opr_desc_app`.
fn message(
    opr_desc: &Option<String>,
    error_desc: &Option<String>,
    opr_desc_app: &Option<String>,
) -> Option<String> {
    [opr_desc, error_desc, opr_desc_app]
        .into_iter()
        .flatten()
        .map(|m| m.trim())
        .find(|m| !m.is_empty())
        .map(str::to_string)
}

/// Code and message of an answer with an HTTP error status.
pub(crate) fn describe(answer: &ErrorAnswer) -> VendorError {
    VendorError {
        code: answer.opr_code.clone().filter(|c| !c.is_empty()),
        message: message(&answer.opr_desc, &answer.error_desc, &answer.opr_desc_app)
            .unwrap_or_else(|| "no error message".to_string()),
    }
}

/// `Ok` for `opr_code` `"0"`; otherwise the typed error the answer carries.
///
/// The error is [`Error::Api`] with `status: None` (MetaKocka answers errors with HTTP 200),
/// `code` = the `opr_code`. The one exception is a refused secret key or company id, which
/// becomes [`Error::Auth`]; see [`is_credentials_refusal`].
pub fn check_answer(answer: &ReportAnswer) -> report_core::Result<()> {
    let code = answer.opr_code.trim();
    if code == OPR_OK {
        return Ok(());
    }
    let message = message(&answer.opr_desc, &answer.error_desc, &answer.opr_desc_app)
        .unwrap_or_else(|| format!("opr_code {code} without a description"));
    if is_credentials_refusal(code, &message) {
        return Err(Error::Auth {
            vendor: VENDOR,
            status: 200,
            message: format!("opr_code {code}: {message}"),
        });
    }
    Err(Error::detected(VENDOR, code, message))
}

/// Whether an error answer means "wrong secret key or company id".
///
/// MetaKocka publishes no table of `opr_code`s, and its public documentation uses `"1"` for
/// unrelated failures too (a wrong postal code, an interrupted job), so the code alone does not
/// say the credentials were refused. Only a code-1 answer whose message names the secret key
/// or the company id counts; everything else stays a typed [`Error::Api`] with its code.
pub fn is_credentials_refusal(opr_code: &str, message: &str) -> bool {
    let text = message.to_lowercase().replace(['_', '-'], " ");
    opr_code.trim() == "1" && (text.contains("secret") || text.contains("company id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: &str, desc: Option<&str>) -> ReportAnswer {
        ReportAnswer {
            opr_code: code.into(),
            opr_desc: desc.map(str::to_string),
            error_desc: None,
            opr_desc_app: None,
            opr_time_ms: None,
            opr_time_no_lock_ms: None,
            progress: None,
            token: None,
            url: None,
        }
    }

    #[test]
    fn zero_is_success() {
        assert!(check_answer(&answer("0", None)).is_ok());
    }

    #[test]
    fn other_codes_are_typed_api_errors() {
        let err =
            check_answer(&answer("6", Some("Report with this token does not exist."))).unwrap_err();
        match err {
            Error::Api {
                status,
                code,
                message,
                ..
            } => {
                assert_eq!(status, None);
                assert_eq!(code.as_deref(), Some("6"));
                assert_eq!(message, "Report with this token does not exist.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_message_fields_are_read() {
        let mut a = answer("1", None);
        a.error_desc = Some("Napačna poštna številka | ".into());
        let err = check_answer(&a).unwrap_err();
        assert!(
            matches!(&err, Error::Api { message, .. } if message == "Napačna poštna številka |"),
            "{err:?}"
        );
        let mut a = answer("2", Some("  "));
        a.opr_desc_app = Some("Unknown document type".into());
        assert!(
            check_answer(&a)
                .unwrap_err()
                .to_string()
                .contains("Unknown document type")
        );
        let bare = check_answer(&answer("5", None)).unwrap_err();
        assert!(
            bare.to_string()
                .contains("opr_code 5 without a description"),
            "{bare}"
        );
    }

    #[test]
    fn only_a_code_1_naming_the_credentials_is_an_auth_error() {
        let refused =
            check_answer(&answer("1", Some("Wrong secret_key or company_id."))).unwrap_err();
        assert!(
            matches!(refused, Error::Auth { status: 200, .. }),
            "{refused:?}"
        );
        let other = check_answer(&answer(
            "1",
            Some("java.lang.InterruptedException: sleep interrupted"),
        ))
        .unwrap_err();
        assert!(matches!(other, Error::Api { .. }), "{other:?}");
        let not_code_1 = check_answer(&answer("2", Some("secret key missing"))).unwrap_err();
        assert!(matches!(not_code_1, Error::Api { .. }), "{not_code_1:?}");
    }
}
