//! What ends a command early: the overall deadline (`--timeout`) and SIGINT/SIGTERM.
//!
//! The deadline is kept here as well as in the wait policy: whatever a request, a retry or a
//! download does, the command ends when its time is up.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::failure::{Failure, Signal};

/// Why a step did not finish.
#[derive(Debug)]
pub enum Stop {
    Deadline(Duration),
    Signal(Signal),
}

/// Watches the deadline and the signals for one command.
pub struct Stopper {
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    signals: Signals,
}

impl Stopper {
    /// Starts the clock and takes over SIGINT and SIGTERM (so they no longer kill the process
    /// outright: the command stops cleanly and says how to resume).
    pub fn new(timeout: Option<Duration>) -> Result<Self, Failure> {
        Ok(Stopper {
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
            signals: Signals::new()
                .map_err(|e| Failure::Local(format!("cannot listen for signals: {e}")))?,
        })
    }

    /// Runs `step` until it ends, the deadline passes or a signal arrives.
    pub async fn run<F: Future>(&mut self, step: F) -> Result<F::Output, Stop> {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            output = step => Ok(output),
            () = deadline => Err(Stop::Deadline(self.timeout.unwrap_or_default())),
            signal = self.signals.next() => Err(Stop::Signal(signal)),
        }
    }
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = self.terminate.recv() => Signal::Terminate,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Signal {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Interrupt,
            Err(_) => std::future::pending().await,
        }
    }
}
