//! Verification of a destination that computes no checksums ([`RowStore`]): both sides
//! are read by the source's key-range chunks and every row is hashed here, the
//! source's row after the kind's type mapping ([`RowSide::stored`]), the destination's
//! as read back. Only (key, hash) pairs of a chunk are held. A key missing from one
//! chunk and extra in another (a text key whose collation orders rows differently on
//! the two ends) is matched up at the end of the table. Rows that differ are fetched
//! whole to name the columns; `--repair` deletes extra ones and then writes the
//! source's rows through the kind's writer. The report is the checksum path's.

use super::{literals, ChunkSync, Difference, NoSync, Shared, TableReport, CHUNK_ROWS};
use crate::sink::RowSide;
use crate::source::snapshot::{self, Chunk};
use crate::transform::mapping::TablePlan;
use anyhow::{anyhow, Context, Result};
use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::time::Instant;
use tidemark_core::sql::quote_ident;
use tidemark_core::{Row, Value};

/// Source rows converted per call of [`RowSide::stored`] (and their bytes at most).
const BATCH_ROWS: usize = 500;
const BATCH_BYTES: u64 = 16 << 20;

/// A value's bytes for hashing and key identity: a tag per variant, lengths before
/// contents, so no two different rows encode alike.
fn encode(v: &Value, out: &mut Vec<u8>) {
    let mut bytes = |tag: u8, b: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    match v {
        Value::Null => bytes(0, &[]),
        Value::Int(i) => bytes(1, &i.to_le_bytes()),
        Value::UInt(u) => bytes(2, &u.to_le_bytes()),
        Value::Float(f) => bytes(3, &f.to_bits().to_le_bytes()),
        Value::Double(d) => bytes(4, &d.to_bits().to_le_bytes()),
        Value::Decimal(s) => bytes(5, s.as_bytes()),
        Value::Bytes(b) => bytes(6, b),
        Value::Bit(b) => bytes(7, &b.to_le_bytes()),
        Value::Json(b) => bytes(8, b),
        Value::Date(d) | Value::DateTime(d) => bytes(
            if matches!(v, Value::Date(_)) { 9 } else { 10 },
            format!("{d}").as_bytes(),
        ),
        Value::Time(t) => bytes(11, format!("{t}").as_bytes()),
    }
}

fn key_id(row: &[Value], key: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    for &i in key {
        encode(&row[i], &mut out);
    }
    out
}

fn hash_row(row: &[Value]) -> u64 {
    let mut buf = Vec::new();
    for v in row {
        encode(v, &mut buf);
    }
    // Both ends are hashed in this process: a fixed-key SipHash is enough.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&buf);
    h.finish()
}

/// Positions of the key columns among the copied columns.
fn key_positions(t: &TablePlan) -> Result<Vec<usize>> {
    let def = t.def();
    def.key
        .as_ref()
        .ok_or_else(|| {
            anyhow!(
                "{} has no key: rows are compared by key on this destination",
                def.name
            )
        })?
        .iter()
        .map(|k| {
            t.copied.iter().position(|c| c == k).ok_or_else(|| {
                anyhow!(
                    "{}: key column {} is not copied",
                    def.name,
                    def.columns[*k].name
                )
            })
        })
        .collect()
}

/// Where a row seen on one end only is kept until the table's end: (key values,
/// hash), by key identity.
type Pending = BTreeMap<Vec<u8>, (Row, u64)>;

/// Compares one table, chunk by chunk, with `sync` around each.
pub(super) fn verify_table(
    src: &mut mysql::Conn,
    side: &mut dyn RowSide,
    t: &TablePlan,
    r: &mut TableReport,
    sync: &mut dyn ChunkSync,
) -> Result<()> {
    r.schema = side.table(t)?;
    let key = key_positions(t)?;
    let chunks = snapshot::plan_chunks(src, t, CHUNK_ROWS)?;
    r.chunks = chunks.len();
    // Source keys (source values) missing so far, destination keys (stored values)
    // extra so far, and source keys whose rows differ.
    let (mut missing, mut extra) = (Pending::new(), Pending::new());
    let mut differing: Vec<Row> = Vec::new();
    for chunk in &chunks {
        sync.before(src)?;
        let before = r.rows_compared;
        let compared = compare_chunk(src, side, t, &key, chunk, r);
        sync.after(src)?;
        let (m, e, d) = compared?;
        if !(m.is_empty() && e.is_empty() && d.is_empty()) {
            r.chunks_differing += 1;
        }
        missing.extend(m);
        extra.extend(e);
        differing.extend(d);
        sync.compared(&t.target.to_string(), r.rows_compared - before);
    }
    // A key on both ends but in different chunks.
    let both: Vec<Vec<u8>> = missing
        .keys()
        .filter(|k| extra.contains_key(*k))
        .cloned()
        .collect();
    for id in both {
        if let (Some((source_key, a)), Some((_, b))) = (missing.remove(&id), extra.remove(&id)) {
            if a != b {
                differing.push(source_key);
            }
        }
    }
    for (_, (k, _)) in missing {
        r.missing.push(Difference {
            key: literals(&k),
            values: k,
            columns: Vec::new(),
        });
    }
    for (_, (k, _)) in extra {
        r.extra.push(Difference {
            key: literals(&k),
            values: k,
            columns: Vec::new(),
        });
    }
    for k in differing {
        let columns = differing_columns(src, side, t, &key, &k)?;
        r.differing.push(Difference {
            key: literals(&k),
            values: k,
            columns,
        });
    }
    Ok(())
}

/// One chunk on both ends: (missing, extra, differing source keys).
fn compare_chunk(
    src: &mut mysql::Conn,
    side: &mut dyn RowSide,
    t: &TablePlan,
    key: &[usize],
    chunk: &Chunk,
    r: &mut TableReport,
) -> Result<(Pending, Pending, Vec<Row>)> {
    // Source: key identity → (source key, hash of the stored row).
    let mut a: HashMap<Vec<u8>, (Row, u64)> = HashMap::new();
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
    let (mut bytes, mut largest) = (0u64, 0u64);
    let mut convert = |batch: &mut Vec<Row>| -> Result<()> {
        let keys: Vec<Row> = batch
            .iter()
            .map(|row| key.iter().map(|&i| row[i].clone()).collect())
            .collect();
        side.stored(t, batch)?;
        for (row, k) in batch.drain(..).zip(keys) {
            a.insert(key_id(&row, key), (k, hash_row(&row)));
        }
        Ok(())
    };
    snapshot::read_chunk(src, t, chunk, |row| {
        let size = row.iter().map(|v| v.wire_size() as u64).sum::<u64>();
        largest = largest.max(size);
        bytes += size;
        batch.push(row);
        if batch.len() >= BATCH_ROWS || bytes >= BATCH_BYTES {
            convert(&mut batch)?;
            bytes = 0;
        }
        Ok(())
    })?;
    convert(&mut batch)?;
    r.rows_compared += a.len() as u64;
    let (mut extra, mut differing) = (Pending::new(), Vec::new());
    side.read(t, chunk, largest, &mut |rows| {
        for row in rows {
            let id = key_id(&row, key);
            let h = hash_row(&row);
            match a.remove(&id) {
                Some((k, hash)) if hash != h => differing.push(k),
                Some(_) => {}
                None => {
                    let k: Row = key.iter().map(|&i| row[i].clone()).collect();
                    extra.insert(id, (k, h));
                }
            }
        }
        Ok(())
    })?;
    let missing: Pending = a.into_iter().collect();
    Ok((missing, extra, differing))
}

/// One source row (copied columns, read as the snapshot reader reads them) by key.
fn fetch_source(src: &mut mysql::Conn, t: &TablePlan, key: &[Value]) -> Result<Option<Row>> {
    let cols: Vec<String> = t.copied_columns().map(snapshot::read_expr).collect();
    let conds: Vec<String> = t
        .def()
        .key
        .iter()
        .flatten()
        .map(|&i| format!("{} <=> ?", quote_ident(&t.def().columns[i].name)))
        .collect();
    let q = format!(
        "SELECT {} FROM {} WHERE {}",
        cols.join(", "),
        t.def().name.quoted(),
        conds.join(" AND ")
    );
    let params: Vec<mysql::Value> = key.iter().map(snapshot::to_mysql).collect();
    let kinds: Vec<_> = t.copied_columns().map(|c| c.kind).collect();
    let row: Option<mysql::Row> = src
        .exec_first(&q, params)
        .with_context(|| format!("reading a row of {}", t.def().name))?;
    Ok(row.map(|r| {
        r.unwrap()
            .into_iter()
            .zip(&kinds)
            .map(|(v, k)| snapshot::from_mysql(v, *k))
            .collect()
    }))
}

/// Destination names of the columns whose stored values differ, for a source key.
fn differing_columns(
    src: &mut mysql::Conn,
    side: &mut dyn RowSide,
    t: &TablePlan,
    key: &[usize],
    source_key: &[Value],
) -> Result<Vec<String>> {
    let Some(row) = fetch_source(src, t, source_key)? else {
        return Ok(Vec::new());
    };
    let mut rows = vec![row];
    side.stored(t, &mut rows)?;
    let Some(a) = rows.pop() else {
        return Ok(Vec::new());
    };
    let stored_key: Row = key.iter().map(|&i| a[i].clone()).collect();
    let Some(b) = side.fetch(t, &stored_key)? else {
        return Ok(Vec::new());
    };
    Ok(a.iter()
        .zip(&b)
        .zip(t.target_columns())
        .filter(|((x, y), _)| x != y)
        .map(|(_, n)| n)
        .collect())
}

/// Verifies (and with `--repair` or `--emit-sql`, fixes) one table.
pub(super) fn verify_one(
    src: &mut mysql::Conn,
    side: &mut dyn RowSide,
    t: &TablePlan,
    sh: &Shared<'_>,
) -> Result<TableReport> {
    let started = Instant::now();
    let mut r = TableReport {
        source: t.def().name.to_string(),
        target: t.target.to_string(),
        ..Default::default()
    };
    if let Err(e) = verify_table(src, side, t, &mut r, &mut NoSync(&sh.pace)) {
        if crate::task::is_stop(&e) {
            return Err(e);
        }
        r.problem = Some(format!("{e:#}"));
    }
    let rows_differ = !(r.missing.is_empty() && r.differing.is_empty() && r.extra.is_empty());
    if (sh.opts.repair || sh.sql_out.is_some()) && r.problem.is_none() && rows_differ {
        let mut rows = Vec::new();
        for d in r.missing.iter().chain(&r.differing) {
            rows.extend(fetch_source(src, t, &d.values)?);
        }
        // An extra row may share the source's key with a row the source has (a
        // destination key wider than the source's, as ADB's with a partition column):
        // its delete by that key takes the good row too, so the source's is written
        // again after the deletes.
        for d in &r.extra {
            rows.extend(fetch_source(src, t, &d.values)?);
        }
        let keys: Vec<Row> = r.extra.iter().map(|d| d.values.clone()).collect();
        let mut guard = sh
            .sql_out
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let out = guard.as_deref_mut().map(|w| w as &mut dyn std::io::Write);
        r.repaired = side
            .repair(t, &rows, &keys, out)
            .with_context(|| format!("repairing {}", r.target))?;
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_that_differ_hash_apart_and_keys_identify() {
        let a = vec![Value::Int(1), Value::Bytes(b"ab".to_vec()), Value::Null];
        let b = vec![
            Value::Int(1),
            Value::Bytes(b"a".to_vec()),
            Value::Bytes(b"b".to_vec()),
        ];
        assert_ne!(hash_row(&a), hash_row(&b));
        assert_eq!(hash_row(&a), hash_row(&a.clone()));
        // An empty string is not NULL, and 1 as Int is not 1 as UInt.
        assert_ne!(
            hash_row(&[Value::Bytes(Vec::new())]),
            hash_row(&[Value::Null])
        );
        assert_ne!(
            key_id(&[Value::Int(1)], &[0]),
            key_id(&[Value::UInt(1)], &[0])
        );
        assert_eq!(key_id(&a, &[0]), key_id(&b, &[0]));
    }
}
