//! "Did you mean" for mistyped subcommands. clap suggests by Jaro similarity, which misses the
//! commonest typos of short names (`odf` for `ofd`, `rn` for `run`); this adds an edit-distance
//! suggestion among the subcommands at the level where the typo is.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Parses the command line; usage errors exit with code 2 and a suggestion where one fits.
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let command = Cli::command();
    let result = command
        .clone()
        .try_get_matches_from(&args)
        .and_then(|matches| Cli::from_arg_matches(&matches));
    match result {
        Ok(cli) => cli,
        Err(mut error) => {
            if error.kind() == ErrorKind::InvalidSubcommand
                && error.get(ContextKind::SuggestedSubcommand).is_none()
                && let Some(ContextValue::String(typed)) =
                    error.get(ContextKind::InvalidSubcommand).cloned()
                && let Some(best) = closest(&typed, &candidates(&command, &args))
            {
                error.insert(
                    ContextKind::SuggestedSubcommand,
                    ContextValue::Strings(vec![best]),
                );
            }
            error.exit()
        }
    }
}

/// The subcommands of the deepest command the arguments name.
fn candidates(root: &clap::Command, args: &[std::ffi::OsString]) -> Vec<String> {
    let mut command = root;
    for arg in args.iter().skip(1).filter_map(|a| a.to_str()) {
        match command.find_subcommand(arg) {
            Some(sub) => command = sub,
            None if arg.starts_with('-') => {}
            None => break,
        }
    }
    command
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The candidate within a small edit distance (a swap of neighbours counts as one edit).
fn closest(typed: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (distance(typed, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

/// Optimal string alignment distance.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_of_short_names_find_their_command() {
        let names: Vec<String> = ["docspace", "evovoice", "ofd", "demo", "sandbox"]
            .map(String::from)
            .into();
        assert_eq!(closest("odf", &names).as_deref(), Some("ofd"));
        assert_eq!(closest("evovoise", &names).as_deref(), Some("evovoice"));
        assert_eq!(closest("xyz", &names), None);
        let actions: Vec<String> = ["run", "start", "status"].map(String::from).into();
        assert_eq!(closest("rn", &actions).as_deref(), Some("run"));
        assert_eq!(distance("ofd", "odf"), 1);
    }
}
