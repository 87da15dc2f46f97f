//! The status path's reading of the report list (`GET /api/customer/reports`).
//!
//! OFD.ru has no status-by-id endpoint: every status request lists every report of the account
//! (~20 fields each). Decoding that answer into [`types::ReportListEnvelope`] allocates a
//! `String` per field of every report, only for the job to keep one entry; with many jobs
//! polling, that was most of the client's CPU per status request.
//!
//! This module decodes the same answer with the **same types and the same rules** as the
//! generated [`types::ReportListEnvelope`] (every field of every entry is checked: a number
//! must be a number, a string a string, a duplicate key is refused, unknown keys are ignored),
//! but borrows the strings from the answer instead of copying them, and converts only the
//! entry asked for into an owned [`types::ReportInfo`]. An answer the generated types refuse
//! is refused here too, so a malformed answer is still a decode error.
//!
//! The conversions below name every field of the generated structs (no `..`), so a field the
//! spec gains or changes fails to compile here until this mirror follows; the tests check that
//! both decodings agree on accepted and refused documents.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::Deserialize;

use crate::generated::types;

/// A JSON string, borrowed from the answer when it has no escapes (copied otherwise).
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl Text<'_> {
    fn owned(self) -> String {
        self.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            // The same words as `String`'s visitor, so error messages do not change.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_string(Visitor)
    }
}

fn owned(text: Option<Text<'_>>) -> Option<String> {
    text.map(Text::owned)
}

/// A lenient enum (any string is a value: the unknown ones are kept).
fn lenient<T: std::str::FromStr<Err = std::convert::Infallible>>(
    text: Option<Text<'_>>,
) -> Option<T> {
    text.map(|t| t.0.parse().unwrap_or_else(|never| match never {}))
}

/// Mirror of [`types::ReportListEnvelope`]; `L` holds a `List` array: every entry
/// (`Vec<ReportInfo>`), or only the wanted one ([`Found`]).
#[derive(Deserialize)]
#[serde(bound(deserialize = "L: Deserialize<'de> + Default"))]
struct ReportListEnvelope<'a, L> {
    #[serde(rename = "ConsumedLimit")]
    consumed_limit: Option<i64>,
    #[serde(rename = "Data", borrow)]
    data: Option<ReportList<'a, L>>,
    #[serde(rename = "Elapsed", borrow)]
    elapsed: Option<Text<'a>>,
    #[serde(rename = "List", default)]
    list: L,
    #[serde(rename = "OfdAgreementId", borrow)]
    ofd_agreement_id: Option<Text<'a>>,
    #[serde(rename = "OfdAgreementLimit")]
    ofd_agreement_limit: Option<i64>,
    #[serde(rename = "Status", borrow)]
    status: Option<Text<'a>>,
    #[serde(rename = "TotalCount")]
    total_count: Option<i64>,
}

/// Mirror of [`types::ReportList`].
#[derive(Deserialize)]
#[serde(bound(deserialize = "L: Deserialize<'de> + Default"))]
struct ReportList<'a, L> {
    #[serde(rename = "ConsumedLimit")]
    consumed_limit: Option<i64>,
    #[serde(rename = "List", default)]
    list: L,
    #[serde(rename = "OfdAgreementId", borrow)]
    ofd_agreement_id: Option<Text<'a>>,
    #[serde(rename = "OfdAgreementLimit")]
    ofd_agreement_limit: Option<i64>,
    #[serde(rename = "TotalCount")]
    total_count: Option<i64>,
}

/// Mirror of [`types::ReportInfo`] (the lenient enums `ReportType` and `ReportStatus` accept
/// any string, so they are read as text and parsed on conversion). The Rust names are the
/// generated types' own: serde's error messages name them.
#[derive(Deserialize)]
struct ReportInfo<'a> {
    #[serde(rename = "AccountEmail", borrow)]
    account_email: Option<Text<'a>>,
    #[serde(rename = "AccountName", borrow)]
    account_name: Option<Text<'a>>,
    #[serde(rename = "AssumptiveCompleteTime", borrow)]
    assumptive_complete_time: Option<Text<'a>>,
    #[serde(rename = "CDateUtc", borrow)]
    c_date_utc: Option<Text<'a>>,
    #[serde(rename = "CancelUrl", borrow)]
    cancel_url: Option<Text<'a>>,
    #[serde(rename = "DateFrom", borrow)]
    date_from: Option<Text<'a>>,
    #[serde(rename = "DateTo", borrow)]
    date_to: Option<Text<'a>>,
    #[serde(rename = "DeleteUrl", borrow)]
    delete_url: Option<Text<'a>>,
    #[serde(rename = "DownloadUrl", borrow)]
    download_url: Option<Text<'a>>,
    #[serde(rename = "EmailsToNotify", default, borrow)]
    emails_to_notify: Vec<Text<'a>>,
    #[serde(rename = "ExpiredDate", borrow)]
    expired_date: Option<Text<'a>>,
    #[serde(rename = "FileFormat", borrow)]
    file_format: Option<Text<'a>>,
    #[serde(rename = "Id", borrow)]
    id: Option<Text<'a>>,
    #[serde(rename = "IsAutoReport")]
    is_auto_report: Option<bool>,
    #[serde(rename = "KktCount")]
    kkt_count: Option<i64>,
    #[serde(rename = "Name", borrow)]
    name: Option<Text<'a>>,
    #[serde(rename = "ReportSize")]
    report_size: Option<i64>,
    #[serde(rename = "ReportType", borrow)]
    report_type: Option<Text<'a>>,
    #[serde(rename = "ReportTypeName", borrow)]
    report_type_name: Option<Text<'a>>,
    #[serde(rename = "Status", borrow)]
    status: Option<Text<'a>>,
}

impl ReportInfo<'_> {
    fn is(&self, id: &str) -> bool {
        self.id
            .as_ref()
            .is_some_and(|own| own.0.eq_ignore_ascii_case(id))
    }

    fn into_owned(self) -> types::ReportInfo {
        types::ReportInfo {
            account_email: owned(self.account_email),
            account_name: owned(self.account_name),
            assumptive_complete_time: owned(self.assumptive_complete_time),
            c_date_utc: owned(self.c_date_utc),
            cancel_url: owned(self.cancel_url),
            date_from: owned(self.date_from),
            date_to: owned(self.date_to),
            delete_url: owned(self.delete_url),
            download_url: owned(self.download_url),
            emails_to_notify: self.emails_to_notify.into_iter().map(Text::owned).collect(),
            expired_date: owned(self.expired_date),
            file_format: owned(self.file_format),
            id: owned(self.id),
            is_auto_report: self.is_auto_report,
            kkt_count: self.kkt_count,
            name: owned(self.name),
            report_size: self.report_size,
            report_type: lenient(self.report_type),
            report_type_name: owned(self.report_type_name),
            status: lenient(self.status),
        }
    }
}

thread_local! {
    /// The report id [`Found`] looks for: set by [`find_report`] right before its decoding,
    /// which is synchronous (no other decoding can run on this thread in between).
    static WANTED: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A `List` array read for one report: every entry is decoded and checked as a [`ReportInfo`],
/// the first one of the [`WANTED`] id is kept, the others are dropped as soon as checked (no
/// array of all entries is built).
#[derive(Default)]
struct Found<'a>(Option<ReportInfo<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Found<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Found<'de>;
            // The same words as `Vec`'s visitor, so error messages do not change.
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut found = None;
                while let Some(entry) = seq.next_element::<ReportInfo<'de>>()? {
                    if found.is_none() && WANTED.with_borrow(|id| entry.is(id)) {
                        found = Some(entry);
                    }
                }
                Ok(Found(found))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// The entry of report `id` (ASCII case-insensitive, the first one) in a report-list answer,
/// read as [`OfdClient::reports`](crate::OfdClient::reports) reads the list: `Data.List` when
/// the answer has `Data`, the top-level `List` otherwise. Fails exactly when decoding `body`
/// as [`types::ReportListEnvelope`] fails.
pub fn find_report(body: &[u8], id: &str) -> serde_json::Result<Option<types::ReportInfo>> {
    WANTED.with_borrow_mut(|wanted| {
        wanted.clear();
        wanted.push_str(id);
    });
    let envelope: ReportListEnvelope<'_, Found<'_>> = serde_json::from_slice(body)?;
    let found = match envelope.data {
        Some(data) => data.list,
        None => envelope.list,
    };
    Ok(found.0.map(ReportInfo::into_owned))
}

impl<'a> ReportListEnvelope<'a, Vec<ReportInfo<'a>>> {
    /// The owned form, naming every field: [`check_list_decoders_agree`] compares it with the generated
    /// decoding.
    fn into_owned(self) -> types::ReportListEnvelope {
        types::ReportListEnvelope {
            consumed_limit: self.consumed_limit,
            data: self.data.map(|d| types::ReportList {
                consumed_limit: d.consumed_limit,
                list: d.list.into_iter().map(ReportInfo::into_owned).collect(),
                ofd_agreement_id: owned(d.ofd_agreement_id),
                ofd_agreement_limit: d.ofd_agreement_limit,
                total_count: d.total_count,
            }),
            elapsed: owned(self.elapsed),
            list: self.list.into_iter().map(ReportInfo::into_owned).collect(),
            ofd_agreement_id: owned(self.ofd_agreement_id),
            ofd_agreement_limit: self.ofd_agreement_limit,
            status: owned(self.status),
            total_count: self.total_count,
        }
    }
}

/// Decodes `body` both ways: the generated types and this mirror. Panics when they disagree
/// (one accepts what the other refuses, or they read different values). For tests and fuzzers.
pub fn check_list_decoders_agree(body: &[u8]) {
    let generated = serde_json::from_slice::<types::ReportListEnvelope>(body);
    let mirror = serde_json::from_slice::<ReportListEnvelope<'_, Vec<ReportInfo<'_>>>>(body);
    let status_path = serde_json::from_slice::<ReportListEnvelope<'_, Found<'_>>>(body);
    // The same verdict and, for a refusal, the same message (it ends up in `Error::Decode`).
    assert_eq!(
        generated.as_ref().err().map(ToString::to_string),
        status_path.as_ref().err().map(ToString::to_string),
        "the status path's reading disagrees with the generated types on {:?}",
        String::from_utf8_lossy(body)
    );
    match (&generated, &mirror) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        _ => panic!(
            "the generated list type and the status path's mirror disagree on {:?}: generated {:?}, mirror {:?}",
            String::from_utf8_lossy(body),
            generated.as_ref().err(),
            mirror.as_ref().err()
        ),
    }
    let (Ok(generated), Ok(mirror)) = (generated, mirror) else {
        return;
    };
    assert_eq!(
        mirror.into_owned(),
        generated,
        "the two decodings read different values"
    );
    let reports = match &generated.data {
        Some(data) => &data.list,
        None => &generated.list,
    };
    for report in reports {
        if let Some(id) = &report.id {
            let first = reports
                .iter()
                .find(|r| r.id.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(id)));
            let found = find_report(body, id).expect("the mirror accepted this body above");
            assert_eq!(found.as_ref(), first, "entry {id:?} read differently");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, status: &str) -> serde_json::Value {
        serde_json::json!({
            "Id": id,
            "CDateUtc": "2021-11-12T10:55:20",
            "ReportTypeName": "Сверка: список чеков",
            "ReportType": "ReceiptReport",
            "DateFrom": "2021-11-01T00:00:00",
            "DateTo": "2021-11-02T23:59:59",
            "ExpiredDate": "2021-11-19T10:55:20",
            "KktCount": 3,
            "Status": status,
            "AccountEmail": "user@example.com",
            "AccountName": "ООО \"Ромашка\"",
            "Name": "escaped \u{0416} \\ / \n",
            "EmailsToNotify": ["a@example.com", "b@example.com"],
            "FileFormat": "Xlsx",
            "IsAutoReport": false,
            "AssumptiveCompleteTime": "2021-11-12T10:56:20",
            "DownloadUrl": format!("/api/customer/reports/{id}?OfdAgreementId=x"),
            "DeleteUrl": format!("/api/customer/reports/{id}?ofdAgreementId=x"),
            "CancelUrl": format!("/api/customer/reports/{id}/cancel?ofdAgreementId=x"),
            "ReportSize": 12,
            "SomethingNew": {"nested": [1, 2, 3]},
        })
    }

    fn agree(value: &serde_json::Value) {
        let body = serde_json::to_vec(value).unwrap();
        check_list_decoders_agree(&body);
        // Also the \u escapes a .NET server writes for non-ASCII text.
        let ascii = serde_json::to_string(value)
            .unwrap()
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    c.encode_utf16(&mut [0; 2])
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                }
            })
            .collect::<String>();
        check_list_decoders_agree(ascii.as_bytes());
    }

    #[test]
    fn both_envelope_forms_read_like_the_generated_types() {
        let list = vec![
            entry("a1", "Done"),
            entry("B2", "Processing"),
            entry("c3", "Archived"),
        ];
        agree(&serde_json::json!({
            "Status": "Success",
            "Data": {"OfdAgreementLimit": 100, "ConsumedLimit": 3, "TotalCount": 3, "List": list},
            "Elapsed": "00:00:00.01"
        }));
        agree(&serde_json::json!({"Status": "Success", "List": list, "TotalCount": 3}));
        let body = serde_json::to_vec(&serde_json::json!({"Data": {"List": list}})).unwrap();
        let found = find_report(&body, "b2").unwrap().unwrap();
        let generated: types::ReportListEnvelope = serde_json::from_slice(&body).unwrap();
        assert_eq!(&found, &generated.data.unwrap().list[1]);
        assert_eq!(find_report(&body, "zz").unwrap(), None);
    }

    /// Mutated answers (bytes flipped, cut, duplicated, replaced by JSON punctuation): both
    /// readings accept and refuse the same ones, with the same messages.
    #[test]
    fn mutated_answers_are_read_alike() {
        let list = vec![entry("a1", "Done"), entry("B2", "Processing")];
        let seeds = [
            serde_json::to_vec(
                &serde_json::json!({"Status": "Success", "Data": {"TotalCount": 2, "List": list}}),
            )
            .unwrap(),
            serde_json::to_vec(&serde_json::json!({"List": list, "OfdAgreementId": "x"})).unwrap(),
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let tokens: [&[u8]; 12] = [
            b"\"", b"{", b"}", b"[", b"]", b",", b":", b"null", b"1", b"-1.5", b"true", b"\\u0041",
        ];
        for round in 0..4000 {
            let mut body = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() % body.len() as u64) as usize;
                match next() % 4 {
                    0 => body[at] = (next() % 256) as u8,
                    1 => body.truncate(at),
                    2 => {
                        let token = tokens[(next() % tokens.len() as u64) as usize];
                        body.splice(at..at, token.iter().copied());
                    }
                    _ => {
                        let end = (at + (next() % 40) as usize).min(body.len());
                        let copy = body[at..end].to_vec();
                        body.splice(at..at, copy);
                    }
                }
                if body.is_empty() {
                    break;
                }
            }
            check_list_decoders_agree(&body);
        }
    }

    #[test]
    fn what_the_generated_types_refuse_is_refused() {
        let good = entry("a1", "Done");
        let mut cases = Vec::new();
        for (field, bad) in [
            ("Id", serde_json::json!(5)),
            ("KktCount", serde_json::json!("3")),
            ("KktCount", serde_json::json!(1.5)),
            ("IsAutoReport", serde_json::json!("false")),
            ("Status", serde_json::json!(1)),
            ("EmailsToNotify", serde_json::json!(null)),
            ("EmailsToNotify", serde_json::json!("a@example.com")),
            ("ReportSize", serde_json::json!(-1)),
            ("Name", serde_json::json!(null)),
            ("ReportType", serde_json::json!(null)),
        ] {
            let mut e = good.clone();
            e[field] = bad;
            // A bad field in another report than the one polled is refused too.
            cases.push(serde_json::json!({"Data": {"List": [entry("x", "Done"), e]}}));
        }
        for case in &cases {
            agree(case);
        }
        for raw in [
            &br#"{"Data": {"List": [{"Id": "a", "Id": "b"}]}}"#[..],
            br#"{"Data": {"List": [{"Id": "a"}]}, "Data": null}"#,
            br#"{"Data": {"List": [{"Id": "a"}]"#,
            br#"{"Data": []}"#,
            br#"[]"#,
            br#"null"#,
            br#"{}"#,
            br#"{"Data": null, "List": [{"Id": "a"}]}"#,
            b"{\"List\": [{\"Id\": \"\\ud800\"}]}",
            b"{\"List\": [{\"Id\": \"\xff\"}]}",
            br#"{"TotalCount": 1e3}"#,
        ] {
            check_list_decoders_agree(raw);
        }
    }
}
