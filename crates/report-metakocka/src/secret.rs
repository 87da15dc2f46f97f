//! The `secret_key` of request bodies: a [`SecretString`] that serializes (it must reach the
//! API in the JSON body) but never shows in `Debug` or `Display`, so neither a logged request
//! body nor an error message can leak it.

use std::fmt;
use std::str::FromStr;

use report_core::{ExposeSecret, SecretString};

/// MetaKocka's API secret key, used by the generated [`ReportRequest`](crate::api::types::ReportRequest)
/// in place of a plain string.
#[derive(Clone)]
pub struct SecretKey(SecretString);

impl SecretKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        SecretKey(SecretString::from(key.into()))
    }

    /// The key itself, for the request body.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretString> for SecretKey {
    fn from(secret: SecretString) -> Self {
        SecretKey(secret)
    }
}

impl From<&str> for SecretKey {
    fn from(key: &str) -> Self {
        SecretKey::new(key)
    }
}

impl From<String> for SecretKey {
    fn from(key: String) -> Self {
        SecretKey::new(key)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// Redacted too: typify asks replacement types for `Display`, and nothing should print a key.
impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl FromStr for SecretKey {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretKey::new(s))
    }
}

/// Compares the keys (tests and typed mocks match request bodies).
impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl serde::Serialize for SecretKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for SecretKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretKey::new)
    }
}

report_core::string_json_schema!(SecretKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_redacted_but_serialized_in_full() {
        let key = SecretKey::new("s3cr3t-8899");
        assert!(!format!("{key:?} {key}").contains("s3cr3t"));
        assert_eq!(serde_json::to_string(&key).unwrap(), "\"s3cr3t-8899\"");
        let back: SecretKey = serde_json::from_str("\"s3cr3t-8899\"").unwrap();
        assert_eq!(back, key);
    }
}
