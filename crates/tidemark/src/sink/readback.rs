//! What the [`RowStore`](super::RowStore)s of SQL engines over the MySQL protocol
//! (Lindorm's `lindorm/verify.rs`, ADB's `adb/verify.rs`) share: key conditions built
//! from a key's column names and values, `SELECT` of a table's copied columns streamed
//! in batches through the kind's value reader, `DELETE` by key, and repair statements
//! run or written to `--emit-sql`'s file. What differs stays in the kind: how a value is
//! spelled as a literal, how a value read back becomes the stored value, which key
//! comparisons the engine takes, its read limits and its writer.

use crate::transform::mapping::TablePlan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use tidemark_core::sql::push_ident;
use tidemark_core::{Row, Value};

/// Rows handed to verify at once.
pub const BATCH: usize = 500;

/// How a comparison over a composite key is spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyForm {
    /// `(a, b) > (1, 2)`: row constructors (Lindorm SQL's WHERE takes them).
    Tuple,
    /// `a > 1 OR (a = 1 AND b > 2)`: plain comparisons only, for engines whose
    /// documentation does not promise row constructors (ADB).
    Expanded,
}

/// Writes the literal of the `n`th key column's value.
pub type PushValue<'a> = dyn FnMut(&mut String, usize, &Value) -> Result<()> + 'a;

/// `key op values` for `op` in `<`, `<=`, `>`, `>=`, `=`: one column alone, several as
/// `form` says. `names` and `values` are in key order.
pub fn key_compare(
    names: &[String],
    values: &[Value],
    op: &str,
    form: KeyForm,
    push: &mut PushValue<'_>,
) -> Result<String> {
    if op == "=" {
        return key_equals(names, values, push);
    }
    let mut out = String::new();
    if names.len() == 1 || form == KeyForm::Tuple {
        let tuple = names.len() > 1;
        let mut vals = String::new();
        if tuple {
            out.push('(');
        }
        for (n, (name, v)) in names.iter().zip(values).enumerate() {
            if n > 0 {
                out.push_str(", ");
                vals.push_str(", ");
            }
            push_ident(&mut out, name);
            push(&mut vals, n, v)?;
        }
        if tuple {
            out.push_str(&format!(") {op} ({vals})"));
        } else {
            out.push_str(&format!(" {op} {vals}"));
        }
        return Ok(out);
    }
    // (a op' x) OR (a = x AND b op' y) OR … (a = x AND … AND z op w): op' is the strict
    // form of op on every column but the last.
    let strict = op.trim_end_matches('=');
    for last in 0..names.len() {
        if last > 0 {
            out.push_str(" OR ");
        }
        out.push('(');
        for (n, (name, v)) in names.iter().zip(values).enumerate().take(last + 1) {
            if n > 0 {
                out.push_str(" AND ");
            }
            push_ident(&mut out, name);
            let this = if n < last {
                "="
            } else if last + 1 == names.len() {
                op
            } else {
                strict
            };
            out.push_str(&format!(" {this} "));
            push(&mut out, n, v)?;
        }
        out.push(')');
    }
    Ok(format!("({out})"))
}

/// `a = x AND b = y`.
pub fn key_equals(names: &[String], values: &[Value], push: &mut PushValue<'_>) -> Result<String> {
    let mut out = String::new();
    for (n, (name, v)) in names.iter().zip(values).enumerate() {
        if n > 0 {
            out.push_str(" AND ");
        }
        push_ident(&mut out, name);
        out.push_str(" = ");
        push(&mut out, n, v)?;
    }
    Ok(out)
}

/// `SELECT <copied columns> FROM t [WHERE cond] [LIMIT n]`.
pub fn select_sql(t: &TablePlan, cond: &str, limit: Option<usize>) -> String {
    let mut sql = String::from("SELECT ");
    for (i, name) in t.target_columns().iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        push_ident(&mut sql, name);
    }
    sql.push_str(" FROM ");
    sql.push_str(&t.target.quoted());
    if !cond.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(cond);
    }
    if let Some(n) = limit {
        sql.push_str(&format!(" LIMIT {n}"));
    }
    sql
}

/// Runs `sql` (text protocol, or server-side prepared with `binary`) and hands its rows
/// to `out` in batches of [`BATCH`], each value turned by `read(column, value)`.
pub fn select_rows(
    conn: &mut mysql::Conn,
    engine: &str,
    t: &TablePlan,
    sql: &str,
    binary: bool,
    read: &mut dyn FnMut(usize, mysql::Value) -> Result<Value>,
    out: &mut dyn FnMut(Vec<Row>) -> Result<()>,
) -> Result<()> {
    let context = || format!("reading {} on {engine}: {sql}", t.target);
    let mut batch = Vec::with_capacity(BATCH);
    let mut take = |row: mysql::Row, batch: &mut Vec<Row>| -> Result<()> {
        let values = row
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, v)| read(i, v))
            .collect::<Result<Row>>()
            .with_context(|| format!("reading {} on {engine}", t.target))?;
        batch.push(values);
        if batch.len() >= BATCH {
            out(std::mem::replace(batch, Vec::with_capacity(BATCH)))?;
        }
        Ok(())
    };
    if binary {
        for row in conn.exec_iter(sql, ()).with_context(context)? {
            take(row.with_context(context)?, &mut batch)?;
        }
    } else {
        for row in conn.query_iter(sql).with_context(context)? {
            take(row.with_context(context)?, &mut batch)?;
        }
    }
    if !batch.is_empty() {
        out(batch)?;
    }
    Ok(())
}

/// `DELETE FROM t WHERE <key = values>`.
pub fn delete_sql(t: &TablePlan, key_equals: &str) -> String {
    format!("DELETE FROM {} WHERE {key_equals}", t.target.quoted())
}

/// Repair statements: written to `--emit-sql`'s file (under a comment naming the
/// table), or run one by one (the engines have no transactions to rely on; each
/// statement is a whole-row write or a delete by key, so running them again is safe).
pub fn apply(
    conn: &mut mysql::Conn,
    engine: &str,
    t: &TablePlan,
    statements: &[String],
    sql_out: Option<&mut dyn std::io::Write>,
) -> Result<()> {
    match sql_out {
        Some(w) => {
            writeln!(w, "-- {} → {}", t.def().name, t.target)?;
            for s in statements {
                writeln!(w, "{s};")?;
            }
        }
        None => {
            for s in statements {
                let head: String = s.chars().take(160).collect();
                conn.query_drop(s)
                    .with_context(|| format!("repairing {} on {engine}: {head}", t.target))?;
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DD[ HH:MM:SS[.frac]]`, as engines answer a date or date-time in text.
pub fn parse_datetime(s: &str) -> Option<tidemark_core::DateTime> {
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, ""));
    let mut d = date.splitn(3, '-').map(|x| x.parse::<u32>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let t = if time.is_empty() {
        parse_time("00:00:00")?
    } else {
        parse_time(time)?
    };
    if t.negative || t.hours > 23 {
        return None;
    }
    Some(tidemark_core::DateTime {
        year: u16::try_from(year).ok()?,
        month: u8::try_from(month).ok()?,
        day: u8::try_from(day).ok()?,
        hour: t.hours as u8,
        minute: t.minutes,
        second: t.seconds,
        micros: t.micros,
    })
}

/// `[-]H…H:MM:SS[.frac]`.
pub fn parse_time(s: &str) -> Option<tidemark_core::Time> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut p = whole.splitn(3, ':').map(|x| x.parse::<u32>().ok());
    let (hours, minutes, seconds) = (p.next()??, p.next()??, p.next()??);
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(tidemark_core::Time {
        negative,
        hours,
        minutes: u8::try_from(minutes).ok().filter(|m| *m < 60)?,
        seconds: u8::try_from(seconds).ok().filter(|m| *m < 60)?,
        micros,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_core::sql::push_literal;

    fn lit(out: &mut String, _: usize, v: &Value) -> Result<()> {
        push_literal(out, v);
        Ok(())
    }

    #[test]
    fn composite_keys_are_compared_as_tuples_or_spelled_out() {
        let names = vec!["a".to_string(), "b".to_string()];
        let values = vec![Value::Int(1), Value::Bytes(b"x".to_vec())];
        assert_eq!(
            key_compare(&names, &values, ">", KeyForm::Tuple, &mut lit).unwrap(),
            "(`a`, `b`) > (1, 'x')"
        );
        assert_eq!(
            key_compare(&names, &values, "<=", KeyForm::Expanded, &mut lit).unwrap(),
            "((`a` < 1) OR (`a` = 1 AND `b` <= 'x'))"
        );
        assert_eq!(
            key_compare(&names[..1], &values[..1], ">", KeyForm::Expanded, &mut lit).unwrap(),
            "`a` > 1"
        );
        assert_eq!(
            key_compare(&names, &values, "=", KeyForm::Expanded, &mut lit).unwrap(),
            "`a` = 1 AND `b` = 'x'"
        );
    }
}
