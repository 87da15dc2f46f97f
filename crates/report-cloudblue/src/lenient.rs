//! Enums of the spec kept open: CloudBlue may add states, types and formats at any time, and
//! spells formats in either case (`"XLSX"`, `"json"`).

use std::fmt;
use std::str::FromStr;

report_core::lenient_enum! {
    /// State of a CloudBlue report.
    pub enum ReportStatus {
        /// Queued.
        Submitted = "submitted",
        /// Being generated.
        Processing = "processing",
        /// Ready to download.
        Completed = "completed",
        /// Generation failed.
        Error = "error",
        /// The vendor's own `unknown` state.
        VendorUnknown = "unknown",
    }
}

report_core::lenient_enum! {
    /// How a report was produced.
    pub enum ReportType {
        /// By a generator, periodically.
        Periodic = "periodic",
        /// By a generator, once a day.
        Daily = "daily",
        /// By a generator, once a month.
        Monthly = "monthly",
        /// Once, through the API or by hand.
        Onetime = "onetime",
        /// When an invoice was created.
        OnInvoice = "on_invoice",
        /// The vendor's own `unknown` type.
        VendorUnknown = "unknown",
    }
}

impl ReportStatus {
    /// The status, also when the server spelled a known one in another case (`"COMPLETED"`).
    pub fn normalized(&self) -> ReportStatus {
        match self {
            ReportStatus::Unknown(s) => s
                .trim()
                .to_ascii_lowercase()
                .parse()
                .unwrap_or_else(|never| match never {}),
            known => known.clone(),
        }
    }
}

/// File format of a report.
///
/// Like the other lenient enums, but read case-insensitively: the document shows `"XLSX"` and
/// `"JSON"` in answers and `json` in requests. Serializes lower-case; unknown formats are kept
/// verbatim.
///
/// ```
/// use report_cloudblue::ReportFormat;
/// assert_eq!("XLSX".parse::<ReportFormat>().unwrap(), ReportFormat::Xlsx);
/// assert_eq!(ReportFormat::Json.to_string(), "json");
/// assert_eq!("pdf".parse::<ReportFormat>().unwrap(), ReportFormat::Unknown("pdf".into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReportFormat {
    /// JSON, delivered gzip-compressed (`.json.gz`).
    Json,
    /// XML.
    Xml,
    /// CSV.
    Csv,
    /// Excel workbook.
    Xlsx,
    /// The vendor's own `unknown` format.
    VendorUnknown,
    /// A value this version does not know, kept verbatim.
    Unknown(String),
}

impl ReportFormat {
    /// Every known value.
    pub const KNOWN: &'static [ReportFormat] = &[
        ReportFormat::Json,
        ReportFormat::Xml,
        ReportFormat::Csv,
        ReportFormat::Xlsx,
        ReportFormat::VendorUnknown,
    ];

    /// The API's (lower-case) string for this value.
    pub fn as_str(&self) -> &str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Xml => "xml",
            ReportFormat::Csv => "csv",
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::VendorUnknown => "unknown",
            ReportFormat::Unknown(s) => s.as_str(),
        }
    }
}

impl fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportFormat {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let known = ReportFormat::KNOWN
            .iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()));
        Ok(known
            .cloned()
            .unwrap_or_else(|| ReportFormat::Unknown(s.to_string())))
    }
}

impl serde::Serialize for ReportFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ReportFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or_else(|never| match never {}))
    }
}

report_core::string_json_schema!(ReportFormat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_read_in_any_case_and_written_lower_case() {
        for text in ["json", "JSON", "Json", " json "] {
            assert_eq!(
                text.parse::<ReportFormat>().unwrap(),
                ReportFormat::Json,
                "{text}"
            );
        }
        let format: ReportFormat = serde_json::from_str("\"XLSX\"").unwrap();
        assert_eq!(format, ReportFormat::Xlsx);
        assert_eq!(serde_json::to_string(&format).unwrap(), "\"xlsx\"");
        let odd: ReportFormat = serde_json::from_str("\"xslx\"").unwrap();
        assert_eq!(odd, ReportFormat::Unknown("xslx".into()));
        assert_eq!(serde_json::to_string(&odd).unwrap(), "\"xslx\"");
    }

    #[test]
    fn statuses_and_types_keep_unknown_values() {
        let status: ReportStatus = serde_json::from_str("\"archived\"").unwrap();
        assert_eq!(status, ReportStatus::Unknown("archived".into()));
        let kind: ReportType = serde_json::from_str("\"on_invoice\"").unwrap();
        assert_eq!(kind, ReportType::OnInvoice);
        let kind: ReportType = serde_json::from_str("\"quarterly\"").unwrap();
        assert_eq!(kind.to_string(), "quarterly");
    }

    #[test]
    fn statuses_in_another_case_are_normalized() {
        let status: ReportStatus = serde_json::from_str("\"COMPLETED\"").unwrap();
        assert_eq!(status.normalized(), ReportStatus::Completed);
        assert_eq!(
            ReportStatus::Unknown("archived".into()).normalized(),
            ReportStatus::Unknown("archived".into())
        );
    }
}
