//! A throwaway PostgreSQL cluster for the runner benchmark, started the way the CLI's tests
//! start theirs (`crates/report-cli/tests/support/postgres.rs`): `initdb` and `pg_ctl` from
//! Debian's `postgresql` package, loopback port, temporary folder, as the `postgres` user
//! (`runuser`) when run as root. Stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_user: Option<String>,
    port: u16,
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

impl Cluster {
    /// A running cluster; `Ok(None)` when PostgreSQL is not installed.
    pub fn start() -> anyhow::Result<Option<Cluster>> {
        let Some(bin) = find_bin() else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        // SAFETY: geteuid has no preconditions.
        let as_user = (unsafe { libc::geteuid() } == 0).then(|| "postgres".to_string());
        if as_user.is_some() {
            // The server refuses to run as root: hand the folder to the postgres user.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .context("chown")?;
            anyhow::ensure!(status.success(), "chown of the cluster folder failed");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let cluster = Cluster {
            bin,
            as_user,
            port,
            dir,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "reports",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        // fsync off, as in the tests: the benchmark measures the runner, not the disk.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=100",
            cluster.dir.path().display()
        );
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        )?;
        Ok(Some(cluster))
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://reports@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        self.run(
            "psql",
            &[
                &self.url("postgres"),
                "-q",
                "-c",
                &format!("CREATE DATABASE {name}"),
            ],
        )?;
        Ok(self.url(name))
    }

    /// CPU (user + system) used so far by the server: the postmaster, its live children and
    /// the children it has reaped.
    pub fn server_cpu_secs(&self) -> f64 {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let Some(pm) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        else {
            return f64::NAN;
        };
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut total = 0u64;
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return f64::NAN;
        };
        for entry in procs.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the command name (which may hold spaces): state is field 3.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            // rest[0] = state (3), [1] = ppid (4), [11..15] = utime, stime, cutime, cstime.
            if f.len() < 15 {
                continue;
            }
            if pid == pm {
                total += f[11] + f[12] + f[13] + f[14];
            } else if f[1] as i32 == pm {
                total += f[11] + f[12];
            }
        }
        total as f64 / ticks
    }

    fn command(&self, program: &str) -> Command {
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

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .with_context(|| format!("{program} does not run"))?;
        if !out.status.success() {
            bail!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .current_dir(self.dir.path())
            .output();
    }
}
