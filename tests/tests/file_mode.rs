//! The downloaded file gets the mode a plain `open(O_CREAT, 0666)` gets under the process's
//! umask, not tempfile's 0600 (issue 9, item 10). Its own test binary: the umask is
//! process-wide.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt as _;

use chrono::Utc;
use futures::StreamExt as _;
use report_core::{
    Artifact, Download, DownloadOptions, Job, ReportAdapter, Result, Started, Status, Ticket,
    WaitPolicy,
};

/// Serves a small file from memory.
struct InMemory;

impl ReportAdapter for InMemory {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "memory"
    }

    async fn start(&self, _: &()) -> Result<Started> {
        unreachable!("the test resumes")
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        unreachable!("the test downloads at once")
    }

    async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
        Ok(Download {
            file_name: None,
            content_type: None,
            total_size: Some(5),
            offset: 0,
            compression: Default::default(),
            body: futures::stream::iter([Ok(bytes::Bytes::from_static(b"hello"))]).boxed(),
        })
    }
}

#[tokio::test]
async fn the_file_mode_follows_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let job = Job::resume(
        InMemory,
        Ticket::new("memory", "1", Utc::now()),
        WaitPolicy::default(),
    )
    .unwrap();
    let artifact = Artifact::default();
    for (umask, expected) in [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)] {
        // SAFETY: `umask` only swaps the process's file-creation mask.
        let previous = unsafe { libc::umask(umask) };
        let out = dir.path().join(format!("report-{umask:o}.csv"));
        let downloaded = job
            .download_to(&artifact, &out, DownloadOptions::default())
            .await;
        unsafe { libc::umask(previous) };
        downloaded.unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "umask {umask:o}: mode {mode:o}");
    }
}
