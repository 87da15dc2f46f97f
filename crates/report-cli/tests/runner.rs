//! `reports submit | worker | jobs` against the sandbox, driven as a user would.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};
use sha2::{Digest, Sha256};

/// Per vendor: the `submit` arguments of a small job.
pub const SUBMITS: &[(Vendor, &[&str])] = &[
    (
        Vendor::DocSpace,
        &[
            "docspace",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--no-debit",
        ],
    ),
    (
        Vendor::EvoVoice,
        &[
            "evovoice",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--account-id",
            "acct-1",
        ],
    ),
    (
        Vendor::CloudBlue,
        &[
            "cloudblue",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--format",
            "csv",
        ],
    ),
    (
        Vendor::MetaKocka,
        &["metakocka", "--report-id", "149", "--format", "csv"],
    ),
    (
        Vendor::Ofd,
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
    ),
];

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        job_duration: Duration::from_millis(300),
        report_size: 4096,
        ..SandboxConfig::fast()
    })
    .await
    .expect("sandbox starts")
}

/// `reports` with nothing inherited but PATH: no credentials.
fn bare(db: &Path) -> Command {
    let mut cmd = Command::cargo_bin("reports").expect("the binary is built");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPORTS_DB", db)
        .timeout(Duration::from_secs(60));
    cmd
}

/// The sandbox's URLs and credentials, as a worker's environment.
fn worker_env(sandbox: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        ("OFD_BASE_URL", sandbox.base_url(Vendor::Ofd)),
        ("OFD_LOGIN", c::OFD_LOGIN.into()),
        ("OFD_PASSWORD", c::OFD_PASSWORD.into()),
        ("DOCSPACE_BASE_URL", sandbox.base_url(Vendor::DocSpace)),
        ("DOCSPACE_API_KEY", c::DOCSPACE_API_KEY.into()),
        ("EVOVOICE_BASE_URL", sandbox.base_url(Vendor::EvoVoice)),
        ("EVOVOICE_USERNAME", c::EVOVOICE_USERNAME.into()),
        ("EVOVOICE_PASSWORD", c::EVOVOICE_PASSWORD.into()),
        ("CLOUDBLUE_BASE_URL", sandbox.base_url(Vendor::CloudBlue)),
        ("CLOUDBLUE_USERNAME", c::CLOUDBLUE_USERNAME.into()),
        ("CLOUDBLUE_PASSWORD", c::CLOUDBLUE_PASSWORD.into()),
        (
            "CLOUDBLUE_SUBSCRIPTION_KEY",
            c::CLOUDBLUE_SUBSCRIPTION_KEY.into(),
        ),
        ("CLOUDBLUE_MARKETPLACE", c::CLOUDBLUE_MARKETPLACE.into()),
        ("METAKOCKA_BASE_URL", sandbox.base_url(Vendor::MetaKocka)),
        ("METAKOCKA_SECRET_KEY", c::METAKOCKA_SECRET_KEY.into()),
        ("METAKOCKA_COMPANY_ID", c::METAKOCKA_COMPANY_ID.into()),
    ]
}

fn jobs_json(db: &Path) -> Vec<serde_json::Value> {
    let out = bare(db).args(["jobs", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn vendor_of(name: &str) -> Vendor {
    Vendor::ALL.into_iter().find(|v| v.name() == name).unwrap()
}

/// Checks a done job: its file, its record and the sandbox's digest agree.
pub fn verify_done(sandbox: &Sandbox, job: &serde_json::Value) {
    assert_eq!(job["state"], "done", "{job}");
    let vendor = vendor_of(job["vendor"].as_str().unwrap());
    let key = match vendor {
        Vendor::DocSpace => job["artifact"]["data"]["file_id"]
            .as_str()
            .unwrap()
            .to_string(),
        _ => job["ticket"]["id"].as_str().unwrap().to_string(),
    };
    let expected = sandbox
        .report_sha256(vendor, &key)
        .expect("the sandbox knows the report");
    let on_disk = hex::encode(Sha256::digest(
        std::fs::read(job["out"].as_str().unwrap()).unwrap(),
    ));
    assert_eq!(job["sha256"].as_str().unwrap(), expected, "{job}");
    assert_eq!(on_disk, expected, "{job}");
}

#[test]
fn submit_validates_like_run_and_queues_nothing_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let out = dir.path().join("r.out");
    let out = out.to_str().unwrap();
    let bad: &[&[&str]] = &[
        &[
            "ofd",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-01",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
        ],
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "Nope",
            "--all-kkts",
            "--out",
            out,
        ],
        &[
            "docspace",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--out",
            "/no/such/folder/x",
        ],
        &[
            "evovoice",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--out",
            out,
        ],
        &[
            "cloudblue",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--format",
            "pdf",
            "--out",
            out,
        ],
        &["metakocka", "--format", "csv", "--out", out],
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ],
        // Credentials have no place in a submit.
        &[
            "ofd",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--type",
            "ReceiptReport",
            "--all-kkts",
            "--out",
            out,
            "--password",
            "x",
        ],
        &["nosuchvendor", "--out", out],
    ];
    for args in bad {
        bare(&db).arg("submit").args(*args).assert().code(2);
    }
    assert!(jobs_json(&db).is_empty(), "nothing queued");

    // Good input needs no credentials and prints the id.
    let out = bare(&db)
        .arg("submit")
        .args(SUBMITS[4].1)
        .args([
            "--out",
            dir.path().join("ofd.zip").to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["state"], "queued");
    let jobs = jobs_json(&db);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], answer["id"]);
    assert_eq!(jobs[0]["vendor"], "ofd");
}

#[test]
fn a_database_that_cannot_be_opened_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing-folder").join("jobs.sqlite");
    bare(&db).arg("jobs").assert().code(2);
    bare(&db)
        .args(["worker", "--exit-when-idle"])
        .assert()
        .code(2);
    let out = dir.path().join("r.out");
    bare(&db)
        .arg("submit")
        .args(SUBMITS[4].1)
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_jobs_of_every_vendor_are_run_by_a_worker() {
    let sandbox = sandbox().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    // Every vendor, and three DocSpace jobs on one connection: one after another, none refused.
    let mut submits: Vec<&(Vendor, &[&str])> = SUBMITS.iter().collect();
    submits.push(&SUBMITS[0]);
    submits.push(&SUBMITS[0]);
    for (i, (vendor, args)) in submits.iter().enumerate() {
        let out = files.join(format!("{i}-{}.out", vendor.name()));
        bare(&db)
            .arg("submit")
            .args(*args)
            .args(["--out", out.to_str().unwrap()])
            .assert()
            .success();
    }
    let env = worker_env(&sandbox);
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || {
        bare(&db2)
            .envs(env)
            .args(["worker", "--exit-when-idle", "--quiet", "--fetch-ms", "100"])
            .assert()
            .success();
    })
    .await
    .unwrap();

    let jobs = jobs_json(&db);
    assert_eq!(jobs.len(), 7);
    for job in &jobs {
        verify_done(&sandbox, job);
    }
    for (vendor, _) in SUBMITS {
        let submitted = submits.iter().filter(|(v, _)| v == vendor).count() as u64;
        assert_eq!(
            sandbox.stats(*vendor).reports_started,
            submitted,
            "{vendor:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&files).unwrap().count(),
        7,
        "no temporary file left"
    );

    // `jobs show` tells everything; the database holds no credential.
    let id = jobs[0]["id"].as_str().unwrap();
    let show = bare(&db).args(["jobs", "show", id]).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["sha256"], jobs[0]["sha256"]);
    bare(&db)
        .args(["jobs", "show", "no-such-id"])
        .assert()
        .code(2);
    assert_no_credentials(dir.path());
}

/// No sandbox credential in the database files (SQLite with its -wal and -shm).
pub fn assert_no_credentials(dir: &Path) {
    let secrets = [
        c::OFD_PASSWORD,
        c::DOCSPACE_API_KEY,
        c::EVOVOICE_PASSWORD,
        c::CLOUDBLUE_PASSWORD,
        c::CLOUDBLUE_SUBSCRIPTION_KEY,
        c::METAKOCKA_SECRET_KEY,
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("jobs.sqlite")
        {
            continue;
        }
        checked += 1;
        let bytes = std::fs::read(&path).unwrap();
        for secret in secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds a credential", path.display());
        }
    }
    assert!(checked >= 1);
}

/// Random moments: a small xorshift seeded from the clock (printed, to replay a failure).
struct Dice(u64);

impl Dice {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_moments_lose_no_job_and_start_none_twice() {
    let began = std::time::Instant::now();
    let sandbox = sandbox().await;
    // ≈ 20 % of status requests faulted, 10 % of downloads cut.
    sandbox.set_faults(report_sandbox::Faults {
        status_5xx: 0.06,
        status_429: 0.04,
        retry_after_secs: 1,
        drop_connection: 0.05,
        truncate_body: 0.05,
        download_cut: 0.1,
        ..report_sandbox::Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let mut submitted = 0;
    for round in 0..4 {
        for (vendor, args) in SUBMITS {
            let out = files.join(format!("{round}-{}.out", vendor.name()));
            bare(&db)
                .arg("submit")
                .args(*args)
                .args(["--out", out.to_str().unwrap()])
                .assert()
                .success();
            submitted += 1;
        }
    }
    assert_eq!(submitted, 20);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill moments seed: {seed}");
    let mut dice = Dice(seed);
    let binary = assert_cmd::cargo::cargo_bin("reports");
    let worker = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(&binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPORTS_DB", &db)
            .envs(worker_env(&sandbox))
            .args([
                "worker",
                "--quiet",
                "--concurrency",
                "8",
                "--fetch-ms",
                "100",
            ])
            .args(["--lease-secs", "2", "--heartbeat-secs", "1"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    let mut kills = 0;
    while kills < 8 {
        let mut child = worker(&[]).spawn().expect("the worker starts");
        tokio::time::sleep(Duration::from_millis(dice.between(500, 2500))).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        kills += 1;
    }
    let mut last = worker(&["--exit-when-idle"]);
    let status = tokio::task::spawn_blocking(move || {
        let mut child = last.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let jobs = jobs_json(&db);
    let summary: Vec<String> = jobs
        .iter()
        .map(|j| format!("{} {} {}", j["vendor"], j["state"], j["error"]))
        .collect();
    assert!(
        status.is_some_and(|s| s.success()),
        "the last worker drains the queue in time: {summary:#?}"
    );
    assert_eq!(jobs.len(), 20);
    for job in &jobs {
        verify_done(&sandbox, job);
    }
    for (vendor, _) in SUBMITS {
        assert_eq!(
            sandbox.stats(*vendor).reports_started,
            4,
            "one start per job: {vendor:?}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert_eq!(std::fs::read_dir(&files).unwrap().count(), 20);
    let faults: u64 = Vendor::ALL
        .iter()
        .map(|v| sandbox.stats(*v).faults_injected)
        .sum();
    let store = report_runner::Store::open(db.to_str().unwrap())
        .await
        .unwrap();
    let redelivered = store.redelivered_tasks().await.unwrap();
    eprintln!(
        "20 jobs, {kills} kills, {redelivered} tasks delivered again, {faults} faults injected, {:.1} s",
        began.elapsed().as_secs_f64()
    );
    assert!(faults > 0);
    assert!(redelivered > 0, "the kills cut steps in progress");
    assert_no_credentials(dir.path());
}
