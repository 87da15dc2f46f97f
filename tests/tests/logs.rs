//! No secret and no issued token shows in the logs, at TRACE level, of every crate on the
//! client side (the clients, report-core, reqwest, hyper, rustls).
//!
//! These tests are a test binary of their own, and take turns (`logged`). `tracing` caches, for
//! the whole process, whether any subscriber wants each log site. A thread that reaches a log
//! site for the first time while another installs its subscriber can leave that site switched
//! off for good. In `isolation.rs`, beside tests on other threads, that once left CI with
//! nothing logged at all; a log test that logs nothing proves nothing.

mod hostile_server;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostile_server::{Hostile, json};
use integration_tests::secrets::{error_text, issued_tokens, sandbox_secrets};
use integration_tests::vendors::{
    cloudblue_adapter, cloudblue_request, docspace_adapter, docspace_request, evovoice_adapter,
    evovoice_request, lifecycle, metakocka_adapter, metakocka_request, ofd_adapter, ofd_config,
    ofd_request, quick_policy,
};
use report_core::{Error, Job, WaitPolicy};
use report_ofd::{OfdAdapter, OfdClient};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

/// A `tracing` writer collecting everything logged into one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Held by the test that is logging: one at a time, so no test reaches a log site while
/// another installs its subscriber.
static LOGGING: Mutex<()> = Mutex::new(());

/// Runs `work` on a runtime of one thread, with everything logged at TRACE level (but the
/// sandbox's, which is the server and sees the secrets) captured; returns its output and the
/// logs.
fn logged<T>(work: impl Future<Output = T>) -> (T, String) {
    use tracing_subscriber::util::SubscriberInitExt as _;

    let _one_at_a_time = LOGGING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let captured = Captured::default();
    let output = {
        let _logging = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,report_sandbox=off,axum=off",
            ))
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish()
            .set_default();
        // The runtime is dropped, its threads joined, before the next test may log.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(work)
    };
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    (output, logs)
}

/// Panics on the first of `secrets` found in `logs`, showing the line (and the secret's first
/// four characters only).
fn assert_no_secret_in(logs: &str, secrets: &[String]) {
    for s in secrets {
        if let Some(at) = logs.find(s.as_str()) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!(
                "a secret `{}…` was logged: {}",
                &s[..4],
                &logs[line_start..line_end]
            );
        }
    }
}

/// A password the sandbox refuses.
const WRONG_PASSWORD: &str = "pw-logs-wrong-ofd-5d2c";

/// Every vendor's lifecycle against the sandbox, and a refused login.
#[test]
fn secrets_never_show_in_logs() {
    let ((secrets, paths), logs) = logged(async {
        let sandbox = Sandbox::start(SandboxConfig::fast()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let base = |v| sandbox.base_url(v);
        lifecycle(
            docspace_adapter(&base(Vendor::DocSpace), c::DOCSPACE_API_KEY),
            &docspace_request(),
            quick_policy(),
            dir.path(),
        )
        .await;
        lifecycle(
            evovoice_adapter(&base(Vendor::EvoVoice)),
            &evovoice_request(),
            quick_policy(),
            dir.path(),
        )
        .await;
        lifecycle(
            cloudblue_adapter(&base(Vendor::CloudBlue)),
            &cloudblue_request("logs"),
            quick_policy(),
            dir.path(),
        )
        .await;
        lifecycle(
            metakocka_adapter(&base(Vendor::MetaKocka)),
            &metakocka_request(),
            quick_policy(),
            dir.path(),
        )
        .await;
        lifecycle(
            ofd_adapter(&base(Vendor::Ofd)),
            &ofd_request(),
            quick_policy(),
            dir.path(),
        )
        .await;
        let refused = OfdAdapter::new(
            OfdClient::new(ofd_config(&base(Vendor::Ofd), WRONG_PASSWORD)).unwrap(),
        );
        let error = Job::start(refused, &ofd_request(), quick_policy())
            .await
            .expect_err("a wrong password is refused");
        assert!(matches!(error, Error::Auth { .. }), "{error:?}");

        let requests = sandbox.requests();
        let tokens = issued_tokens(&requests);
        let mut paths: Vec<String> = requests.into_iter().map(|r| r.path).collect();
        paths.sort();
        paths.dedup();
        assert!(
            tokens.iter().any(|(v, _)| *v == Vendor::Ofd)
                && tokens.iter().any(|(v, _)| *v == Vendor::CloudBlue),
            "the OFD.ru and CloudBlue tokens in use were not found: {tokens:?}"
        );
        sandbox.shutdown().await;
        let mut secrets: Vec<String> = sandbox_secrets().into_iter().map(|(_, s)| s).collect();
        secrets.extend(tokens.into_iter().map(|(_, t)| t));
        secrets.push(WRONG_PASSWORD.to_string());
        (secrets, paths)
    });

    // Every request the sandbox received was logged, with its path.
    assert!(paths.len() >= 10, "{paths:?}");
    for path in &paths {
        assert!(
            logs.contains(&format!("path=\"{path}\"")),
            "the request for {path} was not logged: the test proves nothing\n{logs}"
        );
    }
    assert_no_secret_in(&logs, &secrets);
    println!(
        "{} log lines at TRACE level, no secret among them",
        logs.lines().count()
    );
}

/// A token the hostile servers below issue.
const ISSUED: &str = "issued-tok3n-7f3a9c";

/// Token answers whose other fields are odd (a lifetime that is text, fractional, huge; an
/// expiry in the past) are refused with a typed decode error that, like the logs, shows no
/// token; nor does serde's message for a token of the wrong type.
#[test]
fn token_answers_with_odd_fields_never_show_the_token() {
    let cut_short = || {
        WaitPolicy::default()
            .with_deadline(Some(Duration::from_secs(5)))
            .with_seed(1)
            .with_backoff(Duration::from_millis(5), Duration::from_millis(5))
    };
    let ((errors, wrong_type), logs) = logged(async {
        let cloudblue_answers = [
            format!(r#"{{"token":"{ISSUED}","expiresInSeconds":"abc"}}"#),
            format!(r#"{{"token":"{ISSUED}","expiresInSeconds":0.5}}"#),
            format!(r#"{{"expiresInSeconds":1e300,"token":"{ISSUED}"}}"#),
        ];
        let ofd_answers = [
            format!(r#"{{"AuthToken":"{ISSUED}","ExpirationDateUtc":1767225600}}"#),
            format!(r#"{{"ExpirationDateUtc":12,"AuthToken":"{ISSUED}"}}"#),
        ];
        let mut errors = Vec::new();
        for body in cloudblue_answers {
            let server = Hostile::start(move |_| json("200 OK", &body)).await;
            let adapter = cloudblue_adapter(&server.base);
            let policy = cut_short().with_transient_error_budget(1);
            errors.push(
                Job::start(adapter, &cloudblue_request("r"), policy)
                    .await
                    .unwrap_err(),
            );
        }
        for body in ofd_answers {
            let server = Hostile::start(move |_| json("200 OK", &body)).await;
            let adapter = ofd_adapter(&server.base);
            let policy = cut_short().with_transient_error_budget(1);
            errors.push(
                Job::start(adapter, &ofd_request(), policy)
                    .await
                    .unwrap_err(),
            );
        }
        // A token of the wrong type: serde quotes it in its message.
        let server = Hostile::start(|_| {
            json(
                "200 OK",
                r#"{"token":98765432101234,"expiresInSeconds":3600}"#,
            )
        })
        .await;
        let adapter = cloudblue_adapter(&server.base);
        let policy = cut_short().with_transient_error_budget(0);
        let wrong_type = Job::start(adapter, &cloudblue_request("r"), policy)
            .await
            .unwrap_err();
        (errors, wrong_type)
    });

    let text = error_text(&wrong_type);
    assert!(!text.contains("98765432101234"), "{text}");
    for err in &errors {
        let text = error_text(err);
        assert!(!text.contains(ISSUED), "{text}");
        assert!(
            text.contains("decode") || text.contains("Decode"),
            "a typed decode error: {text}"
        );
    }
    assert!(
        logs.matches("http.request").count() >= 6,
        "too little was logged to prove anything:\n{logs}"
    );
    assert_no_secret_in(&logs, &[ISSUED.to_string(), "98765432101234".to_string()]);
}
