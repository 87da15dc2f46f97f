//! The small trait each vendor implements to plug into [`Job`](crate::Job).

use std::future::Future;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{Artifact, Compression, Error, Result, Status, Ticket};

/// What starting a report returns: the ticket and, when the start answer already tells it,
/// the first status (so no poll is spent asking for it).
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub ticket: Ticket,
    pub status: Option<Status>,
}

/// A byte stream of an artifact, possibly starting part-way.
pub struct Download {
    /// File name from the server (`Content-Disposition`), if any.
    pub file_name: Option<String>,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Size of the whole file on the wire, if the server said.
    pub total_size: Option<u64>,
    /// The offset of the first byte of `body` in the file: the requested offset when the server
    /// honoured the range, 0 when it sent the whole file again.
    pub offset: u64,
    /// Wire compression of the bytes.
    pub compression: Compression,
    /// The bytes.
    pub body: BoxStream<'static, Result<Bytes>>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("total_size", &self.total_size)
            .field("offset", &self.offset)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// One vendor's asynchronous report API, reduced to what a job needs.
///
/// Implementations translate between the vendor's generated client and these types; the
/// waiting, retrying and downloading logic lives in [`Job`](crate::Job), once for all vendors.
pub trait ReportAdapter: Send + Sync {
    /// The vendor's parameters for starting a report.
    type Request: Send + Sync;

    /// Short vendor name, e.g. `ofd`; stored in tickets.
    fn vendor(&self) -> &'static str;

    /// Starts a report.
    fn start(&self, request: &Self::Request) -> impl Future<Output = Result<Started>> + Send;

    /// Whether starting twice is harmless (the vendor returns the running task), so a start
    /// whose answer was lost may be retried. Defaults to `false`: a start is then retried only
    /// when the request provably never reached the server.
    fn start_is_idempotent(&self) -> bool {
        false
    }

    /// Finds the report that `request` started at or after `since`, for a start whose answer
    /// was lost (a crash between the request and its answer): durable runners reconcile with
    /// it instead of starting twice. `Ok(None)`: the vendor has no such report. The default:
    /// [`Error::Unsupported`], the vendor cannot list its reports.
    fn find_started(
        &self,
        request: &Self::Request,
        since: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Option<Ticket>>> + Send {
        let _ = (request, since);
        let vendor = self.vendor();
        async move {
            Err(Error::Unsupported {
                vendor,
                operation: "find_started",
            })
        }
    }

    /// Asks the vendor for the report's status (one request, no retries).
    fn poll(&self, ticket: &Ticket) -> impl Future<Output = Result<Status>> + Send;

    /// Cancels the report.
    fn cancel(&self, ticket: &Ticket) -> impl Future<Output = Result<()>> + Send {
        let _ = ticket;
        let vendor = self.vendor();
        async move {
            Err(Error::Unsupported {
                vendor,
                operation: "cancel",
            })
        }
    }

    /// Deletes a finished report from the vendor's side.
    fn delete(&self, ticket: &Ticket) -> impl Future<Output = Result<()>> + Send {
        let _ = ticket;
        let vendor = self.vendor();
        async move {
            Err(Error::Unsupported {
                vendor,
                operation: "delete",
            })
        }
    }

    /// Opens the artifact's bytes from `offset` on (a `Range` request when `offset > 0`).
    fn open(
        &self,
        artifact: &Artifact,
        offset: u64,
    ) -> impl Future<Output = Result<Download>> + Send;
}
