//! Bounded fuzzing of every vendor's answer decoding, as property tests: whatever a server
//! answers, [`decode_everything`] (serde into every response type, status mapping, error
//! description, lenient enums, report-core's header and ticket parsers, and the asynchronous
//! guard → dispatch → error-mapping path) must not panic.
//!
//! Three kinds of input per vendor:
//! - arbitrary bytes, and byte strings made of JSON tokens;
//! - JSON values shaped like the vendor's envelopes, generated from the generated types' own
//!   JSON schemas, with fields missing, null or of the wrong type, unknown enum strings, huge
//!   numbers, deep (bounded) nesting and unicode;
//! - mutations of the vendor's recorded fixtures (`crates/report-*/tests/fixtures/*.json`): bit
//!   flips, truncation, splices with other fixtures, inserted tokens, fields retyped or removed.
//!
//! The run is deterministic (a fixed seed; set `FUZZ_DECODE_SEED` to explore another one) and
//! bounded (`FUZZ_DECODE_CASES` cases per kind and vendor, default [`DEFAULT_CASES`]). Each
//! vendor's test prints how many inputs it tried (`cargo test -p integration-tests --test
//! fuzz_decode -- --nocapture`). For open-ended fuzzing see `fuzz/README.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use integration_tests::fuzzing::{Vendor, decode_everything, fixtures};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use schemars::schema::{InstanceType, RootSchema, Schema, SchemaObject, SingleOrVec};
use serde_json::{Map, Value};

/// Cases per kind of input and vendor, unless `FUZZ_DECODE_CASES` says otherwise.
const DEFAULT_CASES: u32 = 800;

/// The seed of the run, unless `FUZZ_DECODE_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5EED_F022_DEC0_DE00;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn runner(cases: u32, salt: u64) -> TestRunner {
    let seed = env_number("FUZZ_DECODE_SEED").unwrap_or(DEFAULT_SEED);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed ^ salt),
        max_shrink_iters: 2_000,
        ..Config::default()
    })
}

/// Runs `cases` inputs of `strategy` through the vendor's decoding; answers how many were tried.
fn run(vendor: Vendor, kind: &str, salt: u64, strategy: impl Strategy<Value = Vec<u8>>) -> u64 {
    let cases = env_number("FUZZ_DECODE_CASES").map_or(DEFAULT_CASES, |n| n as u32);
    let tried = AtomicU64::new(0);
    let result = runner(cases, salt).run(&strategy, |input| {
        tried.fetch_add(1, Ordering::Relaxed);
        decode_everything(vendor, &input);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{} ({kind}): {failure}", vendor.name());
    }
    tried.into_inner()
}

fn fuzz_vendor(vendor: Vendor) {
    let salt = vendor as u64 * 3;
    let bytes = run(vendor, "arbitrary bytes", salt, arbitrary_bytes());
    let shaped = run(vendor, "shaped JSON", salt + 1, shaped_json(vendor));
    let mutated = run(
        vendor,
        "mutated fixtures",
        salt + 2,
        mutated_fixtures(vendor),
    );
    println!(
        "fuzz_decode: {}: {} inputs tried without a panic ({bytes} arbitrary byte strings, {shaped} envelope-shaped JSON values, {mutated} mutated fixtures)",
        vendor.name(),
        bytes + shaped + mutated,
    );
}

/// The per-vendor dispatch, from the workspace's one list: each vendor has a module below
/// (named as in the list) with its test, `answer_schemas` and `known_strings`, so a vendor added
/// to the list does not compile here until it has them.
macro_rules! vendor_arms {
    ($($(#[doc = $doc:literal])* $variant:ident = $module:ident;)+) => {
        /// The JSON schemas of the vendor's answer types (success and error bodies).
        fn answer_schemas(vendor: Vendor) -> Vec<RootSchema> {
            match vendor {
                $(Vendor::$variant => $module::answer_schemas(),)+
            }
        }

        /// The vendor's own enum strings.
        fn known_strings(vendor: Vendor) -> Vec<String> {
            match vendor {
                $(Vendor::$variant => $module::known_strings(),)+
            }
        }
    };
}

report_sandbox::for_each_vendor!(vendor_arms);

fn all<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

mod ofd {
    use super::*;
    use report_ofd::api::types::*;
    use schemars::schema_for;

    #[test]
    fn answers_never_panic() {
        fuzz_vendor(Vendor::Ofd);
    }

    pub fn answer_schemas() -> Vec<RootSchema> {
        vec![
            schema_for!(ReportListEnvelope),
            schema_for!(ReportEnvelope),
            schema_for!(StatusEnvelope),
            schema_for!(DeletedReport),
            schema_for!(AuthToken),
            schema_for!(ErrorEnvelope),
            schema_for!(Vec<ReportTemplate>),
            schema_for!(Vec<CustomTemplate>),
        ]
    }

    pub fn known_strings() -> Vec<String> {
        [
            all(report_ofd::ReportStatus::KNOWN),
            all(report_ofd::ReportType::KNOWN),
            all(report_ofd::OfdErrorCode::KNOWN),
            vec!["Success".into(), "Failed".into()],
        ]
        .concat()
    }
}

mod docspace {
    use super::*;
    use report_docspace::api::types::*;
    use schemars::schema_for;

    #[test]
    fn answers_never_panic() {
        fuzz_vendor(Vendor::DocSpace);
    }

    pub fn answer_schemas() -> Vec<RootSchema> {
        vec![
            schema_for!(DocumentBuilderTaskEnvelope),
            schema_for!(StringEnvelope),
            schema_for!(ErrorEnvelope),
        ]
    }

    pub fn known_strings() -> Vec<String> {
        [
            [
                "Created",
                "Running",
                "Completed",
                "Canceled",
                "Failted",
                "Failed",
            ]
            .map(String::from)
            .to_vec(),
            all(report_docspace::DocSpaceErrorCode::KNOWN),
            vec!["System.Security.SecurityException".into()],
        ]
        .concat()
    }
}

mod evovoice {
    use super::*;
    use report_evovoice::api::types::*;
    use schemars::schema_for;

    #[test]
    fn answers_never_panic() {
        fuzz_vendor(Vendor::EvoVoice);
    }

    pub fn answer_schemas() -> Vec<RootSchema> {
        vec![
            schema_for!(ReportList),
            schema_for!(ReportInfo),
            schema_for!(ErrorResponse),
        ]
    }

    pub fn known_strings() -> Vec<String> {
        all(report_evovoice::ReportStatus::KNOWN)
    }
}

mod cloudblue {
    use super::*;
    use report_cloudblue::api::types::*;
    use schemars::schema_for;

    #[test]
    fn answers_never_panic() {
        fuzz_vendor(Vendor::CloudBlue);
    }

    pub fn answer_schemas() -> Vec<RootSchema> {
        vec![
            schema_for!(ReportItem),
            schema_for!(ReportList),
            schema_for!(Token),
            schema_for!(ErrorBody),
        ]
    }

    pub fn known_strings() -> Vec<String> {
        [
            all(report_cloudblue::ReportStatus::KNOWN),
            all(report_cloudblue::ReportType::KNOWN),
            all(report_cloudblue::ReportFormat::KNOWN),
        ]
        .concat()
    }
}

mod metakocka {
    use super::*;
    use report_metakocka::api::types::*;
    use schemars::schema_for;

    #[test]
    fn answers_never_panic() {
        fuzz_vendor(Vendor::MetaKocka);
    }

    pub fn answer_schemas() -> Vec<RootSchema> {
        vec![schema_for!(ReportAnswer), schema_for!(ErrorAnswer)]
    }

    pub fn known_strings() -> Vec<String> {
        [
            all(report_metakocka::ReportFormat::KNOWN),
            ["0", "1", "2", "6", "Wrong secret_key or company_id."]
                .map(String::from)
                .to_vec(),
        ]
        .concat()
    }
}

/// Every fixture, of every vendor, through every vendor's decoding.
#[test]
fn every_fixture_through_every_vendor() {
    let mut tried = 0;
    for source in Vendor::ALL {
        for (_, bytes) in fixtures(source) {
            for vendor in Vendor::ALL {
                decode_everything(vendor, &bytes);
                tried += 1;
            }
        }
    }
    println!("fuzz_decode: {tried} fixture × vendor decodings without a panic");
    assert!(tried > 100, "fixtures went missing: only {tried}");
}

/// Hand-picked answers that once broke (or could break) a decoder.
#[test]
fn known_hostile_answers() {
    let hostile: &[&str] = &[
        // CloudBlue: a token lifetime past the last representable date, or past what a
        // `chrono::Duration` holds (both panicked in `renew_token`).
        r#"{"token":"t","expiresInSeconds":9223372036854775807}"#,
        r#"{"token":"t","expiresInSeconds":10000000000000}"#,
        // OFD: an ETA at the end of chrono's range.
        r#"{"Status":"Success","Data":{"Id":"1","Status":"Processing","AssumptiveCompleteTime":"+262143-12-31T23:59:59"}}"#,
        r#"{"Status":"Success","Data":{"Id":"1","Status":"Processing","AssumptiveCompleteTime":"262143-12-31T23:59:59.999999999"}}"#,
        r#"{"Status":"Success","Data":{"Id":"1","Status":"Processing","AssumptiveCompleteTime":"-262143-01-01T00:00:00"}}"#,
        // DocSpace: percentages and ids at the edges.
        r#"{"response":{"id":"x","status":1,"percentage":2147483647,"resultFileId":18446744073709551615}}"#,
        r#"{"response":{"id":"x","status":-9223372036854775808,"isCompleted":true,"resultFileId":-1}}"#,
        // MetaKocka: progress texts with huge numbers.
        r#"{"opr_code":"0","progress":"99999999999999999999 / 99999999999999999999"}"#,
        r#"{"opr_code":"0","progress":"18446744073709551615 / 18446744073709551615"}"#,
        // Content-Disposition / Retry-After edge forms.
        "attachment; filename*=UTF-8''%",
        "attachment; filename*=UTF-8''%%",
        "attachment; filename*=UTF-8''%e2%82",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "18446744073709551616",
        // A ticket from the far future or past.
        r#"{"version":1,"vendor":"ofd","id":"1","started_at":"+262143-12-31T23:59:59Z"}"#,
        r#"{"version":18446744073709551615,"vendor":"ofd","id":"1","started_at":"2024-01-01T00:00:00Z"}"#,
    ];
    for answer in hostile {
        for vendor in Vendor::ALL {
            decode_everything(vendor, answer.as_bytes());
        }
    }
}

/// The CloudBlue client itself, end to end, with a token lifetime out of chrono's range: the
/// token is used (without an expiry) instead of the client panicking.
#[tokio::test]
async fn cloudblue_token_lifetime_out_of_range() {
    use report_cloudblue::api::types::Token;
    use report_cloudblue::mock::MockServerExt;
    use report_cloudblue::{CloudBlueClient, CloudBlueConfig};

    for lifetime in [i64::MAX, 10_000_000_000_000] {
        let api = httpmock::MockServer::start_async().await;
        let token = api.generate_auth_token(|_when, then| {
            then.ok(&Token {
                token: "t0k3n".into(),
                expires_in_seconds: Some(lifetime),
            });
        });
        let client = CloudBlueClient::new(
            CloudBlueConfig::new("user", "password", "key").with_base_url(api.base_url()),
        )
        .expect("a valid configuration");
        client.ensure_token().await.expect("the token is accepted");
        token.assert_async().await;
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Arbitrary bytes.

/// Fragments JSON answers are made of, so byte strings get past the first byte of the parser.
const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    " ",
    "\n",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "-0",
    "1.5e-300",
    "18446744073709551616",
    "9223372036854775807",
    "\"\"",
    "\"a\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\u00e9\"",
    "\"Status\"",
    "\"Data\"",
    "\"List\"",
    "\"Errors\"",
    "\"response\"",
    "\"status\"",
    "\"error\"",
    "\"message\"",
    "\"reports\"",
    "\"responseStatus\"",
    "\"data\"",
    "\"downloadUrl\"",
    "\"token\"",
    "\"expiresInSeconds\"",
    "\"opr_code\"",
    "\"progress\"",
    "\"url\"",
    "\"id\"",
    "\"Id\"",
    "\"version\"",
    "\"Completed\"",
    "\"Done\"",
    "\"completed\"",
    "\"0\"",
    "\"1\"",
    "\"9 / 23\"",
    "\u{feff}",
    "отчёт",
    "\u{1F4A9}",
];

fn arbitrary_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(prop::sample::select(JSON_TOKENS), 0..48)
            .prop_map(|tokens| tokens.concat().into_bytes()),
    ]
}

// ---------------------------------------------------------------------------------------------
// (b) JSON shaped like the vendor's envelopes.

/// The vendor's enum strings (lenient enums have plain string schemas, so these are what makes
/// a generated status meaningful), in their own spelling and a few others.
fn enum_strings(vendor: Vendor) -> Vec<String> {
    let mut known = known_strings(vendor);
    let variants: Vec<String> = known
        .iter()
        .flat_map(|s| {
            [
                s.to_uppercase(),
                s.to_lowercase(),
                format!(" {s} "),
                format!("{s}\u{0}"),
            ]
        })
        .collect();
    known.extend(variants);
    known
}

/// Strings every vendor's fields get: dates at chrono's edges, URLs of every kind, progress
/// texts, paths, unicode and control characters.
const STRINGS: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "2",
    "Unknown",
    "Archived",
    "2021-11-12T10:55:20",
    "2001-09-11T08:46:26.0000000",
    "2024-05-02T10:00:00.000+00:00",
    "+262143-12-31T23:59:59Z",
    "262143-12-31T23:59:59.999999999",
    "-262143-01-01T00:00:00",
    "9999-99-99T99:99:99",
    "https://ofd.ru/api/customer/reports/1?AuthToken=secret",
    "/api/customer/reports/1",
    "//evil.example/x",
    "http://[::1",
    "https://blob.example/c/Daily%20report.json.gz?sig=abc",
    "https://blob.example/c/..%2F..%2Fetc%2Fpasswd",
    "https://blob.example/c/%2e%2e",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "../../etc/passwd",
    "%",
    "%zz",
    "9 / 23",
    "0 / 0",
    "23 / 1",
    "12/5/2024",
    "99999999999999999999999 / 1",
    "Priprava podatkov za račun BC-MK-328 9 / 23",
    "отчёт.xlsx",
    "\u{202e}xslx.exe",
    "\u{1F4A9}",
    "\u{0}",
    "\r\n",
    "\u{ffff}",
];

/// Numbers, as JSON text: serde_json's `Value` cannot hold the ones past `f64`.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "4",
    "7",
    "30",
    "100",
    "101",
    "2147483647",
    "-2147483648",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1e400",
    "-1e400",
    "1.5",
    "-0",
    "1E2",
    "10000000000000",
];

/// A tiny deterministic generator (splitmix64) driven by a proptest seed.
struct Gen<'a> {
    state: u64,
    definitions: &'a schemars::Map<String, Schema>,
    enums: &'a [String],
    depth: u32,
    /// Whether fields get wrong types and out-of-range numbers. A clean value keeps to the
    /// schema (fields still missing or strange), so it reaches the status mapping.
    dirty: bool,
}

/// Marks a string that is raw JSON text to splice in after serialization.
const RAW: &str = "\u{1}RAW:";

impl Gen<'_> {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn raw(text: &str) -> Value {
        Value::String(format!("{RAW}{text}"))
    }

    fn string(&mut self) -> Value {
        let text = match self.below(10) {
            0..=3 if !self.enums.is_empty() => {
                let i = self.below(self.enums.len());
                self.enums[i].clone()
            }
            4..=7 => STRINGS[self.below(STRINGS.len())].to_string(),
            8 => "x".repeat(1 + self.below(5_000)),
            _ => (0..self.below(12))
                .map(|_| char::from_u32(self.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}'))
                .collect(),
        };
        Value::String(text)
    }

    fn number(&mut self) -> Value {
        Self::raw(NUMBERS[self.below(NUMBERS.len())])
    }

    /// A number of the schema's type: any for a dirty value, one that fits for a clean one.
    fn number_for(&mut self, schema: &SchemaObject, integer: bool) -> Value {
        if self.dirty {
            return self.number();
        }
        // serde_json reads `-0`, `1.5` and `1E2` as floats.
        let integral = |n: &str| n != "-0" && !n.contains(['.', 'e', 'E']);
        let fits = |n: &str| match (schema.format.as_deref(), integer && integral(n)) {
            (_, false) if integer => false,
            (Some("int32"), _) => n.parse::<i32>().is_ok(),
            (Some("uint32"), _) => n.parse::<u32>().is_ok(),
            (Some("uint64" | "uint"), _) => n.parse::<u64>().is_ok(),
            (_, true) => n.parse::<i64>().is_ok(),
            (_, false) => n.parse::<f64>().is_ok_and(f64::is_finite),
        };
        let candidates: Vec<&str> = NUMBERS.iter().copied().filter(|n| fits(n)).collect();
        match candidates.len() {
            0 => Value::from(0),
            n => Self::raw(candidates[self.below(n)]),
        }
    }

    /// A value of any type, often the wrong one for where it lands.
    fn wrong(&mut self) -> Value {
        match self.below(10) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(50)),
            2 | 3 => self.number(),
            4 | 5 => self.string(),
            6 => Value::Array(Vec::new()),
            7 => Value::Object(Map::new()),
            8 => {
                // Deep nesting, past serde_json's recursion limit (128) at times; bounded.
                let depth = 1 + self.below(200);
                let arrays = self.chance(50);
                let mut value = self.number();
                for _ in 0..depth {
                    value = if arrays {
                        Value::Array(vec![value])
                    } else {
                        Value::Object(Map::from_iter([("a".to_string(), value)]))
                    };
                }
                value
            }
            _ => {
                let n = self.below(4);
                Value::Array((0..n).map(|_| self.string()).collect())
            }
        }
    }

    fn value(&mut self, schema: &Schema) -> Value {
        match schema {
            Schema::Bool(_) => self.wrong(),
            Schema::Object(object) => self.object_value(object),
        }
    }

    fn object_value(&mut self, schema: &SchemaObject) -> Value {
        if self.dirty && self.chance(6) {
            return self.wrong();
        }
        if let Some(reference) = &schema.reference {
            let name = reference.rsplit('/').next().unwrap_or_default();
            return match self.definitions.get(name) {
                Some(target) if self.depth < 6 => {
                    self.depth += 1;
                    let value = self.value(target);
                    self.depth -= 1;
                    value
                }
                _ => Value::Null,
            };
        }
        if let Some(sub) = &schema.subschemas {
            let choices: Vec<&Schema> = [&sub.all_of, &sub.any_of, &sub.one_of]
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            // `Option<T>` is "any of T or null": a clean value mostly takes the T.
            let null = Some(SingleOrVec::from(InstanceType::Null));
            let is_null = |s: &&Schema| matches!(s, Schema::Object(o) if o.instance_type == null);
            let some: Vec<&Schema> = choices.iter().copied().filter(|s| !is_null(s)).collect();
            let choices = if !self.dirty && !some.is_empty() && self.chance(85) {
                some
            } else {
                choices
            };
            if !choices.is_empty() {
                let pick = choices[self.below(choices.len())];
                return self.value(pick);
            }
        }
        if let Some(values) = &schema.enum_values
            && !values.is_empty()
            && self.chance(85)
        {
            return values[self.below(values.len())].clone();
        }
        let types: Vec<InstanceType> = match &schema.instance_type {
            Some(SingleOrVec::Single(t)) => vec![**t],
            Some(SingleOrVec::Vec(ts)) => ts.clone(),
            None if schema.object.is_some() => vec![InstanceType::Object],
            None if schema.array.is_some() => vec![InstanceType::Array],
            None => return self.wrong(),
        };
        match types[self.below(types.len())] {
            InstanceType::Null => Value::Null,
            InstanceType::Boolean => Value::Bool(self.chance(50)),
            InstanceType::Integer => self.number_for(schema, true),
            InstanceType::Number => self.number_for(schema, false),
            InstanceType::String => self.string(),
            InstanceType::Array => {
                let items = schema.array.as_ref().and_then(|a| match &a.items {
                    Some(SingleOrVec::Single(item)) => Some((**item).clone()),
                    Some(SingleOrVec::Vec(items)) => items.first().cloned(),
                    None => None,
                });
                let n = if self.chance(5) {
                    self.below(40)
                } else {
                    self.below(4)
                };
                Value::Array(
                    (0..n)
                        .map(|_| match &items {
                            Some(item) => self.value(item),
                            None => self.wrong(),
                        })
                        .collect(),
                )
            }
            InstanceType::Object => {
                let mut map = Map::new();
                if let Some(object) = &schema.object {
                    for (name, property) in &object.properties {
                        let key = if self.dirty && self.chance(3) {
                            name.to_lowercase()
                        } else {
                            name.clone()
                        };
                        let required = object.required.contains(name);
                        // A clean value has every required field.
                        let roll = match self.below(100) {
                            70..=81 if required && !self.dirty => 0,
                            roll => roll,
                        };
                        match roll {
                            0..=69 => {
                                let value = self.value(property);
                                map.insert(key, value);
                            }
                            70..=81 => {}
                            82..=88 if self.dirty => {
                                map.insert(key, Value::Null);
                            }
                            _ if self.dirty => {
                                let value = self.wrong();
                                map.insert(key, value);
                            }
                            _ => {
                                let value = self.value(property);
                                map.insert(key, value);
                            }
                        }
                    }
                }
                if self.chance(15) {
                    let key = match self.string() {
                        Value::String(s) => s,
                        _ => "extra".into(),
                    };
                    let value = self.wrong();
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        }
    }
}

/// Serializes a generated value, splicing in the raw JSON fragments.
fn to_json_text(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("values serialize");
    let marker = "\"\\u0001RAW:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        // Raw fragments are numbers: the string ends at the next quote.
        let end = after.find('"').unwrap_or(after.len());
        out.push_str(&after[..end]);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

struct Shapes {
    schemas: Vec<RootSchema>,
    enums: Vec<String>,
}

fn shaped(shapes: &Shapes, which: usize, seed: u64) -> Vec<u8> {
    let root = &shapes.schemas[which % shapes.schemas.len()];
    let mut generator = Gen {
        state: seed,
        definitions: &root.definitions,
        enums: &shapes.enums,
        depth: 0,
        dirty: seed.is_multiple_of(2),
    };
    let value = generator.object_value(&root.schema);
    let text = to_json_text(&value);
    // Now and then the whole answer is wrapped the way a proxy or a confused server would.
    match generator.below(20) {
        0 => format!("[{text}]"),
        1 => format!("\u{feff}{text}"),
        2 => format!("{text}{text}"),
        3 => format!("{{\"Data\":{text},\"response\":{text},\"data\":[{text}]}}"),
        _ => text,
    }
    .into_bytes()
}

fn shaped_json(vendor: Vendor) -> impl Strategy<Value = Vec<u8>> {
    let shapes = Arc::new(Shapes {
        schemas: answer_schemas(vendor),
        enums: enum_strings(vendor),
    });
    (any::<usize>(), any::<u64>()).prop_map(move |(which, seed)| shaped(&shapes, which, seed))
}

// ---------------------------------------------------------------------------------------------
// (c) Mutations of the recorded fixtures.

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Truncate(Index),
    Delete(Index, Index),
    Duplicate(Index, Index),
    /// Replace a range with a piece of another fixture (of any vendor).
    Splice(Index, Index, Index, Index, Index),
    InsertToken(Index, Index),
    /// Replace one JSON node (of the parsed document) with a generated value.
    Retype(u64),
    /// Remove one key of one JSON object.
    DropKey(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = || any::<Index>();
    let flip = (at(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit));
    let set = (at(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte));
    let truncate = at().prop_map(Mutation::Truncate);
    let delete = (at(), at()).prop_map(|(at, len)| Mutation::Delete(at, len));
    let duplicate = (at(), at()).prop_map(|(at, len)| Mutation::Duplicate(at, len));
    let splice = (at(), at(), at(), at(), at())
        .prop_map(|(at, len, other, from, take)| Mutation::Splice(at, len, other, from, take));
    let insert = (at(), at()).prop_map(|(at, token)| Mutation::InsertToken(at, token));
    let retype = any::<u64>().prop_map(Mutation::Retype);
    let drop_key = any::<u64>().prop_map(Mutation::DropKey);
    // Half byte-level, half JSON-level: the latter keep the document JSON, so it reaches the
    // typed decoding and the status mapping.
    prop_oneof![
        1 => flip,
        1 => set,
        1 => truncate,
        1 => delete,
        1 => duplicate,
        1 => splice,
        1 => insert,
        5 => retype,
        2 => drop_key,
    ]
}

/// An index into `len` items, or 0 for none.
fn pos(index: &Index, len: usize) -> usize {
    if len == 0 { 0 } else { index.index(len) }
}

/// All the JSON nodes of a value, by path of child positions.
fn node_paths(value: &Value, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(path.clone());
    let children: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => Vec::new(),
    };
    for (i, child) in children.into_iter().enumerate() {
        path.push(i);
        node_paths(child, path, out);
        path.pop();
    }
}

fn node_at<'a>(value: &'a mut Value, path: &[usize]) -> Option<&'a mut Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(value);
    };
    let child = match value {
        Value::Array(items) => items.get_mut(*first)?,
        Value::Object(map) => map.values_mut().nth(*first)?,
        _ => return None,
    };
    node_at(child, rest)
}

fn apply(mutation: &Mutation, mut doc: Vec<u8>, pool: &[Vec<u8>], enums: &[String]) -> Vec<u8> {
    let len = doc.len();
    match mutation {
        Mutation::FlipBit(at, bit) => {
            if len > 0 {
                doc[pos(at, len)] ^= 1u8 << *bit;
            }
        }
        Mutation::SetByte(at, byte) => {
            if len > 0 {
                doc[pos(at, len)] = *byte;
            }
        }
        Mutation::Truncate(at) => doc.truncate(pos(at, len + 1)),
        Mutation::Delete(at, n) => {
            let start = pos(at, len + 1);
            let end = (start + pos(n, 64)).min(len);
            doc.drain(start..end);
        }
        Mutation::Duplicate(at, n) => {
            let start = pos(at, len + 1);
            let end = (start + pos(n, 64)).min(len);
            let copy = doc[start..end].to_vec();
            doc.splice(end..end, copy);
        }
        Mutation::Splice(at, n, other, from, take) => {
            let start = pos(at, len + 1);
            let end = (start + pos(n, 64)).min(len);
            let source = &pool[pos(other, pool.len())];
            let from = pos(from, source.len() + 1);
            let to = (from + pos(take, 256)).min(source.len());
            doc.splice(start..end, source[from..to].iter().copied());
        }
        Mutation::InsertToken(at, token) => {
            let at = pos(at, len + 1);
            let token = JSON_TOKENS[pos(token, JSON_TOKENS.len())].as_bytes();
            doc.splice(at..at, token.iter().copied());
        }
        Mutation::Retype(seed) | Mutation::DropKey(seed) => {
            let Ok(mut value) = serde_json::from_slice::<Value>(&doc) else {
                return doc;
            };
            let mut paths = Vec::new();
            node_paths(&value, &mut Vec::new(), &mut paths);
            let definitions = schemars::Map::new();
            let mut generator = Gen {
                state: *seed,
                definitions: &definitions,
                enums,
                depth: 0,
                dirty: true,
            };
            let path = &paths[generator.below(paths.len())];
            if let Some(node) = node_at(&mut value, path) {
                match mutation {
                    Mutation::Retype(_) => *node = generator.wrong(),
                    _ => {
                        if let Value::Object(map) = node
                            && !map.is_empty()
                        {
                            let key = map.keys().nth(generator.below(map.len())).cloned();
                            if let Some(key) = key {
                                map.remove(&key);
                            }
                        }
                    }
                }
            }
            return to_json_text(&value).into_bytes();
        }
    }
    doc
}

fn mutated_fixtures(vendor: Vendor) -> impl Strategy<Value = Vec<u8>> {
    let own: Vec<Vec<u8>> = fixtures(vendor).into_iter().map(|(_, b)| b).collect();
    assert!(!own.is_empty(), "{} has no fixtures", vendor.name());
    let pool: Vec<Vec<u8>> = Vendor::ALL
        .iter()
        .flat_map(|v| fixtures(*v).into_iter().map(|(_, b)| b))
        .collect();
    let own = Arc::new(own);
    let pool = Arc::new(pool);
    let enums = Arc::new(enum_strings(vendor));
    (any::<Index>(), prop::collection::vec(mutation(), 1..4)).prop_map(move |(which, mutations)| {
        let doc = own[which.index(own.len())].clone();
        mutations
            .iter()
            .fold(doc, |doc, m| apply(m, doc, &pool, &enums))
    })
}
