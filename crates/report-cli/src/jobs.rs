//! The actions (run, start, status, wait, download, cancel), once for every vendor.

use std::path::{Path, PathBuf};

use clap::Args;
use report_core::{
    Artifact, DownloadOptions, DownloadSummary, Error, Job, ReportAdapter, Status, Ticket,
    WaitPolicy,
};
use serde_json::json;

use crate::cli::{Action, Common, DownloadArgs, TicketArg, VendorCommand};
use crate::counting::{Counting, Received};
use crate::failure::Failure;
use crate::output::{stderr_line, stdout_line};
use crate::progress::{Reporter, describe};
use crate::state::{self, BeforeRun, RunState, Saved};
use crate::stop::{Stop, Stopper};

/// A vendor's connection options: builds the adapter (credentials from flags or env).
pub trait Connect {
    type Adapter: ReportAdapter + 'static;
    fn connect(&self, common: &Common) -> Result<Self::Adapter, Failure>;
}

/// A vendor's report options: builds the start request, checking it first.
pub trait BuildRequest<R> {
    fn build(&self) -> Result<R, Failure>;
}

/// The wait policy of the command line: defaults, with `--timeout` as the deadline.
pub fn policy(common: &Common) -> WaitPolicy {
    let policy = WaitPolicy::default();
    match common.deadline.timeout {
        Some(timeout) => policy.with_deadline(Some(timeout)),
        None => policy,
    }
}

/// A vendor's `list`: what it keeps, as JSON objects, and which of their fields make a line.
pub trait ListReports<L> {
    /// The fields shown per report in plain output.
    const COLUMNS: &'static [&'static str];
    fn list(
        &self,
        filter: &L,
        common: &Common,
    ) -> impl std::future::Future<Output = Result<Vec<serde_json::Value>, Failure>>;
}

/// Runs one vendor command.
pub async fn execute<C, O, L>(
    command: VendorCommand<C, O, L>,
    common: &Common,
) -> Result<(), Failure>
where
    C: Connect + ListReports<L> + Args,
    O: Args + BuildRequest<<C::Adapter as ReportAdapter>::Request>,
    L: Args,
    <C::Adapter as ReportAdapter>::Request: std::fmt::Debug,
{
    if let Action::List { filter } = &command.action {
        let mut stopper = Stopper::new(common.deadline.timeout)?;
        let listed = match stopper.run(command.connection.list(filter, common)).await {
            Ok(listed) => listed?,
            Err(stop) => return Err(stopped(stop, 0)),
        };
        print_list::<C, L>(&listed, common);
        return Ok(());
    }
    // Everything that can be checked locally is checked before the first request.
    let request = match &command.action {
        Action::Run { options, out, .. } => {
            check_destination(out, common)?;
            Some(options.build()?)
        }
        Action::Start { options } => Some(options.build()?),
        Action::Download { out, .. } => {
            check_destination(out, common)?;
            None
        }
        _ => None,
    };
    let ticket_arg = match &command.action {
        Action::Status { ticket, .. } | Action::Download { ticket, .. } => Some(ticket),
        Action::Wait(t) | Action::Cancel(t) | Action::Delete(t) => Some(t),
        _ => None,
    };
    if common.secrets.password_stdin && ticket_arg.is_some_and(|t| t.ticket == "@-") {
        return Err(Failure::Usage(
            "--password-stdin and --ticket @- both read standard input; put the ticket in a file"
                .into(),
        ));
    }
    let mut ticket = ticket_arg.map(read_ticket).transpose()?;
    // `run --state-file`: resume the report a previous run started for the same request.
    let fingerprint = request
        .as_ref()
        .map(|r| format!("{r:?}"))
        .unwrap_or_default();
    if let Action::Run {
        out,
        state_file,
        skip_existing,
        ..
    } = &command.action
    {
        match state::before_run(state_file.as_deref(), out, *skip_existing, &fingerprint)? {
            BeforeRun::Skip => {
                if common.output.json {
                    print_json(&json!({ "file": { "path": out }, "skipped": true }));
                } else if !common.log.quiet {
                    stdout_line(&format!(
                        "{} already holds the report; skipped",
                        out.display()
                    ));
                }
                return Ok(());
            }
            BeforeRun::Go { resume } => ticket = resume,
        }
    }
    let adapter = Counting::new(
        command
            .connection
            .connect(common)
            .map_err(name_the_opt_in)?,
    );
    // Everything read from standard input (a ticket, a password) is read by now: from here on
    // SIGINT/SIGTERM and the deadline end the command cleanly, with a resume line.
    let mut stopper = Stopper::new(common.deadline.timeout)?;
    let received = adapter.received();
    let last_error = adapter.last_error();
    let policy = policy(common);
    let resuming = ticket.is_some();
    let job = match (request, ticket) {
        (_, Some(ticket)) => Job::resume(adapter, ticket, policy)?,
        (Some(request), None) => match stopper.run(Job::start(adapter, &request, policy)).await {
            Ok(started) => {
                started.map_err(|e| Failure::from(e).sent().with_cause(last_error.get()))?
            }
            // No ticket yet: the start may or may not have reached the vendor.
            Err(stop) => return Err(stopped(stop, 0).sent().with_cause(last_error.get())),
        },
        (None, None) => unreachable!("every action has a request or a ticket"),
    };
    let resume = resume_command(&job, &command.action);
    let state_file = match &command.action {
        Action::Run {
            state_file: Some(path),
            out,
            ..
        } => Some((path.clone(), out.clone())),
        _ => None,
    };
    let mut run_state = state_file.map(|(path, out)| {
        let state = RunState {
            request: fingerprint,
            out,
            ticket: job.ticket().clone(),
            saved: None,
        };
        (path, state)
    });
    if let Some((path, state)) = &run_state {
        // Before waiting: a kill from now on loses nothing.
        state::save(path, state).map_err(|f| f.started(job.ticket(), resume.clone()))?;
        if resuming && !common.log.quiet && !common.output.json {
            stderr_line(&format!("resuming the report of {}", path.display()));
        }
    }
    let action = command.action;
    let outcome = stopper.run(act(&job, action, &received, common)).await;
    let result = match outcome {
        Ok(result) => result,
        Err(stop) => Err(stopped(stop, job.stats().polls)),
    };
    let summary = result.map_err(|failure| {
        failure
            .started(job.ticket(), resume.clone())
            .with_cause(last_error.get())
    })?;
    if let (Some((path, state)), Some(summary)) = (&mut run_state, summary) {
        state.saved = Some(Saved {
            bytes: summary.bytes,
            sha256: summary.sha256,
        });
        state::save(path, state).map_err(|f| f.started(job.ticket(), resume))?;
    }
    Ok(())
}

/// The library refuses plain http:// to other hosts; the operator needs the flag's name.
fn name_the_opt_in(failure: Failure) -> Failure {
    match failure {
        Failure::Job(Error::InvalidInput(message)) if message.contains("plain http://") => {
            Failure::Usage(format!("{message}; pass --allow-insecure-http to allow it"))
        }
        other => other,
    }
}

fn stopped(stop: Stop, polls: u32) -> Failure {
    match stop {
        Stop::Deadline(deadline) => Failure::Job(Error::Deadline { deadline, polls }),
        Stop::Signal(signal) => Failure::Interrupted(signal),
    }
}

/// The command that picks this job up again after a failure or an interruption.
fn resume_command<A: ReportAdapter, O: Args, L: Args>(
    job: &Job<A>,
    action: &Action<O, L>,
) -> String {
    let ticket = shell_quote(&job.ticket().to_json());
    let vendor = job.adapter().vendor();
    match action {
        Action::Run { out, .. } | Action::Download { out, .. } => format!(
            "reports {vendor} download --ticket {ticket} --out {}",
            shell_quote(&out.to_string_lossy())
        ),
        Action::Status { .. } => format!("reports {vendor} status --ticket {ticket}"),
        Action::Cancel(_) => format!("reports {vendor} cancel --ticket {ticket}"),
        Action::Delete(_) => format!("reports {vendor} delete --ticket {ticket}"),
        Action::Start { .. } | Action::Wait(_) | Action::List { .. } => {
            format!("reports {vendor} wait --ticket {ticket}")
        }
    }
}

/// Single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The action itself, once the job exists; what a download saved.
async fn act<A: ReportAdapter, O: Args, L: Args>(
    job: &Job<A>,
    action: Action<O, L>,
    received: &Received,
    common: &Common,
) -> Result<Option<DownloadSummary>, Failure> {
    let vendor = job.adapter().vendor();
    match action {
        Action::Start { .. } => {
            stdout_line(&job.ticket().to_json());
            Ok(None)
        }
        Action::Status { exit_status, .. } => {
            let status = job.poll().await?;
            if common.output.json {
                print_json(&json!({
                    "vendor": vendor,
                    "id": job.ticket().id,
                    "status": safe_status(&status),
                }));
            } else {
                stdout_line(&status_line(&status));
            }
            match status {
                _ if !exit_status => Ok(None),
                Status::Ready(_) => Ok(None),
                Status::Failed { .. } | Status::Cancelled => Err(Failure::Printed(1)),
                _ => Err(Failure::Printed(5)),
            }
        }
        Action::Wait(_) => {
            let artifact = wait(job, common).await?;
            if common.output.json {
                print_json(&json!({
                    "vendor": vendor,
                    "id": job.ticket().id,
                    "status": safe_status(&Status::Ready(artifact)),
                    "polls": job.stats().polls,
                }));
            } else {
                stdout_line("ready");
            }
            Ok(None)
        }
        Action::Run { out, download, .. } | Action::Download { out, download, .. } => {
            if !common.log.quiet && !common.output.json {
                stderr_line(&format!("ticket: {}", job.ticket().to_json()));
            }
            let artifact = wait(job, common).await?;
            let options = download_options(&download);
            if is_stdout(&out) {
                let summary = download_to_stdout(job, &artifact, options, received, common).await?;
                if !common.log.quiet {
                    stderr_line(&format!(
                        "wrote {} bytes to standard output, sha256 {}",
                        summary.bytes, summary.sha256
                    ));
                }
                return Ok(Some(summary));
            }
            let summary = self::download(job, &artifact, &out, options, received, common).await?;
            if common.output.json {
                print_json(&json!({
                    "vendor": vendor,
                    "id": job.ticket().id,
                    "file": summary,
                    "polls": job.stats().polls,
                    "retries": job.stats().retries,
                }));
            } else {
                stdout_line(&format!(
                    "saved {}: {} bytes, sha256 {}",
                    summary.path.display(),
                    summary.bytes,
                    summary.sha256
                ));
            }
            Ok(Some(summary))
        }
        Action::Cancel(_) => {
            job.cancel().await?;
            if common.output.json {
                print_json(&json!({ "vendor": vendor, "id": job.ticket().id, "cancelled": true }));
            } else {
                stdout_line("cancelled");
            }
            Ok(None)
        }
        Action::Delete(_) => {
            job.delete().await?;
            if common.output.json {
                print_json(&json!({ "vendor": vendor, "id": job.ticket().id, "deleted": true }));
            } else {
                stdout_line("deleted");
            }
            Ok(None)
        }
        Action::List { .. } => unreachable!("listed before any job"),
    }
}

/// `list`: a JSON array, or one line per report of the vendor's chosen fields.
fn print_list<C: ListReports<L>, L>(listed: &[serde_json::Value], common: &Common) {
    if common.output.json {
        print_json(&serde_json::Value::Array(listed.to_vec()));
        return;
    }
    if listed.is_empty() && !common.log.quiet {
        stderr_line("no reports");
    }
    for entry in listed {
        let fields: Vec<String> = C::COLUMNS
            .iter()
            .map(|key| match entry.get(*key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => "-".into(),
                Some(other) => other.to_string(),
            })
            .collect();
        stdout_line(&fields.join("  "));
    }
}

/// Waits with progress on stderr.
async fn wait<A: ReportAdapter>(job: &Job<A>, common: &Common) -> Result<Artifact, Failure> {
    let mut reporter = Reporter::new(job.adapter().vendor(), common.log.quiet);
    match job.wait_with(|status| reporter.status(status)).await {
        Ok(artifact) => {
            reporter.phase("ready");
            Ok(artifact)
        }
        Err(e) => {
            reporter.abandon(&e.to_string());
            Err(e.into())
        }
    }
}

/// The library's download options from the command line: `--max-size`, and partial
/// transfers kept in the user's cache folder so that an interrupted download is continued by
/// the next `download --ticket` (and never left in the destination's folder).
fn download_options(args: &DownloadArgs) -> DownloadOptions {
    let mut options = DownloadOptions::default();
    if let Some(max) = args.max_size {
        options = options.max_size(Some(max));
    }
    match partial_dir() {
        Some(dir) => options.partial_dir(dir),
        None => options,
    }
}

/// `$XDG_CACHE_HOME/reports/partial`, else `~/.cache/reports/partial`; created private.
fn partial_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    let dir = base.join("reports").join("partial");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    // Without a cache folder the transfer goes beside the destination, removed on failure.
    builder.create(&dir).ok().map(|()| dir)
}

async fn download<A: ReportAdapter>(
    job: &Job<A>,
    artifact: &Artifact,
    out: &Path,
    options: DownloadOptions,
    received: &Received,
    common: &Common,
) -> Result<DownloadSummary, Failure> {
    let mut reporter = Reporter::new(job.adapter().vendor(), common.log.quiet);
    reporter.start_download();
    let download = job.download_to(artifact, out, options);
    tokio::pin!(download);
    let every = std::time::Duration::from_millis(200);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let downloaded = loop {
        tokio::select! {
            result = &mut download => break result,
            _ = tick.tick() => reporter.bytes(received),
        }
    };
    match downloaded {
        Ok(summary) => {
            reporter.finish(&format!(
                "saved {} ({} bytes)",
                out.display(),
                summary.bytes
            ));
            Ok(summary)
        }
        Err(e) => {
            reporter.abandon(&e.to_string());
            Err(e.into())
        }
    }
}

/// `--out -`: the report goes to standard output.
fn is_stdout(out: &Path) -> bool {
    out.as_os_str() == "-"
}

/// Downloads into a private temporary folder (so gzip, resumption and verification work as
/// for a file), then copies the file to standard output. No atomicity on a pipe: a reader may
/// see part of the file if the copy fails midway.
async fn download_to_stdout<A: ReportAdapter>(
    job: &Job<A>,
    artifact: &Artifact,
    options: DownloadOptions,
    received: &Received,
    common: &Common,
) -> Result<DownloadSummary, Failure> {
    let dir = tempfile::tempdir()
        .map_err(|e| Failure::Local(format!("cannot create a temporary folder: {e}")))?;
    let path = dir.path().join("report");
    let mut summary = download(job, artifact, &path, options, received, common).await?;
    let copied = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut stdout = std::io::stdout().lock();
        std::io::copy(&mut file, &mut stdout)?;
        std::io::Write::flush(&mut stdout)
    })
    .await
    .map_err(|e| Failure::Local(format!("cannot write to standard output: {e}")))?;
    copied.map_err(|e| Failure::Local(format!("cannot write to standard output: {e}")))?;
    summary.path = "-".into();
    Ok(summary)
}

/// `--ticket`: inline JSON, `@FILE`, or `@-` for standard input; at most
/// [`TICKET_MAX_BYTES`](report_core::TICKET_MAX_BYTES) are read (`@/dev/zero` is refused).
pub fn read_ticket(arg: &TicketArg) -> Result<Ticket, Failure> {
    let usage = |e: Error| Failure::Usage(e.to_string());
    match arg.ticket.strip_prefix('@') {
        Some("-") => Ticket::from_reader_limited(std::io::stdin().lock()).map_err(usage),
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Failure::Usage(format!("cannot read ticket file {path}: {e}")))?;
            Ticket::from_reader_limited(file)
                .map_err(|e| Failure::Usage(format!("ticket file {path}: {e}")))
        }
        None => Ticket::from_json(arg.ticket.trim()).map_err(usage),
    }
}

/// The destination must be a file path in an existing folder we may write to: checked before
/// anything is sent, so a bad `--out` never costs a started report.
pub fn check_destination(out: &Path, common: &Common) -> Result<(), Failure> {
    if is_stdout(out) {
        return match common.output.json {
            true => Err(Failure::Usage(
                "--out - and --json both write to standard output; choose one".into(),
            )),
            false => Ok(()),
        };
    }
    let bad = |why: String| Err(Failure::Usage(format!("--out {}: {why}", out.display())));
    let text = out.as_os_str().to_string_lossy();
    if text.is_empty() {
        return bad("empty path".into());
    }
    if text.ends_with('/') || out.is_dir() || out.file_name().is_none() {
        return bad("is a folder; give a file path".into());
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return bad(format!("folder {} does not exist", parent.display()));
    }
    // The download writes a temporary file there first: try it now.
    tempfile::Builder::new()
        .prefix(".reports-check.")
        .tempfile_in(parent)
        .map(drop)
        .or_else(|e| bad(format!("cannot write in {}: {e}", parent.display())))
}

/// A status for printing: artifact URLs lose their query values (pre-signed signatures).
fn safe_status(status: &Status) -> serde_json::Value {
    let mut status = status.clone();
    if let Status::Ready(artifact) = &mut status
        && let Ok(url) = url::Url::parse(&artifact.url)
    {
        artifact.url = report_core::redact_query(&url);
    }
    serde_json::to_value(status).expect("statuses serialize")
}

fn status_line(status: &Status) -> String {
    match describe(status) {
        (Some(p), text) if !status.is_terminal() => format!("pending: {text} ({p}%)"),
        (_, text) if !status.is_terminal() => format!("pending: {text}"),
        (_, text) => text,
    }
}

pub fn print_json(value: &serde_json::Value) {
    // serde_json escapes every control character in strings.
    stdout_line(&serde_json::to_string(value).expect("JSON values serialize"));
}
