//! Values of the spec kept open: DocSpace sends the task status as an integer or a name (and
//! may add states), and file ids as numbers or strings. Both types replace generated ones
//! (`x-codegen: replace` in specs/docspace.yaml), so they implement what progenitor needs:
//! serde both ways, `Display`, `FromStr`, `Clone`, `Debug`, `PartialEq` and `JsonSchema`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// State of the report task (`DistributedTaskStatus`).
///
/// Parsed from the integer (`2`) or the name (`"Completed"`, any case); anything else is kept
/// as [`TaskStatus::Unknown`] instead of failing the whole answer. Serialized as the integer,
/// the form the server most likely sends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskStatus {
    /// Queued (0).
    Created,
    /// Being built (1).
    Running,
    /// Built; the file is in Documents (2).
    Completed,
    /// Terminated (3; the vendor spells it `Canceled`).
    Canceled,
    /// The build failed (4; the vendor spells it `Failted`).
    Failed,
    /// A value this version does not know, kept verbatim (`"7"` for the integer 7).
    Unknown(String),
}

impl TaskStatus {
    /// Every known state with its integer and its vendor name.
    const KNOWN: [(TaskStatus, i64, &'static str); 5] = [
        (TaskStatus::Created, 0, "Created"),
        (TaskStatus::Running, 1, "Running"),
        (TaskStatus::Completed, 2, "Completed"),
        (TaskStatus::Canceled, 3, "Canceled"),
        (TaskStatus::Failed, 4, "Failted"),
    ];

    /// The vendor's integer, if known (or if an unknown value is numeric).
    pub fn code(&self) -> Option<i64> {
        match self {
            TaskStatus::Unknown(raw) => raw.trim().parse().ok(),
            known => Self::KNOWN
                .iter()
                .find(|(k, _, _)| k == known)
                .map(|(_, code, _)| *code),
        }
    }

    /// The vendor's name (`Failted` for [`TaskStatus::Failed`]), or the unknown value.
    pub fn as_str(&self) -> &str {
        match self {
            TaskStatus::Unknown(raw) => raw,
            known => Self::KNOWN
                .iter()
                .find(|(k, _, _)| k == known)
                .map_or("", |(_, _, name)| name),
        }
    }

    /// Whether the task can still change: created or running. Unknown states count as
    /// running (the safe answer when deciding whether to start another report).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            TaskStatus::Created | TaskStatus::Running | TaskStatus::Unknown(_)
        )
    }

    fn from_code(code: i64) -> TaskStatus {
        Self::KNOWN.iter().find(|(_, c, _)| *c == code).map_or_else(
            || TaskStatus::Unknown(code.to_string()),
            |(k, _, _)| k.clone(),
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = std::convert::Infallible;

    /// `"2"`, `"Completed"`, `"completed"` → `Completed`; `"Failed"` is accepted beside the
    /// vendor's `"Failted"`; anything else is `Unknown`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if let Ok(code) = text.parse::<i64>() {
            return Ok(Self::from_code(code));
        }
        if text.eq_ignore_ascii_case("Failed") {
            return Ok(TaskStatus::Failed);
        }
        Ok(Self::KNOWN
            .iter()
            .find(|(_, _, name)| name.eq_ignore_ascii_case(text))
            .map_or_else(|| TaskStatus::Unknown(s.to_string()), |(k, _, _)| k.clone()))
    }
}

impl Serialize for TaskStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.code() {
            Some(code) => s.serialize_i64(code),
            None => s.serialize_str(self.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for TaskStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrStringVisitor("a task status (integer or name)"))
            .map(|raw| match raw {
                IntOrString::Int(code) => TaskStatus::from_code(code),
                IntOrString::Text(text) => text.parse().unwrap_or_else(|never| match never {}),
            })
    }
}

impl schemars::JsonSchema for TaskStatus {
    fn schema_name() -> String {
        "TaskStatus".into()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        int_or_string_schema()
    }
}

/// Id of a file in Documents: a number for the portal's own storage (the report's file is
/// one), a string for connected third-party storages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileId {
    Number(i64),
    Text(String),
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileId::Number(n) => write!(f, "{n}"),
            FileId::Text(t) => f.write_str(t),
        }
    }
}

impl FromStr for FileId {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().parse::<i64>() {
            Ok(n) => FileId::Number(n),
            Err(_) => FileId::Text(s.to_string()),
        })
    }
}

impl From<i64> for FileId {
    fn from(n: i64) -> Self {
        FileId::Number(n)
    }
}

impl From<&str> for FileId {
    fn from(s: &str) -> Self {
        s.parse().unwrap_or_else(|never| match never {})
    }
}

impl Serialize for FileId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FileId::Number(n) => s.serialize_i64(*n),
            FileId::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrStringVisitor("a file id (integer or string)"))
            .map(|raw| match raw {
                IntOrString::Int(n) => FileId::Number(n),
                IntOrString::Text(t) => FileId::Text(t),
            })
    }
}

impl schemars::JsonSchema for FileId {
    fn schema_name() -> String {
        "FileId".into()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        int_or_string_schema()
    }
}

/// Sort direction of the operations (`OperationOrderType`). The server has no string
/// converter for it: it is sent as its integer (Descending = 0, Ascending = 1); answers may
/// carry either form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// Newest first (0).
    Descending,
    /// Oldest first (1).
    Ascending,
}

impl SortOrder {
    /// The vendor's integer.
    pub fn code(self) -> i64 {
        match self {
            SortOrder::Descending => 0,
            SortOrder::Ascending => 1,
        }
    }
}

impl fmt::Display for SortOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SortOrder::Descending => "Descending",
            SortOrder::Ascending => "Ascending",
        })
    }
}

impl FromStr for SortOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "0" => Ok(SortOrder::Descending),
            "1" => Ok(SortOrder::Ascending),
            t if t.eq_ignore_ascii_case("Descending") => Ok(SortOrder::Descending),
            t if t.eq_ignore_ascii_case("Ascending") => Ok(SortOrder::Ascending),
            other => Err(format!(
                "unknown sort order {other:?} (Descending or Ascending)"
            )),
        }
    }
}

impl Serialize for SortOrder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.code())
    }
}

impl<'de> Deserialize<'de> for SortOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = d.deserialize_any(IntOrStringVisitor("a sort order (0, 1 or a name)"))?;
        let text = match raw {
            IntOrString::Int(code) => code.to_string(),
            IntOrString::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for SortOrder {
    fn schema_name() -> String {
        "SortOrder".into()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        int_or_string_schema()
    }
}

/// The server's `OperationType` of a customer operation. It has a string converter (names
/// are sent), but some server versions declare it as `[Flags]` with bit values, so answers
/// may carry an integer: both are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OperationType {
    /// A name, as sent (e.g. `payment`).
    Name(String),
    /// A bit value, as some server versions answer.
    Flags(i64),
}

impl fmt::Display for OperationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperationType::Name(name) => f.write_str(name),
            OperationType::Flags(bits) => write!(f, "{bits}"),
        }
    }
}

impl FromStr for OperationType {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().parse::<i64>() {
            Ok(bits) => OperationType::Flags(bits),
            Err(_) => OperationType::Name(s.to_string()),
        })
    }
}

impl Serialize for OperationType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            OperationType::Name(name) => s.serialize_str(name),
            OperationType::Flags(bits) => s.serialize_i64(*bits),
        }
    }
}

impl<'de> Deserialize<'de> for OperationType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrStringVisitor("an operation type (name or integer)"))
            .map(|raw| match raw {
                IntOrString::Int(bits) => OperationType::Flags(bits),
                IntOrString::Text(name) => OperationType::Name(name),
            })
    }
}

impl schemars::JsonSchema for OperationType {
    fn schema_name() -> String {
        "OperationType".into()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        int_or_string_schema()
    }
}

enum IntOrString {
    Int(i64),
    Text(String),
}

/// Reads a JSON integer or string (and nothing else) without buffering the value.
struct IntOrStringVisitor(&'static str);

impl Visitor<'_> for IntOrStringVisitor {
    type Value = IntOrString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
        Ok(IntOrString::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
        // Beyond i64 no id or state exists; keep it as text rather than fail.
        Ok(i64::try_from(v).map_or_else(|_| IntOrString::Text(v.to_string()), IntOrString::Int))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::Text(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
        Ok(IntOrString::Text(v))
    }
}

fn int_or_string_schema() -> schemars::schema::Schema {
    use schemars::schema::{InstanceType, SchemaObject, SingleOrVec};
    SchemaObject {
        instance_type: Some(SingleOrVec::Vec(vec![
            InstanceType::Integer,
            InstanceType::String,
        ])),
        ..Default::default()
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reads_integers_names_and_keeps_the_unknown() {
        let parse = |json: &str| serde_json::from_str::<TaskStatus>(json).unwrap();
        assert_eq!(parse("2"), TaskStatus::Completed);
        assert_eq!(parse("\"Completed\""), TaskStatus::Completed);
        assert_eq!(parse("\"completed\""), TaskStatus::Completed);
        assert_eq!(parse("\"2\""), TaskStatus::Completed);
        assert_eq!(parse("4"), TaskStatus::Failed);
        assert_eq!(parse("\"Failted\""), TaskStatus::Failed);
        assert_eq!(parse("7"), TaskStatus::Unknown("7".into()));
        assert_eq!(parse("\"Paused\""), TaskStatus::Unknown("Paused".into()));
        assert!(serde_json::from_str::<TaskStatus>("true").is_err());
    }

    #[test]
    fn status_round_trips() {
        for status in [
            TaskStatus::Created,
            TaskStatus::Failed,
            TaskStatus::Unknown("7".into()),
            TaskStatus::Unknown("Paused".into()),
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(serde_json::from_str::<TaskStatus>(&json).unwrap(), status);
            assert_eq!(status.to_string().parse::<TaskStatus>().unwrap(), status);
        }
        assert_eq!(serde_json::to_string(&TaskStatus::Completed).unwrap(), "2");
        assert_eq!(TaskStatus::Failed.to_string(), "Failted");
    }

    #[test]
    fn file_ids_are_numbers_or_strings() {
        assert_eq!(
            serde_json::from_str::<FileId>("1234").unwrap(),
            FileId::Number(1234)
        );
        assert_eq!(
            serde_json::from_str::<FileId>("\"sbox-ab|cd\"").unwrap(),
            FileId::Text("sbox-ab|cd".into())
        );
        assert_eq!(serde_json::to_string(&FileId::Number(5)).unwrap(), "5");
        assert_eq!("42".parse::<FileId>().unwrap(), FileId::Number(42));
        assert_eq!(FileId::Text("x".into()).to_string(), "x");
        assert!(serde_json::from_str::<FileId>("null").is_err());
    }
}
