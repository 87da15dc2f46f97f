//! Dates on the command line: `YYYY-MM-DD` or RFC 3339.

use chrono::{DateTime, FixedOffset, NaiveDate};

/// A date or a moment, as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateArg {
    Day(NaiveDate),
    Moment(DateTime<FixedOffset>),
}

impl DateArg {
    /// The calendar day (of a moment: in its own offset).
    pub fn day(&self) -> NaiveDate {
        match self {
            DateArg::Day(d) => *d,
            DateArg::Moment(m) => m.date_naive(),
        }
    }
}

/// clap value parser.
pub fn parse(text: &str) -> Result<DateArg, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(DateArg::Day(day));
    }
    DateTime::parse_from_rfc3339(text)
        .map(DateArg::Moment)
        .map_err(|_| {
            format!(
                "`{text}` is not a date: use YYYY-MM-DD or RFC 3339 (2024-01-31T23:59:59+03:00)"
            )
        })
}

/// Checks that a period does not end before it starts.
pub fn check_period(from: &DateArg, to: &DateArg) -> Result<(), String> {
    let (a, b) = (from.day(), to.day());
    let reversed = match (from, to) {
        (DateArg::Moment(x), DateArg::Moment(y)) => x > y,
        _ => a > b,
    };
    if reversed {
        Err(format!("--to ({b}) is before --from ({a})"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_days_and_moments() {
        assert_eq!(
            parse("2024-01-31").unwrap().day(),
            NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()
        );
        assert!(matches!(
            parse("2024-01-31T23:59:59+03:00").unwrap(),
            DateArg::Moment(_)
        ));
        assert!(parse("2024-02-30").is_err());
        assert!(parse("31.01.2024").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn reversed_periods_are_refused() {
        let d = |s| parse(s).unwrap();
        assert!(check_period(&d("2024-01-01"), &d("2024-01-31")).is_ok());
        assert!(check_period(&d("2024-01-01"), &d("2024-01-01")).is_ok());
        assert!(check_period(&d("2024-02-01"), &d("2024-01-31")).is_err());
    }
}
