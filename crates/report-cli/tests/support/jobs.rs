//! Helpers of the `reports submit | worker | jobs` tests: the sandbox, the commands, checks.

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

pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        job_duration: Duration::from_millis(300),
        report_size: 4096,
        ..SandboxConfig::fast()
    })
    .await
    .expect("sandbox starts")
}

/// `reports` with nothing inherited but PATH: no credentials. `db`: a file or a URL.
pub fn bare(db: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::cargo_bin("reports").expect("the binary is built");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPORTS_DB", db)
        .timeout(Duration::from_secs(60));
    cmd
}

/// The sandbox's URLs and credentials, as a worker's environment.
pub fn worker_env(sandbox: &Sandbox) -> Vec<(&'static str, String)> {
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

pub fn jobs_json(db: impl AsRef<std::ffi::OsStr>) -> Vec<serde_json::Value> {
    let out = bare(db).args(["jobs", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn vendor_of(name: &str) -> Vendor {
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

/// No two jobs share a vendor report (DocSpace's task ids repeat per user: its result files
/// tell its reports apart).
pub fn assert_distinct_reports(jobs: &[serde_json::Value]) {
    let mut seen = std::collections::HashSet::new();
    for job in jobs {
        let id = match job["vendor"].as_str() {
            Some("docspace") => &job["artifact"]["data"]["file_id"],
            _ => &job["ticket"]["id"],
        };
        let key = (job["vendor"].to_string(), id.to_string());
        assert!(
            seen.insert(key.clone()),
            "two jobs share the report {key:?}"
        );
    }
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
        // A -wal or -shm file goes away when the last connection closes.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        checked += 1;
        for secret in secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds a credential", path.display());
        }
    }
    assert!(checked >= 1);
}
