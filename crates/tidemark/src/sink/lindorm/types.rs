//! MySQL → Lindorm: the type mapping (for `create_tables` and for comparing existing
//! tables), values as Lindorm SQL literals, and Lindorm table definitions as `SHOW
//! CREATE TABLE` prints them. The mapping table is repeated in `docs/task-file.md`.

use crate::sink::readback::{parse_datetime, parse_time};
use anyhow::{bail, Result};
use std::fmt::Write;
use tidemark_core::schema::{ColumnDef, ColumnKind};
use tidemark_core::sql::{push_ident, take_ident};
use tidemark_core::Value;

/// The arguments in parentheses of a MySQL column type (`decimal(10,2)` → `[10, 2]`).
fn numbers(column_type: &str) -> Vec<u32> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let close = column_type[open..]
        .find(')')
        .map_or(column_type.len(), |c| open + c);
    column_type[open + 1..close]
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// DECIMAL precision and scale of a MySQL column (`decimal` alone is `(10,0)`).
pub fn decimal_of(column_type: &str) -> (u32, u32) {
    match numbers(column_type).as_slice() {
        [p, s, ..] => (*p, *s),
        [p] => (*p, 0),
        [] => (10, 0),
    }
}

/// Fractional-second digits of a MySQL temporal column (`datetime(6)` → 6).
pub fn fsp_of(column_type: &str) -> u32 {
    numbers(column_type).first().copied().unwrap_or(0)
}

/// Fractional-second digits LindormTable keeps (TIMESTAMP and TIME are milliseconds).
pub const TARGET_FSP: u32 = 3;

/// The Lindorm type a MySQL column is created with, or why it cannot be migrated.
pub fn lindorm_type(c: &ColumnDef) -> Result<String, String> {
    let ty = c.column_type.to_ascii_lowercase();
    let base = ty.split(['(', ' ']).next().unwrap_or("");
    Ok(match c.kind {
        ColumnKind::Int { unsigned } => match (base, unsigned) {
            ("tinyint", false) => "TINYINT",
            ("tinyint", true) | ("smallint", false) => "SMALLINT",
            ("smallint", true) | ("mediumint", _) | ("int" | "integer", false) => "INTEGER",
            ("int" | "integer", true) | ("bigint", false) => "BIGINT",
            ("bigint", true) => "BIGINT UNSIGNED",
            _ => "BIGINT",
        }
        .into(),
        ColumnKind::Float => "FLOAT".into(),
        ColumnKind::Double => "DOUBLE".into(),
        ColumnKind::Decimal => {
            let (p, s) = decimal_of(&ty);
            if p > 38 {
                return Err(format!(
                    "DECIMAL({p},{s}) has more than the 38 digits LindormTable's DECIMAL holds"
                ));
            }
            format!("DECIMAL({p},{s})")
        }
        ColumnKind::Text | ColumnKind::Enum | ColumnKind::Set | ColumnKind::Json => {
            "VARCHAR".into()
        }
        ColumnKind::Binary | ColumnKind::Geometry | ColumnKind::Other => "VARBINARY".into(),
        ColumnKind::Bit => {
            return Err(
                "BIT has no LindormTable type (the engine's migration service refuses it too)"
                    .into(),
            )
        }
        ColumnKind::Date => "DATE".into(),
        ColumnKind::DateTime | ColumnKind::Timestamp => "TIMESTAMP".into(),
        ColumnKind::Time => "TIME".into(),
        ColumnKind::Year => "SMALLINT".into(),
    })
}

/// Whether an existing Lindorm column of type `have` takes the values of a source column
/// mapped to `want` (string and binary lengths are not compared: Lindorm does not
/// enforce them).
pub fn compatible(want: &str, have: &str) -> bool {
    let norm = |s: &str| s.to_ascii_uppercase().replace(' ', "");
    let (want, have) = (norm(want), norm(have));
    let base = |s: &str| s.split('(').next().unwrap_or("").to_string();
    match base(&want).as_str() {
        "VARCHAR" => ["VARCHAR", "CHAR"].contains(&base(&have).as_str()),
        "VARBINARY" => ["VARBINARY", "BINARY"].contains(&base(&have).as_str()),
        _ => want == have,
    }
}

/// A column of an existing Lindorm table.
#[derive(Clone, Debug, PartialEq)]
pub struct LindormColumn {
    pub name: String,
    pub ty: String,
}

/// An existing Lindorm table, read from `SHOW CREATE TABLE`.
#[derive(Clone, Debug, PartialEq)]
pub struct LindormTable {
    pub columns: Vec<LindormColumn>,
    pub key: Vec<String>,
}

impl LindormTable {
    pub fn column(&self, name: &str) -> Option<&LindormColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Parses `CREATE TABLE `t` (`c` TYPE [NOT NULL], …, PRIMARY KEY(`c`[ DESC], …))
    /// [WITH (…)]`.
    pub fn parse(ddl: &str) -> Result<LindormTable> {
        let open = ddl
            .find('(')
            .ok_or_else(|| anyhow::anyhow!("not a CREATE TABLE: {ddl}"))?;
        let mut t = LindormTable {
            columns: Vec::new(),
            key: Vec::new(),
        };
        for part in split_top(&ddl[open + 1..]) {
            let part = part.trim();
            let upper = part.to_ascii_uppercase();
            if upper.starts_with("PRIMARY KEY") {
                let mut rest = &part[part.find('(').map_or(part.len(), |i| i + 1)..];
                while let Some(i) = rest.find('`') {
                    let Some((name, after)) = take_ident(&rest[i..]) else {
                        break;
                    };
                    t.key.push(name);
                    rest = after;
                }
            } else if let Some((name, rest)) = take_ident(part) {
                let mut ty = rest.trim().to_string();
                if ty.to_ascii_uppercase().ends_with("NOT NULL") {
                    ty.truncate(ty.len() - "NOT NULL".len());
                }
                t.columns.push(LindormColumn {
                    name,
                    ty: ty.trim().to_string(),
                });
            }
        }
        if t.key.is_empty() {
            bail!("no PRIMARY KEY in the table definition: {ddl}");
        }
        Ok(t)
    }
}

/// The comma-separated parts inside the outermost parentheses (stops at its close).
fn split_top(s: &str) -> Vec<String> {
    let (mut depth, mut parts, mut cur) = (0i32, Vec::new(), String::new());
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match quote {
            Some(q) => {
                cur.push(ch);
                if ch == q {
                    quote = None;
                }
                continue;
            }
            None if ch == '`' || ch == '\'' => {
                quote = Some(ch);
                cur.push(ch);
                continue;
            }
            None => {}
        }
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch);
            }
            ')' if depth == 0 => break,
            ')' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

/// `CREATE TABLE IF NOT EXISTS` of the Lindorm table for `columns` (name, source column)
/// keyed on `key` (destination names).
pub fn create_table(
    target: &tidemark_core::TableName,
    columns: &[(String, &ColumnDef)],
    key: &[String],
) -> Result<String, String> {
    let mut sql = String::from("CREATE TABLE IF NOT EXISTS ");
    sql.push_str(&target.quoted());
    sql.push_str(" (");
    for (i, (name, c)) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_ident(&mut sql, name);
        sql.push(' ');
        sql.push_str(&lindorm_type(c).map_err(|e| format!("column {name}: {e}"))?);
        if key.contains(name) {
            sql.push_str(" NOT NULL");
        }
    }
    sql.push_str(", PRIMARY KEY(");
    for (i, k) in key.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_ident(&mut sql, k);
    }
    sql.push_str("))");
    Ok(sql)
}

/// Members of an ENUM or SET column type, in order (`enum('a','b')` → `[a, b]`).
pub fn members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let (mut out, mut cur, mut inside) = (Vec::new(), String::new(), false);
    let mut chars = column_type[open + 1..].chars().peekable();
    while let Some(ch) = chars.next() {
        if inside {
            if ch == '\'' {
                if chars.peek() == Some(&'\'') {
                    cur.push('\'');
                    chars.next();
                } else {
                    inside = false;
                    out.push(std::mem::take(&mut cur));
                }
            } else if ch == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else {
                cur.push(ch);
            }
        } else if ch == '\'' {
            inside = true;
        } else if ch == ')' {
            break;
        }
    }
    out
}

/// The text of an ENUM (member index) or SET (member bits) value.
fn member_text(c: &ColumnDef, u: u64) -> String {
    let m = members(&c.column_type);
    if c.kind == ColumnKind::Enum {
        return match (u as usize).checked_sub(1).and_then(|i| m.get(i)) {
            Some(s) => s.clone(),
            None => String::new(),
        };
    }
    let s: Vec<&str> = m
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && u & (1u64 << i) != 0)
        .map(|(_, s)| s.as_str())
        .collect();
    s.join(",")
}

/// Source text bytes as a Rust string: UTF-8 charsets as they are, latin1 (MySQL's
/// cp1252 differs only in 0x80–0x9F, read here as ISO-8859-1) widened.
fn text_of(c: &ColumnDef, b: &[u8]) -> Result<String> {
    let cs = c
        .charset
        .as_deref()
        .unwrap_or("utf8mb4")
        .to_ascii_lowercase();
    if cs == "latin1" {
        return Ok(b.iter().map(|&x| x as char).collect());
    }
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => bail!(
            "column {} holds a value that is not UTF-8 (character set {cs}); LindormTable stores UTF-8 only",
            c.name
        ),
    }
}

fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

fn push_hex(out: &mut String, b: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2 + 3);
    out.push_str("X'");
    for x in b {
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 15) as usize] as char);
    }
    out.push('\'');
}

/// Appends `v` (a value of source column `c`) as the Lindorm literal of its mapped type;
/// returns the bytes it stands for (for the row limits).
/// A DATE, DATETIME or TIME as a Lindorm literal, fractions in milliseconds (truncated).
fn push_temporal(out: &mut String, v: &Value) {
    let _ = match v {
        Value::Date(d) => write!(out, "'{:04}-{:02}-{:02}'", d.year, d.month, d.day),
        Value::DateTime(d) => write!(
            out,
            "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
            d.year,
            d.month,
            d.day,
            d.hour,
            d.minute,
            d.second,
            d.micros / 1000
        ),
        Value::Time(t) => write!(
            out,
            "'{}{:02}:{:02}:{:02}.{:03}'",
            if t.negative { "-" } else { "" },
            t.hours,
            t.minutes,
            t.seconds,
            t.micros / 1000
        ),
        _ => Ok(()),
    };
}

pub fn push_value(out: &mut String, c: &ColumnDef, v: &Value) -> Result<usize> {
    Ok(match v {
        Value::Null => {
            out.push_str("NULL");
            0
        }
        Value::Int(i) => {
            let _ = write!(out, "{i}");
            8
        }
        Value::UInt(u) => match c.kind {
            ColumnKind::Enum | ColumnKind::Set => {
                let s = member_text(c, *u);
                push_str(out, &s);
                s.len()
            }
            _ => {
                let _ = write!(out, "{u}");
                8
            }
        },
        Value::Bit(b) => {
            let _ = write!(out, "{b}");
            8
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
            4
        }
        Value::Double(d) if d.is_finite() => {
            // Lindorm reads DOUBLE literals only in scientific notation; `{:e}` is the
            // shortest text that reads back to the same value.
            let _ = write!(out, "{d:e}");
            8
        }
        Value::Float(_) | Value::Double(_) => {
            bail!("column {}: NaN or infinity cannot be written", c.name)
        }
        Value::Decimal(s) => {
            out.push_str(s);
            s.len()
        }
        Value::Bytes(b) => match c.kind {
            ColumnKind::Text => {
                let s = text_of(c, b)?;
                push_str(out, &s);
                s.len()
            }
            _ => {
                push_hex(out, b);
                b.len()
            }
        },
        Value::Json(b) => {
            let s = String::from_utf8_lossy(b);
            push_str(out, &s);
            s.len()
        }
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => {
            // DATETIME and TIME in milliseconds, truncated: what the engine's TIMESTAMP
            // keeps (the precheck warns about finer source columns).
            push_temporal(out, v);
            8
        }
    })
}

/// The value LindormTable holds for source value `v` of column `c` (the mapping
/// `push_value` writes): what `tidemark verify` compares with the value read back by
/// [`read_stored`]. Integers are `Int` (`UInt` for BIGINT UNSIGNED), text and
/// ENUM/SET/JSON are UTF-8 `Bytes`, an empty VARBINARY outside the key is NULL,
/// TIMESTAMP and TIME keep milliseconds.
pub fn stored(c: &ColumnDef, v: Value, key: bool) -> Result<Value> {
    let ms = |micros: u32| micros / 1000 * 1000;
    Ok(match (c.kind, v) {
        (_, Value::Null) => Value::Null,
        (ColumnKind::Bit, _) => bail!(
            "column {}: BIT has no LindormTable type, so its values cannot be compared",
            c.name
        ),
        (ColumnKind::Enum | ColumnKind::Set, Value::UInt(u)) => {
            Value::Bytes(member_text(c, u).into_bytes())
        }
        (ColumnKind::Int { unsigned: true }, Value::UInt(u)) => {
            if lindorm_type(c).as_deref() == Ok("BIGINT UNSIGNED") {
                Value::UInt(u)
            } else {
                Value::Int(i64::try_from(u).unwrap_or(i64::MAX))
            }
        }
        (_, Value::UInt(u)) => Value::Int(i64::try_from(u).unwrap_or(i64::MAX)),
        (ColumnKind::Text, Value::Bytes(b)) => Value::Bytes(text_of(c, &b)?.into_bytes()),
        (_, Value::Json(b)) => Value::Bytes(String::from_utf8_lossy(&b).into_owned().into_bytes()),
        (ColumnKind::Json, Value::Bytes(b)) => {
            Value::Bytes(String::from_utf8_lossy(&b).into_owned().into_bytes())
        }
        (_, Value::Bytes(b)) if b.is_empty() && !key => Value::Null,
        (_, Value::DateTime(mut d)) => {
            d.micros = ms(d.micros);
            Value::DateTime(d)
        }
        (_, Value::Time(mut t)) => {
            t.micros = ms(t.micros);
            Value::Time(t)
        }
        (_, Value::Bit(b)) => Value::Int(i64::try_from(b).unwrap_or(i64::MAX)),
        (_, v) => v,
    })
}

/// The base of a Lindorm type as `SHOW CREATE TABLE` prints it (`DECIMAL(12,2)` →
/// `DECIMAL`, `BIGINT UNSIGNED` kept whole).
fn base_of(ty: &str) -> String {
    let up = ty.trim().to_ascii_uppercase();
    if up.replace(' ', "") == "BIGINTUNSIGNED" {
        return "BIGINT UNSIGNED".into();
    }
    up.split(['(', ' ']).next().unwrap_or("").to_string()
}

/// A value of a Lindorm column of type `ty` as a client reads it (text, or typed), as
/// the value [`stored`] makes of the source's.
pub fn read_stored(ty: &str, v: mysql::Value) -> Result<Value> {
    use mysql::Value as M;
    let base = base_of(ty);
    let text = match v {
        M::NULL => return Ok(Value::Null),
        M::Bytes(b) => b,
        M::Int(i) => i.to_string().into_bytes(),
        M::UInt(u) => u.to_string().into_bytes(),
        M::Float(f) => f.to_string().into_bytes(),
        M::Double(d) => d.to_string().into_bytes(),
        other => other.as_sql(true).trim_matches('\'').as_bytes().to_vec(),
    };
    let s = || std::str::from_utf8(&text).map(str::trim);
    let bad = || {
        anyhow::anyhow!(
            "Lindorm returned {:?} for a {ty} column",
            String::from_utf8_lossy(&text)
        )
    };
    Ok(match base.as_str() {
        "BOOLEAN" => match s().map_err(|_| bad())?.to_ascii_lowercase().as_str() {
            "true" => Value::Int(1),
            "false" => Value::Int(0),
            n => Value::Int(n.parse().map_err(|_| bad())?),
        },
        "TINYINT" | "SMALLINT" | "INTEGER" | "INT" | "BIGINT" => {
            Value::Int(s().map_err(|_| bad())?.parse().map_err(|_| bad())?)
        }
        "BIGINT UNSIGNED" => Value::UInt(s().map_err(|_| bad())?.parse().map_err(|_| bad())?),
        "FLOAT" => Value::Float(s().map_err(|_| bad())?.parse().map_err(|_| bad())?),
        "DOUBLE" => Value::Double(s().map_err(|_| bad())?.parse().map_err(|_| bad())?),
        "DECIMAL" => Value::Decimal(s().map_err(|_| bad())?.to_string()),
        "DATE" => Value::Date(parse_datetime(s().map_err(|_| bad())?).ok_or_else(bad)?),
        "TIMESTAMP" => Value::DateTime(parse_datetime(s().map_err(|_| bad())?).ok_or_else(bad)?),
        "TIME" => Value::Time(parse_time(s().map_err(|_| bad())?).ok_or_else(bad)?),
        _ => Value::Bytes(text),
    })
}

/// Appends a stored value (as [`stored`] and [`read_stored`] give them) as the literal
/// of a Lindorm column of type `ty`: for a key read back from the engine.
pub fn push_stored(out: &mut String, ty: &str, v: &Value) -> Result<()> {
    let base = base_of(ty);
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) | Value::Bit(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
        }
        Value::Double(d) if d.is_finite() => {
            let _ = write!(out, "{d:e}");
        }
        Value::Float(_) | Value::Double(_) => bail!("NaN or infinity cannot be written"),
        Value::Decimal(s) => out.push_str(s),
        Value::Bytes(b) | Value::Json(b) => match base.as_str() {
            "VARCHAR" | "CHAR" => match std::str::from_utf8(b) {
                Ok(s) => push_str(out, s),
                Err(_) => bail!("a {ty} value that is not UTF-8"),
            },
            _ => push_hex(out, b),
        },
        Value::Date(_) | Value::DateTime(_) | Value::Time(_) => push_temporal(out, v),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: &str) -> ColumnDef {
        let data = ty.split(['(', ' ']).next().unwrap_or("");
        ColumnDef {
            name: "c".into(),
            column_type: ty.into(),
            kind: ColumnKind::from_data_type(data, ty),
            nullable: true,
            generated: false,
            invisible: false,
            charset: None,
        }
    }

    #[test]
    fn the_mapping_widens_unsigned_and_refuses_what_lindorm_lacks() {
        let m = |t: &str| lindorm_type(&col(t));
        assert_eq!(m("tinyint(4)").unwrap(), "TINYINT");
        assert_eq!(m("tinyint(3) unsigned").unwrap(), "SMALLINT");
        assert_eq!(m("mediumint(9)").unwrap(), "INTEGER");
        assert_eq!(m("int(10) unsigned").unwrap(), "BIGINT");
        assert_eq!(m("bigint(20) unsigned").unwrap(), "BIGINT UNSIGNED");
        assert_eq!(m("decimal(20,6)").unwrap(), "DECIMAL(20,6)");
        assert_eq!(m("longtext").unwrap(), "VARCHAR");
        assert_eq!(m("enum('a','b')").unwrap(), "VARCHAR");
        assert_eq!(m("json").unwrap(), "VARCHAR");
        assert_eq!(m("datetime(6)").unwrap(), "TIMESTAMP");
        assert_eq!(m("year(4)").unwrap(), "SMALLINT");
        assert_eq!(m("blob").unwrap(), "VARBINARY");
        assert!(m("bit(3)").unwrap_err().contains("BIT"));
        assert!(m("decimal(40,2)").unwrap_err().contains("38"));
    }

    #[test]
    fn values_are_lindorm_literals() {
        let mut s = String::new();
        push_value(&mut s, &col("double"), &Value::Double(1.5)).unwrap();
        assert_eq!(s, "1.5e0");
        s.clear();
        push_value(&mut s, &col("varchar(5)"), &Value::Bytes(b"a'b\\".to_vec())).unwrap();
        assert_eq!(s, "'a''b\\\\'");
        s.clear();
        push_value(&mut s, &col("set('x','y','z')"), &Value::UInt(5)).unwrap();
        assert_eq!(s, "'x,z'");
        s.clear();
        push_value(&mut s, &col("enum('x','it''s')"), &Value::UInt(2)).unwrap();
        assert_eq!(s, "'it''s'");
    }

    #[test]
    fn show_create_table_is_read_back() {
        let t = LindormTable::parse(
            "CREATE TABLE `t` (\n  `id` INTEGER NOT NULL,\n  `d` DECIMAL(10,2),\n  `v` VARCHAR,\n  PRIMARY KEY(`id`, `d` DESC)\n) WITH (CONSISTENCY='strong')",
        )
        .unwrap();
        assert_eq!(t.key, vec!["id", "d"]);
        assert_eq!(t.column("d").unwrap().ty, "DECIMAL(10,2)");
        assert_eq!(t.column("id").unwrap().ty, "INTEGER");
        assert_eq!(t.columns.len(), 3);
        assert!(compatible("VARCHAR", "CHAR(10)"));
        assert!(!compatible("DECIMAL(10,2)", "DECIMAL(12,2)"));
    }
}
