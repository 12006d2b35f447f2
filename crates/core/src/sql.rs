//! Identifier quoting and SQL literals.
//!
//! Every identifier that reaches the server goes through [`quote_ident`], every piece of
//! user text through [`quote_str`]; nothing is spliced into SQL unescaped. Writers connect
//! with `SET NAMES binary`, so a string literal carries raw bytes; bytes that are not valid
//! UTF-8 (our client API sends `&str`) are sent as hex literals, which the server treats
//! the same way.

use crate::value::Value;
use std::fmt::Write;

/// `` `name` `` with embedded backticks doubled.
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    push_ident(&mut s, name);
    s
}

/// Appends `` `name` `` to `out`.
pub fn push_ident(out: &mut String, name: &str) {
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
}

/// `` `db`.`table` ``.
pub fn qualified(db: &str, table: &str) -> String {
    let mut s = String::with_capacity(db.len() + table.len() + 5);
    push_ident(&mut s, db);
    s.push('.');
    push_ident(&mut s, table);
    s
}

/// A single-quoted string literal with `\`, `'`, NUL and control characters escaped.
pub fn quote_str(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    push_escaped(&mut s, text);
    s
}

fn push_escaped(out: &mut String, text: &str) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out.push('\'');
}

/// Appends `value` as a literal the server reads back to the identical stored value.
pub fn push_literal(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::UInt(v) | Value::Bit(v) => {
            let _ = write!(out, "{v}");
        }
        // A FLOAT widened to f64 is exact, and the server narrows it back to the same f32.
        Value::Float(v) => push_double(out, f64::from(*v)),
        Value::Double(v) => push_double(out, *v),
        Value::Decimal(s) => out.push_str(s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => push_escaped(out, s),
            Err(_) => push_hex(out, b),
        },
        // JSON columns refuse binary strings on MySQL 8: say the text is utf8mb4.
        Value::Json(b) => push_text_literal(out, b),
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
            let _ = write!(out, "'{}'", Temporal(value));
        }
    }
}

/// A DATE, DATETIME or TIME value as MySQL reads it (`2024-01-02 03:04:05.000006`,
/// `-838:59:59.000000`), without quotes: inside a literal, or as a LOAD DATA field.
/// Other values write nothing.
pub struct Temporal<'a>(pub &'a Value);

impl std::fmt::Display for Temporal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Value::Date(d) => write!(f, "{:04}-{:02}-{:02}", d.year, d.month, d.day),
            Value::DateTime(d) => write!(
                f,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
                d.year, d.month, d.day, d.hour, d.minute, d.second, d.micros
            ),
            Value::Time(t) => write!(
                f,
                "{}{:02}:{:02}:{:02}.{:06}",
                if t.negative { "-" } else { "" },
                t.hours,
                t.minutes,
                t.seconds,
                t.micros
            ),
            _ => Ok(()),
        }
    }
}

/// Appends `text` as a utf8mb4 *character* string literal (`_utf8mb4'...'`), for columns
/// that read a binary string differently from text: MySQL 8 JSON, and MariaDB's UUID,
/// INET4 and INET6, which take a binary string as their internal binary form.
pub fn push_text_literal(out: &mut String, text: &[u8]) {
    match std::str::from_utf8(text) {
        Ok(s) => {
            out.push_str("_utf8mb4");
            push_escaped(out, s);
        }
        Err(_) => {
            out.push_str("CONVERT(");
            push_hex(out, text);
            out.push_str(" USING utf8mb4)");
        }
    }
}

fn push_double(out: &mut String, v: f64) {
    // `{:e}` is the shortest text that parses back to the same f64.
    if v.is_finite() {
        let _ = write!(out, "{v:e}");
    } else {
        // MySQL cannot store NaN or infinity; NULL would silently lose data, so let the
        // server reject the statement with a clear error instead.
        out.push_str("'invalid-float'");
    }
}

/// Splits a string of backtick-quoted identifiers at the start of `text`:
/// returns the unquoted name and the rest, or `None` when `text` does not start with one.
pub fn take_ident(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '`' {
            if let Some(&(_, '`')) = chars.peek() {
                chars.next();
                name.push('`');
            } else {
                return Some((name, &rest[i + 1..]));
            }
        } else {
            name.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_backticks() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(
            take_ident("`a``b` rest"),
            Some(("a`b".to_string(), " rest"))
        );
        assert_eq!(take_ident("`unterminated"), None);
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote_str("it's \\ \0"), "'it\\'s \\\\ \\0'");
    }

    #[test]
    fn literals_round_trip_shapes() {
        let mut s = String::new();
        push_literal(&mut s, &Value::Bytes(vec![0xff, 0x00]));
        assert_eq!(s, "X'FF00'");
        s.clear();
        push_text_literal(&mut s, b"::1");
        assert_eq!(s, "_utf8mb4'::1'");
        s.clear();
        push_literal(&mut s, &Value::Float(3.4028235e38));
        assert_eq!(s.parse::<f64>().map(|v| v as f32), Ok(3.4028235e38));
        s.clear();
        push_literal(&mut s, &Value::Double(f64::MIN_POSITIVE));
        assert_eq!(s.parse::<f64>(), Ok(f64::MIN_POSITIVE));
    }
}
