//! Loading and checking one `specs/<vendor>.yaml` before progenitor sees it, so that a broken
//! spec gets an error naming the file and the operation instead of a panic inside the generator.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use openapiv3::{OpenAPI, Operation, ReferenceOr, StatusCode};

/// A spec problem, always naming the spec file and, where one is at fault, the operation.
#[derive(Debug)]
pub struct SpecError {
    pub spec: PathBuf,
    pub operation: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.spec.display())?;
        if let Some(op) = &self.operation {
            write!(f, ": operation {op}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {}

/// Codegen settings a spec carries about itself in the top-level `x-codegen` extension, so that
/// adding a vendor needs no change to the xtask.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CodegenSettings {
    /// Rust path of the state the generated client's hooks read (origin and credentials; it
    /// implements report-core's `Credentials`), e.g. `crate::client::OfdCredentials`.
    pub hook_state: Option<String>,
    /// Who the vendor is and how its error answers read (report-core's `VendorProfile`,
    /// emitted as `Profile` in `generated_kit.rs`).
    pub vendor: Option<VendorSettings>,
    /// Rust path of the hand-written client wrapping the generated one (field `api`: the
    /// generated client). Gets `api()`, `base_url()` and `call()` from the vendor kit.
    pub client: Option<String>,
    /// Rust path of the client's configuration (fields `base_url`, `http` and, with
    /// `token-refused`, `clock`). Gets `with_base_url()`, `with_http()` (and `with_clock()`).
    pub config: Option<String>,
    /// For vendors trading credentials for a cached token: the Rust path of the function that
    /// says a failure refused the token. The hook state then has a `tokens` field (report-core's
    /// `TokenCache`) and the client an `async fn renew_token(&self) -> Result<Token>`.
    pub token_refused: Option<String>,
    /// Rust path of a module of vendor-specific fuzz entry points, re-exported in `__fuzz`.
    pub fuzz_extras: Option<String>,
    /// Schema name → hand-written Rust type used instead of the generated one (lenient enums).
    #[serde(default)]
    pub replace: BTreeMap<String, String>,
}

/// The vendor profile a spec declares in `x-codegen: vendor:`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VendorSettings {
    /// The short vendor name used in errors and tickets (`ofd`).
    pub name: String,
    /// The spec's one error body schema (every error response points at it).
    pub error_body: String,
    /// HTTP statuses that mean "credentials refused".
    pub auth_statuses: Vec<u16>,
    /// The response header carrying the vendor's request id, if any.
    #[serde(default)]
    pub request_id_header: Option<String>,
    /// The error body made for a non-JSON error answer, as JSON with `$text` where the
    /// answer's text goes, e.g. `{"message": "$text"}`.
    pub error_text: serde_json::Value,
    /// Rust path of `fn(&ErrorBody) -> VendorError`.
    pub describe: String,
    /// Rust path of `fn(&ErrorBody) -> Option<String>`: a request id in the body.
    #[serde(default)]
    pub request_id_in: Option<String>,
}

/// A parsed, checked spec.
pub struct Spec {
    pub path: PathBuf,
    pub vendor: String,
    pub api: OpenAPI,
    pub settings: CodegenSettings,
}

impl Spec {
    pub fn error(&self, operation: Option<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            spec: self.path.clone(),
            operation,
            message: message.into(),
        }
    }
}

/// Reads, parses and checks a spec file. `display_path` is the path shown in errors.
pub fn load(path: &Path, display_path: &Path) -> Result<Spec, SpecError> {
    let err = |operation: Option<String>, message: String| SpecError {
        spec: display_path.to_path_buf(),
        operation,
        message,
    };
    let vendor = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| err(None, "file name is not valid UTF-8".into()))?
        .to_string();
    let text = std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    parse(&text, &vendor, display_path)
}

/// Parses and checks spec text (split from [`load`] so tests can feed broken specs).
pub fn parse(text: &str, vendor: &str, display_path: &Path) -> Result<Spec, SpecError> {
    let err = |operation: Option<String>, message: String| SpecError {
        spec: display_path.to_path_buf(),
        operation,
        message,
    };
    let raw: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| err(None, format!("invalid YAML: {e}")))?;
    let version = raw
        .get("openapi")
        .and_then(|v| v.as_str())
        .ok_or_else(|| err(None, "missing the `openapi: 3.0.x` version field".into()))?;
    if !version.starts_with("3.0.") {
        return Err(err(
            None,
            format!("OpenAPI {version} is not supported: progenitor takes OpenAPI 3.0.x only"),
        ));
    }
    let mut api: OpenAPI = serde_json::from_value(raw)
        .map_err(|e| err(None, format!("not a valid OpenAPI 3.0 document: {e}")))?;
    let settings = match api.extensions.shift_remove("x-codegen") {
        None => CodegenSettings::default(),
        Some(value) => serde_json::from_value(value)
            .map_err(|e| err(None, format!("invalid `x-codegen` extension: {e}")))?,
    };
    let spec = Spec {
        path: display_path.to_path_buf(),
        vendor: vendor.to_string(),
        api,
        settings,
    };
    check_operations(&spec)?;
    Ok(spec)
}

/// `METHOD /path` for every operation, in spec order.
pub fn operations(api: &OpenAPI) -> Vec<(String, String, &Operation)> {
    let mut out = Vec::new();
    for (path, item) in api.paths.iter() {
        if let ReferenceOr::Item(item) = item {
            for (method, op) in item.iter() {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

fn check_operations(spec: &Spec) -> Result<(), SpecError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (path, item) in spec.api.paths.iter() {
        if let ReferenceOr::Reference { reference } = item {
            return Err(spec.error(
                Some(path.clone()),
                format!("path items by reference ({reference}) are not supported"),
            ));
        }
    }
    for (method, path, op) in operations(&spec.api) {
        let name = format!("{method} {path}");
        let Some(id) = &op.operation_id else {
            return Err(spec.error(Some(name), "has no operationId"));
        };
        if let Some(first) = seen.insert(id.clone(), name.clone()) {
            return Err(spec.error(
                Some(name),
                format!("operationId `{id}` is already used by {first}"),
            ));
        }
        let label = Some(format!("{id} ({name})"));
        let (ok, err) = response_body_types(op);
        if ok.len() > 1 {
            return Err(spec.error(
                label,
                format!(
                    "has {} different success body types ({}); progenitor supports one",
                    ok.len(),
                    ok.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if err.len() > 1 {
            return Err(spec.error(
                label,
                format!(
                    "has {} different error body types ({}); point every error response at one shared schema",
                    err.len(),
                    err.into_iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Distinct body shapes of success and of error responses, as readable keys.
fn response_body_types(op: &Operation) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ok = BTreeSet::new();
    let mut err = BTreeSet::new();
    let responses = op
        .responses
        .responses
        .iter()
        .map(|(code, r)| (Some(code), r))
        .chain(op.responses.default.iter().map(|r| (None, r)));
    for (code, response) in responses {
        let success = matches!(code, Some(StatusCode::Code(c)) if (200..300).contains(c))
            || matches!(code, Some(StatusCode::Range(2)));
        let key = match response {
            ReferenceOr::Reference { reference } => reference.clone(),
            ReferenceOr::Item(r) => {
                if r.content.is_empty() {
                    continue;
                }
                r.content
                    .iter()
                    .map(|(mime, media)| {
                        let schema = match &media.schema {
                            Some(ReferenceOr::Reference { reference }) => reference.clone(),
                            Some(ReferenceOr::Item(_)) => "inline schema".to_string(),
                            None => "no schema".to_string(),
                        };
                        format!("{mime}: {schema}")
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            }
        };
        if success {
            ok.insert(key);
        } else {
            err.insert(key);
        }
    }
    (ok, err)
}
