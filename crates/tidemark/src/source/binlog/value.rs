//! Column values as the binlog stores them → [`Value`], equal to what the snapshot
//! reader produces for the same row.
//!
//! Two steps, because a row event carries only the binlog column type: [`from_binlog`]
//! decodes what the type alone determines, and [`conform`] finishes the job with the
//! column's definition from the schema tracker (signedness when the source did not log
//! it, MariaDB's JSON, which the binlog stores as a BLOB).

use mysql::binlog::jsonb;
use mysql::binlog::value::BinlogValue;
use mysql::consts::ColumnType as T;
use tidemark_core::{ColumnDef, ColumnKind, DateTime, Time, Value};

/// Converts one binlog value. `unsigned` comes from the table map's optional metadata
/// (`binlog_row_metadata`), when the source logged it.
pub fn from_binlog(v: &BinlogValue<'_>, ty: T, unsigned: bool) -> Result<Value, String> {
    let v = match v {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => return Ok(Value::Json(json_text(j)?.into_bytes())),
        BinlogValue::JsonDiff(_) => {
            return Err("internal: a partial JSON update needs its before image".into())
        }
    };
    use mysql::Value as M;
    Ok(match (ty, v) {
        (_, M::NULL) => Value::Null,
        (
            T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_SHORT | T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONG,
            M::Int(i),
        ) => {
            if unsigned {
                Value::UInt(*i as u64 & mask(ty))
            } else if ty == T::MYSQL_TYPE_INT24 {
                // The parser does not sign-extend 3-byte integers.
                Value::Int((((*i as u32) << 8) as i32 >> 8) as i64)
            } else {
                Value::Int(*i)
            }
        }
        (T::MYSQL_TYPE_LONGLONG, M::Int(i)) if unsigned => Value::UInt(*i as u64),
        (_, M::Int(i)) if ty == T::MYSQL_TYPE_ENUM => Value::UInt(*i as u64),
        (T::MYSQL_TYPE_TIMESTAMP, M::Int(secs)) => timestamp(*secs, 0),
        (_, M::Int(i)) => Value::Int(*i),
        (_, M::UInt(u)) => Value::UInt(*u),
        (_, M::Float(f)) => Value::Float(*f),
        (_, M::Double(d)) => Value::Double(*d),
        (T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE, M::Date(y, m, d, ..)) => {
            Value::Date(DateTime {
                year: *y,
                month: *m,
                day: *d,
                hour: 0,
                minute: 0,
                second: 0,
                micros: 0,
            })
        }
        (_, M::Date(y, mo, d, h, mi, s, us)) => Value::DateTime(DateTime {
            year: *y,
            month: *mo,
            day: *d,
            hour: *h,
            minute: *mi,
            second: *s,
            micros: *us,
        }),
        (_, M::Time(neg, days, h, m, s, us)) => Value::Time(Time {
            negative: *neg,
            hours: days * 24 + *h as u32,
            minutes: *m,
            seconds: *s,
            micros: *us,
        }),
        (T::MYSQL_TYPE_NEWDECIMAL | T::MYSQL_TYPE_DECIMAL, M::Bytes(b)) => {
            Value::Decimal(String::from_utf8_lossy(b).into_owned())
        }
        (T::MYSQL_TYPE_YEAR, M::Bytes(b)) => {
            let year: i64 = std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("a YEAR value that is not a number")?;
            // The binlog stores YEAR as years since 1900; 0 is the zero year 0000.
            Value::Int(if year == 1900 { 0 } else { year })
        }
        (T::MYSQL_TYPE_TIMESTAMP2, M::Bytes(b)) => {
            let text = std::str::from_utf8(b).map_err(|_| "a TIMESTAMP that is not a number")?;
            let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
            let secs: i64 = secs
                .parse()
                .map_err(|_| "a TIMESTAMP that is not a number")?;
            let micros: u32 = frac
                .parse()
                .map_err(|_| "a TIMESTAMP fraction that is not a number")?;
            timestamp(secs, micros)
        }
        (T::MYSQL_TYPE_BIT, M::Bytes(b)) => {
            Value::Bit(b.iter().fold(0u64, |acc, x| acc << 8 | *x as u64))
        }
        (T::MYSQL_TYPE_SET, M::Bytes(b)) => {
            Value::UInt(b.iter().rev().fold(0u64, |acc, x| acc << 8 | *x as u64))
        }
        (_, M::Bytes(b)) => Value::Bytes(b.clone()),
    })
}

/// A partial JSON update (MySQL's `binlog_row_value_options = PARTIAL_JSON`) applied to
/// the column's before image.
pub fn json_after_diffs(
    before: Option<&Value>,
    diffs: &[mysql::binlog::jsondiff::JsonDiff<'_>],
) -> Result<Value, String> {
    let Some(Value::Json(text)) = before else {
        return Err("a partial JSON update without the column's before image: set binlog_row_image = FULL on the source".into());
    };
    let mut doc: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| format!("the before image of a partial JSON update is not JSON: {e}"))?;
    for d in diffs {
        use mysql::binlog::jsondiff::JsonDiffOperation as O;
        let op = match d.operation() {
            O::REPLACE => JsonOp::Replace,
            O::INSERT => JsonOp::Insert,
            O::REMOVE => JsonOp::Remove,
        };
        let value = match d.value() {
            Some(v) => Some(
                serde_json::from_str(&json_text(v)?)
                    .map_err(|e| format!("a partial JSON update value that cannot be read: {e}"))?,
            ),
            None => None,
        };
        apply_json_diff(&mut doc, &d.path_str(), op, value)?;
    }
    let mut out = String::new();
    push_json_value(&mut out, &doc);
    Ok(Value::Json(out.into_bytes()))
}

/// A document as MySQL prints it (and as [`json_text`] renders the binary form): object
/// keys shortest first, then by bytes, the order of MySQL's binary JSON, so a document
/// rewritten by a partial update reads the same as one logged whole.
fn push_json_value(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_value(out, item);
            }
            out.push(']');
        }
        serde_json::Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_by(|a, b| (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes())));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                push_json_value(out, &members[key]);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Adjusts a decoded value to the column's definition.
pub fn conform(v: Value, ty: T, col: &ColumnDef) -> Value {
    match (v, &col.kind) {
        (Value::Int(i), ColumnKind::Int { unsigned: true }) => Value::UInt(i as u64 & mask(ty)),
        (Value::Bytes(b), ColumnKind::Json) => Value::Json(b),
        // MariaDB's UUID, INET4 and INET6 are logged in their binary form; the snapshot
        // reads (and the writers send) their text form.
        (Value::Bytes(b), ColumnKind::Other) => {
            Value::Bytes(text_form(&col.column_type, &b).map_or(b, String::into_bytes))
        }
        (Value::Bytes(mut b), ColumnKind::Binary) => {
            // The binlog drops BINARY(n)'s trailing zero bytes; the column keeps them.
            if let Some(n) = binary_width(&col.column_type) {
                if b.len() < n {
                    b.resize(n, 0);
                }
            }
            Value::Bytes(b)
        }
        (v, _) => v,
    }
}

/// The text MariaDB shows for a UUID, INET4 or INET6 value in binary form.
fn text_form(column_type: &str, b: &[u8]) -> Option<String> {
    match (column_type.to_ascii_lowercase().as_str(), b.len()) {
        ("uuid", 16) => {
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Some(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        ("inet4", 4) => Some(format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
        ("inet6", 16) => Some(inet6_text(b)),
        _ => None,
    }
}

/// MariaDB's INET6 text: IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible
/// (`::a.b.c.d`, when the upper half of the IPv4 part is not zero) addresses end in
/// dotted form; otherwise lower-case hex groups with the longest run of zero groups (even
/// a single one; the first of equal runs) written as `::`.
fn inet6_text(b: &[u8]) -> String {
    let dotted = |x: &[u8]| format!("{}.{}.{}.{}", x[0], x[1], x[2], x[3]);
    if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
        return format!("::ffff:{}", dotted(&b[12..]));
    }
    if b[..12].iter().all(|&x| x == 0) && (b[12] | b[13]) != 0 {
        return format!("::{}", dotted(&b[12..]));
    }
    let groups: Vec<u16> = b
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut best, mut best_len, mut i) = (None, 0, 0);
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = Some(start);
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    let hex = |g: &[u16]| {
        g.iter()
            .map(|x| format!("{x:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    match best {
        Some(start) => format!(
            "{}::{}",
            hex(&groups[..start]),
            hex(&groups[start + best_len..])
        ),
        None => hex(&groups),
    }
}

/// `n` of a `binary(n)` column type.
fn binary_width(column_type: &str) -> Option<usize> {
    let lower = column_type.to_ascii_lowercase();
    let inner = lower.strip_prefix("binary(")?.strip_suffix(')')?;
    inner.parse().ok()
}

fn mask(ty: T) -> u64 {
    match ty {
        T::MYSQL_TYPE_TINY => 0xff,
        T::MYSQL_TYPE_SHORT => 0xffff,
        T::MYSQL_TYPE_INT24 => 0xff_ffff,
        T::MYSQL_TYPE_LONG => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// A TIMESTAMP (seconds since the epoch) as the UTC date and time the snapshot reader
/// sees in its UTC session; 0 is the zero timestamp.
fn timestamp(secs: i64, micros: u32) -> Value {
    if secs == 0 && micros == 0 {
        return Value::DateTime(DateTime::ZERO);
    }
    Value::DateTime(DateTime::from_unix(secs, micros))
}

/// MySQL's binary JSON as JSON text. Scalars MySQL stores as opaque values (what
/// `CAST(NOW() AS JSON)` or `JSON_ARRAY(CAST(1.5 AS DECIMAL(4,2)))` produce) come out as
/// MySQL prints them (`Json_wrapper::to_string` in MySQL's `sql-common/json_dom.cc`):
/// DECIMAL as a number with its scale (`1.50`); DATE, TIME, DATETIME and TIMESTAMP as
/// strings, with six fractional digits for the last three; any other opaque value as
/// `"base64:typeN:..."` (N the column type code).
pub fn json_text(j: &jsonb::Value<'_>) -> Result<String, String> {
    let dom = j
        .clone()
        .parse()
        .map_err(|e| format!("a binary JSON value that cannot be read: {e}"))?;
    let mut out = String::new();
    push_json(&mut out, &dom);
    Ok(out)
}

fn push_json(out: &mut String, dom: &jsonb::JsonDom) {
    use jsonb::{JsonContainer, JsonDom, JsonNumber, JsonScalar};
    let quoted = |out: &mut String, s: &str| {
        out.push_str(&serde_json::Value::String(s.to_string()).to_string())
    };
    match dom {
        JsonDom::Container(JsonContainer::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        JsonDom::Container(JsonContainer::Object(members)) => {
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(out, key);
                out.push(':');
                push_json(out, value);
            }
            out.push('}');
        }
        JsonDom::Scalar(JsonScalar::Null) => out.push_str("null"),
        JsonDom::Scalar(JsonScalar::Boolean(b)) => out.push_str(if *b { "true" } else { "false" }),
        JsonDom::Scalar(JsonScalar::String(s)) => quoted(out, s),
        JsonDom::Scalar(JsonScalar::DateTime(t)) => quoted(out, &format!("{t:.6}")),
        JsonDom::Scalar(JsonScalar::Opaque(o)) => quoted(out, &o.to_string()),
        JsonDom::Scalar(JsonScalar::Number(n)) => match n {
            JsonNumber::Decimal(d) => out.push_str(&d.to_string()),
            JsonNumber::Int(i) => out.push_str(&i.to_string()),
            JsonNumber::Uint(u) => out.push_str(&u.to_string()),
            // MySQL's JSON never holds NaN or infinities.
            JsonNumber::Double(d) => out.push_str(
                &serde_json::Number::from_f64(*d).map_or_else(|| "null".into(), |n| n.to_string()),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc() {
        let Value::DateTime(d) = timestamp(1_700_000_000, 250) else {
            panic!()
        };
        assert_eq!(d.to_string(), "2023-11-14 22:13:20.000250");
        let Value::DateTime(d) = timestamp(0, 0) else {
            panic!()
        };
        assert_eq!(d.to_string(), "0000-00-00 00:00:00");
    }

    #[test]
    fn inet6_like_mariadb() {
        let h = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        for (hex, text) in [
            ("00000000000000000000000000000000", "::"),
            ("00000000000000000000000000000001", "::1"),
            ("00000000000000000000000000000002", "::2"),
            ("00000000000000000000000001020304", "::1.2.3.4"),
            ("00010000000000000000000000000000", "1::"),
            ("00010000000000010000000000000001", "1:0:0:1::1"),
            ("00010000000000020000000000030004", "1::2:0:0:3:4"),
            ("FE800000000000000000000000010002", "fe80::1:2"),
            ("00000000000000000000FFFF00000000", "::ffff:0.0.0.0"),
            ("00000000000000000000000100000000", "::1:0:0"),
            ("00000000000000000000000000010000", "::0.1.0.0"),
            ("0000000000000000000000000000FFFF", "::ffff"),
            ("00000000000000000000000000000100", "::100"),
            ("00010002000300040005000600070008", "1:2:3:4:5:6:7:8"),
            ("00010000000100000001000000010000", "1::1:0:1:0:1:0"),
            ("00000000000100000000000100000000", "::1:0:0:1:0:0"),
        ] {
            assert_eq!(inet6_text(&h(hex)), text, "{hex}");
        }
    }

    #[test]
    fn unsigned_by_width() {
        let v = from_binlog(
            &BinlogValue::Value(mysql::Value::Int(-1)),
            T::MYSQL_TYPE_TINY,
            true,
        );
        assert_eq!(v, Ok(Value::UInt(255)));
        assert_eq!(binary_width("binary(16)"), Some(16));
        assert_eq!(binary_width("varbinary(16)"), None);
    }
}

/// One step of a JSON path: `.key` or `[index]`.
#[derive(Debug, PartialEq)]
enum Leg {
    Key(String),
    Index(usize),
}

/// Parses the simple paths MySQL writes in partial JSON updates: `$`, `.key`,
/// `."quoted key"`, `[n]`.
fn json_path(path: &str) -> Result<Vec<Leg>, String> {
    let bad = || format!("unsupported JSON path in a partial update: {path}");
    let mut rest = path.strip_prefix('$').ok_or_else(bad)?;
    let mut legs = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            legs.push(Leg::Index(r[..end].trim().parse().map_err(|_| bad())?));
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix(".\"") {
            let mut key = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => key.push(chars.next().ok_or_else(bad)?.1),
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => key.push(c),
                }
            }
            legs.push(Leg::Key(key));
            rest = &r[end.ok_or_else(bad)? + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            legs.push(Leg::Key(r[..end].to_string()));
            rest = &r[end..];
        } else {
            return Err(bad());
        }
    }
    Ok(legs)
}

/// The operations of a partial JSON update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonOp {
    Replace,
    Insert,
    Remove,
}

/// Applies one partial-update step to a document, as the server did.
pub fn apply_json_diff(
    doc: &mut serde_json::Value,
    path: &str,
    op: JsonOp,
    value: Option<serde_json::Value>,
) -> Result<(), String> {
    let legs = json_path(path)?;
    let Some((last, parents)) = legs.split_last() else {
        // The whole document.
        if op == JsonOp::Replace {
            *doc = value.ok_or("a JSON replace without a value")?;
            return Ok(());
        }
        return Err(format!("cannot {op:?} the whole JSON document"));
    };
    let mut at = doc;
    for leg in parents {
        at = match (leg, at) {
            (Leg::Key(k), serde_json::Value::Object(m)) => m.get_mut(k),
            (Leg::Index(i), serde_json::Value::Array(a)) => a.get_mut(*i),
            _ => None,
        }
        .ok_or_else(|| format!("partial JSON update: {path} does not exist in the row"))?;
    }
    match (last, at, op) {
        (Leg::Key(k), serde_json::Value::Object(m), JsonOp::Remove) => {
            m.remove(k);
        }
        (Leg::Key(k), serde_json::Value::Object(m), _) => {
            m.insert(k.clone(), value.ok_or("a JSON update without a value")?);
        }
        (Leg::Index(i), serde_json::Value::Array(a), JsonOp::Remove) if *i < a.len() => {
            a.remove(*i);
        }
        (Leg::Index(i), serde_json::Value::Array(a), JsonOp::Replace) if *i < a.len() => {
            a[*i] = value.ok_or("a JSON update without a value")?;
        }
        (Leg::Index(i), serde_json::Value::Array(a), JsonOp::Insert) => {
            let v = value.ok_or("a JSON update without a value")?;
            a.insert((*i).min(a.len()), v);
        }
        _ => {
            return Err(format!(
                "partial JSON update: cannot apply {op:?} at {path}"
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod json_diff_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_operations() {
        assert_eq!(
            json_path("$.a.\"b c\"[2]").unwrap(),
            vec![Leg::Key("a".into()), Leg::Key("b c".into()), Leg::Index(2)]
        );
        let mut d = json!({"a": {"b c": [1, 2, 3]}, "x": 1});
        apply_json_diff(
            &mut d,
            "$.a.\"b c\"[1]",
            JsonOp::Replace,
            Some(json!("two")),
        )
        .unwrap();
        apply_json_diff(&mut d, "$.a.\"b c\"[0]", JsonOp::Insert, Some(json!(0))).unwrap();
        apply_json_diff(&mut d, "$.x", JsonOp::Remove, None).unwrap();
        apply_json_diff(&mut d, "$.y", JsonOp::Insert, Some(json!(null))).unwrap();
        assert_eq!(d, json!({"a": {"b c": [0, 1, "two", 3]}, "y": null}));
        assert!(apply_json_diff(&mut d, "$.nope.z", JsonOp::Replace, Some(json!(1))).is_err());
        assert!(json_path("a.b").is_err());
    }

    /// A partial update rewrites the whole document from its before image: numbers keep
    /// the text MySQL gave them (a DECIMAL opaque's scale, integers beyond 64 bits),
    /// which reading them as doubles would change.
    #[test]
    fn numbers_keep_their_text_through_a_partial_update() {
        let before = br#"{"d":1.50,"i":7,"big":123456789012345678901234567890,"small":-0.000100}"#;
        let after = json_after_diffs(Some(&Value::Json(before.to_vec())), &[]).unwrap();
        assert_eq!(after, Value::Json(before.to_vec()));
    }
}
