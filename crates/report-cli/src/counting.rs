//! An adapter wrapper that counts the bytes a download receives, for the progress display
//! (bytes, rate, ETA). Everything else is passed through unchanged.
//!
//! Keep it in step with [`ReportAdapter`]: a method the trait gains must be forwarded here too,
//! or the vendor's own implementation would be hidden behind the trait's default.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl<A> Counting<A> {
    pub fn new(inner: A) -> Self {
        Counting {
            inner,
            received: Received::default(),
        }
    }

    /// The counters of the downloads.
    pub fn received(&self) -> Received {
        self.received.clone()
    }
}

impl<A: ReportAdapter> ReportAdapter for Counting<A> {
    type Request = A::Request;

    fn vendor(&self) -> &'static str {
        self.inner.vendor()
    }

    async fn start(&self, request: &Self::Request) -> Result<Started> {
        self.inner.start(request).await
    }

    fn start_is_idempotent(&self) -> bool {
        self.inner.start_is_idempotent()
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        self.inner.poll(ticket).await
    }

    async fn cancel(&self, ticket: &Ticket) -> Result<()> {
        self.inner.cancel(ticket).await
    }

    async fn delete(&self, ticket: &Ticket) -> Result<()> {
        self.inner.delete(ticket).await
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        let mut download = self.inner.open(artifact, offset).await?;
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
