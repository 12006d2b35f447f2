//! Errors as operators read them: the whole context chain on one line, with the MySQL
//! driver's debug-style wrappers (`MySqlError { … }`, `CodecError { … }`, …) replaced by
//! plain words, wherever in the message they were pasted.

/// `{e:#}` (every context, outermost first), made readable.
pub fn describe(e: &anyhow::Error) -> String {
    readable(&format!("{e:#}"))
}

/// The driver's wrappers and what they become.
const WRAPPERS: &[(&str, &str)] = &[
    ("MySqlError { ", "the server said: "),
    ("CodecError { ", "protocol error: "),
    ("DriverError { ", ""),
    ("IoError { ", "network error: "),
    ("UrlError { ", "invalid connection settings: "),
    ("TlsError { ", "TLS error: "),
];

/// Replaces each `Name { inner }` wrapper of [`WRAPPERS`] by its words and `inner`.
pub fn readable(text: &str) -> String {
    let mut out = text.to_string();
    for (open, words) in WRAPPERS {
        while let Some(start) = out.find(open) {
            let inner_start = start + open.len();
            // The matching " }": braces inside the inner text are balanced.
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in out[inner_start..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = Some(inner_start + i);
                        break;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let Some(end) = end else { break };
            let inner = out[inner_start..end].trim_end().to_string();
            out.replace_range(start..end + 1, &format!("{words}{inner}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_wrappers_become_words() {
        assert_eq!(
            readable("copying db.t: MySqlError { ERROR 1146 (42S02): Table 'db.t' doesn't exist }"),
            "copying db.t: the server said: ERROR 1146 (42S02): Table 'db.t' doesn't exist"
        );
        assert_eq!(
            readable("reading: CodecError { io error: {broken pipe} }"),
            "reading: protocol error: io error: {broken pipe}"
        );
        assert_eq!(readable("no wrapper { here }"), "no wrapper { here }");
    }
}
