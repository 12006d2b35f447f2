//! The typed value model.
//!
//! Strings are kept as the raw bytes stored in the column (in the column's own character
//! set): converting them would lose bytes that are not valid in another charset, and the
//! writers send them back unchanged. Temporal values keep every field, including zero dates
//! and fractional seconds, so that nothing is rounded on the way.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A DATE, DATETIME or TIMESTAMP value (TIMESTAMP in UTC). Zero dates are representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

impl DateTime {
    /// `0000-00-00 00:00:00`.
    pub const ZERO: DateTime = DateTime {
        year: 0,
        month: 0,
        day: 0,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };

    /// The UTC date and time `secs` seconds after the Unix epoch (proleptic Gregorian,
    /// Howard Hinnant's civil-from-days).
    pub fn from_unix(secs: i64, micros: u32) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        DateTime {
            year: year as u16,
            month: month as u8,
            day: day as u8,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            micros,
        }
    }
}

/// A TIME value: a signed duration of up to 838 hours with microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time {
    pub negative: bool,
    pub hours: u32,
    pub minutes: u8,
    pub seconds: u8,
    pub micros: u32,
}

/// One column value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    /// Signed integers of every width, and YEAR.
    Int(i64),
    /// Unsigned integers (BIGINT UNSIGNED needs the full u64 range), and ENUM (member
    /// index) and SET (member bits): as numbers they are exact, as text they are not (an
    /// empty member `''` is indistinguishable from the empty set).
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL in its exact text form, e.g. `-12.340`.
    Decimal(String),
    /// CHAR, VARCHAR, TEXT (raw bytes in the column charset), BINARY, VARBINARY, BLOB,
    /// GEOMETRY (SRID + WKB as the server stores it).
    Bytes(Vec<u8>),
    /// BIT(n), right-aligned.
    Bit(u64),
    /// JSON as UTF-8 text.
    Json(Vec<u8>),
    Date(DateTime),
    DateTime(DateTime),
    Time(Time),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Approximate number of bytes the value occupies on the wire; used for MB/s
    /// accounting and batch sizing.
    pub fn wire_size(&self) -> usize {
        match self {
            Value::Null => 1,
            Value::Int(_) | Value::UInt(_) | Value::Double(_) | Value::Bit(_) => 8,
            Value::Float(_) => 4,
            Value::Decimal(s) => s.len(),
            Value::Bytes(b) | Value::Json(b) => b.len(),
            Value::Date(_) => 4,
            Value::DateTime(_) => 8,
            Value::Time(_) => 8,
        }
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(
            f,
            "{sign}{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        )?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_display_keeps_fractions_and_sign() {
        let t = Time {
            negative: true,
            hours: 838,
            minutes: 59,
            seconds: 59,
            micros: 5,
        };
        assert_eq!(t.to_string(), "-838:59:59.000005");
        assert_eq!(DateTime::ZERO.to_string(), "0000-00-00 00:00:00");
        assert_eq!(
            DateTime::from_unix(1_700_000_000, 250).to_string(),
            "2023-11-14 22:13:20.000250"
        );
        assert_eq!(
            DateTime::from_unix(-1, 0).to_string(),
            "1969-12-31 23:59:59"
        );
    }
}
