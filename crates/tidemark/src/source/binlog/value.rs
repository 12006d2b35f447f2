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
            return Err("a partial JSON update (binlog_row_value_options = PARTIAL_JSON) is not supported yet; set binlog_row_value_options = '' on the source".into())
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

/// Adjusts a decoded value to the column's definition.
pub fn conform(v: Value, ty: T, col: &ColumnDef) -> Value {
    match (v, &col.kind) {
        (Value::Int(i), ColumnKind::Int { unsigned: true }) => Value::UInt(i as u64 & mask(ty)),
        (Value::Bytes(b), ColumnKind::Json) => Value::Json(b),
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
        return Value::DateTime(DateTime {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        });
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Value::DateTime(DateTime {
        year: year as u16,
        month: month as u8,
        day: day as u8,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        micros,
    })
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// MySQL's binary JSON as JSON text.
fn json_text(j: &jsonb::Value<'_>) -> Result<String, String> {
    let v = serde_json::Value::try_from(j.clone())
        .map_err(|e| format!("a binary JSON value that cannot be read: {e}"))?;
    Ok(v.to_string())
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
