//! The one error type of every report job, whichever vendor runs it.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed error kept as the `source()` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a report job.
///
/// Each variant names the problem; the underlying error, where there is one, is the
/// [`source`](std::error::Error::source). Secrets never appear in any message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input was refused before any request was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The request failed on the way (connect, reset, timeout, TLS, truncated body).
    #[error("transport error during {operation}: {source}")]
    Transport {
        /// What was being done, e.g. `poll` or the vendor's operation id.
        operation: String,
        /// False when the request provably never reached the server (connect failure):
        /// only then is a non-idempotent start retried.
        maybe_sent: bool,
        #[source]
        source: BoxError,
    },

    /// The vendor refused the credentials (or the token expired and could not be renewed).
    #[error("{vendor}: credentials rejected (HTTP {status}): {message}")]
    Auth {
        vendor: &'static str,
        status: u16,
        message: String,
    },

    /// The vendor answered with an error: HTTP status, the vendor's code and message.
    #[error("{}", api_message(.vendor, .status, .code.as_deref(), .message, .request_id.as_deref()))]
    Api {
        vendor: &'static str,
        /// The HTTP status; `None` for errors a vendor reports inside an HTTP 200.
        status: Option<u16>,
        /// The vendor's own error code, e.g. OFD's `ReportNotDone`.
        code: Option<String>,
        message: String,
        /// Correlation or request id the vendor attached, for support tickets.
        request_id: Option<String>,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// A response could not be understood: wrong shape, wrong content type, not JSON.
    #[error(
        "{vendor}: cannot decode the answer to {operation}: {message}; body starts: {excerpt:?}"
    )]
    Decode {
        vendor: &'static str,
        operation: String,
        message: String,
        /// The first bytes of the body (lossy UTF-8), for diagnosis.
        excerpt: String,
        #[source]
        source: Option<BoxError>,
    },

    /// The vendor reports that the report job itself failed.
    #[error("{vendor}: the report failed{}: {message}", .code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    JobFailed {
        vendor: &'static str,
        code: Option<String>,
        message: String,
    },

    /// The report was cancelled (by us or by someone else).
    #[error("{vendor}: the report was cancelled")]
    Cancelled { vendor: &'static str },

    /// The overall deadline of the wait policy passed before the job was done (started,
    /// ready and, when downloading, saved). It bounds every request, retry and sleep.
    #[error(
        "the deadline of {deadline:?} passed after {polls} status requests; the job was stopped"
    )]
    Deadline { deadline: Duration, polls: u32 },

    /// Transient failures went on longer than the wait policy's budget.
    #[error("gave up after {attempts} consecutive transient failures; last: {last}")]
    RetriesExhausted { attempts: u32, last: Box<Error> },

    /// The vendor has no such operation (e.g. cancelling an EvoVoice report).
    #[error("{vendor} does not support {operation}")]
    Unsupported {
        vendor: &'static str,
        operation: &'static str,
    },

    /// A download went past a limit of [`DownloadOptions`](crate::DownloadOptions): its size
    /// after decompression, or its decompression ratio (a gzip bomb). Nothing was kept.
    #[error("the download was stopped: {0}")]
    TooLarge(String),

    /// A ticket that this adapter cannot resume.
    #[error("invalid ticket: {0}")]
    Ticket(String),

    /// The downloaded file is not what the vendor said it would be.
    #[error("downloaded file failed verification: {0}")]
    Integrity(String),

    /// A step an adapter takes before its start request (a login, a lookup) failed, so no
    /// report can have been started: [`Job::start`](crate::Job::start) may retry it even for
    /// vendors whose starts are not idempotent. Adapters wrap such errors with
    /// [`Error::before_start`]; `Job::start` unwraps them, so callers never see this variant.
    #[error(transparent)]
    BeforeStart(Box<Error>),

    /// A local file operation failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn api_message(
    vendor: &str,
    status: &Option<u16>,
    code: Option<&str>,
    message: &str,
    request_id: Option<&str>,
) -> String {
    let mut out = format!("{vendor}: ");
    match status {
        Some(s) => out.push_str(&format!("HTTP {s}")),
        None => out.push_str("error"),
    }
    if let Some(code) = code {
        out.push_str(&format!(" {code}"));
    }
    out.push_str(&format!(": {message}"));
    if let Some(id) = request_id {
        out.push_str(&format!(" (request id {id})"));
    }
    out
}

impl Error {
    /// Marks an error of a step before the start request: nothing was started.
    pub fn before_start(error: Error) -> Error {
        match error {
            Error::BeforeStart(_) => error,
            other => Error::BeforeStart(Box::new(other)),
        }
    }

    /// The error itself, without a [`Error::BeforeStart`] mark.
    pub fn unwrap_before_start(self) -> Error {
        match self {
            Error::BeforeStart(inner) => *inner,
            other => other,
        }
    }

    /// Whether waiting and asking again may succeed: transport faults, 408, 429, 5xx, truncated
    /// or garbled bodies. Decisions to retry a *start* also need [`Error::request_maybe_sent`].
    pub fn is_transient(&self) -> bool {
        match self {
            Error::BeforeStart(inner) => inner.is_transient(),
            Error::Transport { .. } => true,
            Error::Api {
                status: Some(s), ..
            } => *s == 408 || *s == 429 || (500..600).contains(s),
            // A body cut short or mangled by a proxy decodes badly; asking again is safe for reads.
            Error::Decode { .. } => true,
            _ => false,
        }
    }

    /// False only when the request provably never reached the server.
    pub fn request_maybe_sent(&self) -> bool {
        match self {
            Error::Transport { maybe_sent, .. } => *maybe_sent,
            Error::InvalidInput(_) | Error::BeforeStart(_) => false,
            _ => true,
        }
    }

    /// The server's `Retry-After`, if the error carries one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The vendor's error code, if any (`Api` and `JobFailed`).
    pub fn vendor_code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } | Error::JobFailed { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status of an API or auth error.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => *status,
            Error::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// At most this many bytes of a bad body are kept in [`Error::Decode`].
pub const EXCERPT_LEN: usize = 200;

/// A short, printable excerpt of a body for error messages, with the values of
/// credential-named keys masked (see [`mask_credentials`](crate::mask_credentials)).
///
/// The body is cut first and masked after, so a secret cut in the middle is masked to the end.
pub fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(EXCERPT_LEN)];
    let mut text = crate::mask::mask_credentials(&String::from_utf8_lossy(cut));
    if body.len() > EXCERPT_LEN {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_cut_by_the_excerpt_is_masked_to_the_end() {
        let body = format!(
            r#"{{"padding":"{}","token":"{}"}}"#,
            "p".repeat(150),
            "t".repeat(300)
        );
        let text = excerpt(body.as_bytes());
        assert!(!text.contains("ttt"), "{text}");
        assert!(text.ends_with("\"token\":\"***\"…"), "{text}");
    }
}
