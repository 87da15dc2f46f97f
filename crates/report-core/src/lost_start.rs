//! Finding a start whose answer was lost in a vendor's list of reports
//! ([`ReportAdapter::find_started`](crate::ReportAdapter::find_started)), once for every vendor
//! that can list its reports.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::{Error, Result, Ticket};

/// The one report of `candidates` (reports of the vendor's list that match the request, each
/// with its creation time when the vendor gave one) created at or after `since`.
///
/// Vendors write creation times in whole seconds, so `since` is rounded down to its second. A
/// report without a (readable) creation time may be the one: it counts as a candidate, since
/// adopting nothing would start the report a second time. None: `Ok(None)` (the start never
/// reached the vendor). Several: [`Error::Ticket`] naming them, as nobody can tell which one
/// the lost start made.
pub fn one_started(
    vendor: &str,
    since: DateTime<Utc>,
    candidates: impl IntoIterator<Item = (Option<DateTime<Utc>>, Ticket)>,
) -> Result<Option<Ticket>> {
    let since = since.duration_trunc(TimeDelta::seconds(1)).unwrap_or(since);
    let mut found: Vec<Ticket> = candidates
        .into_iter()
        .filter(|(created, _)| created.is_none_or(|at| at >= since))
        .map(|(_, ticket)| ticket)
        .collect();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => {
            let ids: Vec<&str> = found.iter().map(|t| t.id.as_str()).collect();
            Err(Error::Ticket(format!(
                "{n} {vendor} reports match a start whose answer was lost (created since {}: {}); \
                 which one it made cannot be told",
                since.to_rfc3339(),
                ids.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn candidate(created: Option<&str>, id: &str) -> (Option<DateTime<Utc>>, Ticket) {
        (
            created.map(at),
            Ticket::new("v", id, at("2026-01-01T00:00:00Z")),
        )
    }

    #[test]
    fn the_one_report_created_since_is_found() {
        let since = at("2026-01-01T10:00:00.700Z");
        let old = candidate(Some("2026-01-01T09:59:59Z"), "old");
        // Written in whole seconds: the report made 300 ms after `since` reads 10:00:00.
        let new = candidate(Some("2026-01-01T10:00:00Z"), "new");
        let found = one_started("v", since, [old.clone(), new.clone()]).unwrap();
        assert_eq!(found.unwrap().id, "new");
        assert_eq!(one_started("v", since, [old.clone()]).unwrap(), None);
        assert_eq!(one_started("v", since, []).unwrap(), None);
        // Without a creation time a report may be the one.
        let undated = candidate(None, "undated");
        assert_eq!(
            one_started("v", since, [old, undated.clone()])
                .unwrap()
                .unwrap()
                .id,
            "undated"
        );
        let err = one_started("v", since, [new, undated]).unwrap_err();
        assert!(
            matches!(&err, Error::Ticket(m) if m.contains("2 v reports") && m.contains("new, undated")),
            "{err}"
        );
    }
}
