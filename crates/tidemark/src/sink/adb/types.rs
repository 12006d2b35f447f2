//! MySQL → AnalyticDB for MySQL 3.0 column types, and the values that change on the way.
//!
//! ADB has no UNSIGNED, MEDIUMINT, BIT, YEAR, ENUM or SET, one VARCHAR for every text
//! type, one BINARY for every byte-string type, TIME only within one day and DATETIME in
//! milliseconds (its "Basic data types" page). The reference's mapping (BIT → VARCHAR,
//! TINYINT UNSIGNED → SMALLINT, INT UNSIGNED → BIGINT, BIGINT UNSIGNED → DECIMAL(20,0),
//! INT AUTO_INCREMENT → BIGINT) is kept; the rest is ours, documented in
//! `docs/task-file.md` ("adb-mysql"). Every rule that can change a value gives a note,
//! which the precheck shows per column as a warning; a column ADB cannot hold at all is a
//! precheck failure.

use tidemark_core::{ColumnDef, ColumnKind, Value};

/// How a source column lands in ADB.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The column type in ADB's DDL.
    pub adb_type: String,
    /// The column must be created nullable (values become NULL on the way).
    pub force_nullable: bool,
    /// Why a value can change, for the precheck.
    pub note: Option<String>,
    pub convert: Convert,
}

/// What is done to a value before it is written.
#[derive(Clone, Debug, PartialEq)]
pub enum Convert {
    Keep,
    /// ENUM member index → member text (index 0, the error value, → '').
    EnumText(Vec<Vec<u8>>),
    /// SET member bits → the members joined by commas.
    SetText(Vec<Vec<u8>>),
    /// BIT → its number in decimal digits.
    BitText,
    /// DATE, DATETIME, TIMESTAMP: zero and out-of-range dates → NULL, fractions → ms.
    Temporal,
    /// TIME: fractions → ms (a value outside the day is refused by ADB: the write fails).
    Time,
}

/// Why a column cannot be migrated (a precheck failure).
pub type Refusal = String;

/// ENUM or SET members from `enum('a','b''c')`.
pub fn members(column_type: &str) -> Vec<Vec<u8>> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type.as_bytes()[open + 1..];
    let mut out = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\'' {
            i += 1;
            continue;
        }
        let mut m = Vec::new();
        i += 1;
        while i < body.len() {
            if body[i] == b'\'' {
                if body.get(i + 1) == Some(&b'\'') {
                    m.push(b'\'');
                    i += 2;
                    continue;
                }
                i += 1;
                break;
            }
            if body[i] == b'\\' && i + 1 < body.len() {
                m.push(body[i + 1]);
                i += 2;
                continue;
            }
            m.push(body[i]);
            i += 1;
        }
        out.push(m);
    }
    out
}

/// `decimal(10,2)` → (10, 2); `datetime(6)` → (6, 0).
fn numbers(column_type: &str) -> (Option<u32>, Option<u32>) {
    let Some(open) = column_type.find('(') else {
        return (None, None);
    };
    let Some(close) = column_type[open..].find(')') else {
        return (None, None);
    };
    let mut it = column_type[open + 1..open + close]
        .split(',')
        .map(|s| s.trim().parse::<u32>().ok());
    (it.next().flatten(), it.next().flatten())
}

/// The ADB column for a column of an ADB source: the same type, unchanged.
pub fn map_adb(shown: &crate::source::adb::ddl::Column) -> Result<Mapped, Refusal> {
    let base = shown.base();
    if matches!(base.as_str(), "ARRAY" | "MAP") {
        return Err(format!(
            "{}: ARRAY and MAP columns are not migrated yet; leave the column out of the selection",
            shown.ty
        ));
    }
    Ok(Mapped {
        adb_type: shown.ty.to_ascii_uppercase(),
        force_nullable: false,
        note: None,
        convert: Convert::Keep,
    })
}

/// The ADB column for a source column. `auto_increment`: the source column is
/// AUTO_INCREMENT (ADB takes it only on BIGINT).
pub fn map(c: &ColumnDef, auto_increment: bool) -> Result<Mapped, Refusal> {
    let ty = c.column_type.to_ascii_lowercase();
    let base = ty.split(['(', ' ']).next().unwrap_or("").to_string();
    let keep = |t: &str| Mapped {
        adb_type: t.to_string(),
        force_nullable: false,
        note: None,
        convert: Convert::Keep,
    };
    let noted = |t: &str, convert: Convert, note: String| Mapped {
        adb_type: t.to_string(),
        force_nullable: false,
        note: Some(note),
        convert,
    };
    let unsigned = ty.contains("unsigned");
    let m = match c.kind {
        ColumnKind::Int { .. } if auto_increment => keep("BIGINT"),
        ColumnKind::Int { .. } => match (base.as_str(), unsigned) {
            // An ADB source's own type (its definitions spell ADB's types).
            ("boolean" | "bool", _) => keep("BOOLEAN"),
            ("tinyint", false) => keep("TINYINT"),
            ("tinyint", true) | ("smallint", false) => keep("SMALLINT"),
            ("smallint", true) | ("mediumint", _) | ("int" | "integer", false) => keep("INT"),
            ("int" | "integer", true) | ("bigint", false) => keep("BIGINT"),
            ("bigint", true) => keep("DECIMAL(20,0)"),
            _ => return Err(format!("integer type {ty} is not known")),
        },
        ColumnKind::Year => keep("SMALLINT"),
        ColumnKind::Float => keep("FLOAT"),
        ColumnKind::Double => keep("DOUBLE"),
        ColumnKind::Decimal => {
            let (p, s) = numbers(&ty);
            let (p, s) = (p.unwrap_or(10), s.unwrap_or(0));
            if p > 38 {
                return Err(format!(
                    "{ty}: ADB's DECIMAL holds at most 38 digits; narrow the column on the source or leave it out of the selection"
                ));
            }
            keep(&format!("DECIMAL({p},{s})"))
        }
        ColumnKind::Text => {
            if base == "longtext" {
                noted(
                    "VARCHAR",
                    Convert::Keep,
                    "LONGTEXT → VARCHAR: ADB holds at most 16 MB per value (and per statement); a longer value fails the copy".into(),
                )
            } else {
                keep("VARCHAR")
            }
        }
        ColumnKind::Binary => {
            if base == "longblob" {
                noted(
                    "BINARY",
                    Convert::Keep,
                    "LONGBLOB → BINARY: ADB holds at most 16 MB per statement; a longer value fails the copy".into(),
                )
            } else {
                keep("BINARY")
            }
        }
        ColumnKind::Enum => noted(
            "VARCHAR",
            Convert::EnumText(members(&c.column_type)),
            "ENUM → VARCHAR: the member's text is stored (the invalid-value index 0 as '')".into(),
        ),
        ColumnKind::Set => noted(
            "VARCHAR",
            Convert::SetText(members(&c.column_type)),
            "SET → VARCHAR: the members are stored as their comma-separated text".into(),
        ),
        ColumnKind::Bit => noted(
            "VARCHAR",
            Convert::BitText,
            "BIT → VARCHAR: the value is stored as its number in decimal digits (b'101' as '5')".into(),
        ),
        ColumnKind::Json => keep("JSON"),
        ColumnKind::Date | ColumnKind::DateTime | ColumnKind::Timestamp => {
            let name = match c.kind {
                ColumnKind::Date => "DATE",
                ColumnKind::DateTime => "DATETIME",
                _ => "TIMESTAMP",
            };
            let fsp = numbers(&ty).0.unwrap_or(0);
            let mut note = format!(
                "{name}: zero dates ('0000-00-00') and dates outside 0001–9999 become NULL, as in ADB (the column is created nullable)"
            );
            if fsp > 3 {
                note.push_str("; fractions of a second beyond milliseconds are cut");
            }
            Mapped {
                adb_type: name.to_string(),
                force_nullable: true,
                note: Some(note),
                convert: Convert::Temporal,
            }
        }
        ColumnKind::Time => {
            let fsp = numbers(&ty).0.unwrap_or(0);
            let mut note = "TIME: ADB holds 00:00:00–23:59:59 only; a negative or longer value fails the copy naming its table".to_string();
            if fsp > 3 {
                note.push_str("; fractions of a second beyond milliseconds are cut");
            }
            noted("TIME", Convert::Time, note)
        }
        ColumnKind::Geometry => {
            return Err(format!(
                "{ty}: geometry columns are not migrated to ADB (it has POINT only, written differently); leave the column out of the selection"
            ))
        }
        ColumnKind::Other => {
            if ["uuid", "inet4", "inet6"].contains(&base.as_str()) {
                noted(
                    "VARCHAR",
                    Convert::Keep,
                    format!("{base} → VARCHAR: stored as its text"),
                )
            } else {
                return Err(format!(
                    "{ty}: ADB has no such type; leave the column out of the selection"
                ));
            }
        }
    };
    Ok(m)
}

/// Applies a column's conversion to a value.
pub fn convert(how: &Convert, v: Value) -> Value {
    match (how, v) {
        (Convert::Keep, v) | (_, v @ Value::Null) => v,
        (Convert::EnumText(names), Value::UInt(i)) => {
            let text = (i as usize)
                .checked_sub(1)
                .and_then(|i| names.get(i))
                .cloned()
                .unwrap_or_default();
            Value::Bytes(text)
        }
        (Convert::SetText(names), Value::UInt(bits)) => {
            let mut out = Vec::new();
            for (i, n) in names.iter().enumerate().take(64) {
                if bits & (1u64 << i) != 0 {
                    if !out.is_empty() {
                        out.push(b',');
                    }
                    out.extend_from_slice(n);
                }
            }
            Value::Bytes(out)
        }
        (Convert::BitText, Value::Bit(b)) => Value::Bytes(b.to_string().into_bytes()),
        (Convert::Temporal, Value::Date(d)) => {
            if valid(&d) {
                Value::Date(d)
            } else {
                Value::Null
            }
        }
        (Convert::Temporal, Value::DateTime(mut d)) => {
            if valid(&d) {
                d.micros -= d.micros % 1000;
                Value::DateTime(d)
            } else {
                Value::Null
            }
        }
        (Convert::Time, Value::Time(mut t)) => {
            t.micros -= t.micros % 1000;
            Value::Time(t)
        }
        (_, v) => v,
    }
}

fn valid(d: &tidemark_core::DateTime) -> bool {
    d.year >= 1 && d.month >= 1 && d.day >= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: &str, kind: ColumnKind) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            column_type: ty.into(),
            kind,
            nullable: true,
            generated: false,
            invisible: false,
            charset: None,
        }
    }

    #[test]
    fn the_reference_mapping_is_kept() {
        let int = |u| ColumnKind::Int { unsigned: u };
        for (ty, kind, want) in [
            ("bit(3)", ColumnKind::Bit, "VARCHAR"),
            ("tinyint(3) unsigned", int(true), "SMALLINT"),
            ("int(10) unsigned", int(true), "BIGINT"),
            ("bigint(20) unsigned", int(true), "DECIMAL(20,0)"),
            ("mediumint(8) unsigned", int(true), "INT"),
            ("year(4)", ColumnKind::Year, "SMALLINT"),
            ("enum('a','b')", ColumnKind::Enum, "VARCHAR"),
            ("mediumtext", ColumnKind::Text, "VARCHAR"),
            ("blob", ColumnKind::Binary, "BINARY"),
            ("decimal(12,3)", ColumnKind::Decimal, "DECIMAL(12,3)"),
        ] {
            assert_eq!(map(&col(ty, kind), false).unwrap().adb_type, want, "{ty}");
        }
        assert_eq!(
            map(&col("int(11)", int(false)), true).unwrap().adb_type,
            "BIGINT"
        );
        assert!(map(&col("decimal(65,2)", ColumnKind::Decimal), false).is_err());
        assert!(map(&col("polygon", ColumnKind::Geometry), false).is_err());
    }

    #[test]
    fn values_change_as_documented() {
        let e = Convert::EnumText(members("enum('a','it''s','')"));
        assert_eq!(convert(&e, Value::UInt(2)), Value::Bytes(b"it's".to_vec()));
        assert_eq!(convert(&e, Value::UInt(0)), Value::Bytes(Vec::new()));
        let s = Convert::SetText(members("set('x','y','z')"));
        assert_eq!(convert(&s, Value::UInt(5)), Value::Bytes(b"x,z".to_vec()));
        assert_eq!(
            convert(&Convert::BitText, Value::Bit(5)),
            Value::Bytes(b"5".to_vec())
        );
        let zero = tidemark_core::DateTime::ZERO;
        assert_eq!(convert(&Convert::Temporal, Value::Date(zero)), Value::Null);
        let mut d = zero;
        (d.year, d.month, d.day, d.micros) = (2024, 1, 2, 123_456);
        let Value::DateTime(out) = convert(&Convert::Temporal, Value::DateTime(d)) else {
            panic!()
        };
        assert_eq!(out.micros, 123_000);
    }
}
