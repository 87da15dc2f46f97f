//! Errors of the command line and the exit codes they map to (a contract: see `--help`).

use std::process::ExitCode;

use report_core::Error;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or input; nothing was sent.
    Usage(String),
    /// The job or a request failed.
    Job(Error),
    /// A local problem outside a job (writing output, starting the sandbox).
    Local(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Job(e)
    }
}

impl Failure {
    /// 0 done; 1 failed or cancelled; 2 usage or invalid input; 3 credentials rejected;
    /// 4 transport error, vendor error or deadline.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Usage(_) => 2,
            Failure::Local(_) => 4,
            Failure::Job(e) => job_exit_code(e),
        })
    }

    /// One clear sentence; with `verbose`, the chain of causes too.
    pub fn message(&self, verbose: bool) -> String {
        match self {
            Failure::Usage(m) => format!("error: {m}"),
            Failure::Local(m) => format!("error: {m}"),
            Failure::Job(e) => {
                let mut text = format!("error: {e}");
                if verbose {
                    let mut source = std::error::Error::source(e);
                    while let Some(cause) = source {
                        text.push_str(&format!("\n  caused by: {cause}"));
                        source = cause.source();
                    }
                }
                text
            }
        }
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
}
