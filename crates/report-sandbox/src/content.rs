//! Report files: deterministic contents generated on the fly (never held in memory), optional
//! gzip, and download answers with `Range` support.

use std::convert::Infallible;
use std::io::{self, Write as _};
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, RANGE,
};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::Vendor;
use crate::faults::roll_download_cut;
use crate::shared::Shared;

/// Bytes generated (and sent) per body chunk.
const CHUNK: usize = 64 * 1024;
/// A cut download stays silent this long before the connection is closed, so the bytes sent
/// before the cut reach the client.
const CUT_PAUSE: Duration = Duration::from_millis(50);
/// Text files break lines every this many characters.
const LINE: u64 = 81;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a generated file looks like: a fixed header (magic bytes), then pseudo-random binary
/// bytes or lines of printable text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentKind {
    header: &'static [u8],
    text: bool,
}

impl ContentKind {
    /// The kind of file for an extension (`zip`, `xlsx`, `pdf`, `csv`, `json`, …).
    pub(crate) fn for_ext(ext: &str) -> ContentKind {
        let (header, text): (&'static [u8], bool) = match ext {
            "zip" | "xlsx" => (b"PK\x03\x04", false),
            "xls" => (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", false),
            "pdf" => (b"%PDF-1.7\n", false),
            "csv" => (b"date;account;document;amount\n", true),
            "json" => (b"[\n", true),
            "xml" => (b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n", true),
            "htm" | "html" => (b"<!DOCTYPE html>\n", true),
            _ => (b"", false),
        };
        ContentKind { header, text }
    }
}

/// A report file as served by one vendor.
#[derive(Clone, Debug)]
pub(crate) struct FileSpec {
    pub kind: ContentKind,
    /// Size of the uncompressed contents.
    pub size: u64,
    /// Served gzip-compressed (a `.gz` blob, no `Content-Encoding`).
    pub gzip: bool,
    pub content_type: &'static str,
    /// `Content-Disposition` value, if the vendor sends one.
    pub disposition: Option<String>,
}

impl FileSpec {
    pub(crate) fn generator(&self, seed: u64, vendor: Vendor, id: &str) -> ContentGen {
        let mut hasher = Sha256::new();
        hasher.update(seed.to_le_bytes());
        hasher.update(vendor.name().as_bytes());
        hasher.update([0]);
        hasher.update(id.as_bytes());
        let digest = hasher.finalize();
        let key = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        ContentGen {
            key,
            kind: self.kind,
            size: self.size,
        }
    }
}

/// A counter-mode generator: the byte at any offset is computable on its own, so ranges and
/// chunks need no state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ContentGen {
    key: u64,
    kind: ContentKind,
    size: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ContentGen {
    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    pub(crate) fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let word = splitmix64(self.key ^ (pos >> 3).wrapping_mul(0xA076_1D64_78BD_642F));
            let bytes = word.to_le_bytes();
            let from = (pos & 7) as usize;
            let n = (8 - from).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&bytes[from..from + n]);
            i += n;
            pos += n as u64;
        }
        let header = self.kind.header;
        let header_len = header.len() as u64;
        if !self.kind.text && offset >= header_len {
            return;
        }
        for (j, byte) in buf.iter_mut().enumerate() {
            let at = offset + j as u64;
            if at < header_len {
                *byte = header[at as usize];
            } else if self.kind.text {
                *byte = if (at - header_len) % LINE == LINE - 1 {
                    b'\n'
                } else {
                    ALPHABET[(*byte & 31) as usize]
                };
            }
        }
    }
}

/// The file's bytes from `start` to `end` (exclusive), chunk by chunk.
struct PlainSource {
    generator: ContentGen,
    pos: u64,
    end: u64,
}

impl Iterator for PlainSource {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.pos >= self.end {
            return None;
        }
        let n = (self.end - self.pos).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; n];
        self.generator.fill(self.pos, &mut buf);
        self.pos += n as u64;
        Some(Bytes::from(buf))
    }
}

/// The gzip compression of the whole file, chunk by chunk (deterministic: same input chunks,
/// same level, no timestamp).
struct GzipSource {
    generator: ContentGen,
    raw_pos: u64,
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl GzipSource {
    fn new(generator: ContentGen) -> Self {
        GzipSource {
            generator,
            raw_pos: 0,
            encoder: Some(GzEncoder::new(Vec::new(), Compression::fast())),
        }
    }
}

impl Iterator for GzipSource {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        loop {
            let encoder = self.encoder.as_mut()?;
            if self.raw_pos < self.generator.size {
                let n = (self.generator.size - self.raw_pos).min(CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                self.generator.fill(self.raw_pos, &mut buf);
                self.raw_pos += n as u64;
                encoder.write_all(&buf).expect("writing to a Vec");
                let out = std::mem::take(encoder.get_mut());
                if !out.is_empty() {
                    return Some(Bytes::from(out));
                }
            } else {
                let out = self
                    .encoder
                    .take()
                    .expect("checked above")
                    .finish()
                    .expect("writing to a Vec");
                return (!out.is_empty()).then(|| Bytes::from(out));
            }
        }
    }
}

/// SHA-256 (hex) of a file's uncompressed contents.
pub(crate) fn sha256_hex(generator: &ContentGen) -> String {
    let mut hasher = Sha256::new();
    let source = PlainSource {
        generator: *generator,
        pos: 0,
        end: generator.size,
    };
    for chunk in source {
        hasher.update(&chunk);
    }
    hex::encode(hasher.finalize())
}

fn gzip_length_of(generator: ContentGen) -> u64 {
    GzipSource::new(generator).map(|c| c.len() as u64).sum()
}

/// The byte range a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Full,
    /// Inclusive bounds.
    Partial(u64, u64),
    Unsatisfiable,
}

fn parse_range(header: Option<&str>, total: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => RangeRequest::Unsatisfiable,
            Ok(_) if total == 0 => RangeRequest::Unsatisfiable,
            Ok(n) => RangeRequest::Partial(total - n.min(total), total - 1),
            Err(_) => RangeRequest::Full,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Full;
    };
    if start >= total {
        return RangeRequest::Unsatisfiable;
    }
    if last.is_empty() {
        return RangeRequest::Partial(start, total - 1);
    }
    match last.parse::<u64>() {
        Ok(end) if end >= start => RangeRequest::Partial(start, end.min(total - 1)),
        _ => RangeRequest::Full,
    }
}

/// The parts of a download request that matter: its method and `Range` header.
pub(crate) struct DownloadRequest {
    head: bool,
    range: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for DownloadRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(DownloadRequest {
            head: parts.method == Method::HEAD,
            range: parts
                .headers
                .get(RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}

/// Streams a report file: `Content-Length` always, `Accept-Ranges: bytes`, `206` with
/// `Content-Range` for `Range: bytes=…`, `416` for a range past the end; the `download_cut`
/// fault closes the connection after about half of the bytes.
pub(crate) async fn serve_file(
    shared: &Shared,
    vendor: Vendor,
    id: &str,
    spec: &FileSpec,
    request: &DownloadRequest,
    extra_headers: &[(HeaderName, String)],
) -> Response {
    let generator = spec.generator(shared.config.seed, vendor, id);
    let total = if spec.gzip {
        gzip_length(shared, vendor, id, generator).await
    } else {
        spec.size
    };
    let etag = format!(
        "\"{:016x}{}\"",
        generator.key,
        if spec.gzip { "-gz" } else { "" }
    );

    let mut headers = vec![
        (CONTENT_TYPE, spec.content_type.to_owned()),
        (ACCEPT_RANGES, "bytes".to_owned()),
        (ETAG, etag),
    ];
    if let Some(disposition) = &spec.disposition {
        headers.push((CONTENT_DISPOSITION, disposition.clone()));
    }
    headers.extend(extra_headers.iter().cloned());

    let (status, start, end) = match parse_range(request.range.as_deref(), total) {
        RangeRequest::Full => (StatusCode::OK, 0, total),
        RangeRequest::Partial(first, last) => {
            headers.push((CONTENT_RANGE, format!("bytes {first}-{last}/{total}")));
            (StatusCode::PARTIAL_CONTENT, first, last + 1)
        }
        RangeRequest::Unsatisfiable => {
            headers.push((CONTENT_RANGE, format!("bytes */{total}")));
            headers.push((CONTENT_LENGTH, "0".to_owned()));
            return with_headers(StatusCode::RANGE_NOT_SATISFIABLE, headers, Body::empty());
        }
    };
    let length = end - start;
    headers.push((CONTENT_LENGTH, length.to_string()));
    if request.head {
        return with_headers(status, headers, Body::empty());
    }

    shared.stats(vendor).download();
    let cut_after = roll_download_cut(shared, vendor).then_some(length / 2);
    let drip = shared
        .faults
        .lock()
        .expect("faults lock")
        .download_bytes_per_sec;
    let (source, skip): (Box<dyn Iterator<Item = Bytes> + Send>, u64) = if spec.gzip {
        (Box::new(GzipSource::new(generator)), start)
    } else {
        (
            Box::new(PlainSource {
                generator,
                pos: start,
                end,
            }),
            0,
        )
    };
    let window = Window {
        source,
        skip,
        remaining: length,
        cut_left: cut_after,
        finished: false,
    };
    let stream = futures::stream::unfold(window, move |mut window| async move {
        match window.step() {
            Step::Data(bytes) => {
                if drip > 0 {
                    let secs = bytes.len() as f64 / drip as f64;
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                }
                Some((Ok(bytes), window))
            }
            Step::Cut => {
                // Let the bytes already handed over reach the client, then fail the body,
                // which makes hyper close the connection mid-body.
                tokio::time::sleep(CUT_PAUSE).await;
                window.finished = true;
                Some((
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "sandbox fault: download cut",
                    )),
                    window,
                ))
            }
            Step::End => None,
        }
    });
    with_headers(status, headers, Body::from_stream(stream))
}

fn with_headers(status: StatusCode, headers: Vec<(HeaderName, String)>, body: Body) -> Response {
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The compressed length of a gzip blob, computed once (off the async threads) and cached.
async fn gzip_length(shared: &Shared, vendor: Vendor, id: &str, generator: ContentGen) -> u64 {
    let key = (vendor, id.to_owned());
    if let Some(length) = shared.gzip_lengths.lock().expect("gzip lock").get(&key) {
        return *length;
    }
    let length = tokio::task::spawn_blocking(move || gzip_length_of(generator))
        .await
        .expect("gzip length task");
    shared
        .gzip_lengths
        .lock()
        .expect("gzip lock")
        .insert(key, length);
    length
}

enum Step {
    Data(Bytes),
    Cut,
    End,
}

/// Skips the first `skip` bytes of a source, passes `remaining` bytes, and stops early after
/// `cut_left` bytes when the download is cut.
struct Window {
    source: Box<dyn Iterator<Item = Bytes> + Send>,
    skip: u64,
    remaining: u64,
    cut_left: Option<u64>,
    finished: bool,
}

impl Window {
    fn step(&mut self) -> Step {
        loop {
            if self.finished || self.remaining == 0 {
                return Step::End;
            }
            if self.cut_left == Some(0) {
                return Step::Cut;
            }
            let Some(mut chunk) = self.source.next() else {
                return Step::End;
            };
            if self.skip > 0 {
                if chunk.len() as u64 <= self.skip {
                    self.skip -= chunk.len() as u64;
                    continue;
                }
                chunk = chunk.slice(self.skip as usize..);
                self.skip = 0;
            }
            let mut n = (chunk.len() as u64).min(self.remaining);
            if let Some(left) = self.cut_left {
                n = n.min(left);
                self.cut_left = Some(left - n);
            }
            chunk.truncate(n as usize);
            self.remaining -= n;
            return Step::Data(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ext: &str, size: u64) -> FileSpec {
        FileSpec {
            kind: ContentKind::for_ext(ext),
            size,
            gzip: false,
            content_type: "application/octet-stream",
            disposition: None,
        }
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range(None, 10), RangeRequest::Full);
        assert_eq!(
            parse_range(Some("bytes=3-"), 10),
            RangeRequest::Partial(3, 9)
        );
        assert_eq!(
            parse_range(Some("bytes=3-4"), 10),
            RangeRequest::Partial(3, 4)
        );
        assert_eq!(
            parse_range(Some("bytes=3-40"), 10),
            RangeRequest::Partial(3, 9)
        );
        assert_eq!(
            parse_range(Some("bytes=-4"), 10),
            RangeRequest::Partial(6, 9)
        );
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), RangeRequest::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeRequest::Full);
    }

    #[test]
    fn generator_is_random_access() {
        let generator = spec("csv", 10_000).generator(1, Vendor::Ofd, "x");
        let mut whole = vec![0u8; 10_000];
        generator.fill(0, &mut whole);
        let mut part = vec![0u8; 777];
        generator.fill(4321, &mut part);
        assert_eq!(&whole[4321..4321 + 777], &part[..]);
        assert!(whole.starts_with(b"date;account;document;amount\n"));
        assert!(whole.iter().all(|b| b.is_ascii()));
        let other = spec("csv", 10_000).generator(1, Vendor::Ofd, "y");
        let mut different = vec![0u8; 10_000];
        other.fill(0, &mut different);
        assert_ne!(whole, different);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let generator = spec("json", 200_000).generator(7, Vendor::CloudBlue, "r");
        let compressed: Vec<u8> = GzipSource::new(generator).flatten().collect();
        assert_eq!(compressed.len() as u64, gzip_length_of(generator));
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain.len(), 200_000);
        assert_eq!(hex::encode(Sha256::digest(&plain)), sha256_hex(&generator));
    }
}
