//! Enums of the spec kept open: OFD.ru may add states and report types at any time.

report_core::lenient_enum! {
    /// State of an OFD.ru report.
    pub enum ReportStatus {
        /// Waiting to be generated.
        Todo = "Todo",
        /// Being generated.
        Processing = "Processing",
        /// Ready to download.
        Done = "Done",
        /// Generation failed.
        Error = "Error",
        /// Removed (by the user, by a cancel, or by expiry).
        Deleted = "Deleted",
    }
}

report_core::lenient_enum! {
    /// Base report type (document section 3.1.1).
    pub enum ReportType {
        /// Connected registers.
        KktReport = "KKTReport",
        /// Closed shifts.
        CloseShiftReport = "CloseShiftReport",
        /// Reconciliation: the list of receipts.
        ReceiptReport = "ReceiptReport",
        /// Fiscal documents.
        FiscalDocumentReport = "FiscalDocumentReport",
        /// Tenant report.
        RentReport = "RentReport",
        /// Electronic receipt delivery statistics.
        EReceiptReport = "EReceiptReport",
        /// Registers with a shift open for more than 24 hours.
        OpenShift24Report = "OpenShift24Report",
        /// All registers.
        ManagerKktReport = "ManagerKktReport",
        /// Monitoring report.
        MyKktReport = "MyKktReport",
        /// Fiscal drive replacement schedule.
        FnScheduleReport = "FnScheduleReport",
    }
}
