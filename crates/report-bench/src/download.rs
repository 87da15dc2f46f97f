//! Streaming downloads: a large report from the sandbox on loopback, to disk, through
//! `Job::download_to`, against `curl` fetching the same URL in the same run.
//!
//! The sandbox runs in this process; each download runs in a child process that does only that
//! (this binary re-executed as `download-child`), so its peak RSS is the download's own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use report_core::{DownloadOptions, Job, ReportAdapter, Ticket, WaitPolicy};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as creds};
use serde::{Deserialize, Serialize};

use crate::proc::{self, run_measured};
use crate::stats::{self, Table, fmt_mib, fmt_ratio, fmt_secs};

const MIB: u64 = 1024 * 1024;

#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Size of the large report, MiB.
    #[arg(long, default_value_t = 1024)]
    pub large_mib: u64,
    /// Size of the small report (to show memory does not grow with the file), MiB.
    #[arg(long, default_value_t = 64)]
    pub small_mib: u64,
    /// Timed runs of each side (alternating); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where the files are written (default: a temporary folder under /tmp).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only the plain (OFD) report, not the gzip (CloudBlue) one.
    #[arg(long)]
    pub skip_gzip: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Kind {
    /// OFD.ru: a plain (zip) file on the API origin, `?AuthToken=` in the query.
    Ofd,
    /// CloudBlue: a gzip JSON blob behind a pre-signed URL on another origin.
    Cloudblue,
}

impl Kind {
    fn vendor(self) -> Vendor {
        match self {
            Kind::Ofd => Vendor::Ofd,
            Kind::Cloudblue => Vendor::CloudBlue,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    #[arg(long, value_enum)]
    kind: Kind,
    /// The sandbox's base URL for the vendor.
    #[arg(long)]
    base_url: String,
    /// Resume this job (ticket JSON) instead of starting a new report.
    #[arg(long)]
    ticket: Option<String>,
    /// Destination file.
    #[arg(long)]
    out: PathBuf,
    /// Download with `DownloadOptions::without_fsync()`.
    #[arg(long)]
    no_fsync: bool,
}

/// What a `download-child` prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildReport {
    ticket: String,
    report_id: String,
    url: String,
    /// Wall time of `download_to` alone.
    secs: f64,
    bytes: u64,
    wire_bytes: u64,
    sha256: String,
    /// The child's own VmHWM at the end.
    hwm_bytes: u64,
}

pub fn child(args: &ChildArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let policy = WaitPolicy::default();
        match args.kind {
            Kind::Ofd => {
                use report_ofd::{OfdAdapter, OfdClient, OfdConfig, OfdReportRequest};
                let config = OfdConfig::new(creds::OFD_LOGIN, creds::OFD_PASSWORD)
                    .with_base_url(&args.base_url);
                let adapter = OfdAdapter::new(OfdClient::new(config)?);
                let job = match &args.ticket {
                    Some(t) => Job::resume(adapter, Ticket::from_json(t)?, policy)?,
                    None => {
                        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
                        let request = OfdReportRequest::for_days(
                            report_ofd::ReportType::ReceiptReport,
                            day(1),
                            day(22),
                            report_ofd::Registers::All,
                        );
                        Job::start(adapter, &request, policy).await?
                    }
                };
                download(job, &args.out, args.no_fsync).await
            }
            Kind::Cloudblue => {
                use report_cloudblue::{
                    CloudBlueAdapter, CloudBlueClient, CloudBlueConfig, CloudBlueReportRequest,
                    ReportFormat,
                };
                let config = CloudBlueConfig::new(
                    creds::CLOUDBLUE_USERNAME,
                    creds::CLOUDBLUE_PASSWORD,
                    creds::CLOUDBLUE_SUBSCRIPTION_KEY,
                )
                .with_base_url(&args.base_url)
                .with_marketplace(creds::CLOUDBLUE_MARKETPLACE);
                let adapter = CloudBlueAdapter::new(CloudBlueClient::new(config)?);
                let job = match &args.ticket {
                    Some(t) => Job::resume(adapter, Ticket::from_json(t)?, policy)?,
                    None => {
                        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).expect("date");
                        let request = CloudBlueReportRequest::new(
                            "bench",
                            ReportFormat::Json,
                            day(1),
                            day(22),
                        );
                        Job::start(adapter, &request, policy).await?
                    }
                };
                download(job, &args.out, args.no_fsync).await
            }
        }
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn download<A: ReportAdapter>(
    job: Job<A>,
    out: &Path,
    no_fsync: bool,
) -> anyhow::Result<ChildReport> {
    let artifact = job.wait().await?;
    let options = if no_fsync {
        DownloadOptions::default().without_fsync()
    } else {
        DownloadOptions::default()
    };
    let started = Instant::now();
    let saved = job.download_to(&artifact, out, options).await?;
    let secs = started.elapsed().as_secs_f64();
    Ok(ChildReport {
        ticket: job.ticket().to_json(),
        report_id: job.ticket().id.clone(),
        url: artifact.url,
        secs,
        bytes: saved.bytes,
        wire_bytes: saved.wire_bytes,
        sha256: saved.sha256,
        hwm_bytes: proc::self_status_bytes("VmHWM").unwrap_or(0),
    })
}

/// One side's runs of one case.
#[derive(Default)]
struct Side {
    secs: Vec<f64>,
    rss: Vec<f64>,
    /// CPU time (user + system) of the whole process (pipeline for curl → gzip).
    cpu: Vec<f64>,
    /// The child's own VmHWM (ours only), a cross-check of `rss`.
    hwm: Vec<f64>,
}

struct Case {
    kind: Kind,
    size: u64,
    wire_bytes: u64,
    ours: Side,
    /// `download_to` with `DownloadOptions::without_fsync()`: the same durability as curl.
    ours_no_fsync: Side,
    curl: Side,
    /// curl, then `sync FILE`: the same durability as `download_to` (which fsyncs before its
    /// rename).
    curl_durable: Side,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("report-bench-download-")
                .tempdir_in("/tmp")?;
            tmp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut kinds = vec![Kind::Ofd];
    if !args.skip_gzip {
        kinds.push(Kind::Cloudblue);
    }
    println!("## download\n");
    println!(
        "Sandbox on loopback (this process), each download in its own process; {} timed runs per side, alternating, median shown; files written to {}; machine: {}.\n",
        args.runs,
        dir.display(),
        proc::machine()
    );
    let mut cases = Vec::new();
    for kind in kinds {
        for size_mib in [args.small_mib, args.large_mib] {
            let case = runtime.block_on(start_sandbox(size_mib * MIB))?;
            cases.push(measure(
                &runtime,
                kind,
                case,
                size_mib * MIB,
                args.runs,
                &dir,
            )?);
        }
    }
    print_cases(&cases);
    Ok(())
}

async fn start_sandbox(size: u64) -> anyhow::Result<Sandbox> {
    Ok(Sandbox::start(SandboxConfig {
        job_duration: Duration::from_millis(100),
        report_size: size,
        ..SandboxConfig::default()
    })
    .await?)
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    sandbox: Sandbox,
    size: u64,
    runs: usize,
    dir: &Path,
) -> anyhow::Result<Case> {
    let vendor = kind.vendor();
    let base = sandbox.base_url(vendor);
    let exe = std::env::current_exe()?;
    let ours_out = dir.join(format!("ours-{}.bin", vendor.name()));
    let curl_out = dir.join(format!("curl-{}.bin", vendor.name()));
    let child =
        |ticket: Option<&str>, no_fsync: bool| -> anyhow::Result<(ChildReport, proc::Measured)> {
            sync();
            let mut cmd = Command::new(&exe);
            cmd.arg("download-child")
                .arg("--kind")
                .arg(match kind {
                    Kind::Ofd => "ofd",
                    Kind::Cloudblue => "cloudblue",
                })
                .arg("--base-url")
                .arg(&base)
                .arg("--out")
                .arg(&ours_out);
            if let Some(t) = ticket {
                cmd.arg("--ticket").arg(t);
            }
            if no_fsync {
                cmd.arg("--no-fsync");
            }
            let measured = run_measured(&mut cmd)?;
            // Whatever the child said on stderr (warnings, timings) is passed on.
            eprint!("{}", measured.stderr);
            let report: ChildReport = serde_json::from_str(measured.stdout.trim())
                .with_context(|| format!("child output: {}", measured.stdout))?;
            let _ = std::fs::remove_file(&ours_out);
            Ok((report, measured))
        };
    // The first (untimed) run starts the report and tells its URL; later runs resume it.
    let (first, _) = child(None, false)?;
    let expected = sandbox
        .report_sha256(vendor, &first.report_id)
        .context("the sandbox knows the report")?;
    if first.sha256 != expected || first.bytes != size {
        bail!(
            "{kind:?}: downloaded {} bytes with SHA-256 {}, expected {size} bytes with {expected}",
            first.bytes,
            first.sha256
        );
    }
    let url = match kind {
        Kind::Ofd => {
            let token = runtime
                .block_on(async { crate::ofd_login(&crate::http_client()?, &base).await })?;
            let sep = if first.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}AuthToken={token}", first.url)
        }
        Kind::Cloudblue => first.url.clone(),
    };
    let mut case = Case {
        kind,
        size,
        wire_bytes: first.wire_bytes,
        ours: Side::default(),
        ours_no_fsync: Side::default(),
        curl: Side::default(),
        curl_durable: Side::default(),
    };
    for _ in 0..runs {
        for no_fsync in [false, true] {
            let (report, measured) = child(Some(&first.ticket), no_fsync)?;
            if report.sha256 != expected {
                bail!("{kind:?}: a timed run downloaded different bytes");
            }
            let side = if no_fsync {
                &mut case.ours_no_fsync
            } else {
                &mut case.ours
            };
            side.secs.push(report.secs);
            side.rss.push(measured.max_rss_bytes as f64);
            side.cpu.push(measured.cpu.as_secs_f64());
            side.hwm.push(report.hwm_bytes as f64);
        }

        sync();
        let (secs, rss, cpu) = curl(kind, &url, &curl_out)?;
        case.curl.secs.push(secs);
        case.curl.rss.push(rss);
        case.curl.cpu.push(cpu);
        let flushed = run_measured(Command::new("sync").arg(&curl_out))?;
        case.curl_durable
            .secs
            .push(secs + flushed.wall.as_secs_f64());
        let _ = std::fs::remove_file(&curl_out);
        sandbox.clear_requests();
    }
    runtime.block_on(sandbox.shutdown());
    Ok(case)
}

/// Flushes dirty pages left by the previous run, so it does not slow the next one (untimed).
fn sync() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
}

/// Runs curl on `url`; returns (seconds, peak RSS bytes, CPU seconds).
fn curl(kind: Kind, url: &str, out: &Path) -> anyhow::Result<(f64, f64, f64)> {
    match kind {
        Kind::Ofd => {
            let measured = run_measured(
                Command::new("curl")
                    .args(["-sS", "-f", "-w", "%{time_total}", "-o"])
                    .arg(out)
                    .arg(url),
            )?;
            let secs: f64 = measured
                .stdout
                .trim()
                .parse()
                .with_context(|| format!("curl -w said {:?}", measured.stdout))?;
            Ok((
                secs,
                measured.max_rss_bytes as f64,
                measured.cpu.as_secs_f64(),
            ))
        }
        Kind::Cloudblue => {
            let measured = run_measured(
                Command::new("sh")
                    .arg("-c")
                    .arg("set -e; curl -sS -f \"$1\" | gzip -d > \"$2\"")
                    .arg("sh")
                    .arg(url)
                    .arg(out),
            )?;
            Ok((
                measured.wall.as_secs_f64(),
                measured.max_rss_bytes as f64,
                measured.cpu.as_secs_f64(),
            ))
        }
    }
}

fn print_cases(cases: &[Case]) {
    let mut table = Table::new([
        "report",
        "size",
        "download_to",
        "throughput",
        "curl",
        "throughput",
        "ours ÷ curl",
        "curl + fsync",
        "ours ÷ (curl + fsync)",
        "without_fsync()",
        "÷ curl",
        "peak RSS (ours)",
        "peak RSS (curl)",
        "CPU (ours)",
        "CPU (without_fsync())",
        "CPU (curl)",
    ]);
    for c in cases {
        let ours = stats::median(&c.ours.secs);
        let curl = stats::median(&c.curl.secs);
        let (label, baseline) = match c.kind {
            Kind::Ofd => ("OFD zip", "curl -o"),
            Kind::Cloudblue => ("CloudBlue json.gz", "curl → gzip -d"),
        };
        let size = if c.wire_bytes != c.size {
            format!(
                "{} ({} gz)",
                fmt_mib(c.size as f64),
                fmt_mib(c.wire_bytes as f64)
            )
        } else {
            fmt_mib(c.size as f64)
        };
        table.row([
            format!("{label} vs {baseline}"),
            size,
            fmt_secs(ours),
            format!("{:.0} MiB/s", c.size as f64 / MIB as f64 / ours),
            fmt_secs(curl),
            format!("{:.0} MiB/s", c.size as f64 / MIB as f64 / curl),
            fmt_ratio(curl / ours),
            fmt_secs(stats::median(&c.curl_durable.secs)),
            fmt_ratio(stats::median(&c.curl_durable.secs) / ours),
            fmt_secs(stats::median(&c.ours_no_fsync.secs)),
            fmt_ratio(curl / stats::median(&c.ours_no_fsync.secs)),
            fmt_mib(stats::max(&c.ours.rss).max(stats::max(&c.ours_no_fsync.rss))),
            fmt_mib(stats::max(&c.curl.rss)),
            fmt_secs(stats::median(&c.ours.cpu)),
            fmt_secs(stats::median(&c.ours_no_fsync.cpu)),
            fmt_secs(stats::median(&c.curl.cpu)),
        ]);
    }
    println!("{}", table.render());
    println!(
        "Runs (s, ours / without fsync / curl): {}\n",
        cases
            .iter()
            .map(|c| format!(
                "{:?} {} MiB: {:?} / {:?} / {:?}",
                c.kind,
                c.size / MIB,
                rounded(&c.ours.secs),
                rounded(&c.ours_no_fsync.secs),
                rounded(&c.curl.secs),
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for kind in [Kind::Ofd, Kind::Cloudblue] {
        let of_kind: Vec<&Case> = cases.iter().filter(|c| c.kind == kind).collect();
        let (Some(small), Some(large)) = (of_kind.first(), of_kind.last()) else {
            continue;
        };
        let speed = stats::median(&large.curl.secs) / stats::median(&large.ours.secs);
        let durable = stats::median(&large.curl_durable.secs) / stats::median(&large.ours.secs);
        let no_fsync = stats::median(&large.curl.secs) / stats::median(&large.ours_no_fsync.secs);
        let rss_small = stats::max(&small.ours.rss).max(stats::max(&small.ours_no_fsync.rss));
        let rss_large = stats::max(&large.ours.rss).max(stats::max(&large.ours_no_fsync.rss));
        let peak = rss_small.max(rss_large);
        println!(
            "- {kind:?} on {}: goal ≥ 0.95× curl with without_fsync() (curl's durability): {} ({no_fsync:.2}×); goal ≥ 1.2× curl + fsync by default (the same durability): {} ({durable:.2}×; {speed:.2}× curl alone); goal peak RSS ≤ 32 MiB: {} ({}); \
             RSS {} for {} vs {} for {} ({:+.1} MiB for {}× the bytes; the child's own VmHWM: {})",
            fmt_mib(large.size as f64),
            if no_fsync >= 0.95 { "met" } else { "MISSED" },
            if durable >= 1.2 { "met" } else { "MISSED" },
            if peak <= 32.0 * MIB as f64 {
                "met"
            } else {
                "MISSED"
            },
            fmt_mib(peak),
            fmt_mib(rss_small),
            fmt_mib(small.size as f64),
            fmt_mib(rss_large),
            fmt_mib(large.size as f64),
            (rss_large - rss_small) / MIB as f64,
            large.size / small.size.max(1),
            fmt_mib(stats::max(&large.ours.hwm)),
        );
    }
    println!();
}

fn rounded(secs: &[f64]) -> Vec<f64> {
    secs.iter().map(|s| (s * 100.0).round() / 100.0).collect()
}
