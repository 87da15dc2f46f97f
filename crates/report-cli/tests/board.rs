//! The job board (`reports worker --ui ADDR`, `reports jobs --ui ADDR`) as a real headless
//! Chromium renders it: done, failed and queued jobs with their state, file path and sha256, a
//! vendor's `<script>` shown as text, no credential anywhere.
//!
//! Without Chromium the browser test skips, except in CI (`CI=true`), where it fails loudly:
//! `.ci/run` installs Debian's `chromium` package.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use report_sandbox::{Vendor, credentials as c};
use support::jobs::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the hostile EvoVoice says about its report: markup that must stay text.
const HOSTILE: &str = "<script>document.title='pwned'</script><b>bold</b>";

/// Debian's `chromium` on PATH, or `None` (after saying why) outside CI.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "Chromium is missing in CI: install Debian's `chromium` package (.ci/run does)"
        );
        eprintln!("skipped: Chromium is not installed (apt-get install chromium)");
    }
    found
}

/// Headless Chromium with a throwaway profile, each run bounded in time.
struct Browser {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Browser {
    /// Runs Chromium on `url` once the page's script had 5 s of (virtual) time; returns what
    /// it printed.
    fn run(&self, url: &str, extra: &[String]) -> String {
        let out = self.home.path().join("stdout");
        let mut child = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--virtual-time-budget=5000",
            ])
            .arg(format!(
                "--user-data-dir={}",
                self.home.path().join("profile").display()
            ))
            .args(extra)
            .arg(url)
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            // Its own process group: a run past the limit is killed with its helpers.
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let began = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if began.elapsed() > Duration::from_secs(60) {
                // SAFETY: kill(2) on the process group of the child started above.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                panic!("chromium ran past 60 s on {url}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(out).unwrap()
    }

    fn dump_dom(&self, url: &str) -> String {
        self.run(url, &["--dump-dom".into()])
    }

    /// A 1280×800 PNG of the page.
    fn screenshot(&self, url: &str) -> Vec<u8> {
        let file = self.home.path().join("board.png");
        self.run(
            url,
            &[
                format!("--screenshot={}", file.display()),
                "--window-size=1280,800".into(),
            ],
        );
        std::fs::read(file).expect("chromium wrote the screenshot")
    }
}

/// A process of ours, killed when the test ends however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over a plain socket: the whole answer (head and body), or `None` while nothing
/// listens.
fn get(port: u16, path: &str) -> Option<String> {
    get_as(port, path, "127.0.0.1")
}

/// `GET path` with this `Host` header.
fn get_as(port: u16, path: &str, host: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    socket.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The jobs `GET /api/jobs` lists, once the board answers.
fn api_jobs(port: u16) -> Option<Vec<serde_json::Value>> {
    let answer = get(port, "/api/jobs")?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    let board: serde_json::Value = serde_json::from_str(body).ok()?;
    board["jobs"].as_array().cloned()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let began = Instant::now();
    while !ready() {
        assert!(began.elapsed() < Duration::from_secs(60), "{what} in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An EvoVoice of our own on loopback: the report starts, then fails with [`HOSTILE`] text.
async fn hostile_evovoice() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let entry = |status: &str, message: &str| {
        serde_json::json!({
            "id": "r1", "name": "Billing", "status": status, "statusMessage": message,
            "dateCreated": "2024-01-01T00:00:00Z", "dateUpdated": "2024-01-01T00:00:00Z",
        })
    };
    let started = Arc::new(entry("Queued", "").to_string());
    let failed = Arc::new(serde_json::json!({ "reports": [entry("Error", HOSTILE)] }).to_string());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (started, failed) = (started.clone(), failed.clone());
            tokio::spawn(async move {
                let Some(head) = read_request(&mut socket).await else {
                    return;
                };
                let body = match head.starts_with("POST") {
                    true => started,
                    false => failed,
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            });
        }
    });
    base
}

/// Reads one request (head and `content-length` body); returns its head.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// The `<tr>` of one job in a dumped DOM.
fn row<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no row for job {id} in:\n{dom}"));
    let end = start + dom[start..].find("</tr>").expect("the row ends");
    &dom[start..end]
}

const SECRETS: [&str; 6] = [
    c::OFD_PASSWORD,
    c::DOCSPACE_API_KEY,
    c::EVOVOICE_PASSWORD,
    c::CLOUDBLUE_PASSWORD,
    c::CLOUDBLUE_SUBSCRIPTION_KEY,
    c::METAKOCKA_SECRET_KEY,
];

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "a credential on the board: {secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_board_renders_jobs_in_headless_chromium() {
    let Some(bin) = chromium() else {
        return;
    };
    let browser = Browser {
        bin,
        home: tempfile::tempdir().unwrap(),
    };
    let sandbox = sandbox().await;
    let evovoice = hostile_evovoice().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("jobs.sqlite");
    // CloudBlue and OFD finish at the sandbox; EvoVoice fails with hostile text.
    for (vendor, args) in [&SUBMITS[2], &SUBMITS[4], &SUBMITS[1]] {
        let out = dir.path().join(format!("{}.out", vendor.name()));
        bare(&db)
            .arg("submit")
            .args(*args)
            .args(["--out", out.to_str().unwrap()])
            .assert()
            .success();
    }

    // `worker --ui`: the board while the worker runs.
    let port = free_port();
    let mut env = worker_env(&sandbox);
    env.retain(|(name, _)| *name != "EVOVOICE_BASE_URL");
    env.push(("EVOVOICE_BASE_URL", evovoice));
    let worker = Running(
        Command::new(assert_cmd::cargo::cargo_bin("reports"))
            .env_clear()
            .env("REPORTS_DB", &db)
            .envs(env)
            .args(["worker", "--quiet", "--fetch-ms", "100"])
            .args(["--ui", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap(),
    );
    // Polled through the board: `reports jobs` beside a busy worker can meet a locked SQLite.
    wait_for("three finished jobs", || {
        api_jobs(port).is_some_and(|jobs| {
            jobs.len() == 3
                && jobs
                    .iter()
                    .all(|j| j["state"] == "done" || j["state"] == "failed")
        })
    });
    let api = get(port, "/api/jobs").expect("the board answers");
    assert!(api.starts_with("HTTP/1.1 200"), "{api}");
    let head = api.to_ascii_lowercase();
    assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"));
    assert!(head.contains("content-type: application/json"));
    assert!(
        !api.contains("\"ticket\"") && !api.contains("\"request\""),
        "{api}"
    );
    assert_no_secret(&api);

    let url = format!("http://127.0.0.1:{port}/");
    let dom = browser.dump_dom(&url);
    assert!(dom.contains("3 jobs · updated"), "the script ran:\n{dom}");
    assert!(dom.contains("<title>Report jobs</title>"), "{dom}");
    assert_eq!(dom.matches("<script").count(), 1, "only board.js:\n{dom}");
    assert!(!dom.contains("<b>bold"), "{dom}");
    assert_no_secret(&dom);
    drop(worker);
    let jobs = jobs_json(&db);
    for job in &jobs {
        let id = job["id"].as_str().unwrap();
        let tr = row(&dom, id);
        let state = job["state"].as_str().unwrap();
        assert!(tr.contains(&format!("data-state=\"{state}\"")), "{tr}");
        assert!(tr.contains(&format!(">{state}</span>")), "{tr}");
        assert!(tr.contains(job["out"].as_str().unwrap()), "{tr}");
        assert!(tr.contains(job["vendor"].as_str().unwrap()), "{tr}");
        match state {
            "done" => {
                verify_done(&sandbox, job);
                assert!(tr.contains(job["sha256"].as_str().unwrap()), "{tr}");
            }
            _ => {
                assert_eq!(job["vendor"], "evovoice", "{job}");
                assert!(
                    tr.contains(
                        "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"
                    ),
                    "the vendor's text, as text: {tr}"
                );
            }
        }
    }

    // `jobs --ui`: the board without a worker; a new job stays queued.
    let out = dir.path().join("metakocka.out");
    bare(&db)
        .arg("submit")
        .args(SUBMITS[3].1)
        .args(["--out", out.to_str().unwrap()])
        .assert()
        .success();
    let queued = jobs_json(&db)
        .into_iter()
        .find(|j| j["vendor"] == Vendor::MetaKocka.name())
        .unwrap();
    let port = free_port();
    let _board = Running(
        Command::new(assert_cmd::cargo::cargo_bin("reports"))
            .env_clear()
            .env("REPORTS_DB", &db)
            .args(["jobs", "--quiet", "--ui", &format!("127.0.0.1:{port}")])
            .spawn()
            .unwrap(),
    );
    wait_for("the board", || get(port, "/").is_some());
    let url = format!("http://127.0.0.1:{port}/");
    let dom = browser.dump_dom(&url);
    assert!(dom.contains("4 jobs · updated"), "{dom}");
    let tr = row(&dom, queued["id"].as_str().unwrap());
    assert!(tr.contains(">queued</span>"), "{tr}");
    assert!(tr.contains(out.to_str().unwrap()), "{tr}");
    assert_eq!(jobs_json(&db).len(), 4);

    let png = browser.screenshot(&url);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800));
    // How docs/job-board.png is made: REPORTS_BOARD_SCREENSHOT=docs/job-board.png.
    if let Some(keep) = std::env::var_os("REPORTS_BOARD_SCREENSHOT") {
        std::fs::write(Path::new(&keep), &png).unwrap();
    }
}

#[test]
fn a_board_address_in_use_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bare(dir.path().join("jobs.sqlite"))
        .args(["worker", "--exit-when-idle", "--ui", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("--ui {addr}")), "{stderr}");
}

#[test]
fn a_board_on_port_0_prints_its_url_and_serves_loopback_names_only() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut board = Running(
        Command::new(assert_cmd::cargo::cargo_bin("reports"))
            .env_clear()
            .env("REPORTS_DB", dir.path().join("jobs.sqlite"))
            .args(["jobs", "--ui", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = board.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the board says where it is");
    let port: u16 = line
        .trim()
        .strip_prefix("job board on http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let page = get(port, "/").expect("the board answers");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>Report jobs</title>"), "{page}");
    let jobs = api_jobs(port).expect("jobs as JSON");
    assert!(jobs.is_empty());
    let missing = get(port, "/nothing-here").unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    // A page elsewhere that rebinds its name to 127.0.0.1 (DNS rebinding) reads nothing.
    let rebound = get_as(port, "/api/jobs", &format!("evil.example:{port}")).unwrap();
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    let by_name = get_as(port, "/api/jobs", &format!("localhost:{port}")).unwrap();
    assert!(by_name.starts_with("HTTP/1.1 200"), "{by_name}");
}
