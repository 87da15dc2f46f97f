//! The runner benchmark's PostgreSQL: the tests' throwaway cluster, from the very file they use
//! (`crates/report-cli/tests/support/postgres.rs`: `initdb` and `pg_ctl` from Debian's
//! `postgresql` package, loopback port, temporary folder, the `postgres` user when run as
//! root; stopped when dropped), and what only the benchmark needs.

use anyhow::bail;

#[allow(dead_code)] // the helper serves the tests too
#[path = "../../report-cli/tests/support/postgres.rs"]
mod cluster;
pub use cluster::Cluster;

/// Creates an empty database; its URL.
pub fn create_database(cluster: &Cluster, name: &str) -> anyhow::Result<String> {
    psql(
        cluster,
        &cluster.url,
        &["-q", "-c", &format!("CREATE DATABASE {name}")],
    )?;
    Ok(cluster.url_of(name))
}

/// The server setting `--pg-statements` needs: statements counted as they run.
pub const COUNT_STATEMENTS: &str = "shared_preload_libraries=pg_stat_statements";

/// Counts the statements run in database `url` from now on (`pg_stat_statements`).
pub fn reset_statements(cluster: &Cluster, url: &str) -> anyhow::Result<()> {
    psql(
        cluster,
        url,
        &[
            "-q",
            "-c",
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            "-c",
            "SELECT pg_stat_statements_reset()",
        ],
    )?;
    Ok(())
}

/// The `n` statements run in database `url` since [`reset_statements`] that took the server
/// longest, as psql prints them: calls, total and mean milliseconds, rows, buffers read from
/// the cache, and the statement's first 100 characters.
pub fn top_statements(cluster: &Cluster, url: &str, n: u32) -> anyhow::Result<String> {
    let query = format!(
        "SELECT calls, round(total_exec_time) AS total_ms,
                round((total_exec_time / calls)::numeric, 3) AS mean_ms, rows,
                shared_blks_hit AS cache_hits,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS statement
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY total_exec_time DESC LIMIT {n}"
    );
    psql(cluster, url, &["-c", &query])
}

/// Runs psql on `url` with `args`; what it printed.
fn psql(cluster: &Cluster, url: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster
        .command("psql")
        .arg(url)
        .args(args)
        .current_dir(cluster.dir())
        .output()?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `work`; with a cluster, also the server's CPU (seconds) it took.
pub fn server_cpu_during<T>(
    cluster: Option<&Cluster>,
    work: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Option<f64>)> {
    let before = cluster.map(server_cpu_secs);
    let out = work()?;
    let used = cluster
        .zip(before)
        .map(|(c, before)| server_cpu_secs(c) - before);
    Ok((out, used))
}

/// CPU (user + system) used so far by the server: the postmaster, its live children and
/// the children it has reaped.
pub fn server_cpu_secs(cluster: &Cluster) -> f64 {
    let pid_file = cluster.dir().join("data/postmaster.pid");
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
