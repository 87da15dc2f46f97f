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

/// Default [`DownloadOptions::max_size`]: 4 GiB written, far beyond any real report.
pub const DEFAULT_MAX_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// Default [`DownloadOptions::max_ratio`]: gzip cannot pass ≈ 1032:1, which only runs of one
/// byte reach (a gzip bomb); spreadsheets and CSV compress 5–50:1.
pub const DEFAULT_MAX_RATIO: u32 = 1000;
/// The ratio is checked only after this many bytes were written: a small file of blanks may
/// legitimately compress very well.
pub const RATIO_GRACE: u64 = 8 * 1024 * 1024;

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
    /// Most bytes written (after decompression), default [`DEFAULT_MAX_SIZE`]; `None`: no
    /// limit. Past it the download ends with [`Error::TooLarge`] and nothing is kept.
    pub max_size: Option<u64>,
    /// Most bytes written per byte received for a decompressed artifact, default
    /// [`DEFAULT_MAX_RATIO`], checked after [`RATIO_GRACE`] bytes; `None`: no limit.
    pub max_ratio: Option<u32>,
    /// Where an interrupted transfer is kept to be resumed by a later `download_to` (see
    /// [`partial_dir`](Self::partial_dir)); `None`: a temporary file beside the destination,
    /// removed on any failure or when the download is dropped.
    pub partial_dir: Option<PathBuf>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            decompress: true,
            expected_sha256: None,
            fsync: true,
            max_size: Some(DEFAULT_MAX_SIZE),
            max_ratio: Some(DEFAULT_MAX_RATIO),
            partial_dir: None,
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

    /// Limits the bytes written, after decompression (`None`: no limit).
    pub fn max_size(mut self, bytes: Option<u64>) -> Self {
        self.max_size = bytes;
        self
    }

    /// Limits the decompression ratio (`None`: no limit).
    pub fn max_ratio(mut self, ratio: Option<u32>) -> Self {
        self.max_ratio = ratio;
        self
    }

    /// Keeps the transfer in `dir` while it runs, so that an interrupted download (an error,
    /// the deadline, the process killed) is resumed with `Range` by a later `download_to` of
    /// the same ticket and artifact with the same `partial_dir`.
    ///
    /// The partial file holds the bytes as received (still compressed), named by a stable key
    /// of the ticket and the artifact. Once complete it is decompressed or copied into a
    /// temporary file beside the destination (so `dir` may be on another filesystem),
    /// verified, renamed into place, and removed. A partial file that fails verification is
    /// removed too. Nothing is ever left in the destination's folder.
    pub fn partial_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.partial_dir = Some(dir.into());
        self
    }

    fn limits(&self, ratio: bool) -> Limits {
        Limits {
            max_size: self.max_size,
            max_ratio: self.max_ratio.filter(|_| ratio),
        }
    }
}

/// The guards a [`FileSink`] applies to what it writes.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_size: Option<u64>,
    max_ratio: Option<u32>,
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

impl<A: ReportAdapter> Job<A> {
    /// Downloads `artifact` to `path`, streaming through a temporary file in the same folder
    /// that is renamed into place only when complete and verified (or through a partial file
    /// in [`DownloadOptions::partial_dir`]).
    ///
    /// Cut transfers resume with `Range` (or restart where the server ignores it) within the
    /// policy's transient-error budget and the job's deadline; an expired pre-signed URL is
    /// refreshed by asking the vendor for the status again. On failure, or when this future is
    /// dropped, nothing is left at `path` or in its folder. The file gets the mode a plain
    /// `open(O_CREAT, 0666)` would get under the process's umask.
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
            let prefix = format!(".{file_name}.");
            let mut builder = tempfile::Builder::new();
            builder.prefix(&prefix).suffix(".part");
            // Not tempfile's 0600: the umask decides, as for any file the user creates.
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            builder
                .tempfile_in(&dir)
                .map_err(|e| Error::io("cannot create a temporary file in", &dir, e))
        };
        let (fetched, written) = match &options.partial_dir {
            None => {
                // Created before any request, so an unwritable folder fails early.
                let mut store = Store::Beside {
                    current: Some(temp()?),
                    temp: &temp,
                };
                let (fetched, sink) = self.fetch(artifact.clone(), &mut store, &options).await?;
                // A transfer beside the destination ends with a sink whose file is kept in
                // the store (only a partial file can be complete without one).
                let (
                    Some(sink),
                    Store::Beside {
                        current: Some(file),
                        ..
                    },
                ) = (sink, store)
                else {
                    return Err(Error::Integrity("the transfer ended without a file".into()));
                };
                let (bytes, sha256) = sink.finish().await?;
                (
                    fetched,
                    Written {
                        file,
                        bytes,
                        sha256,
                    },
                )
            }
            Some(partial_dir) => {
                let partial = Partial::open(partial_dir, &self.partial_key(artifact))?;
                // Checked before any request, like the temporary file above.
                drop(temp()?);
                let partial_path = partial.path.clone();
                let result = self.fetch_partial(artifact, partial, &temp, &options).await;
                if let Err(e) = &result
                    && !e.is_transient()
                    && !matches!(e, Error::Deadline { .. } | Error::RetriesExhausted { .. })
                {
                    // Corrupt, refused or too large: resuming it would only fail again.
                    let _ = std::fs::remove_file(&partial_path);
                }
                let (fetched, written) = result?;
                (fetched, written)
            }
        };
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
        if let Some(partial) = &fetched.partial {
            let _ = std::fs::remove_file(partial);
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

    /// A stable name for the partial file of this ticket's artifact: the same ticket and
    /// artifact (whatever the query string of a re-signed URL) give the same key.
    fn partial_key(&self, artifact: &Artifact) -> String {
        let ticket = self.ticket();
        let url = artifact.url.split(['?', '#']).next().unwrap_or_default();
        let mut hasher = Sha256::new();
        for part in [
            ticket.vendor.as_str(),
            ticket.id.as_str(),
            &ticket.started_at.to_rfc3339(),
            url,
            artifact.file_name.as_deref().unwrap_or_default(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for (key, value) in &artifact.data {
            hasher.update(key.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        let digest = hex::encode(hasher.finalize());
        format!("{}-{}", ticket.vendor, &digest[..32])
    }

    /// Fetches into a partial file (resuming what it holds), then decompresses or copies it
    /// into a temporary file beside the destination.
    async fn fetch_partial(
        &self,
        artifact: &Artifact,
        partial: Partial,
        temp: &(dyn Fn() -> Result<NamedTempFile> + Sync),
        options: &DownloadOptions,
    ) -> Result<(Fetched, Written)> {
        let path = partial.path.clone();
        let mut store = Store::Partial(partial);
        let (mut fetched, sink) = self.fetch(artifact.clone(), &mut store, options).await?;
        if let Some(sink) = sink {
            sink.finish().await?;
        }
        let Store::Partial(partial) = store else {
            return Err(Error::Integrity("the partial file was lost".into()));
        };
        fetched.partial = Some(path.clone());
        let gunzip = fetched.compression == Compression::Gzip && options.decompress;
        let file = temp()?;
        let mut sink = FileSink::start(&file, gunzip, options.fsync, options.limits(gunzip))?;
        let mut reader = tokio::fs::File::from_std(partial.file);
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        reader
            .seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| Error::io("cannot read", &path, e))?;
        loop {
            let mut buf = bytes::BytesMut::with_capacity(WRITE_BUFFER);
            let n = reader
                .read_buf(&mut buf)
                .await
                .map_err(|e| Error::io("cannot read", &path, e))?;
            if n == 0 {
                break;
            }
            sink.send(buf.freeze()).await?;
        }
        let (bytes, sha256) = sink.finish().await?;
        Ok((
            fetched,
            Written {
                file,
                bytes,
                sha256,
            },
        ))
    }

    /// Streams the artifact into the store, resuming or restarting after cuts; a gzip artifact
    /// is decompressed on the way when the options ask for it and the store keeps the file as
    /// it will be kept. Returns the sink still open (`None`: nothing was left to fetch).
    async fn fetch(
        &self,
        artifact: Artifact,
        store: &mut Store<'_>,
        options: &DownloadOptions,
    ) -> Result<(Fetched, Option<FileSink>)> {
        let mut sink = None;
        match self.transfer(artifact, store, options, &mut sink).await {
            Ok(fetched) => Ok((fetched, sink)),
            Err(e) => {
                if store.is_partial()
                    && let Some(sink) = sink
                {
                    // Every byte received stays in the partial file, to be resumed.
                    let _ = sink.finish().await;
                }
                Err(e)
            }
        }
    }

    async fn transfer(
        &self,
        mut artifact: Artifact,
        store: &mut Store<'_>,
        options: &DownloadOptions,
        sink: &mut Option<FileSink>,
    ) -> Result<Fetched> {
        let mut fetched = Fetched {
            wire_bytes: store.kept_bytes(),
            compression: artifact.compression,
            ..Fetched::default()
        };
        let mut scheduler = self.policy().scheduler();
        let mut failures = 0u32;
        let mut refreshed = false;
        loop {
            let received = fetched.wire_bytes;
            let opened = self
                .within_deadline(self.adapter().open(&artifact, received))
                .await;
            let outcome = match opened {
                Ok(download) => {
                    if download.offset != received {
                        // The server sent the file from the start again: begin anew.
                        *sink = None;
                        store.restart()?;
                        fetched.wire_bytes = 0;
                        if received > 0 {
                            fetched.restarts += 1;
                        }
                    }
                    if download.file_name.is_some() {
                        fetched.server_file_name = download.file_name.clone();
                    }
                    fetched.compression = download.compression;
                    let gunzip = download.compression == Compression::Gzip && options.decompress;
                    let total = download.total_size.or(artifact.size);
                    if let (Some(max), Some(total), false) = (options.max_size, total, gunzip)
                        && total > max
                    {
                        return Err(too_large(max));
                    }
                    let sink = match sink {
                        Some(sink) => sink,
                        None => sink.insert(store.sink(gunzip, options)?),
                    };
                    let mut body = download.body;
                    let mut cut = None;
                    // Each read is bounded by the deadline (a body dripping a byte at a time
                    // never ends otherwise); an idle body is cut by the client's read timeout.
                    while let Some(chunk) = self.within_deadline(next_chunk(&mut body)).await? {
                        match chunk {
                            Ok(bytes) => {
                                fetched.wire_bytes += bytes.len() as u64;
                                // A write error, corrupt gzip or a limit ends the download
                                // (no retry).
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
                Err(Error::Api {
                    status: Some(416), ..
                }) if received > 0 && store.is_partial() => {
                    // The partial file already holds the whole file (the process stopped
                    // before it was moved into place): it is verified like any other.
                    break;
                }
                Err(e) if !artifact.authenticated && is_expired_link(&e) && !refreshed => {
                    // A pre-signed link expired: ask the vendor for a fresh one, once.
                    refreshed = true;
                    artifact = self.refreshed_artifact().await?;
                    *sink = None;
                    store.restart()?;
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
                    self.sleep_within_deadline(scheduler.after_error(e.retry_after()))
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(fetched)
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

/// The next chunk of a body, as a deadline-bounded step.
async fn next_chunk(
    body: &mut futures::stream::BoxStream<'static, Result<bytes::Bytes>>,
) -> Result<Option<Result<bytes::Bytes>>> {
    Ok(body.next().await)
}

fn too_large(max: u64) -> Error {
    Error::TooLarge(format!(
        "the file is larger than the limit of {max} bytes (DownloadOptions::max_size)"
    ))
}

/// Where the received bytes go.
enum Store<'a> {
    /// A temporary file beside the destination, written as it will be kept (decompressed);
    /// removed when dropped. `temp` makes a fresh one after a restart.
    Beside {
        current: Option<NamedTempFile>,
        temp: &'a (dyn Fn() -> Result<NamedTempFile> + Sync),
    },
    /// A partial file of the bytes as received, kept across failures to be resumed.
    Partial(Partial),
}

impl Store<'_> {
    /// Bytes already received in an earlier attempt (a partial file's length).
    fn kept_bytes(&self) -> u64 {
        match self {
            Store::Beside { .. } => 0,
            Store::Partial(partial) => partial.len,
        }
    }

    fn is_partial(&self) -> bool {
        matches!(self, Store::Partial(_))
    }

    /// Forgets what was written: the transfer starts over.
    fn restart(&mut self) -> Result<()> {
        match self {
            Store::Beside { current, .. } => *current = None,
            Store::Partial(partial) => {
                partial
                    .file
                    .set_len(0)
                    .map_err(|e| Error::io("cannot truncate", &partial.path, e))?;
                partial.len = 0;
            }
        }
        Ok(())
    }

    /// A sink appending to the store's file.
    fn sink(&mut self, gunzip: bool, options: &DownloadOptions) -> Result<FileSink> {
        match self {
            Store::Beside { current, temp } => {
                let file = match current {
                    Some(file) => file,
                    None => current.insert(temp()?),
                };
                FileSink::start(file, gunzip, options.fsync, options.limits(gunzip))
            }
            // As received: decompressed (and its ratio checked) when moved into place.
            Store::Partial(partial) => FileSink::start_raw(
                &partial.file,
                &partial.path,
                false,
                false,
                options.limits(false),
            ),
        }
    }
}

/// A partial download kept in [`DownloadOptions::partial_dir`].
struct Partial {
    file: std::fs::File,
    path: PathBuf,
    /// Its length when opened.
    len: u64,
}

impl Partial {
    /// Opens (or creates) the partial file `key.part` in `dir`, for appending.
    fn open(dir: &Path, key: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let path = dir.join(format!("{key}.part"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io("cannot open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("cannot read", &path, e))?
            .len();
        Ok(Partial { file, path, len })
    }
}

/// What the transfer took.
#[derive(Default)]
struct Fetched {
    wire_bytes: u64,
    resumes: u32,
    restarts: u32,
    server_file_name: Option<String>,
    /// How the bytes came (the last `open`'s say).
    compression: Compression,
    /// The partial file to remove once the download is in place.
    partial: Option<PathBuf>,
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
/// channel to it, and it decompresses them (gzip, multi-member) if asked, checks the
/// [`Limits`], hashes and writes them, so hashing, decompressing and writing overlap with
/// receiving. A resumed transfer (`Range`) simply continues the stream; a restart drops the
/// sink (its task is aborted) and begins a fresh one in a fresh (or truncated) file.
struct FileSink {
    tx: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    task: Option<tokio::task::JoinHandle<Result<(u64, String)>>>,
}

/// What a download wrote, in a temporary file beside the destination.
struct Written {
    file: NamedTempFile,
    bytes: u64,
    sha256: String,
}

impl FileSink {
    /// Starts writing into `file`; `gunzip` decompresses the chunks, `flush` writes the data
    /// to disk in the background as it goes.
    fn start(file: &NamedTempFile, gunzip: bool, flush: bool, limits: Limits) -> Result<Self> {
        Self::start_raw(file.as_file(), file.path(), gunzip, flush, limits)
    }

    /// Like [`start`](Self::start), into any open file (written from its current end).
    fn start_raw(
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

    /// Waits for everything sent to be written; the bytes written and their SHA-256.
    async fn finish(mut self) -> Result<(u64, String)> {
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

/// Makes the rename durable; best effort (not every platform can fsync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
