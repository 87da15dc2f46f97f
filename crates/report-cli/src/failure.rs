//! Errors of the command line and the exit codes they map to (a contract: see `--help`).

use std::process::ExitCode;

use report_core::{Error, Ticket};
use serde_json::json;

/// The signals that stop a command early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The shell's convention: 128 + the signal number.
    fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or input; nothing was sent.
    Usage(String),
    /// The job or a request failed.
    Job(Error),
    /// A local problem outside a job (writing output, starting the sandbox).
    Local(String),
    /// SIGINT or SIGTERM stopped the command.
    Interrupted(Signal),
    /// The outcome is already printed; only the exit code is left to give
    /// (`status --exit-status`).
    Printed(u8),
    /// A failure once something was sent to the vendor: never "invalid input" (a refusal now
    /// is about what the vendor answered); once the report is started, its ticket and the
    /// command that resumes it are kept for the operator.
    Sent {
        failure: Box<Failure>,
        ticket: Option<Box<Ticket>>,
        resume: Option<String>,
        /// The last request's error when the deadline ended the command (its root cause).
        cause: Option<String>,
    },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Job(e)
    }
}

impl Failure {
    /// Wraps a failure of the start request (sent, but no ticket came back).
    pub fn sent(self) -> Failure {
        match self {
            Failure::Sent { .. } => self,
            failure => Failure::Sent {
                failure: Box::new(failure),
                ticket: None,
                resume: None,
                cause: None,
            },
        }
    }

    /// Wraps a failure that happened after the report was started.
    pub fn started(self, ticket: &Ticket, resume: String) -> Failure {
        let failure = match self {
            Failure::Printed(_) => return self,
            Failure::Sent { failure, .. } => failure,
            failure => Box::new(failure),
        };
        Failure::Sent {
            failure,
            ticket: Some(Box::new(ticket.clone())),
            resume: Some(resume),
            cause: None,
        }
    }

    /// Adds the last request's error to a deadline: "deadline passed" alone hides that every
    /// attempt was refused, timed out or could not resolve the host.
    pub fn with_cause(self, last_error: Option<String>) -> Failure {
        match self {
            Failure::Sent {
                failure,
                ticket,
                resume,
                ..
            } if matches!(*failure, Failure::Job(Error::Deadline { .. })) => Failure::Sent {
                failure,
                ticket,
                resume,
                cause: last_error,
            },
            other => other,
        }
    }

    /// The ticket of the report, once there is one.
    pub fn ticket(&self) -> Option<&Ticket> {
        match self {
            Failure::Sent { ticket, .. } => ticket.as_deref(),
            _ => None,
        }
    }

    fn resume(&self) -> Option<&str> {
        match self {
            Failure::Sent { resume, .. } => resume.as_deref(),
            _ => None,
        }
    }

    /// 0 done; 1 failed or cancelled; 2 usage or invalid input; 3 credentials rejected;
    /// 4 transport error, vendor error or deadline; 130/143 interrupted by SIGINT/SIGTERM.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Local(_) => 4,
            Failure::Job(e) => job_exit_code(e),
            Failure::Interrupted(signal) => signal.exit_code(),
            Failure::Printed(code) => *code,
            // Something was sent: what the vendor answered is the vendor's error, not ours.
            Failure::Sent { failure, .. } => match failure.code() {
                2 => 4,
                code => code,
            },
        }
    }

    /// The first line names the problem and its root cause; with `verbose`, the chain of
    /// causes follows; a started report adds the line that resumes it.
    pub fn lines(&self, verbose: bool) -> Vec<String> {
        match self {
            Failure::Usage(m) | Failure::Local(m) => vec![format!("error: {m}")],
            Failure::Interrupted(signal) => vec![format!("error: interrupted ({})", signal.name())],
            Failure::Printed(_) => Vec::new(),
            Failure::Job(e) => {
                let mut lines = vec![format!("error: {}", with_root_cause(e))];
                if verbose {
                    let mut source = std::error::Error::source(e);
                    while let Some(cause) = source {
                        lines.push(format!("  caused by: {cause}"));
                        source = cause.source();
                    }
                }
                lines
            }
            Failure::Sent { failure, cause, .. } => {
                let mut lines = failure.lines(verbose);
                if let Some(cause) = cause {
                    lines[0].push_str(&format!("; last error: {cause}"));
                }
                let interrupted = matches!(**failure, Failure::Interrupted(_));
                match (self.ticket(), self.resume()) {
                    (Some(ticket), _) if failure.code() == 1 => {
                        lines.push(format!("ticket: {}", ticket.to_json()));
                    }
                    (Some(_), Some(resume)) => {
                        if interrupted {
                            lines[0].push_str("; the report goes on at the vendor");
                        }
                        lines.push(format!("resume with: {resume}"));
                    }
                    _ if interrupted => {
                        lines[0].push_str("; the report may have been started at the vendor");
                    }
                    _ => {}
                }
                lines
            }
        }
    }

    /// The failure as one JSON object for `--json`: what went wrong, the exit code, and the
    /// ticket (or `null`) so a script never loses a started report.
    pub fn to_json(&self) -> serde_json::Value {
        let inner = match self {
            Failure::Sent { failure, .. } => failure.as_ref(),
            other => other,
        };
        let kind = match inner {
            Failure::Usage(_) => "usage",
            Failure::Local(_) => "local",
            Failure::Interrupted(_) => "interrupted",
            Failure::Printed(_) => "status",
            Failure::Job(e) => error_kind(e),
            Failure::Sent { .. } => "error",
        };
        let message = self
            .lines(false)
            .first()
            .map(|line| line.trim_start_matches("error: ").to_string())
            .unwrap_or_default();
        json!({
            "error": { "kind": kind, "message": message },
            "exit_code": self.code(),
            "ticket": self.ticket(),
            "resume": self.resume(),
        })
    }
}

/// The error's message, followed by its innermost cause unless the message already says it:
/// "error sending request" alone hides whether the connection was refused, the name unknown,
/// TLS refused or the time up.
fn with_root_cause(e: &Error) -> String {
    let text = e.to_string();
    let mut root = None;
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        root = Some(cause);
        source = cause.source();
    }
    match root.map(ToString::to_string) {
        Some(cause) if !cause.is_empty() && !text.contains(&cause) => format!("{text}: {cause}"),
        _ => text,
    }
}

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::InvalidInput(_) => "invalid_input",
        Error::Transport { .. } => "transport",
        Error::Auth { .. } => "auth",
        Error::Api { .. } => "api",
        Error::Decode { .. } => "decode",
        Error::JobFailed { .. } => "job_failed",
        Error::Cancelled { .. } => "cancelled",
        Error::Deadline { .. } => "deadline",
        Error::RetriesExhausted { .. } => "retries_exhausted",
        Error::Unsupported { .. } => "unsupported",
        Error::Ticket(_) => "ticket",
        Error::Integrity(_) => "integrity",
        Error::Io { .. } => "io",
        _ => "error",
    }
}

fn job_exit_code(e: &Error) -> u8 {
    match e {
        Error::InvalidInput(_) | Error::Ticket(_) => 2,
        Error::JobFailed { .. } | Error::Cancelled { .. } => 1,
        Error::Auth { .. } => 3,
        Error::RetriesExhausted { last, .. } if matches!(**last, Error::Auth { .. }) => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let code = |e: Error| job_exit_code(&e);
        assert_eq!(code(Error::InvalidInput("x".into())), 2);
        assert_eq!(code(Error::Ticket("x".into())), 2);
        assert_eq!(code(Error::Cancelled { vendor: "ofd" }), 1);
        assert_eq!(
            code(Error::JobFailed {
                vendor: "ofd",
                code: None,
                message: "x".into()
            }),
            1
        );
        assert_eq!(
            code(Error::Auth {
                vendor: "ofd",
                status: 401,
                message: "x".into()
            }),
            3
        );
        assert_eq!(
            code(Error::Deadline {
                deadline: std::time::Duration::from_secs(1),
                polls: 1
            }),
            4
        );
    }

    #[test]
    fn after_the_start_bad_values_are_vendor_errors_and_keep_the_ticket() {
        let ticket = Ticket::new("ofd", "r-1", chrono::Utc::now());
        let failure = Failure::Job(Error::InvalidInput("javascript: URL".into()))
            .started(&ticket, "reports ofd wait --ticket '{}'".into());
        assert_eq!(failure.code(), 4);
        assert_eq!(failure.to_json()["ticket"]["id"], "r-1");
        assert_eq!(failure.to_json()["exit_code"], 4);
        let lines = failure.lines(false);
        assert!(
            lines[1].starts_with("resume with: reports ofd wait"),
            "{lines:?}"
        );
        let interrupted = Failure::Interrupted(Signal::Terminate).started(&ticket, String::new());
        assert_eq!(interrupted.code(), 143);
        let unusable_start = Failure::Job(Error::Ticket("\"..\" is not an id".into())).sent();
        assert_eq!(unusable_start.code(), 4);
        assert_eq!(unusable_start.to_json()["ticket"], serde_json::Value::Null);
        assert_eq!(Failure::Interrupted(Signal::Interrupt).code(), 130);
    }
}
