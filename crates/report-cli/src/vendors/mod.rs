//! Each vendor's connection and report options, and how they become an adapter and a request.
//!
//! A vendor is one file here, `<name>.rs`, implementing [`CliVendor`] on its unit type `Cli`.
//! The workspace's one list of vendors ([`report_sandbox::for_each_vendor!`]) declares the
//! modules, the subcommands ([`VendorCommands`]) and every per-vendor dispatch
//! ([`with_vendor`]), so a vendor in the list has its subcommand, its demo job, its runner
//! registration and its sandbox lines once its file exists, and does not compile before.

use std::future::Future;

use clap::Args;
use report_core::{HttpOptions, ReportAdapter};
use report_runner::{JobRecord, Registry};
use report_sandbox::{Sandbox, Vendor};

use crate::cli::{Common, VendorCommand};
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, ListReports};

/// A vendor as the CLI drives it.
pub trait CliVendor {
    /// Its entry in the one list.
    const VENDOR: Vendor;
    /// The subcommand's one-line help, naming the variables it reads.
    const ABOUT: &'static str;
    /// The demo's file extension.
    const DEMO_EXTENSION: &'static str;
    /// The report options naming a report's kind and the kind when absent, so that the runner
    /// learns each kind's durations apart; `None`: the vendor has one kind of report.
    const KIND_FLAG: Option<(&'static str, &'static str)>;

    /// `reports <vendor> …`: usually a [`VendorCommand`].
    type Command: Args + VendorArgs + std::fmt::Debug;
    /// Connection options (flags, environment) → adapter; the worker connects with them too.
    type Connection: Connect + Args + Send + Sync + 'static;
    /// The report options of `run`, `start` and `submit`.
    type Options: Args + BuildRequest<Request<Self>> + 'static;

    /// The demo's adapter, on the sandbox's built-in account.
    fn for_sandbox(sandbox: &Sandbox, http: HttpOptions) -> Result<Adapter<Self>, Failure>;
    /// The demo's request (the same whichever port the sandbox serves on).
    fn sandbox_request() -> Request<Self>;
    /// The name of a demo job's file at the sandbox (which computed its checksum).
    fn sandbox_key(record: &JobRecord) -> Option<String> {
        record.ticket.as_ref().map(|t| t.id.clone())
    }
    /// What `reports sandbox` prints to use the sandbox with this vendor: `export …` lines.
    fn sandbox_env(sandbox: &Sandbox) -> String;
    /// How the worker puts a job's own webhook URL into its start request (`--webhook-url-base`);
    /// `None`: the vendor calls no webhooks.
    const WEBHOOK: Option<WithWebhook<Self>> = None;
    /// Settings of this vendor's jobs in the runner beyond its registration (limits).
    fn configure_runner(_registry: &mut Registry) {}
}

/// The adapter of a [`CliVendor`].
pub type Adapter<V> = <<V as CliVendor>::Connection as Connect>::Adapter;
/// The start request of a [`CliVendor`].
pub type Request<V> = <Adapter<V> as ReportAdapter>::Request;
/// How a job's webhook URL goes into a [`CliVendor`]'s start request.
pub type WithWebhook<V> = fn(Request<V>, &str) -> Request<V>;

/// A vendor's parsed command line: its options and how it runs.
pub trait VendorArgs {
    fn common(&self) -> &Common;
    fn execute(self) -> impl Future<Output = Result<(), Failure>>;
}

impl<C, O, L> VendorArgs for VendorCommand<C, O, L>
where
    C: Connect + ListReports<L> + Args,
    O: Args + BuildRequest<<C::Adapter as ReportAdapter>::Request>,
    L: Args,
    <C::Adapter as ReportAdapter>::Request: std::fmt::Debug,
{
    fn common(&self) -> &Common {
        &self.common
    }

    async fn execute(self) -> Result<(), Failure> {
        let common = self.common.clone();
        crate::jobs::execute(self, &common).await
    }
}

/// Something done with one vendor's [`CliVendor`] type, chosen by [`with_vendor`].
pub trait VendorVisitor {
    type Output;
    fn visit<V: CliVendor>(self) -> Self::Output;
}

/// Declares the vendors' modules, their subcommands and [`with_vendor`] from the one list.
macro_rules! cli_vendors {
    ($($(#[doc = $doc:literal])* $variant:ident = $module:ident;)+) => {
        $(pub mod $module;)+

        /// `reports <vendor> …`, one subcommand per vendor of the list.
        #[derive(Debug, clap::Subcommand)]
        pub enum VendorCommands {
            $(
                #[command(name = stringify!($module), about = <$module::Cli as CliVendor>::ABOUT)]
                $variant(Box<<$module::Cli as CliVendor>::Command>),
            )+
        }

        impl VendorCommands {
            /// The vendor of the command.
            #[cfg_attr(not(test), allow(dead_code))]
            pub fn vendor(&self) -> Vendor {
                match self {
                    $(VendorCommands::$variant(_) => <$module::Cli as CliVendor>::VENDOR,)+
                }
            }

            /// Its options.
            pub fn common(&self) -> &Common {
                match self {
                    $(VendorCommands::$variant(command) => command.common(),)+
                }
            }

            /// Runs it.
            pub async fn execute(self) -> Result<(), Failure> {
                match self {
                    $(VendorCommands::$variant(command) => command.execute().await,)+
                }
            }
        }

        /// Calls `visitor` with the [`CliVendor`] of `vendor`.
        pub fn with_vendor<F: VendorVisitor>(vendor: Vendor, visitor: F) -> F::Output {
            match vendor {
                $(Vendor::$variant => visitor.visit::<$module::Cli>(),)+
            }
        }
    };
}

report_sandbox::for_each_vendor!(cli_vendors);

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
        .allow_insecure_http(common.http.allow_insecure_http)
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
    if !common.secrets.password_stdin {
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

    use super::{CliVendor, VendorVisitor, with_vendor};
    use crate::cli::{Cli, Command};

    /// Every vendor of the workspace's one list has its subcommand, named after it, and its
    /// implementation is the one of that vendor.
    #[test]
    fn every_vendor_has_its_subcommand() {
        struct Listed;
        impl VendorVisitor for Listed {
            type Output = Vendor;
            fn visit<V: CliVendor>(self) -> Vendor {
                V::VENDOR
            }
        }
        for vendor in Vendor::ALL {
            assert_eq!(with_vendor(vendor, Listed), vendor);
            let args = ["reports", vendor.name(), "status", "--ticket", "{}"];
            let cli = Cli::try_parse_from(args)
                .unwrap_or_else(|e| panic!("`reports {}` is not a command: {e}", vendor.name()));
            let Command::Vendor(command) = cli.command else {
                panic!("`reports {}` is not a vendor's command", vendor.name());
            };
            assert_eq!(command.vendor(), vendor);
        }
    }
}
