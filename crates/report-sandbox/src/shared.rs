//! State shared by every simulator: configuration, clock, counters, tokens, ids, file registry,
//! and small HTTP helpers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::content::FileSpec;
use crate::faults::Faults;
use crate::record::Recorder;
use crate::{PerVendor, SandboxConfig, Vendor, VendorStats};

/// Where each server listens.
pub(crate) struct Origins {
    pub vendor: PerVendor<String>,
    pub blob: String,
}

impl Origins {
    pub(crate) fn vendor(&self, vendor: Vendor) -> &str {
        self.vendor.get(vendor)
    }
}

/// Wall-clock time derived from tokio's clock, so paused or advanced tokio time moves the
/// dates the simulators print too.
pub(crate) struct Clock {
    start: Instant,
    start_utc: DateTime<Utc>,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            start_utc: Utc::now(),
        }
    }

    pub(crate) fn utc_at(&self, at: Instant) -> DateTime<Utc> {
        chrono::Duration::from_std(at.saturating_duration_since(self.start))
            .ok()
            .and_then(|offset| self.start_utc.checked_add_signed(offset))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub(crate) fn utc_now(&self) -> DateTime<Utc> {
        self.utc_at(Instant::now())
    }
}

#[derive(Default)]
pub(crate) struct StatsCell {
    pub reports_started: AtomicU64,
    pub status_requests: AtomicU64,
    pub downloads: AtomicU64,
    pub faults_injected: AtomicU64,
}

impl StatsCell {
    pub(crate) fn snapshot(&self) -> VendorStats {
        VendorStats {
            reports_started: self.reports_started.load(Ordering::Relaxed),
            status_requests: self.status_requests.load(Ordering::Relaxed),
            downloads: self.downloads.load(Ordering::Relaxed),
            faults_injected: self.faults_injected.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn started(&self) {
        self.reports_started.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn status(&self) {
        self.status_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn download(&self) {
        self.downloads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn faults(&self, n: u64) {
        if n > 0 {
            self.faults_injected.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Issued OFD AuthTokens and CloudBlue JWTs with their expiry.
#[derive(Default)]
pub(crate) struct Tokens {
    map: Mutex<HashMap<String, (Vendor, Instant)>>,
}

impl Tokens {
    pub(crate) fn insert(&self, vendor: Vendor, token: String, expires: Instant) {
        let mut map = self.map.lock().expect("tokens lock");
        let now = Instant::now();
        map.retain(|_, (_, expiry)| *expiry > now);
        map.insert(token, (vendor, expires));
    }

    pub(crate) fn is_valid(&self, vendor: Vendor, token: &str) -> bool {
        let map = self.map.lock().expect("tokens lock");
        map.get(token)
            .is_some_and(|(v, expiry)| *v == vendor && Instant::now() < *expiry)
    }

    pub(crate) fn expire_all(&self) {
        self.map.lock().expect("tokens lock").clear();
    }
}

/// `at + duration`, saturating at a century ahead instead of overflowing (huge configured
/// durations mean "never").
pub(crate) fn later(at: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    at.checked_add(duration.min(CENTURY)).unwrap_or(at)
}

/// Timing of one report job.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JobClock {
    pub started: Instant,
    pub duration: Duration,
}

impl JobClock {
    pub(crate) fn start(duration: Duration) -> Self {
        JobClock {
            started: Instant::now(),
            duration,
        }
    }

    /// Fraction of the job done at `now`, in `0.0..=1.0`.
    pub(crate) fn fraction_at(&self, now: Instant) -> f64 {
        if self.duration.is_zero() {
            return 1.0;
        }
        let elapsed = now.saturating_duration_since(self.started);
        (elapsed.as_secs_f64() / self.duration.as_secs_f64()).min(1.0)
    }

    pub(crate) fn fraction(&self) -> f64 {
        self.fraction_at(Instant::now())
    }

    pub(crate) fn ends(&self) -> Instant {
        later(self.started, self.duration)
    }
}

pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub faults: Mutex<Faults>,
    pub origins: Origins,
    pub clock: Clock,
    pub recorder: Recorder,
    pub tokens: Tokens,
    stats: PerVendor<StatsCell>,
    dice: Mutex<StdRng>,
    ids: Mutex<StdRng>,
    secret: [u8; 32],
    files: Mutex<HashMap<(Vendor, String), FileSpec>>,
    digests: Mutex<HashMap<(Vendor, String), String>>,
    pub(crate) gzip_lengths: Mutex<HashMap<(Vendor, String), u64>>,
}

impl Shared {
    pub(crate) fn new(config: SandboxConfig, origins: Origins) -> Self {
        let seed = config.seed;
        let secret: [u8; 32] = Sha256::digest(format!("report-sandbox secret {seed}")).into();
        Shared {
            faults: Mutex::new(config.faults.clone()),
            config,
            origins,
            clock: Clock::new(),
            recorder: Recorder::default(),
            tokens: Tokens::default(),
            stats: Default::default(),
            dice: Mutex::new(StdRng::seed_from_u64(seed ^ 0xD1CE_D1CE_D1CE_D1CE)),
            ids: Mutex::new(StdRng::seed_from_u64(seed)),
            secret,
            files: Mutex::new(HashMap::new()),
            digests: Mutex::new(HashMap::new()),
            gzip_lengths: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn stats(&self, vendor: Vendor) -> &StatsCell {
        self.stats.get(vendor)
    }

    pub(crate) fn origin(&self, vendor: Vendor) -> &str {
        self.origins.vendor(vendor)
    }

    /// Rolls a die: true with probability `p` (clamped to `0.0..=1.0`).
    pub(crate) fn roll(&self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        let p = p.min(1.0);
        self.dice.lock().expect("dice lock").random_bool(p)
    }

    /// A uniformly chosen index below `n`.
    pub(crate) fn pick(&self, n: usize) -> usize {
        self.dice.lock().expect("dice lock").random_range(0..n)
    }

    pub(crate) fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut bytes = [0u8; N];
        self.ids.lock().expect("ids lock").fill(&mut bytes[..]);
        bytes
    }

    /// A random (seeded) version-4 UUID, hyphenated.
    pub(crate) fn uuid(&self) -> String {
        uuid::Builder::from_random_bytes(self.random_bytes::<16>())
            .into_uuid()
            .to_string()
    }

    /// 32 lowercase hexadecimal digits.
    pub(crate) fn hex32(&self) -> String {
        hex::encode(self.random_bytes::<16>())
    }

    /// A keyed digest of `data` (the sandbox's signature for tokens and pre-signed URLs).
    pub(crate) fn sign(&self, data: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(data.as_bytes());
        hasher.finalize().into()
    }

    pub(crate) fn sign_b64(&self, data: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sign(data))
    }

    pub(crate) fn register_file(&self, vendor: Vendor, id: &str, spec: FileSpec) {
        self.files
            .lock()
            .expect("files lock")
            .insert((vendor, id.to_owned()), spec);
    }

    pub(crate) fn file(&self, vendor: Vendor, id: &str) -> Option<FileSpec> {
        self.files
            .lock()
            .expect("files lock")
            .get(&(vendor, id.to_owned()))
            .cloned()
    }

    pub(crate) fn report_sha256(&self, vendor: Vendor, id: &str) -> Option<String> {
        let spec = self.file(vendor, id)?;
        let key = (vendor, id.to_owned());
        if let Some(digest) = self.digests.lock().expect("digests lock").get(&key) {
            return Some(digest.clone());
        }
        let digest = crate::content::sha256_hex(&spec.generator(self.config.seed, vendor, id));
        self.digests
            .lock()
            .expect("digests lock")
            .insert(key, digest.clone());
        Some(digest)
    }
}

/// A JSON response with `application/json; charset=utf-8`.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    (
        status,
        [(CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `YYYY-MM-DDTHH:MM:SS`, UTC without an offset (OFD style).
pub(crate) fn fmt_naive(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn fmt_iso_millis(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn fmt_iso(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A date or date-time as clients send it: RFC 3339 with an offset, a naive date-time (read as
/// UTC), or a bare date. Returns the instant and the naive local form (offset dropped).
pub(crate) fn parse_date(text: &str) -> Option<(DateTime<Utc>, NaiveDateTime)> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some((at.with_timezone(&Utc), at.naive_local()));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some((naive.and_utc(), naive));
        }
    }
    for format in ["%Y-%m-%d", "%d.%m.%Y"] {
        if let Ok(date) = NaiveDate::parse_from_str(text, format) {
            let naive = date.and_hms_opt(0, 0, 0).expect("midnight exists");
            return Some((naive.and_utc(), naive));
        }
    }
    None
}

/// A header's value as text, if present and visible ASCII.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `(user, password)` from an `Authorization: Basic …` header.
pub(crate) fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header(headers, "authorization")?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A non-null field of a JSON object, its name compared ignoring ASCII case (the way .NET
/// servers bind bodies).
pub(crate) fn field_ci<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .filter(|v| !v.is_null())
}

/// The first query parameter named `name` (ignoring ASCII case).
pub(crate) fn query_param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The real time spent since `start`, as `hh:mm:ss.fffffff` (OFD's `Elapsed`).
pub(crate) fn elapsed_since(start: std::time::Instant) -> String {
    let elapsed = start.elapsed();
    let secs = elapsed.as_secs();
    let ticks = elapsed.subsec_nanos() / 100;
    format!(
        "{:02}:{:02}:{:02}.{:07}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ticks
    )
}
