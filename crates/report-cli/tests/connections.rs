//! Named connections: `submit --connection NAME` jobs run with profile NAME of the worker's
//! config file or its `REPORTS_CONNECTION_<NAME>_*` variables, against two sandboxes.

mod support;

use std::time::Duration;

use report_sandbox::{Vendor, credentials as c};
use support::jobs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_named_connection_uses_its_own_settings_and_an_unknown_one_fails_clearly() {
    let (a, b) = (sandbox().await, sandbox().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let secret = dir.path().join("alpha-password");
    std::fs::write(&secret, format!("{}\n", c::OFD_PASSWORD)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.alpha.ofd]\nbase_url = '{}'\nlogin = '{}'\npassword_file = '{}'\n\
             [profiles.beta.ofd]\nbase_url = '{}'\nlogin = '{}'\npassword = '{}'\n\
             [profiles.wrong.ofd]\nbase_url = '{}'\nlogin = '{}'\npassword = 'not-the-password'\n",
            a.base_url(Vendor::Ofd),
            c::OFD_LOGIN,
            secret.display(),
            b.base_url(Vendor::Ofd),
            c::OFD_LOGIN,
            c::OFD_PASSWORD,
            a.base_url(Vendor::Ofd),
            c::OFD_LOGIN,
        ),
    )
    .unwrap();
    // Plain passwords in it: private, or the worker refuses it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();

    let (_, args) = SUBMITS.iter().find(|(v, _)| *v == Vendor::Ofd).unwrap();
    let mut ids = std::collections::HashMap::new();
    for connection in ["alpha", "beta", "gamma", "wrong", "nobody"] {
        let out = bare(&db)
            .arg("submit")
            .args(*args)
            .args(["--connection", connection, "--json"])
            .args(["--out", files.join(connection).to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        let queued: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.insert(queued["id"].as_str().unwrap().to_string(), connection);
    }
    // `gamma` lives in the worker's environment only: sandbox B, password from a file.
    let gamma = |var: &str| format!("REPORTS_CONNECTION_GAMMA_{var}");
    let worker_env = [
        (gamma("OFD_BASE_URL"), b.base_url(Vendor::Ofd)),
        (gamma("OFD_LOGIN"), c::OFD_LOGIN.to_string()),
        (gamma("OFD_PASSWORD_FILE"), secret.display().to_string()),
    ];
    let db2 = db.clone();
    let config2 = config.clone();
    tokio::task::spawn_blocking(move || {
        bare(&db2)
            .envs(worker_env)
            .args(["worker", "--config", config2.to_str().unwrap()])
            .args(["--exit-when-idle", "--quiet", "--fetch-ms", "100"])
            .timeout(Duration::from_secs(60))
            .assert()
            .success();
    })
    .await
    .unwrap();

    let jobs = jobs_json(&db);
    let job = |name: &str| {
        jobs.iter()
            .find(|j| ids[j["id"].as_str().unwrap()] == name)
            .unwrap()
    };
    verify_done(&a, job("alpha"));
    verify_done(&b, job("beta"));
    verify_done(&b, job("gamma"));
    assert_eq!(a.stats(Vendor::Ofd).reports_started, 1, "alpha only");
    assert_eq!(b.stats(Vendor::Ofd).reports_started, 2, "beta and gamma");
    let wrong = job("wrong");
    assert_eq!(wrong["state"], "failed", "{wrong}");
    let nobody = job("nobody");
    assert_eq!(nobody["state"], "failed", "{nobody}");
    let error = nobody["error"].as_str().unwrap();
    assert!(
        error.contains("connection `nobody`: unknown connection: no profile `nobody`"),
        "{error}"
    );
    assert_no_credentials(dir.path());
    let stored = std::fs::read(&db).unwrap();
    assert!(
        !stored.windows(16).any(|w| w == b"not-the-password"),
        "the wrong connection's password is not stored"
    );
}
