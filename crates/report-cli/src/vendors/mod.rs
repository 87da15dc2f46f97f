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
            Command::Demo(_) | Command::Sandbox(_) | Command::Completions { .. } => None,
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
