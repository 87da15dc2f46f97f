//! The filters of `GET /reports`.

use chrono::NaiveDate;
use report_core::{Error, Result};

use crate::generated::builder::GetReports;
use crate::lenient::{ReportFormat, ReportStatus, ReportType};

/// Which reports to list. Every filter is optional; the server's page size is 10.
///
/// The document notes that with `from`/`to` the server ignores `offset` and `limit` and
/// answers every matching report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportFilter {
    /// Page size (server default 10).
    pub limit: Option<u32>,
    /// Index of the first report.
    pub offset: Option<u32>,
    /// Only reports of this name.
    pub name: Option<String>,
    /// Only reports of this format.
    pub format: Option<ReportFormat>,
    /// Only reports in this state.
    pub status: Option<ReportStatus>,
    /// Only reports of this type.
    pub report_type: Option<ReportType>,
    /// First day of the period.
    pub from: Option<NaiveDate>,
    /// Last day of the period.
    pub to: Option<NaiveDate>,
}

impl ReportFilter {
    /// The reports of a period, `from` and `to` included.
    pub fn period(from: NaiveDate, to: NaiveDate) -> Self {
        ReportFilter {
            from: Some(from),
            to: Some(to),
            ..ReportFilter::default()
        }
    }

    /// Only reports of this format.
    pub fn with_format(mut self, format: ReportFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Checks the filter before anything is sent.
    pub fn validate(&self) -> Result<()> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(Error::InvalidInput(format!(
                "the period starts ({from}) after it ends ({to})"
            )));
        }
        if self.limit == Some(0) {
            return Err(Error::InvalidInput(
                "the page size (`limit`) must be at least 1".into(),
            ));
        }
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(Error::InvalidInput(
                "the report name filter is blank".into(),
            ));
        }
        Ok(())
    }

    /// Sets the filter's values on a `getReports` call.
    pub(crate) fn apply<'a>(&self, mut call: GetReports<'a>) -> GetReports<'a> {
        // A zero limit is refused by `validate` (the API's minimum is 1).
        if let Some(limit) = self
            .limit
            .and_then(|l| std::num::NonZeroU64::new(u64::from(l)))
        {
            call = call.limit(limit);
        }
        if let Some(offset) = self.offset {
            call = call.offset(i64::from(offset));
        }
        if let Some(name) = &self.name {
            call = call.name(name.clone());
        }
        if let Some(format) = &self.format {
            call = call.format(format.clone());
        }
        if let Some(status) = &self.status {
            call = call.status(status.clone());
        }
        if let Some(report_type) = &self.report_type {
            call = call.type_(report_type.clone());
        }
        if let Some(from) = self.from {
            call = call.from(from);
        }
        if let Some(to) = self.to {
            call = call.to(to);
        }
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cmp.yaml 1.6: `limit` has minimum 1; a zero page is refused before any request.
    #[test]
    fn a_zero_page_size_is_refused() {
        let zero = ReportFilter {
            limit: Some(0),
            ..ReportFilter::default()
        };
        assert!(matches!(zero.validate(), Err(Error::InvalidInput(m)) if m.contains("at least 1")));
        let one = ReportFilter {
            limit: Some(1),
            ..ReportFilter::default()
        };
        assert!(one.validate().is_ok());
    }
}
