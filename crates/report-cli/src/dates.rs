//! Dates on the command line: `--from`/`--to` as `YYYY-MM-DD` or RFC 3339, or a relative
//! `--period` (yesterday, last-week, last-month, YYYY-MM, YYYY-MM-DD) in a time zone.

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::Args;

use crate::failure::Failure;

/// The report's period: `--from` and `--to`, or `--period` (what a crontab wants).
#[derive(Debug, Clone, Args)]
pub struct Span {
    /// First day (YYYY-MM-DD) or moment (RFC 3339, e.g. 2024-01-01T00:00:00+03:00).
    #[arg(long, value_parser = parse, required_unless_present = "period", requires = "to")]
    pub from: Option<DateArg>,
    /// Last day (inclusive) or moment.
    #[arg(long, value_parser = parse, required_unless_present = "period", requires = "from")]
    pub to: Option<DateArg>,
    /// Instead of --from/--to: yesterday, last-week (Monday to Sunday), last-month, YYYY-MM
    /// or YYYY-MM-DD.
    #[arg(long, value_parser = parse_period, conflicts_with_all = ["from", "to"])]
    pub period: Option<Period>,
    /// Time zone that decides what "yesterday" is, e.g. Europe/Moscow (default: local time).
    #[arg(long, value_name = "ZONE", requires = "period")]
    pub tz: Option<Tz>,
}

impl Span {
    /// The first and last day or moment, checked.
    pub fn resolve(&self) -> Result<(DateArg, DateArg), Failure> {
        let (from, to) = match (self.from, self.to, self.period) {
            (Some(from), Some(to), _) => (from, to),
            (_, _, Some(period)) => {
                let today = match self.tz {
                    Some(tz) => Utc::now().with_timezone(&tz).date_naive(),
                    None => chrono::Local::now().date_naive(),
                };
                let (from, to) = period.days(today);
                (DateArg::Day(from), DateArg::Day(to))
            }
            _ => return Err(Failure::Usage("give --from and --to, or --period".into())),
        };
        check_period(&from, &to).map_err(Failure::Usage)?;
        Ok((from, to))
    }
}

/// A period relative to today, or a named month or day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Yesterday,
    LastWeek,
    LastMonth,
    Month(NaiveDate),
    Day(NaiveDate),
}

impl Period {
    /// First and last day (inclusive) of the period, seen from `today`.
    pub fn days(self, today: NaiveDate) -> (NaiveDate, NaiveDate) {
        let month_of = |first: NaiveDate| {
            let next = first + Months::new(1);
            (first, next - Days::new(1))
        };
        match self {
            Period::Yesterday => {
                let day = today - Days::new(1);
                (day, day)
            }
            Period::LastWeek => {
                let monday = today
                    - Days::new(u64::from(today.weekday().num_days_from_monday()))
                    - Days::new(7);
                (monday, monday + Days::new(6))
            }
            Period::LastMonth => {
                month_of(today.with_day(1).expect("day 1 exists") - Months::new(1))
            }
            Period::Month(first) => month_of(first),
            Period::Day(day) => (day, day),
        }
    }
}

/// clap value parser of `--period`.
pub fn parse_period(text: &str) -> Result<Period, String> {
    match text {
        "yesterday" => return Ok(Period::Yesterday),
        "last-week" => return Ok(Period::LastWeek),
        "last-month" => return Ok(Period::LastMonth),
        _ => {}
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Period::Day(day));
    }
    if let Ok(first) = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d") {
        return Ok(Period::Month(first));
    }
    Err(format!(
        "`{text}` is not a period: use yesterday, last-week, last-month, YYYY-MM or YYYY-MM-DD"
    ))
}

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
    fn relative_periods() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        let days = |text: &str, today| parse_period(text).unwrap().days(today);
        // 2024-03-01 is a Friday; 2024 is a leap year.
        let today = d(2024, 3, 1);
        assert_eq!(days("yesterday", today), (d(2024, 2, 29), d(2024, 2, 29)));
        assert_eq!(days("last-week", today), (d(2024, 2, 19), d(2024, 2, 25)));
        assert_eq!(days("last-month", today), (d(2024, 2, 1), d(2024, 2, 29)));
        assert_eq!(
            days("last-month", d(2024, 1, 15)),
            (d(2023, 12, 1), d(2023, 12, 31))
        );
        // On a Monday, last week is the one that ended yesterday.
        assert_eq!(
            days("last-week", d(2024, 2, 26)),
            (d(2024, 2, 19), d(2024, 2, 25))
        );
        assert_eq!(days("2023-02", today), (d(2023, 2, 1), d(2023, 2, 28)));
        assert_eq!(
            days("2023-12-31", today),
            (d(2023, 12, 31), d(2023, 12, 31))
        );
        assert!(parse_period("2023-13").is_err());
        assert!(parse_period("tomorrow").is_err());
        assert!(parse_period("").is_err());
    }

    #[test]
    fn reversed_periods_are_refused() {
        let d = |s| parse(s).unwrap();
        assert!(check_period(&d("2024-01-01"), &d("2024-01-31")).is_ok());
        assert!(check_period(&d("2024-01-01"), &d("2024-01-01")).is_ok());
        assert!(check_period(&d("2024-02-01"), &d("2024-01-31")).is_err());
    }
}
