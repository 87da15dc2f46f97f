//! Schedules: named report definitions in a TOML file, fired by apalis-cron. Each firing
//! queues the job of one period (e.g. yesterday in Europe/Moscow); a definition and period is
//! queued at most once, however often it fires and however many workers run (a unique key
//! in the job table).
//!
//! ```toml
//! [[schedule]]
//! name = "ofd-daily"
//! vendor = "ofd"
//! connection = "default"
//! cron = "0 30 6 * * *"                 # sec min hour day month weekday
//! period = "yesterday"                  # or "today", "last-week", "last-month"
//! timezone = "Europe/Moscow"
//! options = ["--from", "{from}", "--to", "{to}", "--type", "ReceiptReport", "--all-kkts"]
//! out = "/srv/reports/ofd-{from}.zip"   # {name}, {from}, {to} (YYYY-MM-DD, inclusive)
//! ```

use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;
use futures::StreamExt;
use serde::Deserialize;

use crate::record::{JobRecord, NewJob};
use crate::{Error, Result, Store};

/// A schedule file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<Definition>,
    /// The CLI's connection profiles share the file; the CLI reads them.
    #[serde(default, rename = "profiles", skip_serializing)]
    _profiles: Option<toml::Table>,
}

/// One named report definition.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    pub vendor: String,
    #[serde(default = "default_connection")]
    pub connection: String,
    /// Six-field cron expression (seconds first).
    pub cron: String,
    pub period: Period,
    /// IANA time zone name; the period's days are that zone's.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The vendor's run options; `{from}`, `{to}` and `{name}` are filled in.
    #[serde(default)]
    pub options: Vec<String>,
    /// Output path template (same placeholders).
    pub out: String,
}

fn default_connection() -> String {
    "default".into()
}

fn default_timezone() -> String {
    "UTC".into()
}

/// Which days a firing covers, relative to the firing's day in the definition's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Period {
    Today,
    Yesterday,
    /// Monday to Sunday of the week before.
    LastWeek,
    LastMonth,
}

impl Period {
    /// The first and last day (inclusive) of the period for a firing on `day`.
    pub fn days(self, day: NaiveDate) -> (NaiveDate, NaiveDate) {
        match self {
            Period::Today => (day, day),
            Period::Yesterday => {
                let d = day - Days::new(1);
                (d, d)
            }
            Period::LastWeek => {
                let this_monday = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
                (this_monday - Days::new(7), this_monday - Days::new(1))
            }
            Period::LastMonth => {
                let first = day.with_day(1).expect("day 1 exists");
                (first - Months::new(1), first - Days::new(1))
            }
        }
    }
}

impl ScheduleFile {
    /// Parses and checks a schedule file (cron expressions, time zones, unique names).
    pub fn parse(text: &str) -> Result<ScheduleFile> {
        let file: ScheduleFile =
            toml::from_str(text).map_err(|e| Error::Conflict(format!("schedule file: {e}")))?;
        let mut names = std::collections::HashSet::new();
        for d in &file.schedules {
            if !names.insert(&d.name) {
                return Err(Error::Conflict(format!(
                    "schedule `{}` is defined twice",
                    d.name
                )));
            }
            d.schedule()?;
            d.tz()?;
        }
        Ok(file)
    }
}

impl Definition {
    fn schedule(&self) -> Result<cron::Schedule> {
        cron::Schedule::from_str(&self.cron).map_err(|e| {
            Error::Conflict(format!(
                "schedule `{}`: cron `{}`: {e}",
                self.name, self.cron
            ))
        })
    }

    fn tz(&self) -> Result<Tz> {
        self.timezone.parse().map_err(|_| {
            Error::Conflict(format!(
                "schedule `{}`: unknown time zone `{}`",
                self.name, self.timezone
            ))
        })
    }

    /// The job of the period a firing at `fired` (a Unix time) covers, and its unique key.
    pub fn job_for(&self, fired: i64) -> Result<(NewJob, String)> {
        let tz = self.tz()?;
        let at: DateTime<Tz> = tz
            .timestamp_opt(fired, 0)
            .single()
            .ok_or_else(|| Error::Conflict(format!("bad firing time {fired}")))?;
        let (from, to) = self.period.days(at.date_naive());
        let fill = |t: &str| {
            t.replace("{from}", &from.to_string())
                .replace("{to}", &to.to_string())
                .replace("{name}", &self.name)
        };
        let job = NewJob {
            vendor: self.vendor.clone(),
            connection: self.connection.clone(),
            request: serde_json::json!({ "args": self.options.iter().map(|o| fill(o)).collect::<Vec<_>>() }),
            out: fill(&self.out),
        };
        Ok((job, format!("schedule:{}:{from}:{to}", self.name)))
    }

    /// Queues the job of the period a firing at `fired` covers, unless that period's job was
    /// queued before (`None` then).
    pub async fn fire(&self, store: &Store, fired: i64) -> Result<Option<JobRecord>> {
        let (job, key) = self.job_for(fired)?;
        store.submit_unique(job, &key).await
    }

    /// Fires at every moment of the cron expression until dropped.
    pub async fn run(&self, store: Store) -> Result<()> {
        let ticks = apalis_cron::CronScheduler::new(self.schedule()?)
            .with_timezone(self.tz()?)
            .into_stream();
        futures::pin_mut!(ticks);
        while let Some(tick) = ticks.next().await {
            let tick = tick.map_err(|e| Error::Engine(format!("schedule `{}`: {e}", self.name)))?;
            match self.fire(&store, tick.get_timestamp() as i64).await {
                Ok(Some(job)) => tracing::info!(schedule = %self.name, job = %job.id, "queued"),
                Ok(None) => tracing::debug!(schedule = %self.name, "this period is queued already"),
                Err(e) => tracing::warn!(schedule = %self.name, error = %e, "cannot queue"),
            }
        }
        Ok(())
    }
}

/// Runs every definition's schedule until dropped.
pub async fn run_schedules(file: &ScheduleFile, store: Store) -> Result<()> {
    let runs = file.schedules.iter().map(|d| d.run(store.clone()));
    futures::future::try_join_all(runs).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_are_whole_days_before_the_firing() {
        let d = day("2026-03-01"); // a Sunday
        assert_eq!(Period::Today.days(d), (d, d));
        assert_eq!(
            Period::Yesterday.days(d),
            (day("2026-02-28"), day("2026-02-28"))
        );
        assert_eq!(
            Period::LastWeek.days(d),
            (day("2026-02-16"), day("2026-02-22"))
        );
        assert_eq!(
            Period::LastMonth.days(d),
            (day("2026-02-01"), day("2026-02-28"))
        );
        assert_eq!(
            Period::LastMonth.days(day("2026-01-15")),
            (day("2025-12-01"), day("2025-12-31"))
        );
    }

    #[test]
    fn the_period_is_the_time_zones_day() {
        let d = Definition {
            name: "n".into(),
            vendor: "v".into(),
            connection: "default".into(),
            cron: "0 0 1 * * *".into(),
            period: Period::Yesterday,
            timezone: "Europe/Moscow".into(),
            options: vec![
                "--from".into(),
                "{from}".into(),
                "--to".into(),
                "{to}".into(),
            ],
            out: "/r/{name}-{from}.csv".into(),
        };
        // 2026-03-01 22:30 UTC is already 2 March in Moscow: yesterday is 1 March.
        let fired = chrono::Utc
            .with_ymd_and_hms(2026, 3, 1, 22, 30, 0)
            .unwrap()
            .timestamp();
        let (job, key) = d.job_for(fired).unwrap();
        assert_eq!(job.out, "/r/n-2026-03-01.csv");
        assert_eq!(job.request["args"][1], "2026-03-01");
        assert_eq!(key, "schedule:n:2026-03-01:2026-03-01");
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(
            ScheduleFile::parse(
                "[[schedule]]\nname='a'\nvendor='v'\ncron='nope'\nperiod='today'\nout='x'"
            )
            .is_err()
        );
        assert!(ScheduleFile::parse("[[schedule]]\nname='a'\nvendor='v'\ncron='0 0 1 * * *'\nperiod='today'\ntimezone='Mars/Base'\nout='x'").is_err());
        assert!(ScheduleFile::parse("[[schedule]]\nname='a'\nvendor='v'\ncron='0 0 1 * * *'\nperiod='fortnight'\nout='x'").is_err());
        let ok = ScheduleFile::parse(
            "[[schedule]]\nname='a'\nvendor='v'\ncron='0 0 1 * * *'\nperiod='last-month'\nout='x'",
        )
        .unwrap();
        assert_eq!(ok.schedules[0].timezone, "UTC");
    }
}
