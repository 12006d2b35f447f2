//! The full copy's reader: key-range chunks and streaming reads.
//!
//! A table is split into chunks `(lower, upper]` over its PRIMARY KEY (or NOT NULL UNIQUE
//! key). The first chunk has no lower bound and the last no upper bound, so the chunks
//! cover the whole key space whatever is inserted later. Single integer keys with a dense
//! range are split arithmetically (instant); other keys (composite, strings, sparse
//! integers) by walking the index. Rows are read with the binary protocol, so every value
//! arrives typed and exact, and streamed: memory does not grow with chunk size.

use crate::transform::mapping::TablePlan;
use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::{Deserialize, Serialize};
use tidemark_core::sql::quote_ident;
use tidemark_core::{ColumnDef, ColumnKind, DateTime, Row, Time, Value};

/// One key range of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u32,
    /// Exclusive lower bound; `None` = from the first row.
    pub lower: Option<Vec<Value>>,
    /// Inclusive upper bound; `None` = to the last row.
    pub upper: Option<Vec<Value>>,
}

fn key_columns(t: &TablePlan) -> Vec<String> {
    let def = t.def();
    def.key
        .iter()
        .flatten()
        .map(|&i| quote_ident(&def.columns[i].name))
        .collect()
}

/// The key columns with their placeholders, for bounds.
fn key_terms(t: &TablePlan) -> Vec<(String, &'static str)> {
    key_columns(t)
        .into_iter()
        .zip(key_placeholders(t))
        .collect()
}

/// The condition selecting a chunk's key range, over the source's key column names or,
/// with `target`, the destination's (the same range on both ends, for verification).
pub fn key_range(t: &TablePlan, chunk: &Chunk, target: bool) -> (Vec<String>, Vec<mysql::Value>) {
    let def = t.def();
    let names: Vec<String> = def
        .key
        .iter()
        .flatten()
        .map(|&i| {
            let name = &def.columns[i].name;
            quote_ident(if target { &t.columns[name] } else { name })
        })
        .collect();
    let terms: Vec<(String, &'static str)> = names.into_iter().zip(key_placeholders(t)).collect();
    let (mut conds, mut params) = (Vec::new(), Vec::new());
    if let Some(l) = &chunk.lower {
        let (c, p) = after(&terms, l);
        conds.push(c);
        params.extend(p);
    }
    if let Some(u) = &chunk.upper {
        let (c, p) = up_to(&terms, u);
        conds.push(c);
        params.extend(p);
    }
    (conds, params)
}

/// Whether values of the column travel as character strings: MariaDB's UUID, INET4 and
/// INET6 arrive in their text form, but a *binary* string (what a `SET NAMES binary`
/// session sends) is taken as their internal binary form, so values and key bounds must
/// be sent as utf8mb4 text.
pub fn text_typed(c: &ColumnDef) -> bool {
    c.kind == ColumnKind::Other
        && ["uuid", "inet4", "inet6"]
            .iter()
            .any(|t| c.column_type.eq_ignore_ascii_case(t))
}

/// Statement placeholders for the key columns (see [`text_typed`]).
fn key_placeholders(t: &TablePlan) -> Vec<&'static str> {
    let def = t.def();
    def.key
        .iter()
        .flatten()
        .map(|&i| {
            if text_typed(&def.columns[i]) {
                "CONVERT(? USING utf8mb4)"
            } else {
                "?"
            }
        })
        .collect()
}

/// The expression that reads a column. ENUM and SET are read as numbers (member index,
/// member bits): their text is ambiguous (an empty member `''` reads like the empty set or
/// the invalid-value index 0, a set holding `''` loses it), and their text does not sort
/// like the column (ORDER BY and `>` on a number follow the member order, `>` on text
/// does not). A number written back selects exactly the same members.
pub fn read_expr(c: &ColumnDef) -> String {
    let q = quote_ident(&c.name);
    match c.kind {
        ColumnKind::Enum | ColumnKind::Set => format!("{q}+0"),
        _ => q,
    }
}

/// Splits a table into chunks of about `chunk_rows` rows.
pub fn plan_chunks(c: &mut Conn, t: &TablePlan, chunk_rows: u64) -> Result<Vec<Chunk>> {
    let whole = vec![Chunk {
        index: 0,
        lower: None,
        upper: None,
    }];
    let def = t.def();
    let Some(key) = &def.key else {
        return Ok(whole);
    };
    if t.source.rows <= chunk_rows {
        return Ok(whole);
    }
    let from = def.name.quoted();
    let cols = key_columns(t);
    let pieces = t.source.rows.div_ceil(chunk_rows);
    if key.len() == 1 && def.columns[key[0]].kind.is_integer() {
        let unsigned = matches!(def.columns[key[0]].kind, ColumnKind::Int { unsigned: true });
        let q = format!(
            "SELECT CAST(MIN({0}) AS CHAR), CAST(MAX({0}) AS CHAR) FROM {from}",
            cols[0]
        );
        let bounds: Option<(Option<String>, Option<String>)> = c
            .query_first(&q)
            .with_context(|| format!("reading the key range of {}", def.name))?;
        if let Some((Some(min), Some(max))) = bounds {
            let (min, max) = (min.parse::<i128>()?, max.parse::<i128>()?);
            let span = max - min + 1;
            if span <= i128::from(t.source.rows) * 4 {
                let step = (span / i128::from(pieces)).max(1);
                let mut chunks = Vec::new();
                let mut lower: Option<Vec<Value>> = None;
                let mut b = min + step - 1;
                while b < max {
                    let v = if unsigned {
                        Value::UInt(b as u64)
                    } else {
                        Value::Int(b as i64)
                    };
                    let upper = Some(vec![v]);
                    chunks.push(Chunk {
                        index: chunks.len() as u32,
                        lower: lower.take(),
                        upper: upper.clone(),
                    });
                    lower = upper;
                    b += step;
                }
                chunks.push(Chunk {
                    index: chunks.len() as u32,
                    lower,
                    upper: None,
                });
                return Ok(chunks);
            }
        }
    }
    // Walk the index: each boundary is the key `chunk_rows` rows after the previous one.
    let order = cols.join(", ");
    let select: Vec<String> = key.iter().map(|&i| read_expr(&def.columns[i])).collect();
    let select = select.join(", ");
    let terms = key_terms(t);
    let mut chunks = Vec::new();
    let mut lower: Option<Vec<Value>> = None;
    loop {
        let (cond, params) = match &lower {
            Some(l) => {
                let (c, p) = after(&terms, l);
                (format!("WHERE {c}"), p)
            }
            None => (String::new(), Vec::new()),
        };
        let q = format!(
            "SELECT {select} FROM {from} {cond} ORDER BY {order} LIMIT 1 OFFSET {}",
            chunk_rows - 1
        );
        let row: Option<mysql::Row> = c
            .exec_first(&q, params)
            .with_context(|| format!("splitting {} into chunks", def.name))?;
        let Some(row) = row else { break };
        let kinds: Vec<ColumnKind> = key.iter().map(|&i| def.columns[i].kind).collect();
        let upper: Vec<Value> = row
            .unwrap()
            .into_iter()
            .zip(kinds)
            .map(|(v, k)| from_mysql(v, k))
            .collect();
        chunks.push(Chunk {
            index: chunks.len() as u32,
            lower: lower.take(),
            upper: Some(upper.clone()),
        });
        lower = Some(upper);
    }
    chunks.push(Chunk {
        index: chunks.len() as u32,
        lower,
        upper: None,
    });
    Ok(chunks)
}

/// `key > bound` for a (possibly composite) key, as ORs the range optimizer handles.
fn after(cols: &[(String, &str)], bound: &[Value]) -> (String, Vec<mysql::Value>) {
    compare(cols, bound, ">", false)
}

/// `key <= bound`.
fn up_to(cols: &[(String, &str)], bound: &[Value]) -> (String, Vec<mysql::Value>) {
    compare(cols, bound, "<", true)
}

/// `cols` are (column, placeholder) pairs.
fn compare(
    cols: &[(String, &str)],
    bound: &[Value],
    op: &str,
    inclusive: bool,
) -> (String, Vec<mysql::Value>) {
    let mut ors = Vec::new();
    let mut params = Vec::new();
    for i in 0..cols.len() {
        let mut ands = Vec::new();
        for j in 0..i {
            ands.push(format!("{} = {}", cols[j].0, cols[j].1));
            params.push(to_mysql(&bound[j]));
        }
        let last = i + 1 == cols.len();
        let o = if last && inclusive {
            format!("{op}=")
        } else {
            op.to_string()
        };
        ands.push(format!("{} {o} {}", cols[i].0, cols[i].1));
        params.push(to_mysql(&bound[i]));
        ors.push(format!("({})", ands.join(" AND ")));
    }
    (format!("({})", ors.join(" OR ")), params)
}

/// The SELECT for one chunk, with its parameters.
pub fn chunk_query(t: &TablePlan, chunk: &Chunk) -> (String, Vec<mysql::Value>) {
    let cols: Vec<String> = t.copied_columns().map(read_expr).collect();
    let key = key_terms(t);
    let mut conds = Vec::new();
    let mut params = Vec::new();
    if let Some(l) = &chunk.lower {
        let (c, p) = after(&key, l);
        conds.push(c);
        params.extend(p);
    }
    if let Some(u) = &chunk.upper {
        let (c, p) = up_to(&key, u);
        conds.push(c);
        params.extend(p);
    }
    if let Some(w) = &t.where_clause {
        conds.push(format!("({w})"));
    }
    let mut q = format!("SELECT {} FROM {}", cols.join(", "), t.def().name.quoted());
    if !conds.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conds.join(" AND "));
    }
    (q, params)
}

/// Streams the rows of one chunk into `sink`, which may stop early by returning an error.
pub fn read_chunk(
    c: &mut Conn,
    t: &TablePlan,
    chunk: &Chunk,
    mut sink: impl FnMut(Row) -> Result<()>,
) -> Result<()> {
    let (q, params) = chunk_query(t, chunk);
    let kinds: Vec<ColumnKind> = t.copied_columns().map(|c| c.kind).collect();
    let stmt = c
        .prep(&q)
        .with_context(|| format!("preparing the read of {}", t.def().name))?;
    let result = c
        .exec_iter(&stmt, params)
        .with_context(|| format!("reading chunk {} of {}", chunk.index, t.def().name))?;
    for row in result {
        let row =
            row.with_context(|| format!("reading chunk {} of {}", chunk.index, t.def().name))?;
        let values = row
            .unwrap()
            .into_iter()
            .zip(&kinds)
            .map(|(v, &k)| from_mysql(v, k))
            .collect();
        sink(values)?;
    }
    Ok(())
}

/// Opens a consistent snapshot on `c` and returns the binlog position it holds every
/// change up to, so the stream can replay a table's changes from exactly there: how a
/// table without a key is copied into a task with incremental migration (its rows
/// cannot be replayed idempotently, so none may be applied twice).
///
/// MariaDB reports the snapshot's own position (`binlog_snapshot_file/position`). MySQL
/// has no such status: there, with `lock_allowed`, `FLUSH TABLES t WITH READ LOCK` on a
/// second connection holds writes to `table` (only) while the snapshot is opened and the
/// position read, so no transaction touching it lands between the two; the lock lasts
/// milliseconds. `None` when neither is possible. The caller ends the snapshot with
/// COMMIT.
pub fn consistent_snapshot(
    c: &mut Conn,
    source: &crate::endpoint::Endpoint,
    table: &tidemark_core::TableName,
    lock_allowed: bool,
) -> Result<Option<tidemark_core::Position>> {
    use crate::source::binlog::client::{current_position, snapshot_position};
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .context("opening a consistent snapshot on the source")?;
    if let Some(at) = snapshot_position(c)? {
        return Ok(Some(at));
    }
    c.query_drop("COMMIT")?;
    if !lock_allowed {
        return Ok(None);
    }
    let mut lock = crate::connect::connect(source, crate::connect::Side::Source)?;
    // Writers queue behind a lock request that waits for a long transaction: give up
    // after 10 s rather than stall the application.
    lock.query_drop("SET SESSION lock_wait_timeout = 10")?;
    lock.query_drop(format!("FLUSH TABLES {} WITH READ LOCK", table.quoted()))
        .with_context(|| {
            format!("locking {table} for a moment to copy it at a known binlog position (needs RELOAD and LOCK TABLES; or set `full.keyless_table_lock = false`)")
        })?;
    let opened = c
        .query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .context("opening a consistent snapshot on the source")
        .and_then(|_| current_position(c));
    let unlocked = lock.query_drop("UNLOCK TABLES");
    let at = opened?;
    unlocked.context("releasing the copy's table lock")?;
    Ok(Some(tidemark_core::Position { gtid: None, ..at }))
}

/// Converts a binary-protocol value to the value model, using the column's kind.
pub fn from_mysql(v: mysql::Value, kind: ColumnKind) -> Value {
    use mysql::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Int(i) => match (kind, u64::try_from(i)) {
            (ColumnKind::Enum | ColumnKind::Set | ColumnKind::Int { unsigned: true }, Ok(u)) => {
                Value::UInt(u)
            }
            _ => Value::Int(i),
        },
        M::UInt(u) => Value::UInt(u),
        M::Float(f) => Value::Float(f),
        M::Double(d) => Value::Double(d),
        // Numbers and times as text: the text protocol, or a server (AnalyticDB's
        // stand-in, some proxies) that answers prepared statements with strings.
        M::Bytes(b) => match typed_text(&b, kind) {
            Some(v) => v,
            None => from_bytes(b, kind),
        },
        M::Date(year, month, day, hour, minute, second, micros) => {
            let d = DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micros,
            };
            if kind == ColumnKind::Date {
                Value::Date(d)
            } else {
                Value::DateTime(d)
            }
        }
        M::Time(negative, days, h, minutes, seconds, micros) => Value::Time(Time {
            negative,
            hours: days * 24 + u32::from(h),
            minutes,
            seconds,
            micros,
        }),
    }
}

/// Bytes as the kind's own value type (no parsing): DECIMAL text, JSON, BIT bytes.
fn from_bytes(b: Vec<u8>, kind: ColumnKind) -> Value {
    match kind {
        ColumnKind::Decimal => Value::Decimal(String::from_utf8_lossy(&b).into_owned()),
        ColumnKind::Json => Value::Json(b),
        ColumnKind::Bit => Value::Bit(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))),
        _ => Value::Bytes(b),
    }
}

/// A number or a time written as text, as the typed value; `None` when `kind` is not
/// one or the text does not read as one (then it is kept as it came).
fn typed_text(b: &[u8], kind: ColumnKind) -> Option<Value> {
    use crate::sink::readback::{parse_datetime, parse_time};
    // Per value of the full copy: text, JSON or DECIMAL bytes are never looked at.
    let numeric_or_time = matches!(
        kind,
        ColumnKind::Int { .. }
            | ColumnKind::Year
            | ColumnKind::Float
            | ColumnKind::Double
            | ColumnKind::Date
            | ColumnKind::DateTime
            | ColumnKind::Timestamp
            | ColumnKind::Time
    );
    if !numeric_or_time {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?.trim();
    Some(match kind {
        ColumnKind::Int { unsigned: true } => Value::UInt(s.parse().ok()?),
        ColumnKind::Int { .. } | ColumnKind::Year => Value::Int(s.parse().ok()?),
        ColumnKind::Float => Value::Float(s.parse().ok()?),
        ColumnKind::Double => Value::Double(s.parse().ok()?),
        ColumnKind::Date => Value::Date(parse_datetime(s)?),
        ColumnKind::DateTime | ColumnKind::Timestamp => Value::DateTime(parse_datetime(s)?),
        ColumnKind::Time => Value::Time(parse_time(s)?),
        _ => return None,
    })
}

/// Converts a value back to a statement parameter (chunk bounds).
pub fn to_mysql(v: &Value) -> mysql::Value {
    use mysql::Value as M;
    match v {
        Value::Null => M::NULL,
        Value::Int(i) => M::Int(*i),
        Value::UInt(u) | Value::Bit(u) => M::UInt(*u),
        Value::Float(f) => M::Float(*f),
        Value::Double(d) => M::Double(*d),
        Value::Decimal(s) => M::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) | Value::Json(b) => M::Bytes(b.clone()),
        Value::Date(d) | Value::DateTime(d) => {
            M::Date(d.year, d.month, d.day, d.hour, d.minute, d.second, d.micros)
        }
        Value::Time(t) => M::Time(
            t.negative,
            t.hours / 24,
            (t.hours % 24) as u8,
            t.minutes,
            t.seconds,
            t.micros,
        ),
    }
}

/// Every row of a table, ordered by its key (or unordered without one), read the way
/// the full copy reads them. For verification and tests; not for large tables.
pub fn read_table(c: &mut Conn, def: &tidemark_core::TableDef) -> Result<Vec<Row>> {
    let cols: Vec<String> = def.columns.iter().map(read_expr).collect();
    let mut q = format!("SELECT {} FROM {}", cols.join(", "), def.name.quoted());
    if let Some(key) = &def.key {
        let order: Vec<String> = key
            .iter()
            .map(|&i| quote_ident(&def.columns[i].name))
            .collect();
        q.push_str(" ORDER BY ");
        q.push_str(&order.join(", "));
    }
    let kinds: Vec<ColumnKind> = def.columns.iter().map(|c| c.kind).collect();
    // The binary protocol, as the full copy uses: values arrive typed.
    let rows: Vec<mysql::Row> = c
        .exec(&q, ())
        .with_context(|| format!("reading {}", def.name))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .zip(&kinds)
                .map(|(v, &k)| from_mysql(v, k))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::catalog::TableInfo;
    use std::collections::BTreeMap;
    use tidemark_core::{TableDef, TableName};

    #[test]
    fn numbers_and_times_sent_as_text_read_as_their_kind() {
        let b = |s: &str| mysql::Value::Bytes(s.as_bytes().to_vec());
        assert_eq!(
            from_mysql(b("-7"), ColumnKind::Int { unsigned: false }),
            Value::Int(-7)
        );
        assert_eq!(
            from_mysql(
                b("18446744073709551615"),
                ColumnKind::Int { unsigned: true }
            ),
            Value::UInt(u64::MAX)
        );
        assert_eq!(from_mysql(b("0.5"), ColumnKind::Double), Value::Double(0.5));
        assert!(matches!(
            from_mysql(b("2026-12-02 10:11:12.345"), ColumnKind::DateTime),
            Value::DateTime(d) if d.micros == 345_000 && d.second == 12
        ));
        // Text stays text, and what does not read as its kind is kept as it came.
        assert_eq!(
            from_mysql(b("42"), ColumnKind::Text),
            Value::Bytes(b"42".to_vec())
        );
        assert_eq!(
            from_mysql(b("x"), ColumnKind::Int { unsigned: false }),
            Value::Bytes(b"x".to_vec())
        );
        assert_eq!(
            from_mysql(b("1.50"), ColumnKind::Decimal),
            Value::Decimal("1.50".into())
        );
    }

    fn column(name: &str, kind: ColumnKind) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            column_type: String::new(),
            kind,
            nullable: false,
            generated: false,
            invisible: false,
            charset: None,
        }
    }

    #[test]
    fn enum_and_set_are_read_and_bounded_as_numbers() {
        let def = TableDef {
            name: TableName::new("d", "t"),
            columns: vec![
                column("e", ColumnKind::Enum),
                column("n", ColumnKind::Int { unsigned: false }),
                column("s", ColumnKind::Set),
            ],
            key: Some(vec![0, 1]),
            key_name: Some("PRIMARY".into()),
        };
        let t = TablePlan {
            source: TableInfo {
                def,
                rows: 0,
                bytes: 0,
                indexes: BTreeMap::new(),
                adb: None,
            },
            target: TableName::new("d", "t"),
            columns: [("e", "e"), ("n", "n"), ("s", "s")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            copied: vec![0, 1, 2],
            where_clause: None,
            whole_database: true,
            operations: Default::default(),
        };
        let chunk = Chunk {
            index: 1,
            lower: Some(vec![Value::UInt(2), Value::Int(7)]),
            upper: None,
        };
        let (q, params) = chunk_query(&t, &chunk);
        assert_eq!(
            q,
            "SELECT `e`+0, `n`, `s`+0 FROM `d`.`t` WHERE ((`e` > ?) OR (`e` = ? AND `n` > ?))"
        );
        assert_eq!(
            params,
            vec![
                mysql::Value::UInt(2),
                mysql::Value::UInt(2),
                mysql::Value::Int(7)
            ]
        );
        assert_eq!(
            from_mysql(mysql::Value::Int(3), ColumnKind::Set),
            Value::UInt(3)
        );
        let mut t = t;
        t.source.def.columns[1] = ColumnDef {
            column_type: "uuid".into(),
            ..column("n", ColumnKind::Other)
        };
        let (q, _) = chunk_query(&t, &chunk);
        assert!(
            q.ends_with("WHERE ((`e` > ?) OR (`e` = ? AND `n` > CONVERT(? USING utf8mb4)))"),
            "{q}"
        );
        assert_eq!(
            from_mysql(mysql::Value::Int(-3), ColumnKind::Int { unsigned: false }),
            Value::Int(-3)
        );
    }
}
