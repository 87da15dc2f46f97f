//! The serializable handle of a started report: enough to poll, download or cancel it later,
//! from another process or machine. It never holds a credential.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The ticket format this version writes. Readers accept this version and older ones.
///
/// Version 2 keeps the vendor's state as typed JSON under `state`; version 1 kept strings
/// under `data`, and is still read (into `state`).
pub const TICKET_VERSION: u32 = 2;

/// Most bytes of a serialized ticket: real tickets take a few hundred. Read ticket files with
/// [`Ticket::from_reader_limited`] (or stop at this many bytes) so `/dev/zero` cannot
/// exhaust memory.
pub const TICKET_MAX_BYTES: usize = 64 * 1024;

/// A started report job.
///
/// Serialize it (`serde_json::to_string`) to resume the job later with
/// [`Job::resume`](crate::Job::resume). The format is versioned: a ticket written by a newer
/// format is refused with a clear error rather than misread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// Format version, [`TICKET_VERSION`] when written by this crate.
    pub version: u32,
    /// The vendor's short name, e.g. `ofd`. A ticket is refused by other vendors' adapters.
    pub vendor: String,
    /// The vendor's id of the report (or task token).
    pub id: String,
    /// When the job was started, by the starting machine's clock.
    pub started_at: DateTime<Utc>,
    /// The vendor's state needed to find the report again (agreement id, account id…), as
    /// its adapter's typed struct serialized ([`with_state`](Self::with_state),
    /// [`state`](Self::state)). Never credentials. Version 1 tickets call it `data`.
    #[serde(default, alias = "data", skip_serializing_if = "Map::is_empty")]
    pub state: Map<String, Value>,
}

impl Ticket {
    /// A new ticket of the current format.
    pub fn new(
        vendor: impl Into<String>,
        id: impl Into<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        Ticket {
            version: TICKET_VERSION,
            vendor: vendor.into(),
            id: id.into(),
            started_at,
            state: Map::new(),
        }
    }

    /// Adds the fields of the vendor's typed state (a struct serializing to a JSON object).
    pub fn with_state(mut self, state: &impl Serialize) -> Result<Self> {
        match serde_json::to_value(state) {
            Ok(Value::Object(fields)) => {
                self.state.extend(fields);
                Ok(self)
            }
            Ok(other) => Err(Error::Ticket(format!(
                "vendor state must be a JSON object, not {other}"
            ))),
            Err(e) => Err(Error::Ticket(format!(
                "vendor state does not serialize: {e}"
            ))),
        }
    }

    /// The vendor's typed state. Fields the type does not know are ignored unless it denies
    /// them; a missing or mistyped field is an [`Error::Ticket`] naming the ticket.
    pub fn state<S: DeserializeOwned>(&self) -> Result<S> {
        serde_json::from_value(Value::Object(self.state.clone()))
            .map_err(|e| Error::Ticket(format!("{} ticket {}: {e}", self.vendor, self.id)))
    }

    /// Adds one string value to the vendor state (prefer a typed [`with_state`](Self::with_state)).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.state
            .insert(key.to_string(), Value::String(value.into()));
        self
    }

    /// One string value of the vendor state, or `None`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.state.get(key).and_then(Value::as_str)
    }

    /// One string value of the vendor state the adapter cannot do without.
    pub fn require(&self, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            Error::Ticket(format!("{} ticket {} lacks `{key}`", self.vendor, self.id))
        })
    }

    /// Parses a ticket from JSON, checking its version.
    pub fn from_json(json: &str) -> Result<Self> {
        let probe: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::Ticket(format!("not JSON: {e}")))?;
        match probe.get("version").and_then(|v| v.as_u64()) {
            None => return Err(Error::Ticket("no `version` field".into())),
            Some(v) if v > u64::from(TICKET_VERSION) => {
                return Err(Error::Ticket(format!(
                    "format version {v} is newer than this program understands ({TICKET_VERSION}); upgrade it"
                )));
            }
            Some(_) => {}
        }
        serde_json::from_value(probe).map_err(|e| Error::Ticket(e.to_string()))
    }

    /// Reads and parses a ticket from `reader`, at most [`TICKET_MAX_BYTES`] bytes: a larger
    /// input is refused without reading it all.
    pub fn from_reader_limited(reader: impl std::io::Read) -> Result<Self> {
        use std::io::Read as _;
        let mut text = Vec::new();
        reader
            .take(TICKET_MAX_BYTES as u64 + 1)
            .read_to_end(&mut text)
            .map_err(|e| Error::Ticket(format!("cannot read it: {e}")))?;
        if text.len() > TICKET_MAX_BYTES {
            return Err(Error::Ticket(format!(
                "larger than {TICKET_MAX_BYTES} bytes: not a ticket"
            )));
        }
        let text = String::from_utf8(text)
            .map_err(|_| Error::Ticket("not UTF-8 text: not a ticket".into()))?;
        Self::from_json(&text)
    }

    /// The ticket as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ticket always serializes")
    }

    /// Checks that this ticket belongs to `vendor`.
    pub fn expect_vendor(&self, vendor: &str) -> Result<()> {
        if self.vendor == vendor {
            Ok(())
        } else {
            Err(Error::Ticket(format!(
                "ticket belongs to `{}`, not `{vendor}`",
                self.vendor
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_input_is_read_up_to_its_limit_only() {
        let ticket = Ticket::new("ofd", "r-1", Utc::now()).with("agreement", "7");
        let read = Ticket::from_reader_limited(ticket.to_json().as_bytes()).unwrap();
        assert_eq!(read, ticket);
        // An endless input (`--ticket @/dev/zero`): refused after the limit.
        let endless = std::io::repeat(0);
        let err = Ticket::from_reader_limited(endless).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
