//! `reports demo`: the embedded sandbox and one job per vendor, run through the durable runner
//! on an embedded SQLite queue in a temporary folder: five files, a summary table.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use report_core::ReportAdapter;
use report_runner::{JobRecord, JobState, NewJob, Registry, Store, Worker, WorkerOptions};
use report_sandbox::{Sandbox, SandboxConfig, Vendor};
use serde::Serialize;

use crate::cli::{Common, DemoArgs};
use crate::failure::Failure;
use crate::progress::Reporter;
use crate::vendors::{self, CliVendor, VendorVisitor};

/// The demo's connection name: its adapters talk to the sandbox with its built-in accounts.
const CONNECTION: &str = "sandbox";

/// One line of the summary.
#[derive(Debug, Serialize)]
struct Row {
    vendor: &'static str,
    /// The runner's job id.
    job: String,
    state: JobState,
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
        base_port: args.port,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .map_err(|e| Failure::Local(format!("cannot start the sandbox: {e}")))?;
    let dir = match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::Local(format!("cannot create {}: {e}", dir.display())))?;
            std::path::absolute(&dir)
                .map_err(|e| Failure::Local(format!("{}: {e}", dir.display())))?
        }
        None => tempfile::Builder::new()
            .prefix("reports-demo-")
            .tempdir()
            .map_err(|e| Failure::Local(format!("cannot create a temporary folder: {e}")))?
            .keep(),
    };
    // The queue lives as long as the demo: removed with its folder when `queue` drops.
    let queue = tempfile::Builder::new()
        .prefix("reports-demo-queue-")
        .tempdir()
        .map_err(|e| Failure::Local(format!("cannot create a temporary folder: {e}")))?;
    let store = Store::open(&queue.path().join("jobs.sqlite").display().to_string())
        .await
        .map_err(local)?;
    if !common.log.quiet {
        eprintln!(
            "sandbox up; five jobs queued in {}; downloading into {}",
            queue.path().display(),
            dir.display()
        );
    }

    let http = vendors::http_options(common);
    let mut registry = Registry::new();
    let mut jobs = Vec::new();
    for vendor in Vendor::ALL {
        let demo = DemoJob {
            registry: &mut registry,
            sandbox: &sandbox,
            http: http.clone(),
        };
        let extension = vendors::with_vendor(vendor, demo)?;
        let out = dir.join(format!("{}.{extension}", vendor.name()));
        let record = store
            .submit(NewJob {
                vendor: vendor.name().to_string(),
                connection: CONNECTION.to_string(),
                request: serde_json::json!({}),
                out: out.display().to_string(),
            })
            .await
            .map_err(local)?;
        jobs.push((vendor, record.id));
    }

    let multi =
        MultiProgress::with_draw_target(if common.log.quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
    let plain = !common.log.quiet && !std::io::stderr().is_terminal();
    let mut reporters: Vec<(Reporter, String)> = jobs
        .iter()
        .map(|(vendor, _)| {
            let reporter = if plain {
                Reporter::new(vendor.name(), false)
            } else {
                Reporter::with_bar(vendor.name(), multi.add(ProgressBar::new(100)))
            };
            (reporter, String::new())
        })
        .collect();

    let options = WorkerOptions {
        concurrency: jobs.len(),
        // A demo's jobs take seconds: look for due steps often.
        fetch_interval: Duration::from_millis(50),
        policy: crate::jobs::policy(common),
        ..WorkerOptions::default()
    };
    let worker = Worker::new(store.clone(), registry, options);
    let drained = report_runner::idle(store.clone(), Duration::from_millis(100));
    // Its own task: the worker's steps must go on while the display reads the database (on
    // one task, a step holding the database would wait for a display that waits for it).
    let mut run = tokio::spawn(worker.run_until(drained));
    loop {
        tokio::select! {
            result = &mut run => {
                result
                    .map_err(|e| Failure::Local(format!("the demo's worker stopped: {e}")))?
                    .map_err(local)?;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                show_progress(&store, &jobs, &mut reporters).await;
            }
        }
    }

    let mut rows = Vec::new();
    for ((vendor, id), (mut reporter, _)) in jobs.iter().zip(reporters) {
        let record =
            store.get(id).await.map_err(local)?.ok_or_else(|| {
                Failure::Local(format!("the {} demo job vanished", vendor.name()))
            })?;
        let row = row(*vendor, &record, &sandbox);
        match &row.error {
            None => reporter.finish(&format!("{} bytes", row.bytes)),
            Some(e) => reporter.abandon(e),
        }
        rows.push(row);
    }
    sandbox.shutdown().await;
    print_summary(&rows, common.output.json);
    match rows.iter().find(|r| r.error.is_some() || !r.verified) {
        Some(bad) => Err(Failure::Local(format!(
            "the {} demo job did not complete: {}",
            bad.vendor,
            bad.error.as_deref().unwrap_or("checksum mismatch")
        ))),
        None => Ok(()),
    }
}

/// Registers a vendor with its sandbox adapter, demo request and runner settings; answers the
/// file extension of its report.
struct DemoJob<'a> {
    registry: &'a mut Registry,
    sandbox: &'a Sandbox,
    http: report_core::HttpOptions,
}

impl VendorVisitor for DemoJob<'_> {
    type Output = Result<&'static str, Failure>;

    fn visit<V: CliVendor>(self) -> Self::Output {
        let adapter = V::for_sandbox(self.sandbox, self.http)?;
        register_one(self.registry, V::VENDOR.name(), adapter, V::sandbox_request);
        V::configure_runner(self.registry);
        Ok(V::DEMO_EXTENSION)
    }
}

/// The name of a finished demo job's file at the sandbox.
struct SandboxKey<'a>(&'a JobRecord);

impl VendorVisitor for SandboxKey<'_> {
    type Output = Option<String>;

    fn visit<V: CliVendor>(self) -> Option<String> {
        V::sandbox_key(self.0)
    }
}

/// The registry builds one adapter per connection and keeps it: the demo hands over its one.
fn register_one<A: ReportAdapter + 'static>(
    registry: &mut Registry,
    name: &str,
    adapter: A,
    request: fn() -> A::Request,
) {
    let adapter = Mutex::new(Some(adapter));
    registry.register::<A>(
        name,
        move |connection: &str| {
            adapter
                .lock()
                .ok()
                .and_then(|mut a| a.take())
                .ok_or_else(|| format!("the demo has one connection; `{connection}` is another"))
        },
        move |_: &serde_json::Value| Ok(request()),
    );
}

/// Shows each job's state and progress as the database has it.
async fn show_progress(
    store: &Store,
    jobs: &[(Vendor, String)],
    reporters: &mut [(Reporter, String)],
) {
    for ((_, id), (reporter, shown)) in jobs.iter().zip(reporters.iter_mut()) {
        let Ok(Some(record)) = store.get(id).await else {
            continue;
        };
        let mut text = record.state.to_string();
        if let Some(p) = record.progress {
            text.push_str(&format!(" {:.0}%", p * 100.0));
        }
        if *shown != text {
            reporter.phase(&text);
            *shown = text;
        }
    }
}

/// The summary line of a finished job, its file checked against the sandbox's checksum.
fn row(vendor: Vendor, record: &JobRecord, sandbox: &Sandbox) -> Row {
    let key = vendors::with_vendor(vendor, SandboxKey(record));
    let sha256 = record.sha256.clone().unwrap_or_default();
    let verified = record.state == JobState::Done
        && key.is_some_and(|k| sandbox.report_sha256(vendor, &k).as_deref() == Some(&*sha256));
    let seconds = record
        .finished_at
        .map(|f| (f - record.created_at).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or_default();
    let error = match record.state {
        JobState::Done => None,
        state => Some(
            record
                .error
                .clone()
                .unwrap_or_else(|| format!("ended {state}")),
        ),
    };
    Row {
        vendor: vendor.name(),
        job: record.id.clone(),
        state: record.state,
        polls: record.polls,
        seconds,
        bytes: record.bytes.unwrap_or_default(),
        sha256,
        verified,
        file: PathBuf::from(&record.out),
        error,
    }
}

fn local(e: report_runner::Error) -> Failure {
    Failure::Local(e.to_string())
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
