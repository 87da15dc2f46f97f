//! An adapter wrapper that counts the bytes a download receives, for the progress display
//! (bytes, rate, ETA), and remembers the last request's error, for the message when the
//! deadline ends a command. Everything else is passed through unchanged.
//!
//! Keep it in step with [`ReportAdapter`]: a method the trait gains must be forwarded here too,
//! or the vendor's own implementation would be hidden behind the trait's default.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use report_core::{Artifact, Download, ReportAdapter, Result, Started, Status, Ticket};

/// What the current download has received, shared with the progress display.
#[derive(Clone, Debug, Default)]
pub struct Received {
    /// Bytes received since the start of the file (a resumed transfer starts at its offset).
    pub bytes: Arc<AtomicU64>,
    /// The file's size on the wire, once the server said (0: unknown).
    pub total: Arc<AtomicU64>,
    /// Where the current transfer began in the file (> 0 when resumed).
    pub offset: Arc<AtomicU64>,
}

/// `A`, counting the bytes of every download it opens.
pub struct Counting<A> {
    inner: A,
    received: Received,
    last_error: LastError,
}

/// The error of the last request, if it failed (cleared by a success).
#[derive(Clone, Debug, Default)]
pub struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|e| e.clone())
    }

    fn record<T>(&self, result: &Result<T>) {
        if let Ok(mut last) = self.0.lock() {
            *last = result.as_ref().err().map(ToString::to_string);
        }
    }
}

impl<A> Counting<A> {
    pub fn new(inner: A) -> Self {
        Counting {
            inner,
            received: Received::default(),
            last_error: LastError::default(),
        }
    }

    /// The counters of the downloads.
    pub fn received(&self) -> Received {
        self.received.clone()
    }

    /// The last request's error.
    pub fn last_error(&self) -> LastError {
        self.last_error.clone()
    }
}

impl<A: ReportAdapter> ReportAdapter for Counting<A> {
    type Request = A::Request;

    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }

    async fn start(&self, request: &Self::Request) -> Result<Started> {
        let result = self.inner.start(request).await;
        self.last_error.record(&result);
        result
    }

    fn start_is_idempotent(&self) -> bool {
        self.inner.start_is_idempotent()
    }

    async fn find_started(
        &self,
        request: &Self::Request,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Ticket>> {
        self.inner.find_started(request, since).await
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        let result = self.inner.poll(ticket).await;
        self.last_error.record(&result);
        result
    }

    async fn cancel(&self, ticket: &Ticket) -> Result<()> {
        self.inner.cancel(ticket).await
    }

    async fn delete(&self, ticket: &Ticket) -> Result<()> {
        self.inner.delete(ticket).await
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        let opened = self.inner.open(artifact, offset).await;
        self.last_error.record(&opened);
        let mut download = opened?;
        let Received {
            bytes,
            total,
            offset,
        } = self.received.clone();
        offset.store(download.offset, Ordering::Relaxed);
        bytes.store(download.offset, Ordering::Relaxed);
        total.store(download.total_size.unwrap_or(0), Ordering::Relaxed);
        download.body = download
            .body
            .inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            })
            .boxed();
        Ok(download)
    }
}
