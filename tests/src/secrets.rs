//! What the tests look for when they prove that no secret escapes: the sandbox's demo
//! credentials, the tokens it issued, and every text an error shows.

use base64::Engine as _;
use report_sandbox::{RecordedRequest, Vendor, credentials as c};

/// The value of an HTTP Basic `Authorization` header for `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Every secret the sandbox's demo credentials consist of, by vendor (Basic encodings too).
pub fn sandbox_secrets() -> Vec<(Vendor, String)> {
    vec![
        (Vendor::Ofd, c::OFD_PASSWORD.into()),
        (Vendor::DocSpace, c::DOCSPACE_API_KEY.into()),
        (Vendor::DocSpace, c::DOCSPACE_API_KEY_2.into()),
        (Vendor::EvoVoice, c::EVOVOICE_PASSWORD.into()),
        (
            Vendor::EvoVoice,
            basic(c::EVOVOICE_USERNAME, c::EVOVOICE_PASSWORD),
        ),
        (Vendor::CloudBlue, c::CLOUDBLUE_PASSWORD.into()),
        (Vendor::CloudBlue, c::CLOUDBLUE_SUBSCRIPTION_KEY.into()),
        (
            Vendor::CloudBlue,
            basic(c::CLOUDBLUE_USERNAME, c::CLOUDBLUE_PASSWORD),
        ),
        (Vendor::MetaKocka, c::METAKOCKA_SECRET_KEY.into()),
    ]
}

/// Tokens the sandbox issued, as the clients sent them back: OFD.ru `AuthToken` query values
/// and CloudBlue bearer JWTs.
pub fn issued_tokens(requests: &[RecordedRequest]) -> Vec<(Vendor, String)> {
    let mut tokens = Vec::new();
    for r in requests {
        if r.origin == "ofd"
            && let Some(query) = &r.query
        {
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                if key.eq_ignore_ascii_case("AuthToken") {
                    tokens.push((Vendor::Ofd, value.into_owned()));
                }
            }
        }
        if r.origin == "cloudblue"
            && let Some(token) = r
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
        {
            tokens.push((Vendor::CloudBlue, token.to_string()));
        }
    }
    tokens.sort();
    tokens.dedup();
    tokens
}

/// Everything an error can show: its Display and Debug, and those of every source.
pub fn error_text(e: &report_core::Error) -> String {
    let mut text = format!("{e}\n{e:?}\n");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!("{cause}\n{cause:?}\n"));
        source = cause.source();
    }
    text
}
