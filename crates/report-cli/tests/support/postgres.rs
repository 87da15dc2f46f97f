//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` from Debian's `postgresql`
//! package, on a loopback port, in a temporary folder, as a non-root user (the `postgres`
//! system user when the tests run as root). Stopped when dropped.
//!
//! Without `initdb` the tests skip, except in CI (`CI=true`), where they fail loudly:
//! `.ci/run` installs the package. The runner's tests and `report-bench runner` use this file
//! too (`#[path]`): one way to start a cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<String>,
    port: u16,
    /// The URL of the `postgres` database.
    pub url: String,
}

/// Where Debian puts the server binaries (they are not on PATH).
fn find_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.reverse();
    candidates.push(PathBuf::from("/usr/local/bin"));
    candidates.push(PathBuf::from("/usr/bin"));
    candidates
        .into_iter()
        .find(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    // SAFETY-free check: root's home and `id -u` agree; `id` is in coreutils.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// A running cluster, or `None` (after saying why) when PostgreSQL is not installed.
    pub fn start() -> Option<Cluster> {
        Cluster::start_with(&[])
    }

    /// The same, with server settings of the caller's (`name=value`, each passed as `-c`).
    pub fn start_with(settings: &[&str]) -> Option<Cluster> {
        let Some(bin) = find_bin() else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "PostgreSQL (initdb, pg_ctl) is missing in CI: install Debian's `postgresql` package (.ci/run does)"
            );
            eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        let as_user = is_root().then(|| "postgres".to_string());
        if as_user.is_some() {
            // The server refuses to run as root: hand the folder to the postgres user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown of the cluster folder");
        }
        let port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            socket.local_addr().unwrap().port()
        };
        let data = dir.path().join("data");
        let cluster = Cluster {
            url: format!("postgres://reports@127.0.0.1:{port}/postgres"),
            bin,
            as_user,
            port,
            dir,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "reports",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=100",
            cluster.dir.path().display()
        );
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        Some(cluster)
    }

    /// The URL of database `name` on this cluster.
    pub fn url_of(&self, name: &str) -> String {
        format!("postgres://reports@127.0.0.1:{}/{name}", self.port)
    }

    /// One of the server's programs (`psql`, `pg_dump`, …), run as the cluster's user.
    pub fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.as_user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A plain-text dump of the whole database.
    pub fn dump(&self) -> String {
        let out = self
            .command("pg_dump")
            .arg(&self.url)
            .current_dir(self.dir.path())
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Restarts the server (a fast shutdown: every connection is cut), with the same options.
    pub fn restart(&self) {
        let data = self.dir.path().join("data");
        // The log file, as at the start: a server writing to our pipe would keep it open.
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "restart",
            ],
        );
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .current_dir(self.dir.path())
            .output();
    }
}
