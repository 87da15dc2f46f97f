//! A durable report job as stored: what was asked, where it stands, what came out.

use std::fmt;

use chrono::{DateTime, Utc};
use report_core::{Artifact, Ticket, WaitState};
use serde::{Deserialize, Serialize};

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Submitted; no worker has started it yet.
    Queued,
    /// Started at the vendor (or being started), waiting for the report.
    Running,
    /// The report is ready; the file is being written.
    Downloading,
    /// The file is in place.
    Done,
    /// Ended in an error (see `error`).
    Failed,
    /// Cancelled on request.
    Cancelled,
}

impl JobState {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Downloading => "downloading",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "downloading" => JobState::Downloading,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Whether nothing more will happen to the job (unless it is retried).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a caller submits. The request holds report options only, never credentials: workers
/// get those from their own environment, per named connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// The vendor's short name, as registered with the worker.
    pub vendor: String,
    /// The named connection whose credentials the worker uses.
    pub connection: String,
    /// The vendor's report options, as the registry's request builder reads them.
    pub request: serde_json::Value,
    /// Where the file goes (an absolute path: workers may run elsewhere).
    pub out: String,
}

/// One job, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub vendor: String,
    pub connection: String,
    pub request: serde_json::Value,
    pub state: JobState,
    /// Completed fraction the vendor last reported.
    pub progress: Option<f64>,
    /// The vendor's last state or message.
    pub message: Option<String>,
    pub polls: u32,
    pub retries: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub out: String,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    /// The vendor's handle of the report, once started.
    pub ticket: Option<Ticket>,
    /// When the next status request is planned.
    pub next_poll_at: Option<DateTime<Utc>>,
    /// A cancellation was asked for; the worker carries it out.
    pub cancel_requested: bool,
    /// When a worker was about to send the start request: with no ticket after it, the
    /// start's outcome is unknown and must be reconciled, never blindly repeated.
    #[serde(skip)]
    pub start_intent_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub wait: Option<WaitState>,
    /// The ready report's file (its URL without query values: they may be signatures).
    #[serde(serialize_with = "redacted", skip_deserializing)]
    pub artifact: Option<Artifact>,
    /// Step counter: each task carries the step it is for; a stale or repeated task is
    /// recognised by it and does nothing.
    #[serde(skip)]
    pub seq: i64,
    /// The first ETA the vendor gave (learnt with the duration: how far its ETAs are off).
    #[serde(skip)]
    pub first_eta_at: Option<DateTime<Utc>>,
}

impl JobRecord {
    /// A job just queued: nothing done yet, its first step (seq 0) to come.
    pub fn queued(id: String, new: NewJob, created_at: DateTime<Utc>) -> JobRecord {
        JobRecord {
            id,
            vendor: new.vendor,
            connection: new.connection,
            request: new.request,
            state: JobState::Queued,
            progress: None,
            message: None,
            polls: 0,
            retries: 0,
            created_at,
            started_at: None,
            finished_at: None,
            out: new.out,
            bytes: None,
            sha256: None,
            error: None,
            ticket: None,
            next_poll_at: None,
            cancel_requested: false,
            start_intent_at: None,
            first_eta_at: None,
            wait: None,
            artifact: None,
            seq: 0,
        }
    }
}

fn redacted<S: serde::Serializer>(artifact: &Option<Artifact>, s: S) -> Result<S::Ok, S::Error> {
    let artifact = artifact.clone().map(|mut a| {
        if let Ok(url) = url::Url::parse(&a.url) {
            a.url = report_core::redact_query(&url);
        }
        a
    });
    artifact.serialize(s)
}
