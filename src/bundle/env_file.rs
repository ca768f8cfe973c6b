//! `--env-file`: Docker's environment file format.

/// The `KEY=VALUE` entries of an env file, as `docker run --env-file` reads it.
///
/// One entry a line; leading whitespace is dropped; empty lines and lines starting with `#`
/// are skipped; the value is kept as written (no quotes or escapes are processed); a bare
/// `KEY` takes its value from `lookup` (the host environment) and is left out when unset
/// there. A name with whitespace, an empty name, or a file that is not UTF-8 is an error,
/// given as a message with the line number.
pub fn parse_env_file(
    bytes: &[u8],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(format!("line {}: no variable name before '='", i + 1));
        }
        if key.chars().any(char::is_whitespace) {
            return Err(format!(
                "line {}: variable {key:?} contains whitespace",
                i + 1
            ));
        }
        match value {
            Some(v) => entries.push(format!("{key}={v}")),
            None => {
                if let Some(v) = lookup(key) {
                    entries.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_format() {
        let host = |k: &str| (k == "HOME").then(|| "/root".to_string());
        let text = b"\xef\xbb\xbf# comment\nA=1\n\n  B=two \nHOME\nUNSET\nC=x=y\n   # indented comment\nQ=\"quoted\"\nE=\n";
        assert_eq!(
            parse_env_file(text, &host).unwrap(),
            ["A=1", "B=two ", "HOME=/root", "C=x=y", "Q=\"quoted\"", "E="]
        );
        let err = parse_env_file(b"A=1\n=x\n", &host).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse_env_file(b"MY VAR=1\n", &host).is_err());
        assert!(parse_env_file(b"B =1\n", &host).is_err());
        assert!(parse_env_file(b"A=\xff\n", &host).is_err());
    }
}
