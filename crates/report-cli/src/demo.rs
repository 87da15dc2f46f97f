//! `reports demo`: the embedded sandbox, one job per vendor, five files, a summary table.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use report_core::{Artifact, DownloadOptions, Job, ReportAdapter, Ticket, WaitPolicy};
use report_sandbox::{Sandbox, SandboxConfig, Vendor};
use serde::Serialize;

use crate::cli::{Common, DemoArgs};
use crate::failure::Failure;
use crate::progress::Reporter;
use crate::vendors;

/// One line of the summary.
#[derive(Debug, Serialize)]
struct Row {
    vendor: &'static str,
    polls: u32,
    seconds: f64,
    bytes: u64,
    sha256: String,
    /// The checksum matches what the sandbox generated.
    verified: bool,
    file: PathBuf,
    error: Option<String>,
}

pub async fn run(args: DemoArgs, common: &Common) -> Result<(), Failure> {
    let config = SandboxConfig {
        job_duration: Duration::from_millis(args.job_ms),
        report_size: args.size,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .map_err(|e| Failure::Local(format!("cannot start the sandbox: {e}")))?;
    let dir = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::Local(format!("cannot create {}: {e}", dir.display())))?;
            dir
        }
        None => tempfile::Builder::new()
            .prefix("reports-demo-")
            .tempdir()
            .map_err(|e| Failure::Local(format!("cannot create a temporary folder: {e}")))?
            .keep(),
    };
    if !common.quiet {
        eprintln!(
            "sandbox up; downloading five reports into {}",
            dir.display()
        );
    }

    let multi =
        MultiProgress::with_draw_target(if common.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
    let plain = !common.quiet && !std::io::stderr().is_terminal();
    let reporter = |vendor: &'static str| {
        if plain {
            Reporter::new(vendor, false)
        } else {
            Reporter::with_bar(vendor, multi.add(ProgressBar::new(100)))
        }
    };
    let policy = crate::jobs::policy(common);
    let http = vendors::http_options(common);
    let jobs = Vendor::ALL.map(|vendor| {
        let reporter = reporter(vendor.name());
        demo_job(vendor, &sandbox, http.clone(), &policy, &dir, reporter)
    });
    let rows = futures::future::join_all(jobs)
        .await
        .into_iter()
        .collect::<Result<Vec<Row>, Failure>>()?;
    sandbox.shutdown().await;
    print_summary(&rows, common.json);
    match rows.iter().find(|r| r.error.is_some() || !r.verified) {
        Some(bad) => Err(Failure::Local(format!(
            "the {} demo job did not complete: {}",
            bad.vendor,
            bad.error.as_deref().unwrap_or("checksum mismatch")
        ))),
        None => Ok(()),
    }
}

/// The demo job of `vendor`: its adapter and request for the sandbox, the file it writes, and
/// how the sandbox names the report (to compare checksums). Exhaustive: a new vendor in the
/// list does not compile until it has a demo job.
async fn demo_job(
    vendor: Vendor,
    sandbox: &Sandbox,
    http: report_core::HttpOptions,
    policy: &WaitPolicy,
    dir: &Path,
    reporter: Reporter,
) -> Result<Row, Failure> {
    let by_ticket = |t: &Ticket, _: &Artifact| t.id.clone();
    let file = |extension: &str| dir.join(format!("{}.{extension}", vendor.name()));
    Ok(match vendor {
        Vendor::DocSpace => {
            let (adapter, request) = vendors::docspace::for_sandbox(sandbox, http)?;
            // The sandbox names DocSpace files by their result file id.
            let by_file =
                |_: &Ticket, a: &Artifact| a.data.get("file_id").cloned().unwrap_or_default();
            let out = file("xlsx");
            one(
                adapter, request, reporter, &out, policy, sandbox, vendor, by_file,
            )
            .await
        }
        Vendor::EvoVoice => {
            let (adapter, request) = vendors::evovoice::for_sandbox(sandbox, http)?;
            let out = file("xlsx");
            one(
                adapter, request, reporter, &out, policy, sandbox, vendor, by_ticket,
            )
            .await
        }
        Vendor::CloudBlue => {
            let (adapter, request) = vendors::cloudblue::for_sandbox(sandbox, http)?;
            let out = file("json");
            one(
                adapter, request, reporter, &out, policy, sandbox, vendor, by_ticket,
            )
            .await
        }
        Vendor::MetaKocka => {
            let (adapter, request) = vendors::metakocka::for_sandbox(sandbox, http)?;
            let out = file("pdf");
            one(
                adapter, request, reporter, &out, policy, sandbox, vendor, by_ticket,
            )
            .await
        }
        Vendor::Ofd => {
            let (adapter, request) = vendors::ofd::for_sandbox(sandbox, http)?;
            let out = file("zip");
            one(
                adapter, request, reporter, &out, policy, sandbox, vendor, by_ticket,
            )
            .await
        }
    })
}

/// Runs one job end to end and measures it; `sandbox_key` names the report in the sandbox,
/// to compare checksums.
#[allow(clippy::too_many_arguments)]
async fn one<A: ReportAdapter>(
    adapter: A,
    request: A::Request,
    mut reporter: Reporter,
    out: &Path,
    policy: &WaitPolicy,
    sandbox: &Sandbox,
    vendor: Vendor,
    sandbox_key: impl Fn(&Ticket, &Artifact) -> String,
) -> Row {
    let started = Instant::now();
    let name = adapter.vendor();
    let mut row = Row {
        vendor: name,
        polls: 0,
        seconds: 0.0,
        bytes: 0,
        sha256: String::new(),
        verified: false,
        file: out.to_path_buf(),
        error: None,
    };
    let result = async {
        let job = Job::start(adapter, &request, policy.clone()).await?;
        let waited = job.wait_with(|s| reporter.status(s)).await;
        row.polls = job.stats().polls;
        let artifact = waited?;
        reporter.phase("downloading");
        let saved = job
            .download_to(&artifact, out, DownloadOptions::default())
            .await?;
        Ok::<_, report_core::Error>((sandbox_key(job.ticket(), &artifact), saved))
    }
    .await;
    row.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok((id, saved)) => {
            row.verified =
                sandbox.report_sha256(vendor, &id).as_deref() == Some(saved.sha256.as_str());
            row.bytes = saved.bytes;
            row.sha256 = saved.sha256;
            reporter.finish(&format!("{} bytes", row.bytes));
        }
        Err(e) => {
            reporter.abandon(&e.to_string());
            row.error = Some(e.to_string());
        }
    }
    row
}

fn print_summary(rows: &[Row], json: bool) {
    if json {
        println!("{}", serde_json::to_string(rows).expect("rows serialize"));
        return;
    }
    println!(
        "{:<10} {:>5} {:>8} {:>10}  {:<16} checksum",
        "vendor", "polls", "time", "bytes", "sha256"
    );
    for r in rows {
        let check = match (&r.error, r.verified) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, true) => "ok".into(),
            (None, false) => "MISMATCH".into(),
        };
        println!(
            "{:<10} {:>5} {:>7.1}s {:>10}  {:<16} {check}",
            r.vendor,
            r.polls,
            r.seconds,
            r.bytes,
            r.sha256.get(..16).unwrap_or(&r.sha256),
        );
    }
}
