//! Streaming an artifact to disk: constant memory, a temporary file beside the destination (or
//! a partial file kept in a folder of the caller's, to be resumed), resume with `Range`,
//! verification, size and decompression limits, fsync and an atomic rename. The writing itself
//! (gzip, hashing, limits) is [`crate::sink`]'s. On any failure the destination is untouched.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::adapter::ReportAdapter;
use crate::sink::{FileSink, Limits, WRITE_BUFFER, too_large};
use crate::{Artifact, Compression, Error, Job, Result, Status};

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
            let prefix = temporary_prefix(&file_name);
            let mut builder = tempfile::Builder::new();
            builder.prefix(&prefix).suffix(TEMPORARY_SUFFIX);
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
                        if let Some(old) = sink.take() {
                            old.discard().await;
                        }
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
                    if let Some(old) = sink.take() {
                        old.discard().await;
                    }
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

/// What a download wrote, in a temporary file beside the destination.
struct Written {
    file: NamedTempFile,
    bytes: u64,
    sha256: String,
}

/// Makes the rename durable; best effort (not every platform can fsync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
