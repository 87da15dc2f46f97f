//! What a poll tells: still pending (with progress), ready (with an artifact), failed, cancelled.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The state of a report job as the vendor reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Not ready yet.
    Pending(Progress),
    /// Ready to download.
    Ready(Artifact),
    /// The vendor says the report failed.
    Failed {
        code: Option<String>,
        message: String,
    },
    /// The report was cancelled or deleted.
    Cancelled,
}

impl Status {
    /// Whether no further poll can change this status.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Status::Pending(_))
    }

    /// A one-word name for logs and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending(_) => "pending",
            Status::Ready(_) => "ready",
            Status::Failed { .. } => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Progress of a pending report. Every field is optional: vendors tell what they tell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The vendor's own state name, kept verbatim (also for states this crate does not know).
    pub vendor_state: String,
    /// Completed fraction in `0.0..=1.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// Free text the vendor attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the vendor expects the report to be ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
    /// A wait the server asked for (`Retry-After`) before the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub retry_after: Option<Duration>,
}

impl Progress {
    /// Progress with only the vendor's state name.
    pub fn state(vendor_state: impl Into<String>) -> Self {
        Progress {
            vendor_state: vendor_state.into(),
            ..Progress::default()
        }
    }
}

/// How an artifact's bytes are encoded on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    /// gzip, e.g. CloudBlue's `.json.gz`.
    Gzip,
}

/// A finished report, ready to be opened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// Where the bytes are: an absolute URL (on the vendor's origin or a pre-signed foreign one).
    pub url: String,
    /// Suggested file name, if the vendor gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// File format as the vendor names it (`xlsx`, `json`, `zip`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Size in bytes, if announced ahead of the download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Wire compression of the bytes at `url`.
    #[serde(default)]
    pub compression: Compression,
    /// Whether the vendor's credentials belong on the request (same origin as the API), or it
    /// is a pre-signed URL that must get none.
    pub authenticated: bool,
    /// Vendor-specific details.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64))
    }
}
