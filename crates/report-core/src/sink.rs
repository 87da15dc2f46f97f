//! The writing end of a download: a task of its own that decompresses (gzip), checks the
//! size and ratio limits, hashes and writes the received chunks, flushing to disk as it goes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::download::RATIO_GRACE;
use crate::{Error, Result};

pub(crate) const WRITE_BUFFER: usize = 256 * 1024;
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

/// Wire chunks queued for the writing task at most.
const SINK_QUEUE: usize = 8;

/// The file a download is written into, by a task of its own: wire chunks go through a bounded
/// channel to it, and it decompresses them (gzip, multi-member) if asked, checks the
/// [`Limits`], hashes and writes them, so hashing, decompressing and writing overlap with
/// receiving. A resumed transfer (`Range`) simply continues the stream; a restart drops the
/// sink (its task is aborted) and begins a fresh one in a fresh (or truncated) file.
pub(crate) struct FileSink {
    tx: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    task: Option<tokio::task::JoinHandle<Result<(u64, String)>>>,
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
        let out = file
            .try_clone()
            .map_err(|e| Error::io("cannot open", path, e))?;
        let write_behind = if flush {
            Some(WriteBehind::new(file, path)?)
        } else {
            None
        };
        let (tx, rx) = tokio::sync::mpsc::channel(SINK_QUEUE);
        let out = Output {
            file: BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(out)),
            write_behind,
            hasher: Sha256::new(),
            bytes: 0,
            consumed: 0,
            limits,
            path: path.to_path_buf(),
        };
        let task = if gunzip {
            tokio::spawn(out.inflate(rx))
        } else {
            tokio::spawn(out.copy(rx))
        };
        Ok(FileSink {
            tx: Some(tx),
            task: Some(task),
        })
    }

    pub(crate) async fn send(&mut self, bytes: bytes::Bytes) -> Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(bytes).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The task stopped early: it failed, and says why.
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Integrity(
                "the gzip data ended before the transfer".into(),
            )),
        }
    }

    /// Waits for everything sent to be written; the bytes written and their SHA-256.
    pub(crate) async fn finish(mut self) -> Result<(u64, String)> {
        self.tx = None;
        self.join().await
    }

    async fn join(&mut self) -> Result<(u64, String)> {
        let task = self
            .task
            .take()
            .ok_or_else(|| Error::Integrity("the download stream was already closed".into()))?;
        task.await
            .map_err(|e| Error::Integrity(format!("writing the download failed: {e}")))?
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The writing end of a [`FileSink`]'s task.
struct Output {
    file: BufWriter<tokio::fs::File>,
    write_behind: Option<WriteBehind>,
    hasher: Sha256,
    bytes: u64,
    /// Compressed bytes the decoder consumed so far, for the ratio (counted as consumed, not
    /// as received: a chunk waiting in the decoder's buffer would hide a bomb's ratio).
    consumed: u64,
    limits: Limits,
    path: PathBuf,
}

type Chunks = tokio::sync::mpsc::Receiver<bytes::Bytes>;

impl Output {
    /// Writes the chunks as they come; returns the bytes written and their SHA-256.
    async fn copy(mut self, mut rx: Chunks) -> Result<(u64, String)> {
        while let Some(chunk) = rx.recv().await {
            self.consumed += chunk.len() as u64;
            self.write(&chunk).await?;
        }
        self.finish().await
    }

    /// Decompresses the chunks (multi-member gzip) and writes the result.
    async fn inflate(mut self, rx: Chunks) -> Result<(u64, String)> {
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
            self.consumed = decoder.get_ref().count;
            self.write(&buf[..n]).await?;
        }
        self.finish().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let after = self.bytes + bytes.len() as u64;
        if let Some(max) = self.limits.max_size
            && after > max
        {
            return Err(too_large(max));
        }
        let received = self.consumed;
        if let Some(ratio) = self.limits.max_ratio
            && after > RATIO_GRACE
            && after > received.saturating_mul(u64::from(ratio))
        {
            return Err(Error::TooLarge(format!(
                "{after} bytes decompressed from {received}: more than {ratio} to 1, a \
                 decompression bomb (DownloadOptions::max_ratio)"
            )));
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| Error::io("cannot write", &self.path, e))?;
        self.bytes += bytes.len() as u64;
        if let Some(write_behind) = &mut self.write_behind {
            write_behind.wrote(bytes.len() as u64);
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(u64, String)> {
        self.file
            .flush()
            .await
            .map_err(|e| Error::io("cannot write", &self.path, e))?;
        if let Some(write_behind) = &mut self.write_behind {
            write_behind.finish().await;
        }
        Ok((self.bytes, hex::encode(self.hasher.finalize())))
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

    /// Waits for the flush in flight, if any.
    async fn finish(&mut self) {
        if let Some(thread) = self.in_flight.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
