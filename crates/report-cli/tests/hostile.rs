//! The `reports` binary against hostile vendors of our own (raw HTTP on 127.0.0.1) and an
//! operator's signals: the deadline bounds the whole command, signals stop it at once with a
//! resume line, vendor text cannot drive the terminal, bad vendor values are vendor errors.

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the hostile server does with one request.
enum Reply {
    /// Sends this body as a JSON answer.
    Json(String),
    /// Reads the request and never answers.
    Hang,
    /// Sends headers announcing a [`FILE_LEN`] file, a burst of [`BURST`] bytes, then one
    /// byte every 200 ms.
    Drip,
    /// Sends [`FILE_LEN`] bytes of `x` at once, from the `Range: bytes=N-` asked for.
    File,
}

const FILE_LEN: usize = 1 << 20;
/// More than the library's write buffer (256 KiB), so some of it reaches the disk before an
/// interruption.
const BURST: usize = 600 * 1024;

/// An EvoVoice-shaped server answering each request by `route(method and path)`.
async fn hostile(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let route = Arc::new(route);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let route = route.clone();
            tokio::spawn(serve(socket, move |head| route(head)));
        }
    });
    base
}

async fn serve(mut socket: TcpStream, route: impl Fn(&str) -> Reply) {
    loop {
        let Some(line) = read_request(&mut socket).await else {
            return;
        };
        match route(&line) {
            Reply::Json(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                if socket.write_all(head.as_bytes()).await.is_err()
                    || socket.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            Reply::File => {
                let from = range_start(&line).unwrap_or(0).min(FILE_LEN);
                let status = if from > 0 {
                    "206 Partial Content"
                } else {
                    "200 OK"
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\ncontent-range: bytes {from}-{}/{FILE_LEN}\r\n\r\n",
                    FILE_LEN - from,
                    FILE_LEN - 1
                );
                let body = vec![b'x'; FILE_LEN - from];
                if socket.write_all(head.as_bytes()).await.is_err()
                    || socket.write_all(&body).await.is_err()
                {
                    return;
                }
            }
            Reply::Drip => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {FILE_LEN}\r\n\r\n"
                );
                if socket.write_all(head.as_bytes()).await.is_err()
                    || socket.write_all(&vec![b'x'; BURST]).await.is_err()
                {
                    return;
                }
                for _ in 0..300 {
                    if socket.write_all(b"x").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                return;
            }
        }
    }
}

/// Reads one request (head and `content-length` body); returns its head.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
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
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(head)
}

/// The N of a `Range: bytes=N-` header.
fn range_start(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("range").then(|| {
            value
                .trim()
                .strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse()
                .ok()
        })?
    })
}

/// An EvoVoice report entry.
fn report(id: &str, status: &str, message: &str) -> String {
    serde_json::json!({
        "id": id, "name": "Billing", "status": status, "statusMessage": message,
        "dateCreated": "2024-01-01T00:00:00Z", "dateUpdated": "2024-01-01T00:00:00Z",
    })
    .to_string()
}

fn list(entry: &str) -> String {
    format!(r#"{{"reports":[{entry}]}}"#)
}

/// `reports evovoice run` against `base`, writing into `dir`.
fn evovoice_run(base: &str, dir: &std::path::Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("reports"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EVOVOICE_BASE_URL", base)
        .env("EVOVOICE_USERNAME", "user")
        .env("EVOVOICE_PASSWORD", "password")
        .args([
            "evovoice",
            "run",
            "--from",
            "2024-01-01",
            "--to",
            "2024-01-31",
            "--account-id",
            "acct-1",
            "--out",
        ])
        .arg(dir.join("r.xlsx"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a command to its end on a blocking thread, with a hard limit.
async fn finish(mut cmd: Command) -> (Output, Duration) {
    tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let child = cmd.spawn().expect("the binary starts");
        let output = wait_bounded(child, Duration::from_secs(30));
        (output, began.elapsed())
    })
    .await
    .unwrap()
}

fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if began.elapsed() > limit {
            let _ = child.kill();
            panic!("the command ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn folder_is_empty(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_bounds_a_hanging_start_a_hanging_status_and_a_dripping_download() {
    let hanging_start = hostile(|_| Reply::Hang).await;
    let hanging_status = hostile(|line| match line.starts_with("POST") {
        true => Reply::Json(report("r1", "Running", "")),
        false => Reply::Hang,
    })
    .await;
    let dripping = hostile(|line| match line.starts_with("POST") {
        true => Reply::Json(report("r1", "Completed", "")),
        false => Reply::Drip,
    })
    .await;
    for (name, base) in [
        ("start", hanging_start),
        ("status", hanging_status),
        ("download", dripping),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (output, took) = finish(evovoice_run(&base, dir.path(), &["--timeout", "2s"])).await;
        eprintln!(
            "--timeout 2s, hanging {name}: exit {:?} after {took:.2?}",
            output.status.code()
        );
        assert_eq!(output.status.code(), Some(4), "{name}: {}", stderr(&output));
        assert!(took < Duration::from_secs(4), "{name}: took {took:?}");
        assert!(
            stderr(&output).contains("deadline"),
            "{name}: {}",
            stderr(&output)
        );
        assert_eq!(folder_is_empty(dir.path()), Vec::<String>::new(), "{name}");
        if name == "download" {
            // Plain progress lines count the bytes, with the rate and the time left.
            let text = stderr(&output);
            let line = text
                .lines()
                .find(|l| l.contains("evovoice: downloading 600.00 KiB of 1.00 MiB"))
                .unwrap_or_else(|| panic!("no byte progress: {text}"));
            assert!(line.contains("/s, eta "), "{line}");
        }
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Starts `cmd`, sends `sig` once the hostile server has seen `requests` requests, and returns
/// the output and how long the command took to stop.
async fn interrupt(
    cmd: Command,
    seen: Arc<std::sync::atomic::AtomicUsize>,
    requests: usize,
    sig: libc::c_int,
) -> (Output, Duration) {
    let mut cmd = cmd;
    tokio::task::spawn_blocking(move || {
        let child = cmd.spawn().expect("the binary starts");
        let began = Instant::now();
        while seen.load(std::sync::atomic::Ordering::SeqCst) < requests {
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "the server saw too few requests"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the answer reach the command.
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, sig);
        let sent = Instant::now();
        let output = wait_bounded(child, Duration::from_secs(10));
        (output, sent.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_downloading_and_sigterm_while_waiting_stop_at_once_with_a_resume_line() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    for (sig, code, status) in [
        (libc::SIGINT, 130, "Completed"),
        (libc::SIGTERM, 143, "Running"),
    ] {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let base = hostile(move |line| {
            counter.fetch_add(1, Ordering::SeqCst);
            match line.starts_with("POST") {
                true => Reply::Json(report("r1", status, "")),
                false if status == "Running" => Reply::Json(list(&report("r1", "Running", ""))),
                false => Reply::Drip,
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        // Once the start and a status request (Running) or the download (Completed) began.
        let (output, took) = interrupt(evovoice_run(&base, dir.path(), &[]), seen, 2, sig).await;
        let text = stderr(&output);
        eprintln!(
            "signal {sig} while {status}: exit {:?}, {took:.2?} after the signal",
            output.status.code()
        );
        assert_eq!(output.status.code(), Some(code), "{text}");
        assert!(took < Duration::from_secs(1), "stopped after {took:?}");
        assert!(
            text.contains("resume with: reports evovoice download --ticket '{"),
            "{text}"
        );
        assert!(text.contains(r#""id":"r1""#), "{text}");
        assert_eq!(folder_is_empty(dir.path()), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_text_is_escaped_and_quiet_prints_errors_only() {
    let hostile_text = "boom\nerror: forged line\u{1b}[2J\u{7}";
    let message = hostile_text.to_string();
    let base = hostile(move |line| match line.starts_with("POST") {
        true => Reply::Json(report("r1", "Queued", "")),
        // An unknown state (a WARN line), then a failure with hostile text.
        false => Reply::Json(list(&report("r1", "Error", &message))),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (output, _) = finish(evovoice_run(&base, dir.path(), &[])).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("error: forged")),
        "a vendor forged a line: {text}"
    );
    assert!(
        text.contains(r"boom\nerror: forged line\u{1b}[2J"),
        "{text}"
    );

    // An unknown state makes a WARN line, plain (no colour) when stderr is not a terminal;
    // with -q it is not printed at all.
    let base = hostile(|line| match line.starts_with("POST") {
        true => Reply::Json(report("r1", "Reticulating\nerror: forged in a log", "")),
        false => Reply::Json(list(&report("r1", "Error", "failed"))),
    })
    .await;
    let (output, _) = finish(evovoice_run(&base, dir.path(), &[])).await;
    let text = stderr(&output);
    assert!(text.contains("WARN"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour in a pipe: {text:?}");
    assert!(
        !text.lines().any(|l| l.starts_with("error: forged")),
        "a vendor forged a log line: {text}"
    );
    let (output, _) = finish(evovoice_run(&base, dir.path(), &["-q"])).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(!text.contains("WARN"), "{text}");
    assert!(text.starts_with("error: "), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_vendor_values_after_the_start_exit_4_with_the_ticket() {
    for id in ["..", "bad\r\nid"] {
        let entry = report(id, "Running", "");
        let base = hostile(move |_| Reply::Json(entry.clone())).await;
        let dir = tempfile::tempdir().unwrap();
        let (output, _) = finish(evovoice_run(&base, dir.path(), &["--json", "-q"])).await;
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(4), "{id:?}: {text}");
        assert!(
            text.contains("resume with: reports evovoice"),
            "{id:?}: {text}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("a JSON failure on stdout");
        assert_eq!(json["exit_code"], 4);
        assert_eq!(json["ticket"]["id"], id);
        assert!(json["error"]["message"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_named_in_the_first_line() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ticket = r#"{"version":1,"vendor":"ofd","id":"r1","started_at":"2024-01-01T00:00:00Z"}"#;
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("reports"));
    cmd.env_clear()
        .args([
            "ofd",
            "status",
            "--login",
            "l",
            "--password",
            "p",
            "--ticket",
            ticket,
        ])
        .arg("--base-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (output, _) = finish(cmd).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{text}");
    let first = text.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{text}");
    assert!(
        first.to_lowercase().contains("connection refused"),
        "{text}"
    );

    // A start retries refused connections until the deadline: the error still names them.
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("reports"));
    cmd.env_clear()
        .args([
            "ofd",
            "start",
            "--period",
            "2024-01",
            "--type",
            "ReceiptReport",
            "--all-kkts",
        ])
        .args([
            "--login",
            "l",
            "--password",
            "p",
            "--timeout",
            "2s",
            "-q",
            "--base-url",
        ])
        .arg(format!("http://127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (output, took) = finish(cmd).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{text}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let first = text.lines().next().unwrap_or_default().to_lowercase();
    assert!(
        first.contains("deadline") && first.contains("connection refused"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_is_kept_in_the_cache_and_continued_by_download_ticket() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    // First the file drips (and the command is interrupted), then it is served with Range.
    let serve_whole = Arc::new(AtomicBool::new(false));
    let whole = serve_whole.clone();
    let ranges = Arc::new(std::sync::Mutex::new(Vec::new()));
    let asked = ranges.clone();
    let base = hostile(move |head| {
        counter.fetch_add(1, Ordering::SeqCst);
        if head.starts_with("POST") {
            Reply::Json(report("r1", "Completed", ""))
        } else if !head.starts_with("GET /reports/r1.xlsx") {
            Reply::Json(list(&report("r1", "Completed", "")))
        } else if whole.load(Ordering::SeqCst) {
            asked.lock().unwrap().push(range_start(head));
            Reply::File
        } else {
            Reply::Drip
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = evovoice_run(&base, dir.path(), &[]);
    cmd.env("XDG_CACHE_HOME", cache.path());
    let (output, _) = interrupt(cmd, seen, 2, libc::SIGINT).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert_eq!(folder_is_empty(dir.path()), Vec::<String>::new());
    let partial = cache.path().join("reports/partial");
    let kept: u64 = std::fs::read_dir(&partial)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(kept > 0, "the received bytes are kept in the cache: {text}");

    // The printed command continues the transfer from the kept bytes.
    serve_whole.store(true, Ordering::SeqCst);
    let ticket = text
        .lines()
        .find_map(|l| l.strip_prefix("resume with: reports evovoice download --ticket '"))
        .and_then(|rest| rest.split_once("' --out "))
        .map(|(ticket, _)| ticket.to_string())
        .expect("a resume line with the ticket");
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("reports"));
    cmd.env_clear()
        .env("XDG_CACHE_HOME", cache.path())
        .env("EVOVOICE_BASE_URL", &base)
        .env("EVOVOICE_USERNAME", "user")
        .env("EVOVOICE_PASSWORD", "password")
        .args(["evovoice", "download", "--ticket", &ticket, "--out"])
        .arg(dir.path().join("r.xlsx"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (output, _) = finish(cmd).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::metadata(dir.path().join("r.xlsx")).unwrap().len(),
        FILE_LEN as u64
    );
    assert_eq!(
        *ranges.lock().unwrap(),
        [Some(kept as usize)],
        "continued from the kept bytes"
    );
    assert_eq!(
        std::fs::read_dir(&partial).unwrap().count(),
        0,
        "the partial file is gone"
    );
}
