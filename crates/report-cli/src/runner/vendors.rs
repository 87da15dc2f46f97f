//! The five vendors for the runner: how `submit` checks and stores a job's options (exactly as
//! `run` would take them, never credentials) and how a worker turns them back into a request
//! and connects with its own environment.

use std::path::PathBuf;

use clap::{Args, Parser};
use report_runner::Registry;
use report_sandbox::Vendor;

use crate::cli::{Common, Deadline, Http, Logging, Output, Profiles, Secrets};
use crate::failure::Failure;
use crate::jobs::{BuildRequest, Connect, check_destination};
use crate::vendors::{CliVendor, VendorVisitor, by_name, with_vendor};

/// The connection whose credentials are the `run` variables (OFD_LOGIN, …).
pub const DEFAULT_CONNECTION: &str = "default";

/// A submit line: the vendor's run options and where the job goes.
#[derive(Debug, Parser)]
#[command(
    name = "reports submit",
    about = "Queue a report job: the vendor's run options, --out PATH, optionally --connection NAME and --db URL",
    disable_version_flag = true
)]
struct SubmitLine<O: Args> {
    #[command(flatten)]
    options: O,
    /// Where the worker saves the report.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// The named connection whose credentials the worker uses.
    #[arg(long, default_value = DEFAULT_CONNECTION, value_name = "NAME")]
    connection: String,
    /// Job database (see `reports worker --help`).
    #[arg(long, env = "REPORTS_DB", value_name = "URL")]
    db: Option<String>,
    // `submit` sends nothing and connects nowhere: of the common options it takes only these.
    #[command(flatten)]
    log: Logging,
    #[command(flatten)]
    output: Output,
}

/// A stored submit line as a worker reads it: also the options earlier versions took (and
/// stored) on `submit` though they did nothing there, so that the jobs they queued still run.
#[derive(Debug, Parser)]
#[command(name = "reports submit", disable_version_flag = true)]
struct StoredLine<O: Args> {
    #[command(flatten)]
    line: SubmitLine<O>,
    #[command(flatten)]
    _deadline: Deadline,
    #[command(flatten)]
    _profiles: Profiles,
    #[command(flatten)]
    _secrets: Secrets,
    #[command(flatten)]
    _http: Http,
}

/// A checked submit line.
pub struct Submitted {
    pub out: String,
    pub connection: String,
    pub db: Option<String>,
    pub json: bool,
    /// The options to store: the line without `--db` (a URL may hold a password).
    pub stored_args: Vec<String>,
}

/// Checks a submit line exactly as `run` checks its options; `Ok(None)` after printing help.
pub fn parse_submit(vendor: &str, args: &[String]) -> Result<Option<Submitted>, Failure> {
    let Some(vendor) = by_name(vendor) else {
        return Err(Failure::Usage(format!(
            "unknown vendor `{vendor}`; one of {}",
            crate::vendors::names()
        )));
    };
    with_vendor(vendor, Submit(args))
}

/// `parse` with the vendor's run options.
struct Submit<'a>(&'a [String]);

impl VendorVisitor for Submit<'_> {
    type Output = Result<Option<Submitted>, Failure>;

    fn visit<V: CliVendor>(self) -> Self::Output {
        parse::<V::Options, _>(self.0)
    }
}

fn parse<O, R>(args: &[String]) -> Result<Option<Submitted>, Failure>
where
    O: Args + BuildRequest<R>,
{
    let line = match SubmitLine::<O>::try_parse_from(line_argv(args)) {
        Ok(line) => line,
        Err(e) if !e.use_stderr() => {
            // --help: a closed pipe is not an error worth a panic.
            let _ = e.print();
            return Ok(None);
        }
        Err(e) => return Err(Failure::Usage(clap_message(&e))),
    };
    if line.out.as_os_str() == "-" {
        return Err(Failure::Usage(
            "--out -: a queued job cannot write to standard output; give a file path".into(),
        ));
    }
    let common = Common {
        log: line.log.clone(),
        output: line.output.clone(),
        ..Common::default()
    };
    check_destination(&line.out, &common)?;
    line.options.build()?;
    let out = std::path::absolute(&line.out)
        .map_err(|e| Failure::Usage(format!("--out {}: {e}", line.out.display())))?;
    Ok(Some(Submitted {
        out: out.display().to_string(),
        connection: line.connection,
        db: line.db,
        json: line.output.json,
        stored_args: without_db(args),
    }))
}

fn line_argv(args: &[String]) -> impl Iterator<Item = String> + '_ {
    std::iter::once("reports submit".to_string()).chain(args.iter().cloned())
}

/// A failure's message without the `error: ` prefix (the job's error gets its own context).
pub(super) fn failure_text(f: &Failure) -> String {
    let text = f.lines(false).join("; ");
    text.strip_prefix("error: ").unwrap_or(&text).to_string()
}

/// clap's message without its own `error: ` prefix (ours adds one).
pub(super) fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let text = text.trim();
    text.strip_prefix("error: ").unwrap_or(text).to_string()
}

/// The arguments without `--db URL` / `--db=URL`.
fn without_db(args: &[String]) -> Vec<String> {
    let mut kept = Vec::with_capacity(args.len());
    let mut skip_next = false;
    for arg in args {
        if std::mem::take(&mut skip_next) {
            continue;
        }
        if arg == "--db" {
            skip_next = true;
        } else if !arg.starts_with("--db=") {
            kept.push(arg.clone());
        }
    }
    kept
}

/// A vendor's connection from the worker's environment alone.
#[derive(Debug, Parser)]
#[command(name = "reports worker")]
pub(super) struct ConnectionOnly<C: Args> {
    #[command(flatten)]
    pub(super) connection: C,
}

/// Every vendor of the one list: connection `default` with the worker's environment (the `run`
/// variables), others from their profiles ([`super::connections`]).
pub fn registry(common: &Common) -> Registry {
    let mut registry = Registry::new();
    for vendor in Vendor::ALL {
        with_vendor(
            vendor,
            Register {
                registry: &mut registry,
                common,
            },
        );
    }
    registry
}

/// Registers one vendor with the worker's registry.
struct Register<'a> {
    registry: &'a mut Registry,
    common: &'a Common,
}

impl VendorVisitor for Register<'_> {
    type Output = ();

    fn visit<V: CliVendor>(self) {
        let name = V::VENDOR.name();
        match V::WEBHOOK {
            Some(with_webhook) => register_webhook::<V::Connection, V::Options>(
                self.registry,
                name,
                self.common,
                with_webhook,
            ),
            None => register::<V::Connection, V::Options>(self.registry, name, self.common),
        }
        V::configure_runner(self.registry);
        // Report kinds learn their typical durations apart: a vendor's report types differ
        // more than its date ranges do.
        if let Some((flag, default)) = V::KIND_FLAG {
            self.registry
                .report_kind(name, move |request| report_kind(request, flag, default));
        }
    }
}

/// The value of `flag` in a job's stored options (`--flag V` or `--flag=V`; the last wins,
/// as with clap), else `default`.
fn report_kind(request: &serde_json::Value, flag: &str, default: &str) -> String {
    let args: Vec<String> = serde_json::from_value(request["args"].clone()).unwrap_or_default();
    let mut kind = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == flag {
            kind = args.next().cloned().or(kind);
        } else if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
            kind = Some(value.to_string());
        }
    }
    kind.unwrap_or_else(|| default.to_string())
}

type Request<C> = <<C as Connect>::Adapter as report_core::ReportAdapter>::Request;

fn register<C, O>(registry: &mut Registry, vendor: &str, common: &Common)
where
    C: Connect + Args + Send + Sync + 'static,
    O: Args + BuildRequest<Request<C>> + 'static,
{
    let (connect, request) = connect_and_request::<C, O>(vendor, common);
    registry.register::<C::Adapter>(vendor, connect, request);
}

/// Registers a vendor whose start request takes a job's webhook URL.
fn register_webhook<C, O>(
    registry: &mut Registry,
    vendor: &str,
    common: &Common,
    with_webhook: fn(Request<C>, &str) -> Request<C>,
) where
    C: Connect + Args + Send + Sync + 'static,
    O: Args + BuildRequest<Request<C>> + 'static,
{
    let (connect, request) = connect_and_request::<C, O>(vendor, common);
    registry.register_with_webhook::<C::Adapter>(vendor, connect, request, with_webhook);
}

/// How a worker connects to a vendor (its environment for `default`, else the named
/// connection's profile and variables) and rebuilds a job's request.
#[allow(clippy::type_complexity)]
fn connect_and_request<C, O>(
    vendor: &str,
    common: &Common,
) -> (
    impl Fn(&str) -> Result<C::Adapter, String> + Send + Sync + 'static,
    impl Fn(&serde_json::Value) -> Result<Request<C>, String> + Send + Sync + 'static,
)
where
    C: Connect + Args + Send + Sync + 'static,
    O: Args + BuildRequest<Request<C>> + 'static,
{
    let common = common.clone();
    let name = vendor.to_string();
    (
        move |connection: &str| {
            if connection != DEFAULT_CONNECTION {
                return super::connections::connect::<C>(&name, connection, &common);
            }
            let parsed = ConnectionOnly::<C>::try_parse_from(["reports worker"])
                .map_err(|e| clap_message(&e))?;
            parsed
                .connection
                .connect(&common)
                .map_err(|f| failure_text(&f))
        },
        |request: &serde_json::Value| {
            let args: Vec<String> = serde_json::from_value(request["args"].clone())
                .map_err(|e| format!("stored options unreadable: {e}"))?;
            let stored =
                StoredLine::<O>::try_parse_from(line_argv(&args)).map_err(|e| clap_message(&e))?;
            stored.line.options.build().map_err(|f| failure_text(&f))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_url_is_never_stored() {
        let args: Vec<String> = [
            "--from",
            "x",
            "--db",
            "postgres://u:pw@h/db",
            "--db=sqlite:a",
            "--out",
            "o",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(without_db(&args), ["--from", "x", "--out", "o"]);
    }

    /// `submit` refuses the options that do nothing there, but a worker still reads the lines
    /// earlier versions stored with them.
    #[test]
    fn legacy_options_in_stored_lines_are_read_but_refused_on_submit() {
        let line: Vec<String> = [
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            "/tmp/r.zip",
            "--timeout",
            "5s",
            "--password-stdin",
        ]
        .map(String::from)
        .to_vec();
        type Ofd = <crate::vendors::ofd::Cli as CliVendor>::Options;
        assert!(SubmitLine::<Ofd>::try_parse_from(line_argv(&line)).is_err());
        let stored = StoredLine::<Ofd>::try_parse_from(line_argv(&line)).expect("read");
        assert_eq!(stored.line.out, PathBuf::from("/tmp/r.zip"));
        assert!(stored.line.options.build().is_ok());
        let without = &line[..line.len() - 3];
        assert!(SubmitLine::<Ofd>::try_parse_from(line_argv(without)).is_ok());
    }

    /// Every vendor of the one list is known to `submit`, by its exact name only (the worker's
    /// registry is keyed by it), and an unknown one is named with the list.
    #[test]
    fn submit_knows_every_vendor_of_the_list_by_its_exact_name() {
        for vendor in Vendor::ALL {
            let help = parse_submit(vendor.name(), &["--help".to_string()]);
            assert!(matches!(help, Ok(None)), "{vendor}");
        }
        let Err(Failure::Usage(text)) = parse_submit("DocSpace", &[]) else {
            panic!("a vendor name in another case was accepted");
        };
        assert_eq!(
            text,
            "unknown vendor `DocSpace`; one of docspace, evovoice, cloudblue, metakocka, ofd"
        );
    }

    #[test]
    fn docspace_connections_get_the_published_limits_and_the_others_none() {
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            common: Common,
        }
        let common = Line::try_parse_from(["reports"]).unwrap().common;
        let registry = registry(&common);
        let docspace = registry.limits("docspace", "default");
        assert_eq!(
            (docspace.writes, docspace.reads, docspace.per_minute),
            (Some(15), Some(50), Some(1500))
        );
        for vendor in Vendor::ALL.iter().filter(|v| **v != Vendor::DocSpace) {
            assert_eq!(
                registry.limits(vendor.name(), "default"),
                report_runner::Limits::default()
            );
        }
    }

    #[test]
    fn a_jobs_report_kind_is_its_type_option() {
        let stored = |args: &[&str]| serde_json::json!({ "args": args });
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            common: Common,
        }
        let registry = registry(&Line::try_parse_from(["reports"]).unwrap().common);
        let kind = |vendor, args: &[&str]| registry.kind_of(vendor, &stored(args));
        assert_eq!(
            kind("evovoice", &["--type", "calls", "--from", "x"]),
            "calls"
        );
        assert_eq!(kind("evovoice", &["--account-id", "a"]), "billing");
        assert_eq!(kind("ofd", &["--type=receipts", "--all-kkts"]), "receipts");
        assert_eq!(
            kind("metakocka", &["--report-id", "7", "--report-id", "9"]),
            "9"
        );
        assert_eq!(kind("cloudblue", &["--format", "csv"]), "csv");
        assert_eq!(kind("docspace", &["--participant", "p"]), "default");
        // Unreadable stored options: one kind, never a panic.
        assert_eq!(
            registry.kind_of("ofd", &serde_json::json!({ "args": 3 })),
            "default"
        );
    }
}
