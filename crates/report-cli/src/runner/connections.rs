//! Named connections: a job queued with `submit --connection NAME` is run with the settings
//! of profile NAME in the worker's config file (`[profiles.NAME.<vendor>]`, the keys `run`'s
//! profiles take: `base_url`, `login`, `password_file`, …) and with the worker's variables
//! `REPORTS_CONNECTION_<NAME>_<VAR>` (and `…_<VAR>_FILE`), which win over the file. The
//! connection `default` is the worker's own `run` variables. Secrets are read by the worker
//! only, never stored with the job.

use std::path::Path;

use clap::{Args, CommandFactory, FromArgMatches};

use super::vendors::{ConnectionOnly, clap_message, failure_text};
use crate::cli::Common;
use crate::jobs::Connect;

/// The prefix of connection `name`'s variables: `REPORTS_CONNECTION_<NAME>_`, the name in
/// capitals with anything but letters and digits as `_`.
pub fn variable_prefix(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("REPORTS_CONNECTION_{name}_")
}

/// `vendor`'s adapter for connection `name` (not `default`), from its profile and variables.
pub fn connect<C>(vendor: &str, name: &str, common: &Common) -> Result<C::Adapter, String>
where
    C: Connect + Args + Send + Sync + 'static,
{
    let profile =
        crate::config::connection_variables(common.profiles.config.as_deref(), name, vendor)
            .map_err(|f| failure_text(&f))?;
    let (file, from_file) = match profile {
        Some((path, vars)) => (Some(path), vars),
        None => (None, Vec::new()),
    };
    let prefix = variable_prefix(name);
    let command = ConnectionOnly::<C>::command();
    let mut argv = vec!["reports worker".to_string()];
    let mut known = Vec::new();
    for arg in command.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env().and_then(|v| v.to_str()), arg.get_long())
        else {
            continue;
        };
        known.push(var.to_string());
        match value(var, &prefix, &from_file)? {
            Some(value) => argv.push(format!("--{long}={value}")),
            // The vendor's connect would fall back to the worker's own `<VAR>_FILE`: the
            // default connection's secret must never serve another connection.
            None if std::env::var_os(format!("{var}_FILE")).is_some_and(|v| !v.is_empty()) => {
                return Err(format!(
                    "{var} is not set for it ({prefix}{var} or its profile); the worker's \
                     {var}_FILE serves the `default` connection only"
                ));
            }
            None => {}
        }
    }
    for (var, _) in &from_file {
        let base = var.strip_suffix("_FILE").unwrap_or(var);
        if !known.iter().any(|k| k == base) {
            let key = var
                .strip_prefix(&format!("{}_", vendor.to_uppercase()))
                .unwrap_or(var)
                .to_lowercase();
            return Err(format!("unknown key `{vendor}.{key}` in profile `{name}`"));
        }
    }
    let from_env = known.iter().any(|var| {
        [format!("{prefix}{var}"), format!("{prefix}{var}_FILE")]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
    });
    if file.is_none() && !from_env {
        return Err(format!(
            "unknown connection: no profile `{name}` with a `{vendor}` table in {} and no {prefix}* variables",
            match &common.profiles.config {
                Some(path) => path.display().to_string(),
                None => "the config file (pass --config FILE)".to_string(),
            }
        ));
    }
    // Only what was gathered above: the worker's own variables belong to `default`.
    let matches = command
        .mut_args(|arg| arg.env(None::<&'static str>))
        .try_get_matches_from(argv)
        .map_err(|e| clap_message(&e))?;
    let parsed = ConnectionOnly::<C>::from_arg_matches(&matches).map_err(|e| clap_message(&e))?;
    parsed
        .connection
        .connect(common)
        .map_err(|f| failure_text(&f))
}

/// `var`'s value for the connection: its variable, its variable's file, the profile's value,
/// the profile's file, in that order.
fn value(
    var: &str,
    prefix: &str,
    from_file: &[(String, String)],
) -> Result<Option<String>, String> {
    let env = |name: String| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(v) = env(format!("{prefix}{var}")) {
        return Ok(Some(v));
    }
    let file_var = format!("{prefix}{var}_FILE");
    if let Some(path) = env(file_var.clone()) {
        return read(Path::new(&path), &file_var).map(Some);
    }
    let profile = |name: &str| {
        from_file
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = profile(var).filter(|v| !v.trim().is_empty()) {
        return Ok(Some(v));
    }
    let file_key = format!("{var}_FILE");
    match profile(&file_key) {
        Some(path) => read(Path::new(&path), &file_key).map(Some),
        None => Ok(None),
    }
}

/// A secret file's first line (the same rules as `run`'s `<VAR>_FILE`).
fn read(path: &Path, name: &str) -> Result<String, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("{name}: cannot read {}: {e}", path.display()))?;
    crate::vendors::read_secret(file, name).map_err(|f| failure_text(&f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names_make_variable_prefixes() {
        assert_eq!(variable_prefix("acme"), "REPORTS_CONNECTION_ACME_");
        assert_eq!(
            variable_prefix("eu-west.2"),
            "REPORTS_CONNECTION_EU_WEST_2_"
        );
    }
}
