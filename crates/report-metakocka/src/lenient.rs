//! Enums of the spec kept open: MetaKocka may accept more report formats than it documents.

report_core::lenient_enum! {
    /// The report's file format: the value of the `REPORT_TYPE` parameter.
    pub enum ReportFormat {
        /// PDF.
        Pdf = "PDF",
        /// Excel 97–2003 (`.xls`).
        Xls = "XLS",
        /// Comma-separated values.
        Csv = "CSV",
        /// XML.
        Xml = "XML",
        /// HTML.
        Htm = "HTM",
        /// JSON.
        Jsn = "JSN",
        /// Excel workbook (`.xlsx`, written with Apache POI).
        Poi = "POI",
        /// XML (e-SLOG, the Slovenian e-invoice format).
        Esl = "ESL",
    }
}

impl ReportFormat {
    /// The usual file extension of this format (`pdf`, `xlsx`…); for an unknown format, its
    /// name in lower case.
    pub fn extension(&self) -> String {
        match self {
            ReportFormat::Pdf => "pdf".into(),
            ReportFormat::Xls => "xls".into(),
            ReportFormat::Csv => "csv".into(),
            ReportFormat::Xml | ReportFormat::Esl => "xml".into(),
            ReportFormat::Htm => "htm".into(),
            ReportFormat::Jsn => "json".into(),
            ReportFormat::Poi => "xlsx".into(),
            ReportFormat::Unknown(name) => name.to_ascii_lowercase(),
        }
    }
}

impl Default for ReportFormat {
    /// PDF, MetaKocka's usual print format.
    fn default() -> Self {
        ReportFormat::Pdf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_formats() {
        assert_eq!("POI".parse::<ReportFormat>().unwrap(), ReportFormat::Poi);
        assert_eq!(ReportFormat::Poi.extension(), "xlsx");
        let odt: ReportFormat = serde_json::from_str("\"ODT\"").unwrap();
        assert_eq!(odt, ReportFormat::Unknown("ODT".into()));
        assert_eq!(odt.extension(), "odt");
        assert_eq!(
            serde_json::to_string(&ReportFormat::Jsn).unwrap(),
            "\"JSN\""
        );
    }
}
