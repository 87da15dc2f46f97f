//! Each vendor's connection and report options, and how they become an adapter and a request.

pub mod cloudblue;
pub mod docspace;
pub mod evovoice;
pub mod metakocka;
pub mod ofd;

use report_core::HttpOptions;
use report_sandbox::Vendor;

use crate::cli::Common;
use crate::failure::Failure;

/// The vendor of the one list ([`Vendor::ALL`]) called exactly `name`. Exact, unlike
/// `Vendor::from_str`: queued jobs and profile keys are matched by this spelling.
pub fn by_name(name: &str) -> Option<Vendor> {
    Vendor::ALL.into_iter().find(|v| v.name() == name)
}

/// The vendors' names, comma-separated, for messages.
pub fn names() -> String {
    Vendor::ALL.map(Vendor::name).join(", ")
}

/// HTTP options from the common flags.
pub fn http_options(common: &Common) -> HttpOptions {
    HttpOptions::default()
        .allow_insecure_http(common.allow_insecure_http)
        .with_user_agent(concat!("reports/", env!("CARGO_PKG_VERSION")))
}

/// Reports as JSON for `list`, with the query values of any URL blanked (pre-signed links carry
/// their signature there).
pub fn listed<T: serde::Serialize>(reports: &[T]) -> Vec<serde_json::Value> {
    reports
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .map(redact_urls)
        .collect()
}

fn redact_urls(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            match url::Url::parse(&s) {
                Ok(url) => Value::String(report_core::redact_query(&url)),
                Err(_) => Value::String(s),
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(redact_urls).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, redact_urls(v))).collect())
        }
        other => other,
    }
}

/// A value that must be present: from its flag or environment variable, else from the file
/// named by `<VAR>_FILE` (the Docker and Kubernetes convention for secrets).
pub fn required(value: &Option<String>, flag: &str, env: &str) -> Result<String, Failure> {
    if let Some(v) = given(value) {
        return Ok(v);
    }
    if let Some(v) = from_file_var(env)? {
        return Ok(v);
    }
    Err(Failure::Usage(format!(
        "missing credential: set {env} (or {env}_FILE) or pass {flag}"
    )))
}

/// The vendor's main secret: as [`required`], or from standard input with `--password-stdin`.
pub fn secret(
    value: &Option<String>,
    flag: &str,
    env: &str,
    common: &Common,
) -> Result<String, Failure> {
    if !common.password_stdin {
        return required(value, flag, env);
    }
    let text = read_secret(std::io::stdin().lock(), "standard input")?;
    Ok(text)
}

fn given(value: &Option<String>) -> Option<String> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Some(v.to_string()),
        _ => None,
    }
}

/// A secret file is one short line; a larger one is a mistake.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

fn from_file_var(env: &str) -> Result<Option<String>, Failure> {
    let var = format!("{env}_FILE");
    let Some(path) = std::env::var_os(&var).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let file = std::fs::File::open(&path).map_err(|e| {
        Failure::Usage(format!(
            "{var}: cannot read {}: {e}",
            std::path::Path::new(&path).display()
        ))
    })?;
    read_secret(file, &var).map(Some)
}

/// The first line of `source`, at most [`MAX_SECRET_BYTES`] read; never echoed in errors.
pub(crate) fn read_secret(source: impl std::io::Read, name: &str) -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    source
        .take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Usage(format!("cannot read the secret from {name}: {e}")))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(Failure::Usage(format!(
            "the secret from {name} is larger than 64 KiB"
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::Usage(format!("the secret from {name} is not UTF-8 text")))?;
    match text.lines().next().map(str::trim) {
        Some(line) if !line.is_empty() => Ok(line.to_string()),
        _ => Err(Failure::Usage(format!("the secret from {name} is empty"))),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use report_sandbox::Vendor;

    use crate::cli::{Cli, Command};

    /// The vendor a command works with. Exhaustive over the CLI's commands, so a new command is
    /// classified here.
    fn vendor_of(command: &Command) -> Option<Vendor> {
        match command {
            Command::Docspace(_) => Some(Vendor::DocSpace),
            Command::Evovoice(_) => Some(Vendor::EvoVoice),
            Command::Cloudblue(_) => Some(Vendor::CloudBlue),
            Command::Metakocka(_) => Some(Vendor::MetaKocka),
            Command::Ofd(_) => Some(Vendor::Ofd),
            Command::Demo(_)
            | Command::Sandbox(_)
            | Command::Completions { .. }
            | Command::Submit(_)
            | Command::Worker(_)
            | Command::Jobs(_) => None,
        }
    }

    /// Every vendor of the workspace's one list has its subcommand, named after it.
    #[test]
    fn every_vendor_has_its_subcommand() {
        for vendor in Vendor::ALL {
            let args = ["reports", vendor.name(), "status", "--ticket", "{}"];
            let cli = Cli::try_parse_from(args)
                .unwrap_or_else(|e| panic!("`reports {}` is not a command: {e}", vendor.name()));
            assert_eq!(vendor_of(&cli.command), Some(vendor));
        }
    }
}
