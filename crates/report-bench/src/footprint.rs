//! Footprint: what depending on one vendor crate costs (unique crates in its dependency tree,
//! clean debug build time of `report-ofd`) against a bare crate depending only on
//! `progenitor-client` + `reqwest` with the same reqwest features, built in the same run; and
//! the wall time of `cargo xtask codegen` for every spec.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::stats::{Table, fmt_ratio, fmt_secs, ratio};
use crate::workspace_root;

#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Scratch folder for the bare crate and the clean target folders (removed afterwards
    /// unless --keep).
    #[arg(long, default_value = "/tmp/report-bench-footprint")]
    pub scratch: PathBuf,
    /// Keep the scratch folder.
    #[arg(long)]
    pub keep: bool,
    /// Skip the clean builds (the slow part).
    #[arg(long)]
    pub skip_builds: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let root = workspace_root();
    if args.scratch.exists() {
        std::fs::remove_dir_all(&args.scratch)?;
    }
    std::fs::create_dir_all(&args.scratch)?;
    let bare = make_bare_crate(&root, &args.scratch)?;
    println!("## footprint\n");
    println!(
        "Baseline: a throwaway crate under {} depending only on progenitor-client + reqwest with the \
         reqwest features report-ofd resolves ({}), versions pinned by the workspace's Cargo.lock. \
         Machine: {}.\n",
        args.scratch.display(),
        bare.features.join(", "),
        crate::proc::machine()
    );

    // Dependency trees.
    let bare_deps = unique_deps(Command::new("cargo").current_dir(&bare.dir).args([
        "tree",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--offline",
    ]))?;
    let mut table = Table::new(["crate", "unique crates (normal + build)", "× bare"]);
    table.row([
        "bare: progenitor-client + reqwest".to_string(),
        bare_deps.len().to_string(),
        fmt_ratio(1.0),
    ]);
    // The one list of vendors: a new vendor crate is measured without an edit here.
    for vendor in report_sandbox::Vendor::ALL {
        let package = format!("report-{}", vendor.name());
        let deps = unique_deps(Command::new("cargo").current_dir(&root).args([
            "tree",
            "-p",
            &package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ]));
        match deps {
            Ok(deps) => {
                let extra: Vec<&String> = deps.difference(&bare_deps).collect();
                table.row([
                    format!("{package} (+{}: {})", extra.len(), summarize_names(&extra)),
                    deps.len().to_string(),
                    fmt_ratio(ratio(deps.len() as f64, bare_deps.len() as f64)),
                ]);
            }
            Err(e) => table.row([package, format!("n/a: {e}"), "n/a".into()]),
        }
    }
    println!("{}", table.render());

    // Clean debug builds, one fresh target folder each, the baseline first.
    if !args.skip_builds {
        let mut table = Table::new(["clean debug build", "wall time", "× bare"]);
        let bare_secs = timed(
            Command::new("cargo")
                .current_dir(&bare.dir)
                .args(["build", "--offline"])
                .env("CARGO_TARGET_DIR", args.scratch.join("target-bare")),
        )?;
        let ofd_secs = timed(
            Command::new("cargo")
                .current_dir(&root)
                .args(["build", "-p", "report-ofd"])
                .env("CARGO_TARGET_DIR", args.scratch.join("target-ofd")),
        )?;
        table.row([
            "bare: progenitor-client + reqwest".into(),
            fmt_secs(bare_secs),
            fmt_ratio(1.0),
        ]);
        table.row([
            "report-ofd".into(),
            fmt_secs(ofd_secs),
            fmt_ratio(ratio(ofd_secs, bare_secs)),
        ]);
        println!("{}", table.render());
    }

    // Codegen: build the xtask first (untimed), then time the generation of every spec.
    // `--check` generates exactly what `codegen` writes and compares instead of writing, so the
    // measurement does not touch files others may be editing.
    let status = Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "xtask"])
        .status()?;
    if !status.success() {
        bail!("cannot build the xtask");
    }
    let specs = std::fs::read_dir(root.join("specs"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count();
    let started = Instant::now();
    let out = Command::new("cargo")
        .current_dir(&root)
        .args(["xtask", "codegen", "--check"])
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "`cargo xtask codegen --check` for all {specs} specs: {} wall ({}; `cargo run` start-up included, xtask already built).\n",
        fmt_secs(secs),
        if out.status.success() {
            "every generated file up to date".to_string()
        } else {
            format!(
                "exit {}: some generated file differs from its spec",
                out.status.code().unwrap_or(-1)
            )
        }
    );
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.scratch);
    }
    Ok(())
}

struct Bare {
    dir: PathBuf,
    features: Vec<String>,
}

/// The throwaway crate: progenitor-client + reqwest with report-ofd's reqwest features.
fn make_bare_crate(root: &Path, scratch: &Path) -> anyhow::Result<Bare> {
    let out = Command::new("cargo")
        .current_dir(root)
        .args([
            "tree",
            "-p",
            "report-ofd",
            "-e",
            "features,normal",
            "-i",
            "reqwest",
            "--prefix",
            "none",
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "cargo tree -i reqwest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut features: BTreeSet<String> = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = line.strip_prefix("reqwest feature \"")
            && let Some(name) = rest.split('"').next()
            && name != "default"
            && !name.starts_with("__")
        {
            features.insert(name.to_string());
        }
    }
    let progenitor = locked_version(root, "progenitor-client")?;
    let reqwest = locked_version(root, "reqwest")?;
    let dir = scratch.join("bare");
    std::fs::create_dir_all(dir.join("src"))?;
    let features: Vec<String> = features.into_iter().collect();
    let quoted: Vec<String> = features.iter().map(|f| format!("{f:?}")).collect();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bare-progenitor-client\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nprogenitor-client = \"={progenitor}\"\n\
             reqwest = {{ version = \"={reqwest}\", default-features = false, features = [{}] }}\n\n[workspace]\n",
            quoted.join(", ")
        ),
    )?;
    std::fs::write(
        dir.join("src/lib.rs"),
        "pub use progenitor_client;\npub use reqwest;\n",
    )?;
    // The workspace's lock pins the same versions; cargo drops what the bare crate does not use.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    Ok(Bare { dir, features })
}

fn locked_version(root: &Path, name: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let version = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
                .context("a version line follows the name")?;
            return Ok(version.to_string());
        }
    }
    bail!("{name} is not in Cargo.lock")
}

/// Unique `name version` pairs printed by `cargo tree --prefix none`, the root excluded.
fn unique_deps(command: &mut Command) -> anyhow::Result<BTreeSet<String>> {
    let out = command.output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(parse_tree(&String::from_utf8_lossy(&out.stdout)))
}

/// The unique `name version` pairs of a `cargo tree --prefix none` listing, without its root
/// (the first line).
pub fn parse_tree(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect()
}

/// The better-known crates among `deps`, e.g. "chrono, schemars, …".
fn summarize_names(deps: &[&String]) -> String {
    const NOTABLE: [&str; 12] = [
        "rustls",
        "ring",
        "webpki-roots",
        "chrono",
        "schemars",
        "async-compression",
        "sha2",
        "rand",
        "tempfile",
        "uuid",
        "regress",
        "tokio-util",
    ];
    let names: Vec<&str> = NOTABLE
        .iter()
        .copied()
        .filter(|n| deps.iter().any(|d| d.split_whitespace().next() == Some(*n)))
        .collect();
    let shown: Vec<&str> = names.iter().take(6).copied().collect();
    if names.len() > shown.len() {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Runs a command to completion; its wall time in seconds.
fn timed(command: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let out = command.output()?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_listings_are_deduplicated_without_the_root() {
        let listing = "report-ofd v0.1.0 (/work/crates/report-ofd)\nbytes v1.11.0\nserde v1.0.228\n\
                       bytes v1.11.0 (*)\nserde_derive v1.0.228 (proc-macro)\n";
        let deps = parse_tree(listing);
        assert_eq!(
            deps.into_iter().collect::<Vec<_>>(),
            ["bytes v1.11.0", "serde v1.0.228", "serde_derive v1.0.228"]
        );
    }
}
