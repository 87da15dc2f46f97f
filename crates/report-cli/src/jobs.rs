//! The actions (run, start, status, wait, download, cancel), once for every vendor.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use report_core::{
    Artifact, DownloadOptions, DownloadSummary, Job, ReportAdapter, Status, Ticket, WaitPolicy,
};
use serde_json::json;

use crate::cli::{Action, Common, TicketArg, VendorCommand};
use crate::failure::Failure;
use crate::progress::{Reporter, describe};

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
    match common.timeout {
        Some(secs) => policy.with_deadline(Some(Duration::from_secs(secs))),
        None => policy,
    }
}

/// Runs one vendor command.
pub async fn execute<C, O>(command: VendorCommand<C, O>, common: &Common) -> Result<(), Failure>
where
    C: Connect + Args,
    O: Args + BuildRequest<<C::Adapter as ReportAdapter>::Request>,
{
    // Everything that can be checked locally is checked before the first request.
    let request = match &command.action {
        Action::Run { options, out } => {
            check_destination(out)?;
            Some(options.build()?)
        }
        Action::Start { options } => Some(options.build()?),
        Action::Download { out, .. } => {
            check_destination(out)?;
            None
        }
        _ => None,
    };
    let ticket = match &command.action {
        Action::Status(t) | Action::Wait(t) | Action::Cancel(t) => Some(read_ticket(t)?),
        Action::Download { ticket, .. } => Some(read_ticket(ticket)?),
        _ => None,
    };
    let adapter = command.connection.connect(common)?;
    let vendor = adapter.vendor();
    let policy = policy(common);
    let job = match (request, ticket) {
        (Some(request), _) => Job::start(adapter, &request, policy).await?,
        (None, Some(ticket)) => Job::resume(adapter, ticket, policy)?,
        (None, None) => unreachable!("every action has a request or a ticket"),
    };

    match command.action {
        Action::Start { .. } => {
            println!("{}", job.ticket().to_json());
            Ok(())
        }
        Action::Status(_) => {
            let status = job.poll().await?;
            if common.json {
                print_json(&json!({
                    "vendor": vendor,
                    "id": job.ticket().id,
                    "status": safe_status(&status),
                }));
            } else {
                println!("{}", status_line(&status));
            }
            Ok(())
        }
        Action::Wait(_) => {
            let artifact = wait(&job, common).await?;
            if common.json {
                print_json(&json!({
                    "vendor": vendor,
                    "id": job.ticket().id,
                    "status": safe_status(&Status::Ready(artifact)),
                    "polls": job.stats().polls,
                }));
            } else {
                println!("ready");
            }
            Ok(())
        }
        Action::Run { out, .. } | Action::Download { out, .. } => {
            if !common.quiet && !common.json {
                eprintln!("ticket: {}", job.ticket().to_json());
            }
            let artifact = wait(&job, common).await?;
            let summary = download(&job, &artifact, &out, common).await?;
            if common.json {
                print_json(&json!({
                    "vendor": vendor,
                    "id": job.ticket().id,
                    "file": summary,
                    "polls": job.stats().polls,
                    "retries": job.stats().retries,
                }));
            } else {
                println!(
                    "saved {}: {} bytes, sha256 {}",
                    summary.path.display(),
                    summary.bytes,
                    summary.sha256
                );
            }
            Ok(())
        }
        Action::Cancel(_) => {
            job.cancel().await?;
            if common.json {
                print_json(&json!({ "vendor": vendor, "id": job.ticket().id, "cancelled": true }));
            } else {
                println!("cancelled");
            }
            Ok(())
        }
    }
}

/// Waits with progress on stderr; Ctrl-C stops the wait and says how to resume.
async fn wait<A: ReportAdapter>(job: &Job<A>, common: &Common) -> Result<Artifact, Failure> {
    let mut reporter = Reporter::new(job.adapter().vendor(), common.quiet);
    let waited = tokio::select! {
        result = job.wait_with(|status| reporter.status(status)) => result,
        _ = tokio::signal::ctrl_c() => {
            return Err(Failure::Local(format!(
                "interrupted; the report goes on at the vendor. Resume with: --ticket '{}'",
                job.ticket().to_json()
            )));
        }
    };
    match waited {
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

async fn download<A: ReportAdapter>(
    job: &Job<A>,
    artifact: &Artifact,
    out: &Path,
    common: &Common,
) -> Result<DownloadSummary, Failure> {
    let mut reporter = Reporter::new(job.adapter().vendor(), common.quiet);
    reporter.phase("downloading");
    match job
        .download_to(artifact, out, DownloadOptions::default())
        .await
    {
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

/// `--ticket`: inline JSON or `@FILE`.
pub fn read_ticket(arg: &TicketArg) -> Result<Ticket, Failure> {
    let text = match arg.ticket.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read ticket file {path}: {e}")))?,
        None => arg.ticket.clone(),
    };
    Ticket::from_json(text.trim()).map_err(|e| Failure::Usage(e.to_string()))
}

/// The destination must be a file path in an existing folder.
fn check_destination(out: &Path) -> Result<(), Failure> {
    if out.is_dir() {
        return Err(Failure::Usage(format!(
            "--out {} is a folder; give a file path",
            out.display()
        )));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(Failure::Usage(format!(
            "--out {}: folder {} does not exist",
            out.display(),
            parent.display()
        )));
    }
    Ok(())
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

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string(value).expect("JSON values serialize")
    );
}
