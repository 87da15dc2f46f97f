//! Helpers shared by the cross-vendor tests: a readable API surface of a spec (for insta
//! snapshots, so a spec edit shows up as a small reviewable diff) and request transcripts with
//! secrets redacted.

pub mod fuzzing;
pub mod secrets;
pub mod vendors;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use openapiv3::{
    OpenAPI, Parameter, ParameterSchemaOrContent, ReferenceOr, RequestBody, Response, Schema,
    SchemaKind, StatusCode, Type,
};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Loads `specs/<vendor>.yaml`.
pub fn load_spec(vendor: &str) -> OpenAPI {
    let path = workspace_root()
        .join("specs")
        .join(format!("{vendor}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A readable summary of a spec: every operation with its parameters, body and responses, and
/// every schema with its fields, types and enum values.
pub fn api_surface(api: &OpenAPI) -> String {
    let mut out = String::new();
    writeln!(out, "# {} {}", api.info.title, api.info.version).unwrap();
    for server in &api.servers {
        writeln!(out, "server: {}", server.url).unwrap();
    }
    writeln!(out, "\n## Operations").unwrap();
    for (path, item) in api.paths.iter() {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (method, op) in item.iter() {
            writeln!(
                out,
                "\n{} {path}  ({})",
                method.to_uppercase(),
                op.operation_id.as_deref().unwrap_or("NO OPERATION ID")
            )
            .unwrap();
            for param in item.parameters.iter().chain(&op.parameters) {
                writeln!(out, "  {}", parameter(param)).unwrap();
            }
            if let Some(body) = &op.request_body {
                writeln!(out, "  body: {}", request_body(body)).unwrap();
            }
            let mut responses: Vec<(String, &ReferenceOr<Response>)> = op
                .responses
                .responses
                .iter()
                .map(|(code, r)| (status(code), r))
                .collect();
            if let Some(d) = &op.responses.default {
                responses.push(("default".into(), d));
            }
            for (code, response) in responses {
                writeln!(out, "  {code}: {}", response_body(api, response)).unwrap();
            }
        }
    }
    writeln!(out, "\n## Schemas").unwrap();
    if let Some(components) = &api.components {
        for (name, schema) in &components.schemas {
            match schema {
                ReferenceOr::Reference { reference } => {
                    writeln!(out, "\n{name} = {}", ref_name(reference)).unwrap()
                }
                ReferenceOr::Item(schema) => schema_block(&mut out, name, schema),
            }
        }
    }
    out
}

fn status(code: &StatusCode) -> String {
    match code {
        StatusCode::Code(c) => c.to_string(),
        StatusCode::Range(r) => format!("{r}XX"),
    }
}

fn ref_name(reference: &str) -> String {
    reference
        .rsplit('/')
        .next()
        .unwrap_or(reference)
        .to_string()
}

fn parameter(param: &ReferenceOr<Parameter>) -> String {
    let param = match param {
        ReferenceOr::Reference { reference } => return format!("param {}", ref_name(reference)),
        ReferenceOr::Item(p) => p,
    };
    let (place, data) = match param {
        Parameter::Query { parameter_data, .. } => ("query", parameter_data),
        Parameter::Header { parameter_data, .. } => ("header", parameter_data),
        Parameter::Path { parameter_data, .. } => ("path", parameter_data),
        Parameter::Cookie { parameter_data, .. } => ("cookie", parameter_data),
    };
    let ty = match &data.format {
        ParameterSchemaOrContent::Schema(s) => type_of(s),
        ParameterSchemaOrContent::Content(_) => "content".into(),
    };
    format!(
        "{place} {}: {ty}{}",
        data.name,
        if data.required { "" } else { " (optional)" }
    )
}

fn request_body(body: &ReferenceOr<RequestBody>) -> String {
    match body {
        ReferenceOr::Reference { reference } => ref_name(reference),
        ReferenceOr::Item(b) => {
            let media: Vec<String> = b
                .content
                .iter()
                .map(|(mime, m)| {
                    format!(
                        "{} ({mime})",
                        m.schema.as_ref().map_or("any".into(), type_of)
                    )
                })
                .collect();
            format!(
                "{}{}",
                media.join(" | "),
                if b.required { "" } else { " (optional)" }
            )
        }
    }
}

fn response_body(api: &OpenAPI, response: &ReferenceOr<Response>) -> String {
    match response {
        ReferenceOr::Reference { reference } => {
            let name = ref_name(reference);
            let shared = api
                .components
                .as_ref()
                .and_then(|c| c.responses.get(&name))
                .filter(|r| matches!(r, ReferenceOr::Item(_)));
            match shared {
                Some(r) => format!("{} [shared response {name}]", response_body(api, r)),
                None => format!("see {name}"),
            }
        }
        ReferenceOr::Item(r) if r.content.is_empty() => "no body".into(),
        ReferenceOr::Item(r) => {
            let mut parts: Vec<String> = r
                .content
                .iter()
                .map(|(mime, m)| {
                    format!(
                        "{} ({mime})",
                        m.schema.as_ref().map_or("any".into(), type_of)
                    )
                })
                .collect();
            for (name, _) in &r.headers {
                parts.push(format!("header {name}"));
            }
            parts.join(" | ")
        }
    }
}

fn type_of(schema: &ReferenceOr<Schema>) -> String {
    match schema {
        ReferenceOr::Reference { reference } => ref_name(reference),
        ReferenceOr::Item(s) => inline_type(s),
    }
}

fn inline_type(s: &Schema) -> String {
    let nullable = if s.schema_data.nullable { "?" } else { "" };
    let base = match &s.schema_kind {
        SchemaKind::Type(Type::String(t)) => {
            let mut text = "string".to_string();
            if let openapiv3::VariantOrUnknownOrEmpty::Item(f) = &t.format {
                text = format!("string<{}>", format!("{f:?}").to_lowercase());
            } else if let openapiv3::VariantOrUnknownOrEmpty::Unknown(f) = &t.format {
                text = format!("string<{f}>");
            }
            if !t.enumeration.is_empty() {
                let values: Vec<String> = t
                    .enumeration
                    .iter()
                    .map(|v| v.clone().unwrap_or_else(|| "null".into()))
                    .collect();
                text = format!("{text} enum [{}]", values.join(", "));
            }
            text
        }
        SchemaKind::Type(Type::Integer(t)) => {
            let mut text = match &t.format {
                openapiv3::VariantOrUnknownOrEmpty::Item(f) => {
                    format!("integer<{}>", format!("{f:?}").to_lowercase())
                }
                _ => "integer".into(),
            };
            if !t.enumeration.is_empty() {
                let values: Vec<String> = t
                    .enumeration
                    .iter()
                    .map(|v| v.map_or("null".into(), |v| v.to_string()))
                    .collect();
                text = format!("{text} enum [{}]", values.join(", "));
            }
            text
        }
        SchemaKind::Type(Type::Number(_)) => "number".into(),
        SchemaKind::Type(Type::Boolean(_)) => "boolean".into(),
        SchemaKind::Type(Type::Array(a)) => format!(
            "array of {}",
            a.items
                .as_ref()
                .map_or("any".into(), |i| type_of(&i.clone().unbox()))
        ),
        SchemaKind::Type(Type::Object(o)) if o.properties.is_empty() => "object".into(),
        SchemaKind::Type(Type::Object(_)) => "inline object".into(),
        SchemaKind::OneOf { one_of } => format!(
            "one of ({})",
            one_of.iter().map(type_of).collect::<Vec<_>>().join(" | ")
        ),
        SchemaKind::AnyOf { any_of } => format!(
            "any of ({})",
            any_of.iter().map(type_of).collect::<Vec<_>>().join(" | ")
        ),
        SchemaKind::AllOf { all_of } => format!(
            "all of ({})",
            all_of.iter().map(type_of).collect::<Vec<_>>().join(" & ")
        ),
        SchemaKind::Not { .. } => "not".into(),
        SchemaKind::Any(_) => "any".into(),
    };
    format!("{base}{nullable}")
}

fn schema_block(out: &mut String, name: &str, schema: &Schema) {
    match &schema.schema_kind {
        SchemaKind::Type(Type::Object(o)) => {
            writeln!(out, "\n{name}: object").unwrap();
            for (field, s) in &o.properties {
                let required = if o.required.contains(field) {
                    " (required)"
                } else {
                    ""
                };
                writeln!(out, "  {field}: {}{required}", type_of(&s.clone().unbox())).unwrap();
            }
            if let Some(extra) = &o.additional_properties {
                writeln!(out, "  additionalProperties: {extra:?}").unwrap();
            }
        }
        _ => writeln!(out, "\n{name}: {}", inline_type(schema)).unwrap(),
    }
}

/// Header names shown in transcripts; every other header is left out (they vary by client
/// version and carry nothing a reviewer needs).
const SHOWN_HEADERS: &[&str] = &[
    "authorization",
    "x-subscription-key",
    "content-type",
    "range",
    "cookie",
];

/// Query keys, JSON body keys and header names whose values are secrets.
const SECRET_NAMES: &[&str] = &[
    "authtoken",
    "password",
    "secret_key",
    "authorization",
    "x-subscription-key",
    "cookie",
    "token",
    "sig",
];

/// A readable, deterministic transcript of recorded requests: method, path, query and JSON
/// body, with secret values shown as `[REDACTED]` and the given volatile values (ids, dates)
/// replaced by stable names.
pub fn transcript(
    requests: &[report_sandbox::RecordedRequest],
    volatile: &[(&str, &str)],
) -> String {
    let mut out = String::new();
    for r in requests {
        let mut line = format!("{} {} {}", r.origin, r.method, r.path);
        if let Some(q) = &r.query {
            let pairs: Vec<String> = url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| {
                    if is_secret(&k) {
                        format!("{k}=[REDACTED]")
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect();
            line.push('?');
            line.push_str(&pairs.join("&"));
        }
        writeln!(out, "{line}").unwrap();
        for (name, value) in &r.headers {
            if SHOWN_HEADERS.contains(&name.as_str()) {
                let value = if is_secret(name) {
                    let scheme = value
                        .split_once(' ')
                        .map(|(s, _)| format!("{s} "))
                        .unwrap_or_default();
                    format!("{scheme}[REDACTED]")
                } else {
                    value.clone()
                };
                writeln!(out, "  {name}: {value}").unwrap();
            }
        }
        if !r.body.is_empty() {
            let body = match serde_json::from_str::<serde_json::Value>(&r.body) {
                Ok(mut json) => {
                    redact_json(&mut json);
                    serde_json::to_string(&json).unwrap()
                }
                Err(_) => format!("<{} bytes of non-JSON body>", r.body.len()),
            };
            writeln!(out, "  body: {body}").unwrap();
        }
    }
    for (value, name) in volatile {
        if !value.is_empty() {
            out = out.replace(value, name);
        }
    }
    out
}

fn is_secret(name: &str) -> bool {
    SECRET_NAMES.contains(&name.to_ascii_lowercase().as_str())
}

fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret(k) && v.is_string() {
                    *v = serde_json::Value::String("[REDACTED]".into());
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}
