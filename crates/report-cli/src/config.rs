//! Profiles: named connections in a config file, so a crontab line needs no long flags.
//!
//! ```toml
//! # ~/.config/reports/config.toml (or $XDG_CONFIG_HOME/reports/config.toml, or --config FILE)
//! [profiles.default.ofd]
//! base_url = "https://ofd.ru"
//! login = "finance@example.com"
//! password_file = "/run/secrets/ofd-password"   # becomes OFD_PASSWORD_FILE
//!
//! # `reports worker --config FILE` queues jobs from the same file's schedules
//! [[schedule]]
//! name = "receipts"
//! # …
//! ```
//!
//! A profile (`--profile NAME`, else `REPORTS_PROFILE`, else `default` if the file has it)
//! provides defaults as environment variables (`OFD_BASE_URL`, `OFD_LOGIN`, …): a flag or a
//! variable already set wins. Plain secrets (`password`, `api_key`, `secret_key`,
//! `subscription_key`) are refused unless the file is private (mode 0600 or stricter); use
//! `*_file` keys or the environment instead.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::failure::Failure;

const SECRET_KEYS: [&str; 4] = ["password", "api_key", "secret_key", "subscription_key"];
/// A config file is small; anything larger is a mistake.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

type Profile = BTreeMap<String, BTreeMap<String, toml::Value>>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
    /// `reports worker`'s schedules share the file; the worker reads them.
    #[serde(default, rename = "schedule")]
    _schedules: Vec<toml::Table>,
}

/// The `(variable, value)` pairs the chosen profile provides, from the command line's
/// `--config`/`--profile` and the environment. No file and no profile asked for: none.
pub fn profile_variables(args: &[OsString]) -> Result<Vec<(String, String)>, Failure> {
    let explicit_file = flag_value(args, "--config").map(PathBuf::from);
    let explicit_profile = flag_value(args, "--profile").or_else(|| {
        std::env::var("REPORTS_PROFILE")
            .ok()
            .filter(|p| !p.is_empty())
    });
    let path = match &explicit_file {
        Some(path) => path.clone(),
        None => match default_path() {
            Some(path) if path.is_file() => path,
            _ if explicit_profile.is_some() => {
                return Err(Failure::Usage(
                    "--profile: no config file (give --config FILE or create ~/.config/reports/config.toml)".into(),
                ));
            }
            _ => return Ok(Vec::new()),
        },
    };
    let config = read(&path)?;
    let name = explicit_profile.unwrap_or_else(|| "default".into());
    let Some(profile) = config.profiles.get(&name) else {
        if name == "default" {
            return Ok(Vec::new());
        }
        let known: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
        return Err(Failure::Usage(format!(
            "{}: no profile `{name}` (profiles: {})",
            path.display(),
            known.join(", ")
        )));
    };
    variables(&path, &name, profile)
}

/// `(variable, value)` pairs a profile provides.
pub type Variables = Vec<(String, String)>;

/// What profile `name` of the config file (`file`, else the default one) sets for `vendor`,
/// as the variables `run` reads (`OFD_LOGIN`, `OFD_PASSWORD_FILE`, …): a worker's named
/// connection. `Ok(None)`: no file, no such profile, or nothing in it for `vendor`.
pub fn connection_variables(
    file: Option<&Path>,
    name: &str,
    vendor: &str,
) -> Result<Option<(PathBuf, Variables)>, Failure> {
    let path = match file {
        Some(path) => path.to_path_buf(),
        None => match default_path() {
            Some(path) if path.is_file() => path,
            _ => return Ok(None),
        },
    };
    let config = read(&path)?;
    let Some(settings) = config.profiles.get(name).and_then(|p| p.get(vendor)) else {
        return Ok(None);
    };
    let one = Profile::from([(vendor.to_string(), settings.clone())]);
    let vars = variables(&path, name, &one)?;
    Ok(Some((path, vars)))
}

fn variables(path: &Path, name: &str, profile: &Profile) -> Result<Vec<(String, String)>, Failure> {
    let bad = |why: String| Failure::Usage(format!("{} [profiles.{name}]: {why}", path.display()));
    let mut out = Vec::new();
    for (vendor, settings) in profile {
        if crate::vendors::by_name(vendor).is_none() {
            return Err(bad(format!(
                "unknown vendor `{vendor}` (vendors: {})",
                crate::vendors::names()
            )));
        }
        for (key, value) in settings {
            if SECRET_KEYS.contains(&key.as_str()) && !is_private(path) {
                return Err(bad(format!(
                    "`{vendor}.{key}` is a secret in a file others can read: use `{key}_file`, \
                     the environment, or make the file private (chmod 600)"
                )));
            }
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => return Err(bad(format!("`{vendor}.{key}` must be a string"))),
            };
            out.push((
                format!("{}_{}", vendor.to_uppercase(), key.to_uppercase()),
                text,
            ));
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<ConfigFile, Failure> {
    use std::io::Read;
    let unreadable = |why: String| Failure::Usage(format!("config {}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| unreadable(e.to_string()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(unreadable("larger than 1 MiB".into()));
    }
    // toml's messages quote the offending line: never echo a line that may hold a secret.
    toml::from_str(&text).map_err(|e| {
        unreadable(format!(
            "not a valid config (at byte {:?})",
            e.span().map(|s| s.start)
        ))
    })
}

#[cfg(unix)]
fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
fn is_private(_path: &Path) -> bool {
    false
}

/// `$XDG_CONFIG_HOME/reports/config.toml`, else `~/.config/reports/config.toml`.
fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("reports").join("config.toml"))
}

/// The value of `--flag VALUE` or `--flag=VALUE`, looked for before clap parses (the profile
/// must be in the environment by then).
fn flag_value(args: &[OsString], flag: &str) -> Option<String> {
    let mut args = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == flag {
            return args.next().map(str::to_owned);
        }
        if let Some(value) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(value.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn flags_are_found_before_parsing() {
        let a = args(&[
            "reports",
            "ofd",
            "--profile",
            "night",
            "run",
            "--config=/x.toml",
        ]);
        assert_eq!(flag_value(&a, "--profile").as_deref(), Some("night"));
        assert_eq!(flag_value(&a, "--config").as_deref(), Some("/x.toml"));
        assert_eq!(
            flag_value(&args(&["reports", "--", "--profile", "x"]), "--profile"),
            None
        );
    }

    #[test]
    fn profiles_become_variables_and_plain_secrets_need_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[profiles.night.ofd]\nbase_url = \"https://ofd.example\"\npassword_file = \"/run/s\"\n\
             [profiles.leaky.ofd]\npassword = \"hunter2\"\n[profiles.odd.nope]\nx = \"y\"\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let vars = |profile| {
            profile_variables(&args(&["reports", "--config", file, "--profile", profile]))
        };
        assert_eq!(
            vars("night").unwrap(),
            [
                (
                    "OFD_BASE_URL".to_string(),
                    "https://ofd.example".to_string()
                ),
                ("OFD_PASSWORD_FILE".to_string(), "/run/s".to_string())
            ]
        );
        assert!(vars("nobody").is_err());
        assert!(vars("odd").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let Err(refused) = vars("leaky") else {
                panic!("a plain secret in a readable file was accepted")
            };
            let message = refused.lines(false).join("\n");
            assert!(
                message.contains("chmod 600") && !message.contains("hunter2"),
                "{message}"
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(vars("leaky").unwrap()[0].0, "OFD_PASSWORD");
        }
    }

    /// A profile may configure every vendor of the one list, and nothing else.
    #[test]
    fn profiles_know_every_vendor_of_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut text = String::from("[profiles.all]\n");
        for vendor in report_sandbox::Vendor::ALL {
            text.push_str(&format!(
                "{}.base_url = \"https://x.example\"\n",
                vendor.name()
            ));
        }
        text.push_str("[profiles.odd.acme]\nbase_url = \"y\"\n");
        std::fs::write(&path, text).unwrap();
        let file = path.to_str().unwrap();
        let vars = |profile| {
            profile_variables(&args(&["reports", "--config", file, "--profile", profile]))
        };
        let names: Vec<String> = vars("all").unwrap().into_iter().map(|(k, _)| k).collect();
        for vendor in report_sandbox::Vendor::ALL {
            let wanted = format!("{}_BASE_URL", vendor.name().to_uppercase());
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        let message = vars("odd").unwrap_err().lines(false).join("\n");
        assert!(
            message.contains(
                "unknown vendor `acme` (vendors: docspace, evovoice, cloudblue, metakocka, ofd)"
            ),
            "{message}"
        );
    }
}
