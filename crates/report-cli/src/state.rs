//! `run --state-file`: what a cron job needs to start a report once and resume it after a
//! crash. The file records the request, the ticket (written before the wait begins) and, once
//! saved, the file's size and digest. A re-run with the same request resumes the ticket
//! instead of starting another report.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use report_core::Ticket;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;

/// A state file is small; anything larger is not one.
const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// The state of one `run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// What was asked for (the request as built); another request starts a new report.
    pub request: String,
    /// Where the report goes.
    pub out: PathBuf,
    /// The started report.
    pub ticket: Ticket,
    /// Set once the report is saved at `out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
}

/// The finished file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub bytes: u64,
    pub sha256: String,
}

impl RunState {
    /// Whether this state is about `request` saved at `out`.
    pub fn is_for(&self, request: &str, out: &Path) -> bool {
        self.request == request && self.out == out
    }

    /// Whether `out` holds the report this state saved (same size).
    pub fn saved_at_out(&self) -> bool {
        match (&self.saved, std::fs::metadata(&self.out)) {
            (Some(saved), Ok(meta)) => meta.is_file() && meta.len() == saved.bytes,
            _ => false,
        }
    }
}

/// What `run` does, decided before anything is sent.
#[derive(Debug, PartialEq)]
pub enum BeforeRun {
    /// `--skip-existing` and `--out` already holds the finished report.
    Skip,
    /// Go on: resuming this ticket (a previous run started the same request), or starting.
    Go { resume: Option<Ticket> },
}

/// `run [--state-file FILE] [--skip-existing]`: skip, resume or start.
pub fn before_run(
    state_file: Option<&Path>,
    out: &Path,
    skip_existing: bool,
    request: &str,
) -> Result<BeforeRun, Failure> {
    let previous = match state_file {
        Some(path) => {
            check_writable(path)?;
            load(path)?.filter(|s| s.is_for(request, out))
        }
        None => None,
    };
    let already_saved = match (state_file, &previous) {
        (Some(_), Some(state)) => state.saved_at_out(),
        // The file at --out is another request's report (yesterday's): replace it.
        (Some(_), None) => false,
        (None, _) => true,
    };
    if skip_existing && out.is_file() && already_saved {
        return Ok(BeforeRun::Skip);
    }
    Ok(BeforeRun::Go {
        resume: previous.map(|s| s.ticket),
    })
}

/// Reads the state file; `None` when there is none yet. A damaged file is an error (nothing is
/// sent): starting over silently could start a second report.
pub fn load(path: &Path) -> Result<Option<RunState>, Failure> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(path, &e.to_string())),
    };
    let mut text = String::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(path, &e.to_string()))?;
    if text.len() as u64 > MAX_STATE_BYTES {
        return Err(unreadable(path, "too large to be a state file"));
    }
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| unreadable(path, &e.to_string()))
}

fn unreadable(path: &Path, why: &str) -> Failure {
    Failure::Usage(format!(
        "state file {}: {why} (remove it to start a new report)",
        path.display()
    ))
}

/// Writes the state file atomically (a temporary file beside it, flushed, renamed), so a kill
/// at any moment leaves the old state or the new one.
pub fn save(path: &Path, state: &RunState) -> Result<(), Failure> {
    let failed = |e: std::io::Error| {
        Failure::Local(format!("cannot write state file {}: {e}", path.display()))
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".reports-state.")
        .tempfile_in(dir)
        .map_err(failed)?;
    let json = serde_json::to_string_pretty(state).expect("a state serializes");
    file.write_all(json.as_bytes()).map_err(failed)?;
    file.write_all(b"\n").map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

/// Checks before anything is sent that the state file can be written where it is.
pub fn check_writable(path: &Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() || !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "--state-file {}: give a file path in an existing folder",
            path.display()
        )));
    }
    tempfile::Builder::new()
        .prefix(".reports-check.")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            Failure::Usage(format!(
                "--state-file {}: cannot write in {}: {e}",
                path.display(),
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_states_load_back_and_damaged_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(load(&path).unwrap(), None);
        let state = RunState {
            request: "R".into(),
            out: dir.path().join("r.zip"),
            ticket: Ticket::new("ofd", "r-1", chrono::Utc::now()),
            saved: None,
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        assert!(state.is_for("R", &dir.path().join("r.zip")));
        assert!(!state.is_for("other", &dir.path().join("r.zip")));
        assert!(!state.saved_at_out());
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load(&path).unwrap_err().code(), 2);
    }
}
