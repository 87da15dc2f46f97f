//! The writing end of a download: checks the size and ratio limits, collects the received
//! chunks in a few recycled buffers and hashes and writes them on tokio's blocking pool while
//! the next ones are received (gzip is decompressed first, on a task of its own), flushing to
//! disk in the background as it goes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::task::JoinHandle;

use crate::download::RATIO_GRACE;
use crate::{Error, Result};

pub(crate) const WRITE_BUFFER: usize = 256 * 1024;
/// The buffers between the network and the writer: their size, and how many at most (one
/// being filled, the others waiting or being written; when all are in use the receiver waits,
/// so memory stays bounded whatever the network's speed).
const BUFFER: usize = 512 * 1024;
const BUFFERS: usize = 4;
/// The writer hashes and writes this much at a time (fits the CPU's L2 cache).
const PIECE: usize = 128 * 1024;
/// While a file that will be kept is written, its data is flushed to disk in the background
/// every this many bytes, so the final `fsync` before the rename has little left to do (and the
/// page cache does not fill with gigabytes of dirty pages).
const SYNC_EVERY: u64 = 16 * 1024 * 1024;

/// The guards a [`FileSink`] applies to what it writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_size: Option<u64>,
    pub(crate) max_ratio: Option<u32>,
}

pub(crate) fn too_large(max: u64) -> Error {
    Error::TooLarge(format!(
        "the file is larger than the limit of {max} bytes (DownloadOptions::max_size)"
    ))
}

/// Wire chunks queued for the decompressing task at most.
const SINK_QUEUE: usize = 8;

/// The file a download is written into. Plain chunks are collected and hashed and written on
/// the blocking pool while the next ones are received ([`Batches`]); gzip chunks go through a
/// bounded channel to a task that decompresses them (multi-member) and writes the result the
/// same way. A resumed transfer (`Range`) simply continues the stream; a restart discards the
/// sink and begins a fresh one in a fresh (or truncated) file.
pub(crate) struct FileSink {
    inner: Inner,
}

enum Inner {
    Plain(Box<Batches>),
    Gzip {
        tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
        task: Option<JoinHandle<Result<(u64, String)>>>,
    },
}

impl FileSink {
    /// Starts writing into `file`; `gunzip` decompresses the chunks, `flush` writes the data
    /// to disk in the background as it goes.
    pub(crate) fn start(
        file: &NamedTempFile,
        gunzip: bool,
        flush: bool,
        limits: Limits,
    ) -> Result<Self> {
        Self::start_raw(file.as_file(), file.path(), gunzip, flush, limits)
    }

    /// Like [`start`](Self::start), into any open file (written from its current end).
    pub(crate) fn start_raw(
        file: &std::fs::File,
        path: &Path,
        gunzip: bool,
        flush: bool,
        limits: Limits,
    ) -> Result<Self> {
        let write_behind = if flush {
            Some(WriteBehind::new(file, path)?)
        } else {
            None
        };
        let writer = Writer {
            file: file
                .try_clone()
                .map_err(|e| Error::io("cannot open", path, e))?,
            hasher: Sha256::new(),
            write_behind,
        };
        let batches = Batches::new(writer, limits, path);
        let inner = if gunzip {
            let (tx, rx) = tokio::sync::mpsc::channel(SINK_QUEUE);
            Inner::Gzip {
                tx: Some(tx),
                task: Some(tokio::spawn(inflate(batches, rx))),
            }
        } else {
            Inner::Plain(Box::new(batches))
        };
        Ok(FileSink { inner })
    }

    pub(crate) async fn send(&mut self, bytes: Bytes) -> Result<()> {
        let (tx, task) = match &mut self.inner {
            Inner::Plain(batches) => {
                let consumed = batches.bytes + bytes.len() as u64;
                return batches.write(&bytes, consumed).await;
            }
            Inner::Gzip { tx, task } => (tx, task),
        };
        let sent = match tx {
            Some(tx) => tx.send(bytes).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The task stopped early: it failed, and says why.
        *tx = None;
        match join(task).await {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Integrity(
                "the gzip data ended before the transfer".into(),
            )),
        }
    }

    /// Waits for everything sent to be written; the bytes written and their SHA-256.
    pub(crate) async fn finish(mut self) -> Result<(u64, String)> {
        match &mut self.inner {
            Inner::Plain(batches) => batches.finish().await,
            Inner::Gzip { tx, task } => {
                *tx = None;
                join(task).await
            }
        }
    }

    /// Abandons what was sent, waiting for plain buffers being written so that nothing is
    /// written after this returns (the file is about to be truncated or replaced).
    pub(crate) async fn discard(mut self) {
        if let Inner::Plain(batches) = &mut self.inner {
            batches.discard().await;
        }
    }
}

async fn join(task: &mut Option<JoinHandle<Result<(u64, String)>>>) -> Result<(u64, String)> {
    let task = task.take().ok_or_else(closed)?;
    task.await.map_err(failed)?
}

fn closed() -> Error {
    Error::Integrity("the download stream was already closed".into())
}

fn failed(e: tokio::task::JoinError) -> Error {
    Error::Integrity(format!("writing the download failed: {e}"))
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Plain buffers being written finish on their own (into a file that is being
        // removed, or a partial file that they extend in order).
        if let Inner::Gzip {
            task: Some(task), ..
        } = &self.inner
        {
            task.abort();
        }
    }
}

/// Decompresses the chunks (multi-member gzip) and writes the result.
async fn inflate(
    mut batches: Batches,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Result<(u64, String)> {
    use async_compression::tokio::bufread::GzipDecoder;
    use tokio::io::AsyncReadExt;

    let chunks = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        // The reader wants `io::Result` items; the chunks themselves never fail.
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    }));
    let input = Consumed {
        inner: tokio_util::io::StreamReader::new(chunks),
        count: 0,
    };
    let mut decoder = GzipDecoder::new(input);
    decoder.multiple_members(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = decoder
            .read(&mut buf)
            .await
            .map_err(|e| Error::Integrity(format!("the gzip data is corrupt: {e}")))?;
        if n == 0 {
            break;
        }
        let consumed = decoder.get_ref().count;
        batches.write(&buf[..n], consumed).await?;
    }
    batches.finish().await
}

/// Chunks on their way to the file: checked against the [`Limits`] as they come, copied into
/// a few recycled buffers (so the network's buffers are free again at once: hyper reuses its
/// own instead of faulting fresh memory in for every chunk), and handed to the blocking pool
/// as the buffers fill, one hand-over being written at a time.
struct Batches {
    /// `None` while buffers are being written (or after a failure).
    writer: Option<Writer>,
    in_flight: Option<JoinHandle<Written>>,
    filling: Vec<u8>,
    /// Full buffers waiting for the writer (never waiting while nothing is in flight).
    full: Vec<Vec<u8>>,
    /// Written buffers, to be filled again.
    free: Vec<Vec<u8>>,
    /// Buffers allocated so far, at most [`BUFFERS`].
    allocated: usize,
    /// Bytes accepted so far (written or on their way).
    bytes: u64,
    limits: Limits,
    path: PathBuf,
}

impl Batches {
    fn new(writer: Writer, limits: Limits, path: &Path) -> Self {
        Batches {
            writer: Some(writer),
            in_flight: None,
            filling: Vec::with_capacity(BUFFER),
            full: Vec::new(),
            free: Vec::new(),
            allocated: 1,
            bytes: 0,
            limits,
            path: path.to_path_buf(),
        }
    }

    /// Accepts a chunk; `consumed` is how many bytes the network gave so far, for the ratio
    /// (counted as consumed by the decoder, not as received: a chunk waiting in the decoder's
    /// buffer would hide a bomb's ratio).
    async fn write(&mut self, chunk: &[u8], consumed: u64) -> Result<()> {
        let after = self.bytes + chunk.len() as u64;
        if let Some(max) = self.limits.max_size
            && after > max
        {
            return Err(too_large(max));
        }
        if let Some(ratio) = self.limits.max_ratio
            && after > RATIO_GRACE
            && after > consumed.saturating_mul(u64::from(ratio))
        {
            return Err(Error::TooLarge(format!(
                "{after} bytes decompressed from {consumed}: more than {ratio} to 1, a \
                 decompression bomb (DownloadOptions::max_ratio)"
            )));
        }
        self.bytes = after;
        let mut rest = chunk;
        while !rest.is_empty() {
            let n = (BUFFER - self.filling.len()).min(rest.len());
            self.filling.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.filling.len() == BUFFER {
                self.queue_filling().await?;
            }
        }
        if self.in_flight.as_ref().is_some_and(|t| t.is_finished()) {
            // Keeps the writer busy: what filled up meanwhile goes at once.
            self.settle().await?;
        }
        Ok(())
    }

    /// Queues the buffer being filled for the writer and takes an empty one, waiting for the
    /// writer when every buffer is in use.
    async fn queue_filling(&mut self) -> Result<()> {
        let next = loop {
            if let Some(buffer) = self.free.pop() {
                break buffer;
            }
            if self.allocated < BUFFERS {
                self.allocated += 1;
                break Vec::with_capacity(BUFFER);
            }
            if self.in_flight.is_none() {
                return Err(closed());
            }
            self.settle().await?;
        };
        let full = std::mem::replace(&mut self.filling, next);
        self.full.push(full);
        if self.in_flight.is_none() {
            self.launch()?;
        }
        Ok(())
    }

    /// Waits for the buffers being written, if any, and hands over the full ones.
    async fn settle(&mut self) -> Result<()> {
        if let Some(task) = self.in_flight.take() {
            let (writer, written, result) = task.await.map_err(failed)?;
            result.map_err(|e| Error::io("cannot write", &self.path, e))?;
            self.writer = Some(writer);
            self.free.extend(written);
        }
        if !self.full.is_empty() {
            self.launch()?;
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<()> {
        let mut writer = self.writer.take().ok_or_else(closed)?;
        let mut buffers = std::mem::take(&mut self.full);
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let result = buffers.iter().try_for_each(|b| writer.write(b));
            buffers.iter_mut().for_each(Vec::clear);
            (writer, buffers, result)
        }));
        Ok(())
    }

    /// Writes what is left; the bytes written and their SHA-256.
    async fn finish(&mut self) -> Result<(u64, String)> {
        if !self.filling.is_empty() {
            let last = std::mem::take(&mut self.filling);
            self.full.push(last);
        }
        // Twice: what is in flight, then what was waiting for it.
        self.settle().await?;
        self.settle().await?;
        let mut writer = self.writer.take().ok_or_else(closed)?;
        let writer = tokio::task::spawn_blocking(move || {
            writer.wait_for_write_behind();
            writer
        })
        .await
        .map_err(failed)?;
        Ok((self.bytes, hex::encode(writer.hasher.finalize())))
    }

    /// Drops what was not written yet, once nothing is being written.
    async fn discard(&mut self) {
        self.full.clear();
        if let Some(task) = self.in_flight.take() {
            let _ = task.await;
        }
    }
}

/// What a hand-over to the writer gives back: the writer, its buffers (emptied) and the outcome.
type Written = (Writer, Vec<Vec<u8>>, std::io::Result<()>);

/// The blocking end: hashes a piece while it is in the cache, then writes it.
struct Writer {
    file: std::fs::File,
    hasher: Sha256,
    write_behind: Option<WriteBehind>,
}

impl Writer {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        for piece in buffer.chunks(PIECE) {
            self.hasher.update(piece);
            self.file.write_all(piece)?;
            if let Some(write_behind) = &mut self.write_behind {
                write_behind.wrote(piece.len() as u64);
            }
        }
        Ok(())
    }

    fn wait_for_write_behind(&mut self) {
        if let Some(write_behind) = &mut self.write_behind {
            write_behind.finish();
        }
    }
}

/// A buffered reader that counts the bytes its reader consumed.
struct Consumed<R> {
    inner: R,
    count: u64,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Consumed<R> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        this.count += (buf.filled().len() - before) as u64;
        polled
    }
}

impl<R: tokio::io::AsyncBufRead + Unpin> tokio::io::AsyncBufRead for Consumed<R> {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }

    fn consume(self: std::pin::Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.count += amt as u64;
        std::pin::Pin::new(&mut this.inner).consume(amt);
    }
}

/// Flushes a file's data to disk in the background while it is being written (one flush at a
/// time, every [`SYNC_EVERY`] bytes). Best effort: the `fsync` before the rename is what makes
/// the file durable and reports errors.
struct WriteBehind {
    file: std::sync::Arc<std::fs::File>,
    in_flight: Option<std::thread::JoinHandle<()>>,
    unsynced: u64,
}

impl WriteBehind {
    fn new(file: &std::fs::File, path: &Path) -> Result<Self> {
        let clone = file
            .try_clone()
            .map_err(|e| Error::io("cannot open", path, e))?;
        Ok(WriteBehind {
            file: std::sync::Arc::new(clone),
            in_flight: None,
            unsynced: 0,
        })
    }

    fn wrote(&mut self, bytes: u64) {
        self.unsynced += bytes;
        if self.unsynced < SYNC_EVERY || self.in_flight.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.unsynced = 0;
        let file = self.file.clone();
        // A plain thread, not `spawn_blocking`: a blocking task in flight would keep paused
        // tokio time (tests) from advancing, and nobody waits for this one but `finish`.
        self.in_flight = std::thread::Builder::new()
            .name("report-write-behind".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = file.sync_data();
            })
            .ok();
    }

    /// Waits for the flush in flight, if any (on the blocking pool).
    fn finish(&mut self) {
        if let Some(thread) = self.in_flight.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk is copied out as it is sent, so the network's buffer (hyper reads into one
    /// `BytesMut`) is free for the next read instead of a fresh allocation per chunk; the
    /// chunks still reach the file in order, across the sink's buffers, with their hash.
    #[tokio::test]
    async fn chunks_are_released_as_soon_as_they_are_sent() {
        let file = NamedTempFile::new().unwrap();
        let limits = Limits {
            max_size: None,
            max_ratio: None,
        };
        let mut sink = FileSink::start(&file, false, false, limits).unwrap();
        let mut network = bytes::BytesMut::with_capacity(100_000);
        let mut expected = Vec::new();
        // 100 × 100,000 bytes: every buffer boundary falls inside a chunk.
        for round in 0..100u8 {
            network.resize(100_000, round);
            let chunk = network.split().freeze();
            expected.extend_from_slice(&chunk);
            sink.send(chunk).await.unwrap();
            assert!(
                network.try_reclaim(100_000),
                "round {round}: the sink still holds the network's buffer"
            );
        }
        let (bytes, sha256) = sink.finish().await.unwrap();
        assert_eq!(bytes, expected.len() as u64);
        assert!(std::fs::read(file.path()).unwrap() == expected);
        assert_eq!(sha256, hex::encode(Sha256::digest(&expected)));
    }
}
