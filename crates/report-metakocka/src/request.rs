//! What to print: a report template, its format, the document, the locale and typed
//! parameters, checked before anything is sent and written as MetaKocka's string pairs.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use report_core::{Error, Result};

use crate::api::types;
use crate::lenient::ReportFormat;

/// The parameter that chooses the file format.
pub const REPORT_TYPE: &str = "REPORT_TYPE";
/// The parameter that chooses the report's language (`sl`, `en`, `de`…).
pub const DEFAULT_LOCALE: &str = "ADD_ATT_HIDDEN_DEFAULT_LOCALE";
/// The usual start-of-period parameter.
pub const DATE_FROM: &str = "ADD_ATT_DATE_MK_DATUM_FROM";
/// The usual end-of-period parameter.
pub const DATE_TO: &str = "ADD_ATT_DATE_MK_DATUM_TO";
/// The start of the period as some report templates spell it (Slovenian "od").
pub const DATE_FROM_OD: &str = "ADD_ATT_DATE_MK_DATUM_OD";
/// The end of the period as some report templates spell it (Slovenian "do").
pub const DATE_TO_DO: &str = "ADD_ATT_DATE_MK_DATUM_DO";
/// Parameters with this prefix hold dates.
const DATE_PREFIX: &str = "ADD_ATT_DATE_";
/// MetaKocka's date format, `dd.MM.yyyy`.
const DATE_FORMAT: &str = "%d.%m.%Y";

/// A date as MetaKocka writes it: `dd.MM.yyyy`.
pub fn format_date(date: NaiveDate) -> String {
    date.format(DATE_FORMAT).to_string()
}

/// The value of a report parameter. Everything travels as a string; the type says how.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// Sent as it is.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
    /// Decimal digits (ids, counts).
    Integer(i64),
    /// `dd.MM.yyyy`.
    Date(NaiveDate),
}

impl ParamValue {
    /// The string sent to MetaKocka.
    pub fn to_wire(&self) -> String {
        match self {
            ParamValue::Text(text) => text.clone(),
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Integer(n) => n.to_string(),
            ParamValue::Date(d) => format_date(*d),
        }
    }
}

impl From<&str> for ParamValue {
    fn from(text: &str) -> Self {
        ParamValue::Text(text.to_string())
    }
}

impl From<String> for ParamValue {
    fn from(text: String) -> Self {
        ParamValue::Text(text)
    }
}

impl From<bool> for ParamValue {
    fn from(b: bool) -> Self {
        ParamValue::Bool(b)
    }
}

impl From<i64> for ParamValue {
    fn from(n: i64) -> Self {
        ParamValue::Integer(n)
    }
}

impl From<NaiveDate> for ParamValue {
    fn from(d: NaiveDate) -> Self {
        ParamValue::Date(d)
    }
}

/// One report parameter: MetaKocka's `{"type": name, "value": …}` pair.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportParam {
    /// The parameter's name (MetaKocka's `type`), e.g. `ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE`.
    pub name: String,
    pub value: ParamValue,
}

/// A MetaKocka report to print.
///
/// ```
/// use report_metakocka::chrono::NaiveDate;
/// use report_metakocka::{MetaKockaReportRequest, ReportFormat};
///
/// let day = |d| NaiveDate::from_ymd_opt(2017, 7, d).unwrap();
/// let request = MetaKockaReportRequest::new("149", ReportFormat::Pdf)
///     .with_locale("sl")
///     .period(day(1), day(31))
///     .param("ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", true);
/// request.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MetaKockaReportRequest {
    /// Id of the report template (digits), e.g. `149`; `38` prints a bill.
    pub report_id: String,
    /// File format (`REPORT_TYPE`).
    pub format: ReportFormat,
    /// MetaKocka id of the document to print (`mk_id`), for document reports.
    pub mk_id: Option<String>,
    /// Language of the report (`ADD_ATT_HIDDEN_DEFAULT_LOCALE`): sl, en, de, it, hr, bg, sr_RS…
    pub locale: Option<String>,
    /// Further parameters of the report.
    pub params: Vec<ReportParam>,
}

impl MetaKockaReportRequest {
    /// A report template in a format, without parameters.
    pub fn new(report_id: impl Into<String>, format: ReportFormat) -> Self {
        MetaKockaReportRequest {
            report_id: report_id.into(),
            format,
            mk_id: None,
            locale: None,
            params: Vec::new(),
        }
    }

    /// Prints this document (its MetaKocka id).
    pub fn with_document(mut self, mk_id: impl Into<String>) -> Self {
        self.mk_id = Some(mk_id.into());
        self
    }

    /// Sets the report's language.
    pub fn with_locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = Some(locale.into());
        self
    }

    /// Adds a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<ParamValue>) -> Self {
        self.params.push(ReportParam {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Sets the period, `from` and `to` inclusive ([`DATE_FROM`] and [`DATE_TO`]).
    pub fn period(self, from: NaiveDate, to: NaiveDate) -> Self {
        self.param(DATE_FROM, from).param(DATE_TO, to)
    }

    /// Checks the request before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if !is_number(&self.report_id) {
            return bad(format!(
                "report_id {:?} must be the number of a report template, e.g. \"149\"",
                self.report_id
            ));
        }
        if let Some(mk_id) = &self.mk_id
            && !is_number(mk_id)
        {
            return bad(format!(
                "mk_id {mk_id:?} must be a MetaKocka document id (digits)"
            ));
        }
        if let ReportFormat::Unknown(name) = &self.format
            && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return bad(format!(
                "report format {name:?} is not a format name such as PDF"
            ));
        }
        if let Some(locale) = &self.locale
            && (!(2..=10).contains(&locale.len())
                || !locale.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_'))
        {
            return bad(format!(
                "locale {locale:?} is not a locale such as sl, en or sr_RS"
            ));
        }
        let mut seen = BTreeSet::new();
        for param in &self.params {
            check_param(param)?;
            if !seen.insert(param.name.as_str()) {
                return bad(format!("parameter {} is given twice", param.name));
            }
        }
        // A template names its period with one of the two spellings; a start after the end is
        // wrong whichever it uses.
        let from = self.date(DATE_FROM).or_else(|| self.date(DATE_FROM_OD));
        let to = self.date(DATE_TO).or_else(|| self.date(DATE_TO_DO));
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                format_date(from),
                format_date(to)
            ));
        }
        Ok(())
    }

    /// The date a parameter holds, whether given as a date or as `dd.MM.yyyy` text.
    fn date(&self, name: &str) -> Option<NaiveDate> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| match &p.value {
                ParamValue::Date(d) => Some(*d),
                ParamValue::Text(t) => parse_date(t),
                _ => None,
            })
    }

    /// The parameters as MetaKocka's string pairs: format first, then locale, then the rest.
    pub(crate) fn wire_params(&self) -> Vec<types::ReportParam> {
        let pair = |name: &str, value: String| types::ReportParam {
            type_: name.to_string(),
            value,
        };
        let mut out = vec![pair(REPORT_TYPE, self.format.to_string())];
        if let Some(locale) = &self.locale {
            out.push(pair(DEFAULT_LOCALE, locale.clone()));
        }
        out.extend(self.params.iter().map(|p| pair(&p.name, p.value.to_wire())));
        out
    }
}

/// Digits only: MetaKocka's ids are numbers sent as strings.
fn is_number(text: &str) -> bool {
    !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `dd.MM.yyyy`, strictly (two-digit day and month).
fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, DATE_FORMAT).ok()
}

fn check_param(param: &ReportParam) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidInput(m));
    let name = param.name.as_str();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return bad(format!(
            "parameter name {name:?} must be letters, digits and underscores"
        ));
    }
    if name == REPORT_TYPE || name == DEFAULT_LOCALE {
        return bad(format!(
            "parameter {name} is set by the request's {} field, not as a parameter",
            if name == REPORT_TYPE {
                "format"
            } else {
                "locale"
            }
        ));
    }
    if name.starts_with(DATE_PREFIX) {
        match &param.value {
            ParamValue::Date(_) => {}
            ParamValue::Text(text) if parse_date(text).is_some() => {}
            other => {
                return bad(format!(
                    "parameter {name} holds a date: give a date (or dd.MM.yyyy text), not {:?}",
                    other.to_wire()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn invalid(request: &MetaKockaReportRequest) -> String {
        match request.validate() {
            Err(Error::InvalidInput(message)) => message,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn dates_are_written_dd_mm_yyyy() {
        assert_eq!(format_date(day(2017, 7, 1)), "01.07.2017");
        assert_eq!(ParamValue::from(day(2024, 12, 31)).to_wire(), "31.12.2024");
    }

    #[test]
    fn wire_params_put_format_and_locale_first() {
        let request = MetaKockaReportRequest::new("149", ReportFormat::Poi)
            .with_locale("en")
            .period(day(2017, 7, 1), day(2017, 8, 1))
            .param("ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", true)
            .param("ADD_ATT_HIDDEN_MK_BACKGROUND_IMAGE_ID", 1600161321_i64);
        request.validate().unwrap();
        let pairs: Vec<(String, String)> = request
            .wire_params()
            .into_iter()
            .map(|p| (p.type_, p.value))
            .collect();
        let expected = [
            ("REPORT_TYPE", "POI"),
            ("ADD_ATT_HIDDEN_DEFAULT_LOCALE", "en"),
            ("ADD_ATT_DATE_MK_DATUM_FROM", "01.07.2017"),
            ("ADD_ATT_DATE_MK_DATUM_TO", "01.08.2017"),
            ("ADD_ATT_HIDDEN_SHOW_BACKGROUND_IMAGE", "true"),
            ("ADD_ATT_HIDDEN_MK_BACKGROUND_IMAGE_ID", "1600161321"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(pairs, expected);
    }

    #[test]
    fn ids_must_be_numbers() {
        assert!(invalid(&MetaKockaReportRequest::new("", ReportFormat::Pdf)).contains("report_id"));
        assert!(
            invalid(&MetaKockaReportRequest::new("bill", ReportFormat::Pdf)).contains("report_id")
        );
        assert!(
            invalid(&MetaKockaReportRequest::new(" 149", ReportFormat::Pdf)).contains("report_id")
        );
        let doc = MetaKockaReportRequest::new("38", ReportFormat::Pdf).with_document("16x");
        assert!(invalid(&doc).contains("mk_id"));
        MetaKockaReportRequest::new("38", ReportFormat::Pdf)
            .with_document("1600204439")
            .validate()
            .unwrap();
    }

    #[test]
    fn formats_and_locales_are_checked() {
        let odd = MetaKockaReportRequest::new("1", ReportFormat::Unknown("P D F".into()));
        assert!(invalid(&odd).contains("format"));
        MetaKockaReportRequest::new("1", ReportFormat::Unknown("ODT".into()))
            .validate()
            .unwrap();
        let locale = MetaKockaReportRequest::new("1", ReportFormat::Pdf).with_locale("sl-SI;");
        assert!(invalid(&locale).contains("locale"));
        MetaKockaReportRequest::new("1", ReportFormat::Pdf)
            .with_locale("sr_RS")
            .validate()
            .unwrap();
    }

    #[test]
    fn date_parameters_must_be_dates() {
        let text_ok =
            MetaKockaReportRequest::new("1", ReportFormat::Pdf).param(DATE_FROM, "01.07.2017");
        text_ok.validate().unwrap();
        for bad in ["2017-07-01", "1.7.2017", "31.02.2017", "yesterday"] {
            let request = MetaKockaReportRequest::new("1", ReportFormat::Pdf).param(DATE_FROM, bad);
            assert!(invalid(&request).contains("holds a date"), "{bad}");
        }
        let flag = MetaKockaReportRequest::new("1", ReportFormat::Pdf).param(DATE_TO, true);
        assert!(invalid(&flag).contains("holds a date"));
    }

    #[test]
    fn a_reversed_period_is_refused() {
        let request = MetaKockaReportRequest::new("1", ReportFormat::Pdf)
            .period(day(2017, 8, 1), day(2017, 7, 1));
        assert!(invalid(&request).contains("starts (01.08.2017) after it ends (01.07.2017)"));
    }

    #[test]
    fn a_reversed_period_is_refused_in_the_od_do_spelling_too() {
        let od_do = MetaKockaReportRequest::new("1", ReportFormat::Pdf)
            .param(DATE_FROM_OD, "01.08.2017")
            .param(DATE_TO_DO, day(2017, 7, 1));
        assert!(invalid(&od_do).contains("starts (01.08.2017) after it ends (01.07.2017)"));
        let mixed = MetaKockaReportRequest::new("1", ReportFormat::Pdf)
            .param(DATE_FROM, "02.07.2017")
            .param(DATE_TO_DO, "01.07.2017");
        assert!(invalid(&mixed).contains("after it ends"));
        let bad = MetaKockaReportRequest::new("1", ReportFormat::Pdf).param(DATE_TO_DO, "7/1/2017");
        assert!(invalid(&bad).contains("holds a date"));
        let fine = MetaKockaReportRequest::new("1", ReportFormat::Pdf)
            .param(DATE_FROM_OD, "01.07.2017")
            .param(DATE_TO_DO, "01.08.2017");
        fine.validate().unwrap();
        let wire: Vec<(String, String)> = fine
            .wire_params()
            .into_iter()
            .map(|p| (p.type_, p.value))
            .collect();
        assert!(wire.contains(&(DATE_TO_DO.to_string(), "01.08.2017".to_string())));
    }

    #[test]
    fn parameters_are_checked() {
        let twice = MetaKockaReportRequest::new("1", ReportFormat::Pdf)
            .param("A", "1")
            .param("A", "2");
        assert!(invalid(&twice).contains("twice"));
        let format = MetaKockaReportRequest::new("1", ReportFormat::Pdf).param(REPORT_TYPE, "XLS");
        assert!(invalid(&format).contains("format field"));
        let locale =
            MetaKockaReportRequest::new("1", ReportFormat::Pdf).param(DEFAULT_LOCALE, "en");
        assert!(invalid(&locale).contains("locale field"));
        let blank = MetaKockaReportRequest::new("1", ReportFormat::Pdf).param("", "x");
        assert!(invalid(&blank).contains("parameter name"));
        let spaced = MetaKockaReportRequest::new("1", ReportFormat::Pdf).param("A B", "x");
        assert!(invalid(&spaced).contains("parameter name"));
    }
}
