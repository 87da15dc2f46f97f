//! `cargo xtask codegen`: specs/<vendor>.yaml → crates/report-<vendor>/src/generated.rs (the
//! progenitor client), generated_mock.rs (typed httpmock helpers) and generated_kit.rs (the
//! vendor-kit glue, see `kit.rs`), formatted with rustfmt.

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};
use progenitor::{GenerationSettings, Generator, HooksMode, InterfaceStyle, TagStyle, TypeImpl};

use crate::kit;
use crate::spec::{self, Spec, SpecError};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Write,
    Check,
}

#[derive(Default, Debug)]
pub struct Outcome {
    /// Human-readable progress lines.
    pub messages: Vec<String>,
    /// Generated files that differ from what the specs produce (check mode only).
    pub stale: Vec<String>,
}

const CLIENT_FILE: &str = "generated.rs";
const MOCK_FILE: &str = "generated_mock.rs";
const KIT_FILE: &str = "generated_kit.rs";

pub fn workspace_root() -> PathBuf {
    // xtask/Cargo.toml sits one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Generates every spec (or only `vendors`), writing files or checking them.
pub fn run(root: &Path, mode: Mode, vendors: &[String]) -> Result<Outcome> {
    let specs_dir = root.join("specs");
    let mut all: Vec<String> = std::fs::read_dir(&specs_dir)
        .with_context(|| format!("cannot read {}", specs_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(String::from))
        .collect();
    all.sort();
    for v in vendors {
        if !all.contains(v) {
            bail!(
                "no spec for vendor `{v}`: expected specs/{v}.yaml (have: {})",
                all.join(", ")
            );
        }
    }
    let selected: Vec<&String> = all
        .iter()
        .filter(|v| vendors.is_empty() || vendors.contains(v))
        .collect();

    // Generate everything first: a broken spec must not leave some files written and others not.
    let mut outputs = Vec::new();
    for vendor in selected {
        let display = PathBuf::from("specs").join(format!("{vendor}.yaml"));
        let spec = spec::load(&specs_dir.join(format!("{vendor}.yaml")), &display)?;
        let crate_src = root
            .join("crates")
            .join(format!("report-{vendor}"))
            .join("src");
        if !crate_src.is_dir() {
            bail!(
                "{}: no crate for it: expected {}",
                display.display(),
                crate_src.display()
            );
        }
        let files = generate(&spec)?;
        for (name, text) in files {
            outputs.push((crate_src.join(name), text));
        }
    }

    let mut outcome = Outcome::default();
    for (path, text) in outputs {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(text.as_str()) {
            outcome.messages.push(format!("fresh    {rel}"));
            continue;
        }
        match mode {
            Mode::Check => {
                outcome.messages.push(format!("STALE    {rel}"));
                outcome
                    .messages
                    .push(unified_diff(&rel, current.as_deref().unwrap_or(""), &text));
                outcome.stale.push(rel);
            }
            Mode::Write => {
                write_atomically(&path, &text)?;
                outcome.messages.push(format!("wrote    {rel}"));
            }
        }
    }
    Ok(outcome)
}

/// Produces (file name, contents) for one spec: the client and the httpmock module.
pub fn generate(spec: &Spec) -> Result<Vec<(&'static str, String)>, SpecError> {
    let client = catch_generator_panic(spec, |s| {
        let mut generator = Generator::new(&settings(s));
        generator.generate_tokens(&s.api)
    })?;
    let mock = catch_generator_panic(spec, |s| {
        let mut generator = Generator::new(&settings(s));
        generator.httpmock(&s.api, "crate::generated")
    })?;
    let source = spec.path.display().to_string();
    let mut files = vec![
        (CLIENT_FILE, render(spec, client, &source, "client")?),
        (MOCK_FILE, render(spec, mock, &source, "httpmock helpers")?),
    ];
    if let Some(glue) = kit::source(spec)? {
        let tokens: Tokens = glue
            .parse()
            .map_err(|e| spec.error(None, format!("vendor-kit glue does not lex: {e}")))?;
        files.push((KIT_FILE, render(spec, tokens, &source, "vendor-kit glue")?));
    }
    Ok(files)
}

fn settings(spec: &Spec) -> GenerationSettings {
    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        .with_derive("schemars::JsonSchema")
        .with_derive("PartialEq");
    if let Some(inner) = &spec.settings.hook_state {
        let tokens: proc_macro2::TokenStream = inner.parse().expect("checked in render");
        settings
            .with_inner_type(tokens)
            .with_hooks(HooksMode::Expected);
    }
    for (schema, rust_type) in &spec.settings.replace {
        settings.with_replacement(
            schema,
            rust_type,
            [TypeImpl::Display, TypeImpl::FromStr].into_iter(),
        );
    }
    settings
}

type Tokens = proc_macro2::TokenStream;

/// Runs a progenitor call, turning its panics and errors into a [`SpecError`]. On a panic the
/// operations are generated one at a time to name the one at fault.
fn catch_generator_panic(
    spec: &Spec,
    f: impl Fn(&Spec) -> std::result::Result<Tokens, progenitor::Error>,
) -> Result<Tokens, SpecError> {
    if let Some(inner) = &spec.settings.hook_state
        && inner.parse::<Tokens>().is_err()
    {
        return Err(spec.error(
            None,
            format!("x-codegen hook-state `{inner}` is not a Rust path"),
        ));
    }
    match quiet_catch(|| f(spec)) {
        Ok(Ok(tokens)) => Ok(tokens),
        Ok(Err(e)) => Err(spec.error(None, format!("progenitor rejected the spec: {e}"))),
        Err(panic) => {
            let culprit = find_panicking_operation(spec, &f);
            Err(spec.error(culprit, format!("progenitor cannot generate it: {panic}")))
        }
    }
}

fn find_panicking_operation(
    spec: &Spec,
    f: &impl Fn(&Spec) -> std::result::Result<Tokens, progenitor::Error>,
) -> Option<String> {
    for (method, path, op) in spec::operations(&spec.api) {
        let mut single = spec.api.clone();
        single.paths.paths.retain(|p, _| p == &path);
        if let Some(openapiv3::ReferenceOr::Item(item)) = single.paths.paths.get_mut(&path) {
            let keep = method.to_lowercase();
            for (m, slot) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("options", &mut item.options),
                ("head", &mut item.head),
                ("patch", &mut item.patch),
                ("trace", &mut item.trace),
            ] {
                if m != keep {
                    *slot = None;
                }
            }
        }
        let probe = Spec {
            path: spec.path.clone(),
            vendor: spec.vendor.clone(),
            api: single,
            settings: Default::default(),
        };
        if quiet_catch(|| f(&probe)).is_err() {
            let id = op.operation_id.clone().unwrap_or_default();
            return Some(format!("{id} ({method} {path})"));
        }
    }
    None
}

/// `catch_unwind` without the default hook printing a backtrace to the user.
fn quiet_catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "internal generator panic".to_string())
    })
}

fn render(spec: &Spec, tokens: Tokens, source: &str, what: &str) -> Result<String, SpecError> {
    let file: syn::File = syn::parse2(one_line_docs(tokens))
        .map_err(|e| spec.error(None, format!("generated {what} does not parse: {e}")))?;
    let pretty = prettyplease::unparse(&file);
    let formatted = rustfmt(&pretty).map_err(|e| spec.error(None, format!("{e:#}")))?;
    Ok(format!(
        "// @generated by `cargo xtask codegen` from {source}: the {what} of the {vendor} API.\n\
         // Do not edit by hand: edit the spec and run `cargo xtask codegen`.\n\n{formatted}",
        vendor = spec.vendor,
    ))
}

/// Splits every multi-line `#[doc = "…"]` into one attribute per line.
///
/// prettyplease prints a multi-line doc attribute as a `/** … */` block whose continuation
/// lines carry the item's indentation; rustdoc then reads four-space-indented lines as code
/// blocks and runs them as (failing) doctests. One `///` line each keeps the text as prose.
fn one_line_docs(tokens: Tokens) -> Tokens {
    use proc_macro2::{Delimiter, Group, Punct, Spacing, TokenTree};
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tree) = iter.next() {
        match tree {
            TokenTree::Punct(p) if p.as_char() == '#' => {
                let inner = matches!(iter.peek(), Some(TokenTree::Punct(b)) if b.as_char() == '!');
                let bang = if inner { iter.next() } else { None };
                match iter.peek() {
                    Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket => {
                        let group = match iter.next() {
                            Some(TokenTree::Group(g)) => g,
                            _ => unreachable!("peeked a group"),
                        };
                        match doc_lines(&group) {
                            Some(lines) => {
                                for line in lines {
                                    out.push(TokenTree::Punct(Punct::new('#', Spacing::Alone)));
                                    if let Some(b) = &bang {
                                        out.push(b.clone());
                                    }
                                    let attr: Tokens = quote_doc(&line);
                                    out.push(TokenTree::Group(Group::new(
                                        Delimiter::Bracket,
                                        attr,
                                    )));
                                }
                            }
                            None => {
                                out.push(TokenTree::Punct(p));
                                out.extend(bang);
                                let inner = one_line_docs(group.stream());
                                let mut g = Group::new(group.delimiter(), inner);
                                g.set_span(group.span());
                                out.push(TokenTree::Group(g));
                            }
                        }
                    }
                    _ => {
                        out.push(TokenTree::Punct(p));
                        out.extend(bang);
                    }
                }
            }
            TokenTree::Group(g) => {
                let mut new = Group::new(g.delimiter(), one_line_docs(g.stream()));
                new.set_span(g.span());
                out.push(TokenTree::Group(new));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// The lines of a `doc = "…"` attribute body that spans several lines, else `None`.
fn doc_lines(group: &proc_macro2::Group) -> Option<Vec<String>> {
    let mut parts = group.stream().into_iter();
    let (
        Some(proc_macro2::TokenTree::Ident(name)),
        Some(proc_macro2::TokenTree::Punct(eq)),
        Some(proc_macro2::TokenTree::Literal(lit)),
        None,
    ) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if name != "doc" || eq.as_char() != '=' {
        return None;
    }
    let text = syn::parse_str::<syn::LitStr>(&lit.to_string())
        .ok()?
        .value();
    if !text.contains('\n') {
        return None;
    }
    Some(
        text.trim_end_matches('\n')
            .lines()
            .map(|l| {
                if l.is_empty() || l.starts_with(' ') {
                    l.to_string()
                } else {
                    format!(" {l}")
                }
            })
            .collect(),
    )
}

fn quote_doc(line: &str) -> Tokens {
    let lit = proc_macro2::Literal::string(line);
    let mut ts = Tokens::new();
    ts.extend([
        proc_macro2::TokenTree::Ident(proc_macro2::Ident::new(
            "doc",
            proc_macro2::Span::call_site(),
        )),
        proc_macro2::TokenTree::Punct(proc_macro2::Punct::new('=', proc_macro2::Spacing::Alone)),
        proc_macro2::TokenTree::Literal(lit),
    ]);
    ts
}

/// Formats with the toolchain's rustfmt so the committed file passes `cargo fmt --check`.
fn rustfmt(source: &str) -> Result<String> {
    let mut child = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run rustfmt (install it with `rustup component add rustfmt`)")?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = source.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().context("rustfmt did not finish")?;
    writer
        .join()
        .map_err(|_| anyhow!("rustfmt writer thread panicked"))?
        .context("cannot write to rustfmt")?;
    if !output.status.success() {
        bail!(
            "rustfmt failed on generated code: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("rustfmt printed non-UTF-8")
}

/// Writes through a temporary file in the same folder, so a failure never leaves half a file.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .context("generated file has no parent folder")?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("generated")
    ));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name} (from spec)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stale-generated-code test (rust-analyzer's `ensure_file_contents` idiom): `cargo test`
    /// fails when a spec changed and `cargo xtask codegen` was not run.
    #[test]
    fn generated_code_is_fresh() {
        let outcome = run(&workspace_root(), Mode::Check, &[]).expect("codegen runs");
        assert!(
            outcome.stale.is_empty(),
            "stale generated files: {:?}\n{}\nrun `cargo xtask codegen`",
            outcome.stale,
            outcome.messages.join("\n")
        );
    }

    fn broken(text: &str) -> String {
        let spec = spec::parse(text, "broken", Path::new("specs/broken.yaml"));
        match spec {
            Err(e) => e.to_string(),
            Ok(spec) => match generate(&spec) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("expected the spec to be rejected"),
            },
        }
    }

    const HEAD: &str = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n";

    #[test]
    fn bad_yaml_names_the_file() {
        let msg = broken("openapi: [unclosed\n");
        assert!(msg.starts_with("specs/broken.yaml: invalid YAML"), "{msg}");
    }

    #[test]
    fn openapi_31_is_refused() {
        let msg = broken("openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {}\n");
        assert!(msg.contains("OpenAPI 3.1.0 is not supported"), "{msg}");
    }

    #[test]
    fn missing_operation_id_names_the_operation() {
        let msg = broken(&format!(
            "{HEAD}paths:\n  /a:\n    get:\n      responses:\n        '200': {{description: ok}}\n"
        ));
        assert_eq!(
            msg,
            "specs/broken.yaml: operation GET /a: has no operationId"
        );
    }

    #[test]
    fn duplicate_operation_id_names_both() {
        let msg = broken(&format!(
            "{HEAD}paths:\n  /a:\n    get:\n      operationId: x\n      responses:\n        '200': {{description: ok}}\n  /b:\n    get:\n      operationId: x\n      responses:\n        '200': {{description: ok}}\n"
        ));
        assert!(
            msg.contains("operation GET /b: operationId `x` is already used by GET /a"),
            "{msg}"
        );
    }

    #[test]
    fn two_error_bodies_are_refused_before_progenitor_panics() {
        let msg = broken(&format!(
            "{HEAD}paths:\n  /a:\n    get:\n      operationId: getA\n      responses:\n        '200': {{description: ok}}\n        '400':\n          description: bad\n          content:\n            application/json:\n              schema: {{$ref: '#/components/schemas/E1'}}\n        '500':\n          description: bad\n          content:\n            application/json:\n              schema: {{$ref: '#/components/schemas/E2'}}\ncomponents:\n  schemas:\n    E1: {{type: object}}\n    E2: {{type: string}}\n"
        ));
        assert!(
            msg.contains("operation getA (GET /a): has 2 different error body types"),
            "{msg}"
        );
    }

    #[test]
    fn a_generator_panic_names_the_operation() {
        // Two inline success schemas slip past the pre-check; progenitor asserts on them.
        let msg = broken(&format!(
            "{HEAD}paths:\n  /ok:\n    get:\n      operationId: fine\n      responses:\n        '200': {{description: ok}}\n  /a:\n    get:\n      operationId: getA\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {{type: object, properties: {{a: {{type: string}}}}}}\n        '201':\n          description: ok\n          content:\n            application/json:\n              schema: {{type: integer}}\n"
        ));
        assert!(
            msg.contains("operation getA (GET /a): progenitor cannot generate it"),
            "{msg}"
        );
    }
}
