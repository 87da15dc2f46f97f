//! Named connections: how a worker turns a job's vendor, connection name and stored options
//! into an adapter and a start request. Supplied by the caller (the CLI registers the five
//! vendors, with credentials from the worker's environment); the database holds none.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::limits::{Access, Gate, Limits, Pass};
use report_core::{
    Artifact, DownloadOptions, DownloadSummary, Job, ReportAdapter, Step, Ticket, WaitPolicy,
    WaitState,
};

/// Builds a vendor's adapter for a named connection (credentials from the environment or a
/// config file; an error message if the connection is unknown or incomplete).
pub type ConnectFn<A> = dyn Fn(&str) -> Result<A, String> + Send + Sync;
/// Builds a vendor's start request from the options stored with the job (checked again).
pub type RequestFn<R> = dyn Fn(&serde_json::Value) -> Result<R, String> + Send + Sync;
/// Gives a vendor's start request the job's webhook URL (the vendor calls it when the report
/// is done, and the call makes the job poll at once).
pub type WebhookFn<R> = dyn Fn(R, &str) -> R + Send + Sync;
/// Names a job's report kind from its stored options: jobs of one kind share learned durations.
pub type KindFn = dyn Fn(&serde_json::Value) -> String + Send + Sync;

/// The kind of a job whose vendor has no [`Registry::report_kind`]: all its jobs share one
/// learned duration.
pub const DEFAULT_KIND: &str = "default";

/// One step's outcome and the requests it took.
pub struct Stepped {
    pub outcome: report_core::Result<Step>,
    pub polls: u32,
    pub retries: u32,
}

/// One vendor, with its types erased so the worker can hold all of them.
pub trait Vendor: Send + Sync {
    /// Starts the report: the ticket and the state of its wait. Never retried by the runner.
    /// `webhook_url`: the job's own URL for the vendor to call when the report is done
    /// (given only to a vendor that [takes webhooks](Vendor::takes_webhook)).
    fn start<'a>(
        &'a self,
        connection: &'a str,
        request: &'a serde_json::Value,
        policy: &'a WaitPolicy,
        webhook_url: Option<&'a str>,
    ) -> BoxFuture<'a, report_core::Result<(Ticket, WaitState)>>;

    /// Whether the vendor can call a webhook when a report is done
    /// ([`Registry::register_with_webhook`]).
    fn takes_webhook(&self) -> bool {
        false
    }

    /// Looks for a report this request started at or after `since` (a start whose answer
    /// was lost), with a fresh wait state for it. `Ok(None)`: the vendor has none;
    /// [`report_core::Error::Unsupported`]: the vendor cannot tell.
    fn find_started<'a>(
        &'a self,
        connection: &'a str,
        request: &'a serde_json::Value,
        since: DateTime<Utc>,
        policy: &'a WaitPolicy,
    ) -> BoxFuture<'a, report_core::Result<Option<(Ticket, WaitState)>>>;

    /// Takes one step of the wait (at most one status request).
    fn step<'a>(
        &'a self,
        connection: &'a str,
        ticket: &'a Ticket,
        state: &'a mut WaitState,
        policy: &'a WaitPolicy,
    ) -> BoxFuture<'a, report_core::Result<Stepped>>;

    /// Downloads the artifact to `out` (temporary file, then an atomic rename).
    fn download<'a>(
        &'a self,
        connection: &'a str,
        ticket: &'a Ticket,
        artifact: &'a Artifact,
        out: &'a Path,
        policy: &'a WaitPolicy,
    ) -> BoxFuture<'a, report_core::Result<DownloadSummary>>;

    /// Whether a repeated start is harmless (the vendor answers it with the running report),
    /// so a start whose answer was lost may be sent again.
    fn start_is_idempotent(&self, connection: &str) -> bool;

    /// Cancels the report at the vendor.
    fn cancel<'a>(
        &'a self,
        connection: &'a str,
        ticket: &'a Ticket,
    ) -> BoxFuture<'a, report_core::Result<()>>;
}

/// A vendor and one of its connections.
type Key = (String, String);

/// The vendors a worker can run, by name.
#[derive(Default, Clone)]
pub struct Registry {
    vendors: HashMap<String, Arc<dyn Vendor>>,
    one_at_a_time: std::collections::HashSet<String>,
    /// Each connection's limits by vendor, and overrides for named connections.
    limits: HashMap<String, Limits>,
    connection_limits: HashMap<Key, Limits>,
    /// The limits' live state per (vendor, connection), shared by clones of the registry.
    gates: Arc<Mutex<HashMap<Key, Arc<Gate>>>>,
    kinds: HashMap<String, Arc<KindFn>>,
    /// The database whose workers share the limits (set by the worker).
    shared: Option<crate::Store>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.vendors.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("vendors", &names).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a vendor: how to connect per connection name, how to build its request.
    /// One adapter is built per connection and reused (token caches, connection pools).
    pub fn register<A>(
        &mut self,
        vendor: &str,
        connect: impl Fn(&str) -> Result<A, String> + Send + Sync + 'static,
        request: impl Fn(&serde_json::Value) -> Result<A::Request, String> + Send + Sync + 'static,
    ) -> &mut Self
    where
        A: ReportAdapter + 'static,
    {
        self.insert::<A>(vendor, Box::new(connect), Box::new(request), None)
    }

    /// Registers a vendor that calls a webhook when a report is done: `with_webhook` puts a
    /// job's webhook URL into its start request (a worker with
    /// [`Worker::with_webhook_url_base`](crate::Worker::with_webhook_url_base) gives each job
    /// its own).
    pub fn register_with_webhook<A>(
        &mut self,
        vendor: &str,
        connect: impl Fn(&str) -> Result<A, String> + Send + Sync + 'static,
        request: impl Fn(&serde_json::Value) -> Result<A::Request, String> + Send + Sync + 'static,
        with_webhook: impl Fn(A::Request, &str) -> A::Request + Send + Sync + 'static,
    ) -> &mut Self
    where
        A: ReportAdapter + 'static,
    {
        self.insert::<A>(
            vendor,
            Box::new(connect),
            Box::new(request),
            Some(Box::new(with_webhook)),
        )
    }

    fn insert<A: ReportAdapter + 'static>(
        &mut self,
        vendor: &str,
        connect: Box<ConnectFn<A>>,
        request: Box<RequestFn<A::Request>>,
        webhook: Option<Box<WebhookFn<A::Request>>>,
    ) -> &mut Self {
        self.vendors.insert(
            vendor.to_string(),
            Arc::new(Registered::<A> {
                connect,
                request,
                webhook,
                adapters: Mutex::new(HashMap::new()),
            }),
        );
        self
    }

    /// Runs each connection's jobs of `vendor` one after another (start to download), for
    /// vendors that keep one report task per user (DocSpace) and would refuse the next.
    pub fn one_job_per_connection(&mut self, vendor: &str) -> &mut Self {
        self.one_at_a_time.insert(vendor.to_string());
        self
    }

    /// Whether `vendor`'s connections run one job at a time.
    pub fn is_one_job_per_connection(&self, vendor: &str) -> bool {
        self.one_at_a_time.contains(vendor)
    }

    /// Makes the limits hold across every worker on `store`'s database.
    pub(crate) fn share_limits(&mut self, store: crate::Store) {
        self.shared = Some(store);
    }

    /// Limits every connection of `vendor` (each connection has its own allowance, shared by
    /// every worker on one database).
    pub fn limit(&mut self, vendor: &str, limits: Limits) -> &mut Self {
        self.limits.insert(vendor.to_string(), limits);
        self
    }

    /// Limits one named connection of `vendor`, instead of the vendor's limits.
    pub fn limit_connection(
        &mut self,
        vendor: &str,
        connection: &str,
        limits: Limits,
    ) -> &mut Self {
        self.connection_limits
            .insert((vendor.to_string(), connection.to_string()), limits);
        self
    }

    /// The limits that hold for `connection` of `vendor`.
    pub fn limits(&self, vendor: &str, connection: &str) -> Limits {
        self.connection_limits
            .get(&(vendor.to_string(), connection.to_string()))
            .or_else(|| self.limits.get(vendor))
            .copied()
            .unwrap_or_default()
    }

    /// Waits until `connection` of `vendor` may begin an operation of `access`; the pass
    /// holds its concurrency slot until dropped.
    pub(crate) async fn enter(&self, vendor: &str, connection: &str, access: Access) -> Pass {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            gates
                .entry((vendor.to_string(), connection.to_string()))
                .or_insert_with(|| Arc::new(Gate::new(self.limits(vendor, connection))))
                .clone()
        };
        let mut pass = gate.enter(access).await;
        if let Some(store) = &self.shared {
            let limits = self.limits(vendor, connection);
            pass.shared =
                crate::shared_limits::enter(store, vendor, connection, access, limits).await;
        }
        pass
    }

    /// Tells `vendor`'s report kinds apart (e.g. by a report type in its options), so each
    /// kind learns its own typical duration; without it, a vendor's jobs are one kind.
    pub fn report_kind(
        &mut self,
        vendor: &str,
        kind: impl Fn(&serde_json::Value) -> String + Send + Sync + 'static,
    ) -> &mut Self {
        self.kinds.insert(vendor.to_string(), Arc::new(kind));
        self
    }

    /// The report kind of a job of `vendor` with these stored options.
    pub fn kind_of(&self, vendor: &str, request: &serde_json::Value) -> String {
        self.kinds
            .get(vendor)
            .map_or_else(|| DEFAULT_KIND.to_string(), |kind| kind(request))
    }

    /// The vendor registered under `name`.
    pub fn vendor(&self, name: &str) -> Option<Arc<dyn Vendor>> {
        self.vendors.get(name).cloned()
    }
}

struct Registered<A: ReportAdapter> {
    connect: Box<ConnectFn<A>>,
    request: Box<RequestFn<A::Request>>,
    webhook: Option<Box<WebhookFn<A::Request>>>,
    adapters: Mutex<HashMap<String, Arc<A>>>,
}

impl<A: ReportAdapter + 'static> Registered<A> {
    fn adapter(&self, connection: &str) -> report_core::Result<Arc<A>> {
        let mut adapters = self.adapters.lock().expect("adapter cache lock");
        if let Some(a) = adapters.get(connection) {
            return Ok(a.clone());
        }
        let adapter = Arc::new((self.connect)(connection).map_err(|e| {
            report_core::Error::InvalidInput(format!("connection `{connection}`: {e}"))
        })?);
        adapters.insert(connection.to_string(), adapter.clone());
        Ok(adapter)
    }

    fn request(&self, request: &serde_json::Value) -> report_core::Result<A::Request> {
        (self.request)(request).map_err(report_core::Error::InvalidInput)
    }

    fn job(
        &self,
        connection: &str,
        ticket: &Ticket,
        policy: &WaitPolicy,
    ) -> report_core::Result<Job<A>> {
        Job::resume(self.adapter(connection)?, ticket.clone(), policy.clone())
    }
}

impl<A: ReportAdapter + 'static> Vendor for Registered<A> {
    fn start<'a>(
        &'a self,
        connection: &'a str,
        request: &'a serde_json::Value,
        policy: &'a WaitPolicy,
        webhook_url: Option<&'a str>,
    ) -> BoxFuture<'a, report_core::Result<(Ticket, WaitState)>> {
        Box::pin(async move {
            let adapter = self.adapter(connection)?;
            let mut request = self.request(request)?;
            if let (Some(with_webhook), Some(url)) = (&self.webhook, webhook_url) {
                request = with_webhook(request, url);
            }
            let job = Job::<A>::start(adapter, &request, policy.clone()).await?;
            let state = job.wait_state();
            Ok((job.ticket().clone(), state))
        })
    }

    fn find_started<'a>(
        &'a self,
        connection: &'a str,
        request: &'a serde_json::Value,
        since: DateTime<Utc>,
        policy: &'a WaitPolicy,
    ) -> BoxFuture<'a, report_core::Result<Option<(Ticket, WaitState)>>> {
        Box::pin(async move {
            let adapter = self.adapter(connection)?;
            let request = self.request(request)?;
            let Some(ticket) = adapter.find_started(&request, since).await? else {
                return Ok(None);
            };
            // No start answer to go by: the first poll is due at once.
            let state = self.job(connection, &ticket, policy)?.wait_state();
            Ok(Some((ticket, state)))
        })
    }

    fn step<'a>(
        &'a self,
        connection: &'a str,
        ticket: &'a Ticket,
        state: &'a mut WaitState,
        policy: &'a WaitPolicy,
    ) -> BoxFuture<'a, report_core::Result<Stepped>> {
        Box::pin(async move {
            let job = self.job(connection, ticket, policy)?;
            let outcome = job.step(state).await;
            let stats = job.stats();
            Ok(Stepped {
                outcome,
                polls: stats.polls,
                retries: stats.retries,
            })
        })
    }

    fn download<'a>(
        &'a self,
        connection: &'a str,
        ticket: &'a Ticket,
        artifact: &'a Artifact,
        out: &'a Path,
        policy: &'a WaitPolicy,
    ) -> BoxFuture<'a, report_core::Result<DownloadSummary>> {
        Box::pin(async move {
            let job = self.job(connection, ticket, policy)?;
            job.download_to(artifact, out, DownloadOptions::default())
                .await
        })
    }

    fn takes_webhook(&self) -> bool {
        self.webhook.is_some()
    }

    fn start_is_idempotent(&self, connection: &str) -> bool {
        self.adapter(connection)
            .is_ok_and(|adapter| adapter.start_is_idempotent())
    }

    fn cancel<'a>(
        &'a self,
        connection: &'a str,
        ticket: &'a Ticket,
    ) -> BoxFuture<'a, report_core::Result<()>> {
        Box::pin(async move { self.adapter(connection)?.cancel(ticket).await })
    }
}
