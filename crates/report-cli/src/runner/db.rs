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

/// A database URL for messages: a password in it is blanked, whether or not the URL parses
/// (a bad port is the very case an error message shows it for).
fn shown(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
            return parsed.to_string();
        }
        return url.to_string();
    }
    // Unparsed: what stands between the user's name and the last `@` before the query.
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..before_query].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let host_on = &rest[userinfo.len() + 1..];
            format!("{scheme}://{user}:***@{host_on}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn a_password_is_blanked_in_urls_that_parse_and_urls_that_do_not() {
        assert_eq!(
            shown("postgres://u:s3cret@127.0.0.1:5432/db"),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        // A bad port: the URL does not parse.
        assert_eq!(
            shown("postgres://u:s3cret@127.0.0.1:badport/db"),
            "postgres://u:***@127.0.0.1:badport/db"
        );
        // A password with `/` and `@` in it, unencoded.
        assert_eq!(
            shown("postgres://u:s3/cr@et@host:x/db?sslmode=bogus"),
            "postgres://u:***@host:x/db?sslmode=bogus"
        );
        // Nothing to blank.
        for plain in [
            "postgres://u@host/db",
            "postgres://host:x/db?user=a@b",
            "/var/lib/reports/jobs.sqlite",
            "sqlite:jobs.sqlite",
        ] {
            assert_eq!(shown(plain), plain);
        }
    }
}
