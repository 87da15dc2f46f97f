//! Streaming an artifact to disk: constant memory, a temporary file beside the destination,
//! resume with `Range`, verification, gzip, fsync and an atomic rename. On any failure the
//! destination is left untouched.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::adapter::ReportAdapter;
use crate::{Artifact, Compression, Error, Job, Result, Status};

const WRITE_BUFFER: usize = 256 * 1024;

/// Options of [`Job::download_to`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadOptions {
    /// Decompress gzip artifacts on the way to disk (default `true`).
    pub decompress: bool,
    /// Expected SHA-256 (hex) of the file as written; a mismatch fails the download.
    pub expected_sha256: Option<String>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            decompress: true,
            expected_sha256: None,
        }
    }
}

impl DownloadOptions {
    /// Keeps gzip artifacts compressed.
    pub fn keep_compressed(mut self) -> Self {
        self.decompress = false;
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
        let part = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".part")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("cannot create a temporary file in", &dir, e))?;

        let fetched = self.fetch(artifact.clone(), &part).await?;
        let gzip = fetched.compression == Compression::Gzip && options.decompress;
        let (final_file, bytes, sha256) = if gzip {
            let out = tempfile::Builder::new()
                .prefix(&format!(".{file_name}."))
                .suffix(".part")
                .tempfile_in(&dir)
                .map_err(|e| Error::io("cannot create a temporary file in", &dir, e))?;
            let (bytes, sha) = gunzip(part.path(), &out).await?;
            (out, bytes, sha)
        } else {
            (part, fetched.wire_bytes, fetched.sha256)
        };
        if let Some(expected) = &options.expected_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(Error::Integrity(format!(
                "SHA-256 is {sha256}, expected {expected}"
            )));
        }
        final_file
            .as_file()
            .sync_all()
            .map_err(|e| Error::io("cannot flush", final_file.path(), e))?;
        final_file
            .persist(path)
            .map_err(|e| Error::io("cannot move the finished file to", path, e.error))?;
        sync_dir(&dir);
        Ok(DownloadSummary {
            path: path.to_path_buf(),
            bytes,
            wire_bytes: fetched.wire_bytes,
            sha256,
            resumes: fetched.resumes,
            restarts: fetched.restarts,
            server_file_name: fetched.server_file_name,
        })
    }

    /// Streams the artifact's wire bytes into `part`, resuming or restarting after cuts.
    async fn fetch(&self, mut artifact: Artifact, part: &NamedTempFile) -> Result<Fetched> {
        let file = part
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("cannot open", part.path(), e))?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
        let mut fetched = Fetched::default();
        let mut hasher = Sha256::new();
        let mut scheduler = self.policy().scheduler();
        let mut failures = 0u32;
        let mut refreshed = false;
        loop {
            let written = fetched.wire_bytes;
            let outcome = match self.adapter().open(&artifact, written).await {
                Ok(download) => {
                    fetched.compression = download.compression;
                    if download.file_name.is_some() {
                        fetched.server_file_name = download.file_name.clone();
                    }
                    if download.offset != written {
                        // The server sent the file from the start again: begin anew.
                        restart(&mut out, part.path()).await?;
                        fetched.wire_bytes = 0;
                        hasher = Sha256::new();
                        if written > 0 {
                            fetched.restarts += 1;
                        }
                    }
                    let total = download.total_size.or(artifact.size);
                    let mut body = download.body;
                    let mut cut = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(bytes) => {
                                out.write_all(&bytes)
                                    .await
                                    .map_err(|e| Error::io("cannot write", part.path(), e))?;
                                hasher.update(&bytes);
                                fetched.wire_bytes += bytes.len() as u64;
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
                    restart(&mut out, part.path()).await?;
                    fetched.wire_bytes = 0;
                    hasher = Sha256::new();
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
        out.flush()
            .await
            .map_err(|e| Error::io("cannot write", part.path(), e))?;
        fetched.sha256 = hex::encode(hasher.finalize());
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

#[derive(Default)]
struct Fetched {
    wire_bytes: u64,
    sha256: String,
    resumes: u32,
    restarts: u32,
    compression: Compression,
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

async fn restart(out: &mut BufWriter<tokio::fs::File>, path: &Path) -> Result<()> {
    use tokio::io::AsyncSeekExt;
    out.flush()
        .await
        .map_err(|e| Error::io("cannot write", path, e))?;
    let file = out.get_mut();
    file.set_len(0)
        .await
        .map_err(|e| Error::io("cannot truncate", path, e))?;
    file.seek(std::io::SeekFrom::Start(0))
        .await
        .map_err(|e| Error::io("cannot seek in", path, e))?;
    Ok(())
}

/// Decompresses `src` into `dst`, streaming; returns the bytes written and their SHA-256.
async fn gunzip(src: &Path, dst: &NamedTempFile) -> Result<(u64, String)> {
    use async_compression::tokio::bufread::GzipDecoder;
    use tokio::io::AsyncReadExt;

    let input = tokio::fs::File::open(src)
        .await
        .map_err(|e| Error::io("cannot open", src, e))?;
    let mut decoder = GzipDecoder::new(tokio::io::BufReader::with_capacity(WRITE_BUFFER, input));
    decoder.multiple_members(true);
    let file = dst
        .as_file()
        .try_clone()
        .map_err(|e| Error::io("cannot open", dst.path(), e))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = decoder
            .read(&mut buf)
            .await
            .map_err(|e| Error::Integrity(format!("the gzip data is corrupt: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .await
            .map_err(|e| Error::io("cannot write", dst.path(), e))?;
        total += n as u64;
    }
    out.flush()
        .await
        .map_err(|e| Error::io("cannot write", dst.path(), e))?;
    Ok((total, hex::encode(hasher.finalize())))
}

/// Makes the rename durable; best effort (not every platform can fsync a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
