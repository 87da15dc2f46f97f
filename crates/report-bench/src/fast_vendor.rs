//! The runner benchmarks' vendor: an in-process `ReportAdapter` with no network, whose report
//! is ready at its `polls_to_ready`-th status request. Every call costs next to nothing, so
//! what a benchmark measures is the runner's own cost (database, engine, bookkeeping).
//!
//! Poll counts live in a file mapped by every process (`PollCounters`): a job polled by two
//! worker processes still becomes ready at exactly its N-th poll, so every setup does the same
//! work per job.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::Utc;
use report_core::{Artifact, Download, Progress, ReportAdapter, Started, Status, Ticket};

/// The vendor's name in tickets and in the runner's registry.
pub const VENDOR: &str = "bench";

/// One poll counter per job, in a file shared by the processes that map it.
pub struct PollCounters {
    ptr: *mut AtomicU32,
    len: usize,
    _file: File,
}

// SAFETY: the mapping is only accessed through `AtomicU32`s and lives as long as the value.
unsafe impl Send for PollCounters {}
// SAFETY: as above; atomics make shared access sound.
unsafe impl Sync for PollCounters {}

impl PollCounters {
    /// Creates the file with `len` zeroed counters.
    pub fn create(path: &Path, len: usize) -> anyhow::Result<()> {
        let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
        file.set_len((len.max(1) * 4) as u64)?;
        Ok(())
    }

    /// Maps an existing counters file.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        let bytes = file.metadata()?.len() as usize;
        if bytes < 4 {
            bail!("{} holds no counters", path.display());
        }
        // SAFETY: a fresh shared mapping of a file we hold open, of its whole length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            bail!(
                "mmap {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(PollCounters {
            ptr: ptr.cast(),
            len: bytes / 4,
            _file: file,
        })
    }

    /// Counts a poll of job `n`; the count including this one, `None` if `n` is out of range.
    pub fn bump(&self, n: usize) -> Option<u32> {
        if n >= self.len {
            return None;
        }
        // SAFETY: `n` is within the mapping, page-aligned so every u32 slot is aligned.
        let counter = unsafe { &*self.ptr.add(n) };
        Some(counter.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// Counter `n` as it stands (0 if out of range).
    pub fn get(&self, n: usize) -> u32 {
        if n >= self.len {
            return 0;
        }
        // SAFETY: as in `bump`.
        unsafe { &*self.ptr.add(n) }.load(Ordering::SeqCst)
    }
}

impl Drop for PollCounters {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len * 4) };
    }
}

/// What this process's adapter was asked to do, and when (Unix seconds).
#[derive(Default)]
pub struct Calls {
    pub starts: AtomicU64,
    pub polls: AtomicU64,
    pub opens: AtomicU64,
    first_micros: AtomicU64,
    last_micros: AtomicU64,
}

impl Calls {
    /// Counts a call on `counter` and notes its moment.
    pub fn note(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        let now = Utc::now().timestamp_micros().max(0) as u64;
        let _ = self
            .first_micros
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last_micros.fetch_max(now, Ordering::Relaxed);
    }

    /// The first and last call, in Unix seconds (0 if none).
    pub fn window(&self) -> (f64, f64) {
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        (s(&self.first_micros), s(&self.last_micros))
    }
}

/// The adapter: request = the job's number.
#[derive(Clone)]
pub struct FastAdapter {
    pub counters: Arc<PollCounters>,
    pub polls_to_ready: u32,
    pub calls: Arc<Calls>,
    /// How long each call takes: a vendor's network round trip, spent waiting, not computing.
    pub latency: std::time::Duration,
}

impl FastAdapter {
    async fn round_trip(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

fn job_number(ticket: &Ticket) -> report_core::Result<usize> {
    ticket
        .id
        .parse()
        .map_err(|_| report_core::Error::InvalidInput(format!("bad ticket id `{}`", ticket.id)))
}

impl ReportAdapter for FastAdapter {
    type Request = u64;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    async fn start(&self, n: &u64) -> report_core::Result<Started> {
        self.calls.note(&self.calls.starts);
        self.round_trip().await;
        Ok(Started {
            ticket: Ticket::new(VENDOR, n.to_string(), Utc::now()),
            status: None,
        })
    }

    async fn poll(&self, ticket: &Ticket) -> report_core::Result<Status> {
        self.calls.note(&self.calls.polls);
        self.round_trip().await;
        let n = job_number(ticket)?;
        let count = self.counters.bump(n).ok_or_else(|| {
            report_core::Error::InvalidInput(format!("job {n} has no poll counter"))
        })?;
        Ok(if count < self.polls_to_ready {
            Status::Pending(Progress::state("running"))
        } else {
            Status::Ready(Artifact {
                url: format!("http://127.0.0.1/bench/{n}"),
                ..Artifact::default()
            })
        })
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> report_core::Result<Download> {
        self.calls.note(&self.calls.opens);
        self.round_trip().await;
        let body = format!("{}\n", artifact.url).into_bytes();
        let body = body.get(offset as usize..).unwrap_or_default().to_vec();
        Ok(Download {
            file_name: None,
            content_type: None,
            total_size: Some(offset + body.len() as u64),
            offset,
            compression: report_core::Compression::None,
            body: Box::pin(futures::stream::iter([Ok(Bytes::from(body))])),
        })
    }
}
