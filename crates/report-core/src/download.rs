//! Streaming an artifact to disk: constant memory, a temporary file beside the destination,
//! resume with `Range`, verification, gzip decompressed on the fly, hashing and writing on a task
//! of their own, fsync and an atomic rename. On any failure the destination is left untouched.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::adapter::ReportAdapter;
use crate::{Artifact, Compression, Error, Job, Result, Status};

const WRITE_BUFFER: usize = 256 * 1024;
/// While a file that will be kept is written, its data is flushed to disk in the background
/// every this many bytes, so the final `fsync` before the rename has little left to do (and the
/// page cache does not fill with gigabytes of dirty pages).
const SYNC_EVERY: u64 = 16 * 1024 * 1024;

/// Options of [`Job::download_to`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// Decompress gzip artifacts on the way to disk (default `true`).
    pub decompress: bool,
    /// Expected SHA-256 (hex) of the file as written; a mismatch fails the download.
    pub expected_sha256: Option<String>,
    /// Flush the file to disk (`fsync`) before it is renamed into place, and the folder after
    /// (default `true`). Without it a crash soon after the download may leave an empty or
    /// partial file at the destination; the rename is still atomic for running processes.
    pub fsync: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            decompress: true,
            expected_sha256: None,
            fsync: true,
        }
    }
}

impl DownloadOptions {
    /// Keeps gzip artifacts compressed.
    pub fn keep_compressed(mut self) -> Self {
        self.decompress = false;
        self
    }

    /// Skips the `fsync` before the rename: faster where the disk is slow to flush, at the cost
    /// of durability across a crash or power loss (see [`fsync`](Self::fsync)).
    pub fn without_fsync(mut self) -> Self {
        self.fsync = false;
        self
    }

    /// Verifies the written file against a SHA-256 hex digest.
    pub fn expect_sha256(mut self, hex: impl Into<String>) -> Self {
        self.expected_sha256 = Some(hex.into());
        self
    }
}

/// What a finished download wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DownloadSummary {
    /// The destination path.
    pub path: PathBuf,
    /// Bytes written to the destination.
    pub bytes: u64,
    /// Bytes received over the network for the final copy (compressed size for gzip).
    pub wire_bytes: u64,
    /// SHA-256 of the destination file, hex.
    pub sha256: String,
    /// How many times the transfer was resumed with `Range` after a cut.
    pub resumes: u32,
    /// How many times it started over (server ignored `Range`, or the URL was refreshed).
    pub restarts: u32,
    /// The server's file name, if it sent one.
    pub server_file_name: Option<String>,
}

/// Temporary files of a download to `dest/name` are `.name.XXXXXX.part` beside it.
const TEMPORARY_SUFFIX: &str = ".part";

fn temporary_prefix(file_name: &str) -> String {
    format!(".{file_name}.")
}

/// Temporary files a download to `dest` left behind when its process was killed (a normal
/// failure removes its own). Whoever owns `dest` may delete them before downloading again.
pub fn leftover_temporary_files(dest: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = temporary_prefix(&name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(TEMPORARY_SUFFIX)
        })
        .map(|e| e.path())
        .collect()
}

impl<A: ReportAdapter> Job<A> {
    /// Downloads `artifact` to `path`, streaming through a temporary file in the same folder
    /// that is renamed into place only when complete and verified.
    ///
    /// Cut transfers resume with `Range` (or restart where the server ignores it) within the
    /// policy's transient-error budget; an expired pre-signed URL is refreshed by asking the
    /// vendor for the status again. On failure nothing is left at `path`.
    pub async fn download_to(
        &self,
        artifact: &Artifact,
        path: impl AsRef<Path>,
        options: DownloadOptions,
    ) -> Result<DownloadSummary> {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{} is not a file path", path.display())))?
            .to_string_lossy()
            .into_owned();
        let temp = || {
            tempfile::Builder::new()
                .prefix(&temporary_prefix(&file_name))
                .suffix(TEMPORARY_SUFFIX)
                .tempfile_in(&dir)
                .map_err(|e| Error::io("cannot create a temporary file in", &dir, e))
        };
        // Created before any request, so an unwritable folder fails early.
        let first = temp()?;

        let (fetched, written) = self.fetch(artifact.clone(), first, &temp, &options).await?;
        if let Some(expected) = &options.expected_sha256
            && !expected.eq_ignore_ascii_case(&written.sha256)
        {
            return Err(Error::Integrity(format!(
                "SHA-256 is {}, expected {expected}",
                written.sha256
            )));
        }
        let file = written.file;
        let file = if options.fsync {
            // Off the async threads: flushing can take a while.
            tokio::task::spawn_blocking(move || file.as_file().sync_all().map(|()| file))
                .await
                .map_err(|e| Error::io("cannot flush", path, std::io::Error::other(e)))?
                .map_err(|e| Error::io("cannot flush", path, e))?
        } else {
            file
        };
        file.persist(path)
            .map_err(|e| Error::io("cannot move the finished file to", path, e.error))?;
        if options.fsync {
            sync_dir(&dir);
        }
        Ok(DownloadSummary {
            path: path.to_path_buf(),
            bytes: written.bytes,
            wire_bytes: fetched.wire_bytes,
            sha256: written.sha256,
            resumes: fetched.resumes,
            restarts: fetched.restarts,
            server_file_name: fetched.server_file_name,
        })
    }

    /// Streams the artifact into `first` (or, after a restart, a fresh file made by `temp`),
    /// resuming or restarting after cuts; a gzip artifact is decompressed on the way when the
    /// options ask for it.
    async fn fetch(
        &self,
        mut artifact: Artifact,
        first: NamedTempFile,
        temp: &(dyn Fn() -> Result<NamedTempFile> + Sync),
        options: &DownloadOptions,
    ) -> Result<(Fetched, Written)> {
        let mut first = Some(first);
        let mut fetched = Fetched::default();
        let mut sink: Option<FileSink> = None;
        let mut scheduler = self.policy().scheduler();
        let mut failures = 0u32;
        let mut refreshed = false;
        loop {
            let received = fetched.wire_bytes;
            let outcome = match self.adapter().open(&artifact, received).await {
                Ok(download) => {
                    if download.offset != received {
                        // The server sent the file from the start again: begin anew.
                        sink = None;
                        fetched.wire_bytes = 0;
                        if received > 0 {
                            fetched.restarts += 1;
                        }
                    }
                    if download.file_name.is_some() {
                        fetched.server_file_name = download.file_name.clone();
                    }
                    let sink = match &mut sink {
                        Some(sink) => sink,
                        None => {
                            let gunzip =
                                download.compression == Compression::Gzip && options.decompress;
                            let file = match first.take() {
                                Some(file) => file,
                                None => temp()?,
                            };
                            sink.insert(FileSink::start(file, gunzip, options.fsync)?)
                        }
                    };
                    let total = download.total_size.or(artifact.size);
                    let mut body = download.body;
                    let mut cut = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(bytes) => {
                                fetched.wire_bytes += bytes.len() as u64;
                                // A write error or corrupt gzip ends the download (no retry).
                                sink.send(bytes).await?;
                            }
                            Err(e) => {
                                cut = Some(e);
                                break;
                            }
                        }
                    }
                    match (cut, total) {
                        (Some(e), _) => Err(e),
                        (None, Some(total)) if fetched.wire_bytes < total => Err(Error::Integrity(
                            format!("transfer ended at {} of {total} bytes", fetched.wire_bytes),
                        )),
                        (None, Some(total)) if fetched.wire_bytes > total => {
                            return Err(Error::Integrity(format!(
                                "received {} bytes, the server announced {total}",
                                fetched.wire_bytes
                            )));
                        }
                        (None, _) => Ok(()),
                    }
                }
                Err(e) if !artifact.authenticated && is_expired_link(&e) && !refreshed => {
                    // A pre-signed link expired: ask the vendor for a fresh one, once.
                    refreshed = true;
                    artifact = self.refreshed_artifact().await?;
                    sink = None;
                    fetched.wire_bytes = 0;
                    fetched.restarts += 1;
                    continue;
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => break,
                Err(e) if e.is_transient() || matches!(e, Error::Integrity(_)) => {
                    failures += 1;
                    if failures > self.policy().transient_error_budget {
                        return Err(Error::RetriesExhausted {
                            attempts: failures,
                            last: Box::new(e),
                        });
                    }
                    self.count_retry();
                    if fetched.wire_bytes > 0 {
                        fetched.resumes += 1;
                    }
                    tracing::debug!(error = %e, at = fetched.wire_bytes, "download cut; resuming");
                    self.clock()
                        .sleep(scheduler.after_error(e.retry_after()))
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        let sink = sink.expect("a successful transfer opened a sink");
        Ok((fetched, sink.finish().await?))
    }

    async fn refreshed_artifact(&self) -> Result<Artifact> {
        match self.poll().await? {
            Status::Ready(artifact) => Ok(artifact),
            other => Err(self.terminal_or_pending(other)),
        }
    }

    fn terminal_or_pending(&self, status: Status) -> Error {
        match status {
            Status::Pending(p) => Error::Integrity(format!(
                "the download link expired and the report is `{}` again",
                p.vendor_state
            )),
            terminal => self.terminal_error(terminal),
        }
    }
}

/// What the transfer took.
#[derive(Default)]
struct Fetched {
    wire_bytes: u64,
    resumes: u32,
    restarts: u32,
    server_file_name: Option<String>,
}

/// Pre-signed URLs answer 403 (signature expired) or 404/410 once they lapse.
fn is_expired_link(e: &Error) -> bool {
    matches!(
        e,
        Error::Api {
            status: Some(403 | 404 | 410),
            ..
        }
    )
}

/// Wire chunks queued for the writing task at most.
const SINK_QUEUE: usize = 8;

/// The file a download is written into, by a task of its own: wire chunks go through a bounded
/// channel to it, and it decompresses them (gzip, multi-member) if asked, hashes and writes
/// them, so hashing, decompressing and writing overlap with receiving. A resumed transfer
/// (`Range`) simply continues the stream; a restart drops the sink (its task is aborted and its
/// file deleted) and begins a fresh one in a fresh file.
struct FileSink {
    tx: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    task: Option<tokio::task::JoinHandle<Result<(u64, String)>>>,
    file: Option<NamedTempFile>,
}

/// What a [`FileSink`] wrote.
struct Written {
    file: NamedTempFile,
    bytes: u64,
    sha256: String,
}

impl FileSink {
    /// Starts writing into `file`; `gunzip` decompresses the chunks, `flush` writes the data
    /// to disk in the background as it goes.
    fn start(file: NamedTempFile, gunzip: bool, flush: bool) -> Result<Self> {
        let out = file
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("cannot open", file.path(), e))?;
        let write_behind = if flush {
            Some(WriteBehind::new(&file)?)
        } else {
            None
        };
        let path = file.path().to_path_buf();
        let (tx, rx) = tokio::sync::mpsc::channel(SINK_QUEUE);
        let out = Output {
            file: BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(out)),
            write_behind,
            hasher: Sha256::new(),
            bytes: 0,
            path,
        };
        let task = if gunzip {
            tokio::spawn(out.inflate(rx))
        } else {
            tokio::spawn(out.copy(rx))
        };
        Ok(FileSink {
            tx: Some(tx),
            task: Some(task),
            file: Some(file),
        })
    }

    async fn send(&mut self, bytes: bytes::Bytes) -> Result<()> {
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

    async fn finish(mut self) -> Result<Written> {
        self.tx = None;
        let (bytes, sha256) = self.join().await?;
        Ok(Written {
            file: self.file.take().expect("finished once"),
            bytes,
            sha256,
        })
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
    path: PathBuf,
}

type Chunks = tokio::sync::mpsc::Receiver<bytes::Bytes>;

impl Output {
    /// Writes the chunks as they come; returns the bytes written and their SHA-256.
    async fn copy(mut self, mut rx: Chunks) -> Result<(u64, String)> {
        while let Some(chunk) = rx.recv().await {
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
        let mut decoder = GzipDecoder::new(tokio_util::io::StreamReader::new(chunks));
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
            self.write(&buf[..n]).await?;
        }
        self.finish().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
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

/// Flushes a file's data to disk in the background while it is being written (one flush at a
/// time, every [`SYNC_EVERY`] bytes). Best effort: the `fsync` before the rename is what makes
/// the file durable and reports errors.
struct WriteBehind {
    file: std::sync::Arc<std::fs::File>,
    in_flight: Option<std::thread::JoinHandle<()>>,
    unsynced: u64,
}

impl WriteBehind {
    fn new(file: &NamedTempFile) -> Result<Self> {
        let clone = file
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("cannot open", file.path(), e))?;
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

/// Makes the rename durable; best effort (not every platform can fsync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
