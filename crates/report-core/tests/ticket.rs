//! The ticket format: typed vendor state, and tickets of the previous format still read.

use report_core::{Error, TICKET_VERSION, Ticket};
use serde::{Deserialize, Serialize};

/// A vendor adapter's state, as an adapter declares it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct AccountState {
    account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<u32>,
}

fn ticket() -> Ticket {
    Ticket::new("evovoice", "r-1", chrono::DateTime::UNIX_EPOCH)
}

#[test]
fn typed_state_round_trips_through_json() {
    let state = AccountState {
        account_id: "acc-1".into(),
        page: Some(3),
    };
    let written = ticket().with_state(&state).unwrap();
    let json = written.to_json();
    assert_eq!(
        json,
        format!(
            r#"{{"version":{TICKET_VERSION},"vendor":"evovoice","id":"r-1","started_at":"1970-01-01T00:00:00Z","state":{{"account_id":"acc-1","page":3}}}}"#
        )
    );
    let read = Ticket::from_json(&json).unwrap();
    assert_eq!(read.state::<AccountState>().unwrap(), state);
}

#[test]
fn version_1_tickets_with_string_data_are_still_read() {
    assert_eq!(TICKET_VERSION, 2);
    let v1 = r#"{"version":1,"vendor":"evovoice","id":"r-1","started_at":"1970-01-01T00:00:00Z","data":{"account_id":"acc-1"}}"#;
    let read = Ticket::from_json(v1).unwrap();
    assert_eq!(
        read.state::<AccountState>().unwrap(),
        AccountState {
            account_id: "acc-1".into(),
            page: None
        }
    );
    // Written again, it is a ticket of the current format.
    assert!(read.to_json().contains(r#""state":{"account_id":"acc-1"}"#));
}

#[test]
fn missing_or_mistyped_state_is_a_ticket_error_naming_the_ticket() {
    let err = ticket().state::<AccountState>().unwrap_err();
    assert!(
        matches!(&err, Error::Ticket(m) if m.contains("evovoice ticket r-1") && m.contains("account_id")),
        "{err}"
    );
    let mistyped = Ticket::from_json(
        r#"{"version":2,"vendor":"evovoice","id":"r-1","started_at":"1970-01-01T00:00:00Z","state":{"account_id":"a","page":"x"}}"#,
    )
    .unwrap();
    assert!(matches!(
        mistyped.state::<AccountState>(),
        Err(Error::Ticket(_))
    ));
    assert!(matches!(
        ticket().with_state(&"not an object"),
        Err(Error::Ticket(_))
    ));
}
