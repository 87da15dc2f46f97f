//! Stateful local simulators of five vendors' asynchronous report APIs.
//!
//! [`Sandbox::start`] binds one loopback HTTP server (axum on hyper, HTTP/1.1) per vendor —
//! ONLYOFFICE DocSpace, EvoVoice, CloudBlue Commerce RDE, MetaKocka and OFD.ru — plus one
//! separate *blob* origin that serves CloudBlue's pre-signed (SAS-like) downloads. Each
//! simulator behaves like the real vendor as described in `shared/vendors/FACTS.md`: its paths,
//! its envelopes, its auth scheme, its status names and its quirks (OFD's query-string token,
//! DocSpace's one task per user and integer statuses, EvoVoice's "no GET by id", CloudBlue's
//! gzip blobs on another host, MetaKocka's errors inside HTTP 200 and changing tokens).
//!
//! Jobs progress with [`tokio::time::Instant`], so they cooperate with `tokio::time::pause()`.
//! Report files are deterministic bytes generated chunk by chunk from `(seed, vendor, report
//! id)`; they are never held in memory, every download supports `Range: bytes=N-` and always
//! carries `Content-Length`. [`Sandbox::report_sha256`] gives the digest a client should see
//! after downloading (and, for gzip blobs, decompressing) a report.
//!
//! Faults ([`Faults`]) can be injected into status requests (5xx, 429 with `Retry-After`,
//! delays, dropped connections, truncated JSON), downloads (connection cut midway) and the
//! answers of starts (lost after the report was started); token requests are never faulted. Every request received is recorded
//! ([`Sandbox::requests`]) so tests can assert, for instance, that no credential was sent to
//! the blob origin.
//!
//! # Example
//!
//! ```no_run
//! use report_sandbox::{credentials, Sandbox, SandboxConfig, Vendor};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::start(SandboxConfig::fast()).await?;
//! let base = sandbox.base_url(Vendor::Ofd); // "http://127.0.0.1:PORT"
//! let http = reqwest::Client::new();
//!
//! // Log in, start a report, poll the list until it is Done, download it.
//! let token: serde_json::Value = http
//!     .post(format!("{base}/api/Authorization/CreateAuthToken"))
//!     .json(&serde_json::json!({"Login": credentials::OFD_LOGIN, "Password": credentials::OFD_PASSWORD}))
//!     .send().await?.json().await?;
//! let token = token["AuthToken"].as_str().unwrap().to_owned();
//! let started: serde_json::Value = http
//!     .post(format!("{base}/api/customer/reports?AuthToken={token}"))
//!     .json(&serde_json::json!({
//!         "DateFrom": "2021-11-01T00:00:00", "DateTo": "2021-11-02T23:59:59",
//!         "ReportType": "ReceiptReport", "SelectAllKkts": true,
//!     }))
//!     .send().await?.json().await?;
//! let id = started["Data"]["Id"].as_str().unwrap().to_owned();
//! // … poll GET {base}/api/customer/reports?AuthToken=… until the report's Status is "Done" …
//! let file = http
//!     .get(format!("{base}/api/customer/reports/{id}?AuthToken={token}"))
//!     .send().await?.bytes().await?;
//! # let _ = file;
//! assert!(sandbox.report_sha256(Vendor::Ofd, &id).is_some());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Base URLs: [`Sandbox::base_url`] returns `http://127.0.0.1:PORT` for every vendor except
//! CloudBlue, whose base URL includes the marketplace path (`…/marketplace/eu`). Demo
//! credentials are in [`credentials`].

// Handlers' checks return the vendor's error answer itself (`Result<_, Response>`), the usual
// axum idiom; boxing every such answer would only add noise.
#![allow(clippy::result_large_err)]

mod cloudblue;
mod content;
pub mod credentials;
mod docspace;
mod evovoice;
mod faults;
mod metakocka;
mod ofd;
mod record;
mod server;
mod shared;
mod vendor;
mod webhook;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use faults::Faults;
pub use record::RecordedRequest;
pub use vendor::{PerVendor, UnknownVendor, Vendor};
pub use webhook::WebhookDelivery;

use shared::{Origins, Shared};

/// How the sandbox behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    /// Time from a report's start to its ready (or failed) state. Default 2 s.
    pub job_duration: Duration,
    /// Size in bytes of each generated report file (before any gzip). Default 64 KiB.
    pub report_size: u64,
    /// Lifetime of OFD AuthTokens and CloudBlue JWTs. Default 25 minutes.
    pub token_ttl: Duration,
    /// Injected faults. Default: none.
    pub faults: Faults,
    /// Seed of the fault dice, of generated ids and of file contents. Default 1.
    pub seed: u64,
    /// When true, every report job ends in the vendor's failure state. Default false.
    pub fail_reports: bool,
    /// How EvoVoice calls a report's `webhookUrl` (loopback only) once it is done.
    pub evovoice_webhook: WebhookDelivery,
    /// The first of consecutive loopback ports: one per vendor in [`Vendor::ALL`] order, then
    /// the blob store's. Default `None`: ephemeral ports, new on every start.
    pub base_port: Option<u16>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            job_duration: Duration::from_secs(2),
            report_size: 64 * 1024,
            token_ttl: Duration::from_secs(25 * 60),
            faults: Faults::default(),
            seed: 1,
            fail_reports: false,
            evovoice_webhook: WebhookDelivery::default(),
            base_port: None,
        }
    }
}

impl SandboxConfig {
    /// A configuration for tests: jobs take 300 ms and files are about 20 KB.
    pub fn fast() -> Self {
        SandboxConfig {
            job_duration: Duration::from_millis(300),
            report_size: 20_000,
            ..SandboxConfig::default()
        }
    }
}

/// Request counters of one vendor (its blob downloads included for CloudBlue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VendorStats {
    /// New report jobs started (a DocSpace POST that returns the running task does not count).
    pub reports_started: u64,
    /// Authenticated status requests (polls), faulted ones included.
    pub status_requests: u64,
    /// File downloads begun (each ranged request counts).
    pub downloads: u64,
    /// Faults injected (each fault counts once; a slow answer that is also truncated counts two).
    pub faults_injected: u64,
}

/// The running simulators. Dropping it stops the servers too; [`Sandbox::shutdown`] also waits
/// for them to stop.
pub struct Sandbox {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Sandbox");
        for vendor in Vendor::ALL {
            d.field(vendor.name(), &self.shared.origins.vendor(vendor));
        }
        d.field("blob", &self.shared.origins.blob).finish()
    }
}

impl Sandbox {
    /// Binds every simulator on `127.0.0.1` (ephemeral ports unless
    /// [`SandboxConfig::base_port`] is set) and starts serving.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let port = |index: usize| -> std::io::Result<u16> {
            let Some(base) = config.base_port else {
                return Ok(0);
            };
            u16::try_from(index)
                .ok()
                .and_then(|i| base.checked_add(i))
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("base port {base} leaves no room for {} ports", index + 1),
                    )
                })
        };
        let mut listeners = Vec::with_capacity(Vendor::ALL.len());
        for index in 0..Vendor::ALL.len() {
            listeners.push(server::bind(port(index)?).await?);
        }
        let blob_listener = server::bind(port(Vendor::ALL.len())?).await?;
        let mut vendor_origins = Vec::with_capacity(listeners.len());
        for listener in &listeners {
            vendor_origins.push(format!("http://{}", listener.local_addr()?));
        }
        let origins = Origins {
            // Listeners were bound in `Vendor::ALL` order.
            vendor: PerVendor::from_fn(|vendor| {
                let position = Vendor::ALL.iter().position(|v| *v == vendor);
                vendor_origins[position.expect("every vendor is in ALL")].clone()
            }),
            blob: format!("http://{}", blob_listener.local_addr()?),
        };
        let shared = Arc::new(Shared::new(config, origins));

        let (cloudblue_api, blob) = cloudblue::routers(shared.clone());
        let mut cloudblue_api = Some(cloudblue_api);
        let mut tasks = Vec::new();
        for (vendor, listener) in Vendor::ALL.into_iter().zip(listeners) {
            let router = match vendor {
                Vendor::DocSpace => docspace::router(shared.clone()),
                Vendor::EvoVoice => evovoice::router(shared.clone()),
                Vendor::CloudBlue => cloudblue_api.take().expect("one CloudBlue router"),
                Vendor::MetaKocka => metakocka::router(shared.clone()),
                Vendor::Ofd => ofd::router(shared.clone()),
            };
            tasks.push(server::spawn(listener, router));
        }
        let blob = blob.merge(metakocka::exports_router(shared.clone()));
        tasks.push(server::spawn(blob_listener, blob));
        Ok(Sandbox { shared, tasks })
    }

    /// The base URL a client uses for `vendor`: `http://127.0.0.1:PORT`, or for CloudBlue
    /// `http://127.0.0.1:PORT/marketplace/eu`.
    pub fn base_url(&self, vendor: Vendor) -> String {
        let origin = self.shared.origins.vendor(vendor);
        match vendor {
            Vendor::CloudBlue => format!(
                "{origin}/marketplace/{}",
                credentials::CLOUDBLUE_MARKETPLACE
            ),
            _ => origin.to_owned(),
        }
    }

    /// The origin of a vendor's server, without any base path: `http://127.0.0.1:PORT`.
    pub fn origin(&self, vendor: Vendor) -> String {
        self.shared.origins.vendor(vendor).to_owned()
    }

    /// The origin serving CloudBlue's pre-signed downloads: `http://127.0.0.1:PORT2`.
    pub fn blob_origin(&self) -> String {
        self.shared.origins.blob.clone()
    }

    /// Every request received on every origin, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Counters of one vendor.
    pub fn stats(&self, vendor: Vendor) -> VendorStats {
        self.shared.stats(vendor).snapshot()
    }

    /// SHA-256 (lowercase hex) of the *decompressed* contents of a report's file, or `None` when
    /// the vendor has no such report or the report has no file (failed jobs).
    ///
    /// The report id is the vendor's own: OFD `Id`, EvoVoice `id`, CloudBlue `id`, MetaKocka
    /// `token` (the one the start returned), and for DocSpace the task's `resultFileId` (as a
    /// decimal string). The digest is computed by regenerating the file once, then cached.
    pub fn report_sha256(&self, vendor: Vendor, report_id: &str) -> Option<String> {
        self.shared.report_sha256(vendor, report_id)
    }

    /// Replaces the fault probabilities; applies to requests received from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults lock") = faults;
    }

    /// Invalidates every OFD AuthToken and CloudBlue JWT issued so far: the next request using
    /// one answers 401, and the client must log in again.
    pub fn expire_tokens(&self) {
        self.shared.tokens.expire_all();
    }

    /// The configuration the sandbox was started with (with the current faults).
    pub fn config(&self) -> SandboxConfig {
        let mut config = self.shared.config.clone();
        config.faults = self.shared.faults.lock().expect("faults lock").clone();
        config
    }

    /// Stops every server and closes their connections.
    pub async fn shutdown(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
