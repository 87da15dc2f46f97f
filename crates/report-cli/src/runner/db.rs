//! Which job database: `--db`, `REPORTS_DB`, or a SQLite file in the user's data folder.

use std::path::PathBuf;

use report_runner::Store;

use crate::failure::Failure;

/// Opens the job database; one that cannot be opened is a usage error (exit 2).
pub async fn open(url: Option<&str>) -> Result<Store, Failure> {
    let url = match url {
        Some(u) if !u.trim().is_empty() => u.to_string(),
        _ => default_path()?.display().to_string(),
    };
    Store::open(&url)
        .await
        .map_err(|e| Failure::Usage(format!("job database {}: {e}", shown(&url))))
}

/// `$XDG_DATA_HOME/reports/jobs.sqlite`, else `~/.local/share/reports/jobs.sqlite`.
fn default_path() -> Result<PathBuf, Failure> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            Failure::Usage("no data folder (HOME unset): pass --db or set REPORTS_DB".into())
        })?;
    let dir = base.join("reports");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir.join("jobs.sqlite"))
}

/// A database URL for messages: a password in it is blanked.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
