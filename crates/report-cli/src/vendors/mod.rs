//! Each vendor's connection and report options, and how they become an adapter and a request.

pub mod cloudblue;
pub mod docspace;
pub mod evovoice;
pub mod metakocka;
pub mod ofd;

use report_core::HttpOptions;

use crate::cli::Common;
use crate::failure::Failure;

/// HTTP options from the common flags.
pub fn http_options(common: &Common) -> HttpOptions {
    HttpOptions::default()
        .allow_insecure_http(common.allow_insecure_http)
        .with_user_agent(concat!("reports/", env!("CARGO_PKG_VERSION")))
}

/// A credential that must be present, from its flag or environment variable.
pub fn required(value: &Option<String>, flag: &str, env: &str) -> Result<String, Failure> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(Failure::Usage(format!(
            "missing credential: set {env} or pass {flag}"
        ))),
    }
}
