//! What a user of one vendor crate writes: start (or resume) a report, wait with a tuned policy,
//! download it, and tell the errors apart, with `report_ofd` as the only dependency of this
//! workspace. If a job type were missing from its re-exports, this crate would not compile.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use report_ofd::{
    Clock, DownloadOptions, DownloadSummary, DurationPrior, Error, Job, MaxLag, OfdAdapter,
    OfdClient, OfdConfig, OfdReportRequest, Status, Step, Ticket, WaitPolicy, WaitState,
};

/// The policy a nightly batch uses: the default 60 s lag budget made explicit, a deadline, and
/// what past reports of this kind took.
pub fn nightly_policy(history: DurationPrior) -> WaitPolicy {
    WaitPolicy::default()
        .with_max_lag(MaxLag::Fixed(Duration::from_secs(60)))
        .with_deadline(Some(Duration::from_secs(3600)))
        .with_prior(Some(history))
}

/// Starts a report, or resumes the one a saved ticket names, and saves it at `out`. The ticket
/// is handed to `keep` before any waiting so a crash loses nothing.
pub async fn fetch(
    config: OfdConfig,
    request: &OfdReportRequest,
    saved_ticket: Option<&str>,
    keep: &mut dyn FnMut(&Ticket),
    out: &Path,
    policy: WaitPolicy,
    clock: Arc<dyn Clock>,
) -> report_ofd::Result<DownloadSummary> {
    let adapter = OfdAdapter::new(OfdClient::new(config)?);
    let job = match saved_ticket {
        Some(json) => Job::resume(adapter, Ticket::from_json(json)?, policy)?.with_clock(clock),
        None => Job::start_with_clock(adapter, request, policy, clock).await?,
    };
    keep(job.ticket());
    let artifact = job.wait().await?;
    job.download_to(&artifact, out, DownloadOptions::default().without_fsync())
        .await
}

/// One poll by hand, as a scheduler of the caller's own would do it; `state` is what the caller
/// stores between polls.
pub async fn poll_once(
    job: &Job<OfdAdapter>,
    state: &mut WaitState,
) -> report_ofd::Result<&'static str> {
    Ok(match job.step(state).await? {
        Step::Pending { .. } | Step::Retrying { .. } => "pending",
        Step::Ready(_) => "ready",
        Step::Failed { .. } => "failed",
        Step::Cancelled => "cancelled",
        _ => "unknown",
    })
}

/// A user's own words for each kind of error: the match compiles only with `Error` re-exported.
pub fn describe(error: &Error) -> &'static str {
    match error {
        Error::Auth { .. } => "check the credentials",
        Error::Deadline { .. } => "took too long",
        Error::JobFailed { .. } => "the vendor failed the report",
        _ => "something else",
    }
}

/// Whether a status means the file can be fetched.
pub fn is_ready(status: &Status) -> bool {
    matches!(status, Status::Ready(_))
}
