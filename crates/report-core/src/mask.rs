//! Masking credentials in text that reaches errors and logs: body excerpts, vendors' messages,
//! decoders' messages. Keys that name credentials are recognised in JSON, form or query text
//! and header-like text; their values are replaced with `***`.

/// What replaces a masked value.
const MASK: &str = "***";

/// Masks the values of keys that name credentials (`token`, `AuthToken`, `access_token`,
/// `secret`, `secret_key`, `password`, `key`, `apiKey`, `authorization`, …, any case) in
/// JSON (`"token": "…"`), form or query text (`AuthToken=…`) and header-like text
/// (`Authorization: Bearer …`). Over-masking is harmless here; a leaked token is not.
pub fn mask_credentials(text: &str) -> String {
    let mut hidden = Vec::new();
    mask_bare_keys(&mask_json_keys(text, &mut hidden), &mut hidden)
}

/// `text` (e.g. a decoder's message about `body`) with every value of a credential-named key
/// of `body` masked: serde quotes the offending value, which may be a token of the wrong type.
pub fn hide_credentials_of(text: &str, body: &[u8]) -> String {
    let mut hidden = Vec::new();
    let body = String::from_utf8_lossy(body);
    mask_bare_keys(&mask_json_keys(&body, &mut hidden), &mut hidden);
    hidden.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut text = text.to_string();
    for value in hidden.iter().filter(|v| v.trim().len() >= 3) {
        text = text.replace(value.as_str(), MASK);
    }
    text
}

/// Whether a key names a credential (case and separators ignored).
pub fn is_credential_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const PARTS: [&str; 9] = [
        "token",
        "secret",
        "password",
        "passwd",
        "authorization",
        "credential",
        "cookie",
        "signature",
        "session",
    ];
    PARTS.iter().any(|p| n.contains(p))
        || n.ends_with("key")
        || matches!(
            n.as_str(),
            "auth" | "pass" | "pwd" | "sig" | "jwt" | "bearer"
        )
}

/// `"credential-key": value` → `"credential-key": "***"` (strings, numbers, literals).
fn mask_json_keys(text: &str, hidden: &mut Vec<String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '"' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let end = string_end(&chars, i);
        let key: String = chars[i + 1..end.min(chars.len())].iter().collect();
        out.extend(&chars[i..(end + 1).min(chars.len())]);
        i = end + 1;
        let mut k = i;
        while k < chars.len() && chars[k].is_whitespace() {
            k += 1;
        }
        if k >= chars.len() || chars[k] != ':' || !is_credential_name(&key) {
            continue;
        }
        k += 1;
        while k < chars.len() && chars[k].is_whitespace() {
            k += 1;
        }
        out.extend(&chars[i..k]);
        i = k;
        match chars.get(k) {
            Some('"') => {
                out.push('"');
                out.push_str(MASK);
                out.push('"');
                let end = string_end(&chars, k);
                hidden.push(chars[k + 1..end.min(chars.len())].iter().collect());
                i = end + 1;
            }
            Some('{' | '[') | None => {}
            Some(_) => {
                out.push_str(MASK);
                while i < chars.len()
                    && !matches!(chars[i], ',' | '}' | ']')
                    && !chars[i].is_whitespace()
                {
                    i += 1;
                }
                hidden.push(chars[k..i].iter().collect());
            }
        }
    }
    out
}

/// The index of the closing quote of the JSON string opening at `start` (or the text's end).
fn string_end(chars: &[char], start: usize) -> usize {
    let mut j = start + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            '"' => return j,
            _ => j += 1,
        }
    }
    chars.len()
}

/// `AuthToken=…` and `Authorization: Bearer …` outside JSON strings' keys.
fn mask_bare_keys(text: &str, hidden: &mut Vec<String>) -> String {
    let chars: Vec<char> = text.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !word(chars[i]) || (i > 0 && word(chars[i - 1])) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut end = i;
        while end < chars.len() && word(chars[end]) {
            end += 1;
        }
        let name: String = chars[i..end].iter().collect();
        out.push_str(&name);
        i = end;
        let mut k = end;
        while k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        let separator = chars.get(k).copied();
        if !matches!(separator, Some('=' | ':')) || !is_credential_name(&name) {
            continue;
        }
        k += 1;
        while k < chars.len() && chars[k] == ' ' {
            k += 1;
        }
        let stops: &[char] = if separator == Some('=') {
            &['&', '"', '\'', ',', ';', '<', '>', ' ', '\n', '\r', '\t']
        } else {
            &['&', '"', '\'', ',', ';', '<', '>', '\n', '\r']
        };
        let mut v = k;
        while v < chars.len() && !stops.contains(&chars[v]) {
            v += 1;
        }
        if v == k {
            continue;
        }
        out.extend(&chars[end..k]);
        out.push_str(MASK);
        hidden.push(chars[k..v].iter().collect());
        i = v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_values_are_masked_in_excerpts() {
        let cases = [
            (
                r#"{"token":"tok-1","expiresInSeconds":"abc"}"#,
                r#"{"token":"***","expiresInSeconds":"abc"}"#,
            ),
            (
                r#"{"AuthToken": "tok-1", "ExpirationDateUtc": 5}"#,
                r#"{"AuthToken": "***", "ExpirationDateUtc": 5}"#,
            ),
            (
                r#"{"access_token":12345,"x":{"secret_key":"s","apiKey":null}}"#,
                r#"{"access_token":***,"x":{"secret_key":"***","apiKey":***}}"#,
            ),
            (
                r#"{"Password":"p\"q","user":"u"}"#,
                r#"{"Password":"***","user":"u"}"#,
            ),
            (
                "https://h/r?AuthToken=tok-1&Id=7",
                "https://h/r?AuthToken=***&Id=7",
            ),
            (
                "authorization: Bearer tok-1\nnext",
                "authorization: ***\nnext",
            ),
            ("key = tok-1; other=1", "key = ***; other=1"),
            (
                r#"{"message":"bad","code":"E1"}"#,
                r#"{"message":"bad","code":"E1"}"#,
            ),
        ];
        for (raw, masked) in cases {
            assert_eq!(mask_credentials(raw), masked, "{raw}");
        }
    }

    #[test]
    fn decoder_messages_lose_the_credential_values_they_quote() {
        let body = br#"{"token": 98765432101, "expiresInSeconds": "abc"}"#;
        let message = "invalid type: integer `98765432101`, expected a string at line 1 column 22";
        let hidden = hide_credentials_of(message, body);
        assert!(!hidden.contains("98765432101"), "{hidden}");
        assert!(hidden.contains("line 1 column 22"), "{hidden}");
        let other = "invalid type: string \"abc\", expected i64";
        assert_eq!(hide_credentials_of(other, body), other);
    }
}
