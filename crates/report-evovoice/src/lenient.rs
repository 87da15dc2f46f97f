//! The spec's enum kept open: EvoVoice may add report states at any time.

report_core::lenient_enum! {
    /// State of an EvoVoice report (`ReportStatuses`).
    pub enum ReportStatus {
        /// Waiting to run.
        Queued = "Queued",
        /// Being generated.
        Running = "Running",
        /// Ready to download.
        Completed = "Completed",
        /// Generation failed; `statusMessage` says why.
        Error = "Error",
    }
}
