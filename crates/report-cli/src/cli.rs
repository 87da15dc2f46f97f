//! The command-line interface. Its names are a contract other tools script against: keep them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::vendors;

const EXAMPLES: &str = "\
Examples:
  reports demo                                  run one job per vendor against the embedded sandbox
  reports ofd run --from 2024-01-01 --to 2024-01-31 --type ReceiptReport --all-kkts --out receipts.zip
  reports ofd start --from 2024-01-01 --to 2024-01-31 --type ReceiptReport --all-kkts > ticket.json
  reports ofd wait --ticket @ticket.json
  reports ofd download --ticket @ticket.json --out receipts.zip
  reports cloudblue run --from 2024-01-01 --to 2024-01-31 --format json --out rde.json
  reports docspace run --from 2024-01-01 --to 2024-01-31 --no-debit --out operations.xlsx
  reports evovoice run --from 2024-01-01 --to 2024-01-31 --account-id ACC --out billing.xlsx
  reports metakocka run --report-id 149 --param ADD_ATT_DATE_MK_DATUM_FROM=01.01.2024 --out r.pdf
  reports metakocka export --export-profile NAME --period 2024-01 --out export.zip
  reports sandbox                               serve the five simulators until Ctrl-C

Options follow the command they belong to (reports ofd run --json …); each command takes only
those it uses: reports <command> --help lists them.

Exit codes: 0 done; 1 the vendor reports the job failed or cancelled; 2 usage or invalid input
(nothing was sent); 3 credentials rejected; 4 transport error, vendor error or deadline;
5 not ready yet (status --exit-status); 130/143 interrupted by SIGINT/SIGTERM (the resume command
is printed).

Profiles: [profiles.NAME.<vendor>] tables of a config file give connection defaults
(base_url = \"…\", login = \"…\", password_file = \"…\"); flags and variables win. Plain
secrets there are refused unless the file is private (chmod 600).

Environment: REPORTS_LOG sets the log filter (tracing EnvFilter syntax, e.g. REPORTS_LOG=debug or
REPORTS_LOG=report_core=trace); NO_COLOR turns colours off. Every secret can come from a file
named by <VAR>_FILE (e.g. OFD_PASSWORD_FILE=/run/secrets/ofd).";

#[derive(Debug, Parser)]
#[command(
    name = "reports",
    version,
    about = "Start, wait for, download or cancel vendors' asynchronous reports.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options of a vendor's commands (they connect to the vendor). Every other command takes only
/// the groups it uses: an option that would do nothing for a command is refused there (exit 2).
#[derive(Debug, Clone, Default, Args)]
pub struct Common {
    #[command(flatten)]
    pub log: Logging,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub deadline: Deadline,
    #[command(flatten)]
    pub profiles: Profiles,
    #[command(flatten)]
    pub secrets: Secrets,
    #[command(flatten)]
    pub http: Http,
}

/// `-q`, `-v`, `--log-file`: every command that logs. (`display_order` keeps the order the
/// options had in `--help` before they were grouped.)
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct Logging {
    /// Print errors only: no progress, no warnings.
    #[arg(long, short, global = true, display_order = 2)]
    pub quiet: bool,
    /// More detail on errors and progress (repeat for HTTP tracing).
    #[arg(long, short, global = true, display_order = 4, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Also append every line printed and every log event, with timestamps, to FILE.
    #[arg(long, global = true, display_order = 8, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// `--json`: commands that print a result.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct Output {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true, display_order = 3)]
    pub json: bool,
}

/// `--timeout`: commands that wait for a vendor.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct Deadline {
    /// Overall deadline of the whole command (start, wait, download): 90, 90s, 30m, 2h, 1d
    /// (default: 24 hours for waiting).
    #[arg(long, global = true, display_order = 1, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

/// `--config`, `--profile`: commands that connect with the environment's credentials (`main`
/// applies the profile before parsing; these declare the flags).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct Profiles {
    /// Config file of profiles (default: $XDG_CONFIG_HOME/reports/config.toml, else
    /// ~/.config/reports/config.toml).
    #[arg(long, global = true, display_order = 6, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The profile of the config file to use (default: REPORTS_PROFILE, else `default`).
    #[arg(long, global = true, display_order = 7, value_name = "NAME")]
    pub profile: Option<String>,
}

/// `--password-stdin`: commands that read one secret, once.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct Secrets {
    /// Read the vendor's password, API key or secret key from the first line of standard input
    /// (secrets also come from <VAR>_FILE, e.g. OFD_PASSWORD_FILE).
    #[arg(long, global = true, display_order = 5)]
    pub password_stdin: bool,
}

/// `--allow-insecure-http`: commands that talk to a configured base URL.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct Http {
    /// Allow plain http:// to hosts other than loopback (credentials would travel unencrypted).
    #[arg(long, global = true, display_order = 9)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Vendor(vendors::VendorCommands),
    /// Queue a report job in the job database for `reports worker` (nothing is sent, no
    /// credentials needed): `reports submit <vendor> <run options> --out PATH`.
    Submit(crate::runner::SubmitArgs),
    /// Run queued jobs (credentials from this process's environment, as for `run`).
    Worker(crate::runner::WorkerArgs),
    /// List jobs, or show, cancel or retry one.
    Jobs(crate::runner::JobsArgs),
    /// Run one job per vendor against the embedded sandbox and print a summary.
    Demo(DemoArgs),
    /// Serve the five vendor simulators on loopback until interrupted.
    Sandbox(SandboxArgs),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The options of this command, the groups it does not take at their defaults.
    pub fn common(&self) -> Common {
        match self {
            Command::Vendor(command) => command.common().clone(),
            // `submit` parses its options from its own line (`runner::vendors::parse_submit`).
            Command::Submit(_) | Command::Completions { .. } => Common::default(),
            Command::Worker(args) => Common {
                log: args.log.clone(),
                deadline: args.deadline.clone(),
                profiles: args.profiles.clone(),
                http: args.http.clone(),
                ..Common::default()
            },
            Command::Jobs(args) => Common {
                log: args.log.clone(),
                output: args.output.clone(),
                ..Common::default()
            },
            Command::Demo(args) => Common {
                log: args.log.clone(),
                output: args.output.clone(),
                deadline: args.deadline.clone(),
                ..Common::default()
            },
            Command::Sandbox(args) => Common {
                log: args.log.clone(),
                ..Common::default()
            },
        }
    }
}

/// A vendor's connection options and one action; `L` filters `list`.
#[derive(Debug, Args)]
pub struct VendorCommand<C: Args, O: Args, L: Args = NoFilter> {
    #[command(flatten)]
    pub connection: C,
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub action: Action<O, L>,
}

/// `list` of a vendor that needs no filter.
#[derive(Debug, Clone, Args)]
pub struct NoFilter {}

/// What to do with a report.
#[derive(Debug, Subcommand)]
pub enum Action<O: Args, L: Args = NoFilter> {
    /// Start a report, wait for it with a progress bar, download it.
    Run {
        #[command(flatten)]
        options: O,
        /// Where to save the report (renamed into place only when complete); `-` writes it to
        /// standard output once downloaded, with no such atomicity.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        #[command(flatten)]
        download: DownloadArgs,
        /// Keep the ticket in FILE before waiting: a re-run with the same request resumes that
        /// report instead of starting another (for cron and scripts).
        #[arg(long, value_name = "FILE")]
        state_file: Option<PathBuf>,
        /// Do nothing if --out already holds the finished report: with --state-file, the one
        /// saved for this very request (another period is fetched again); without, any file.
        #[arg(long)]
        skip_existing: bool,
    },
    /// Start a report and print its ticket (JSON) for status, wait, download and cancel.
    Start {
        #[command(flatten)]
        options: O,
    },
    /// Ask once for the status of a started report.
    Status {
        #[command(flatten)]
        ticket: TicketArg,
        /// Exit 0 only if the report is ready: 1 if it failed or was cancelled, 5 if pending.
        #[arg(long)]
        exit_status: bool,
    },
    /// Wait until a started report is ready (or failed).
    Wait(TicketArg),
    /// Wait for a started report if needed, then download it.
    Download {
        #[command(flatten)]
        ticket: TicketArg,
        /// Where to save the report (renamed into place only when complete); `-` writes it to
        /// standard output once downloaded, with no such atomicity.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        #[command(flatten)]
        download: DownloadArgs,
    },
    /// Cancel a started report.
    Cancel(TicketArg),
    /// List the reports the vendor keeps (OFD, EvoVoice, CloudBlue; DocSpace: the current task),
    /// e.g. to find what a crashed run left.
    List {
        #[command(flatten)]
        filter: L,
    },
    /// Delete a report at the vendor (OFD, EvoVoice).
    Delete(TicketArg),
}

/// How a report is downloaded.
#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    /// Refuse a report larger than this once decompressed: bytes, or with K, M, G, T
    /// (e.g. 500M, 2G; default 4G). Guards against decompression bombs.
    #[arg(long, value_name = "SIZE", value_parser = crate::units::parse_size)]
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct TicketArg {
    /// The ticket `start` printed: JSON, @FILE to read it from a file, or @- from stdin.
    #[arg(long, value_name = "T")]
    pub ticket: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the five downloaded reports (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// How long each simulated report takes, in milliseconds.
    #[arg(long, default_value_t = 2500, value_name = "MS")]
    pub job_ms: u64,
    /// Size of each simulated report, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub size: u64,
    /// Serve on fixed ports: PORT and the next five (docspace, evovoice, cloudblue, metakocka,
    /// ofd, then the pre-signed blob store), so base URLs survive a restart. Default: free
    /// ports chosen anew on every start.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    #[command(flatten)]
    pub log: Logging,
    #[command(flatten)]
    pub output: Output,
    #[command(flatten)]
    pub deadline: Deadline,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// How long each simulated report takes, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub job_ms: u64,
    /// Size of each simulated report, in bytes.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES")]
    pub size: u64,
    /// Serve on fixed ports: PORT and the next five (docspace, evovoice, cloudblue, metakocka,
    /// ofd, then the pre-signed blob store), so base URLs survive a restart. Default: free
    /// ports chosen anew on every start.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    #[command(flatten)]
    pub log: Logging,
}
