//! Where binlog changes are written to MySQL.
//!
//! A batch of source transactions is first reduced to its net effect per row key
//! ([`Coalescer`]): the last after-image of each key, or its deletion. Keys are then
//! spread over the apply connections by hash, so two changes to one key always go to
//! the same connection, in source order, while different keys are written in parallel.
//! Each connection writes its share as multi-row `DELETE … WHERE key IN (…)` and
//! `REPLACE`/`INSERT` statements in one transaction. Tables without a key cannot be
//! coalesced or split: their changes are replayed one by one, in order, on the first
//! connection.

use crate::sink::mysql::writer::{
    changed_values, error_values_of, ErrorValues, InsertBuilder, InsertMode,
};
use crate::transform::mapping::TablePlan;
use mysql::prelude::Queryable;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use tidemark_core::sql::{push_ident, push_literal, quote_ident};
use tidemark_core::{Change, Row, Value};

/// Row changes up to which a batch is written by one connection.
const SMALL_BATCH: usize = 256;

/// The net effect of a batch on one table.
#[derive(Debug, Default)]
pub struct TableWork {
    /// Rows (copied columns, destination order) that replace whatever has their key.
    pub upserts: Vec<Row>,
    /// Rows that must not exist yet (exact mode): a duplicate key is an error. Tables
    /// with another unique key have none: a value a row takes may be freed by another
    /// row's change written after it, so their rows are all upserts.
    pub inserts: Vec<Row>,
    /// Key values (source key order) of rows to delete.
    pub deletes: Vec<Row>,
    /// Keyless tables: changes in source order.
    pub ordered: Vec<Change>,
}

impl TableWork {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty()
            && self.inserts.is_empty()
            && self.deletes.is_empty()
            && self.ordered.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.upserts.len() + self.inserts.len() + self.deletes.len() + self.ordered.len()
    }
}

/// One connection's share of a batch.
pub type Work = Vec<(Arc<TablePlan>, TableWork)>;

struct KeyState {
    /// The key's last after-image, or `None` once deleted.
    row: Option<Row>,
    /// The key's first change in the batch was an insert.
    inserted: bool,
    /// Hash of the key, which picks the connection that writes it.
    spread: u64,
}

/// Reduces a batch of changes to their net effect per key.
pub struct Coalescer {
    workers: usize,
    /// Insert rows whose key the batch creates with INSERT, not REPLACE.
    exact: bool,
    tables: Vec<TableState>,
    /// Tables of the batch by plan (`Arc` address: the plans are not replaced inside a
    /// batch, which is applied before any DDL).
    index: HashMap<usize, usize>,
    pub rows: usize,
    /// Approximate bytes of the row images pushed (for the MB/s throttle).
    pub bytes: u64,
    /// Every table of the batch has its keys independent of each other (see
    /// [`keys_independent`]).
    pub independent: bool,
}

struct TableState {
    plan: Arc<TablePlan>,
    /// See [`keys_independent`].
    independent: bool,
    keys: HashMap<Vec<u8>, usize>,
    states: Vec<(Vec<Value>, KeyState)>,
    ordered: Vec<Change>,
}

impl Coalescer {
    pub fn new(workers: usize, exact: bool) -> Coalescer {
        Coalescer {
            workers: workers.max(1),
            exact,
            tables: Vec::new(),
            index: HashMap::new(),
            rows: 0,
            bytes: 0,
            independent: true,
        }
    }

    /// Whether rows the batch inserts must not exist yet (see [`TableWork::inserts`]).
    pub fn set_exact(&mut self, exact: bool) {
        self.exact = exact;
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds one row change (rows in source column order) of the table `plan` maps.
    pub fn push(&mut self, plan: &Arc<TablePlan>, change: Change) {
        self.rows += 1;
        let size = |r: &Row| r.iter().map(|v| v.wire_size() as u64).sum::<u64>();
        self.bytes += match &change {
            Change::Insert { row, .. } | Change::Delete { before: row, .. } => size(row),
            Change::Update { before, after, .. } => size(before) + size(after),
            Change::Ddl { .. } | Change::Commit { .. } => 0,
        };
        let at = *self
            .index
            .entry(Arc::as_ptr(plan) as usize)
            .or_insert_with(|| {
                let independent = keys_independent(plan);
                self.independent &= independent;
                self.tables.push(TableState {
                    plan: plan.clone(),
                    independent,
                    keys: HashMap::new(),
                    states: Vec::new(),
                    ordered: Vec::new(),
                });
                self.tables.len() - 1
            });
        let t = &mut self.tables[at];
        // A DDL may have replaced the plan since this table was first seen in the batch;
        // the caller flushes around DDL, so the plan is the same here.
        let Some(key) = t.plan.def().key.clone() else {
            t.ordered.push(change);
            return;
        };
        let key_of = |row: &Row| -> Vec<Value> { key.iter().map(|&i| row[i].clone()).collect() };
        let mut set = |key: Vec<Value>, row: Option<Row>, insert: bool| {
            let id = key_id(&key);
            match t.keys.get(&id) {
                Some(&i) => t.states[i].1.row = row,
                None => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    id.hash(&mut h);
                    t.keys.insert(id, t.states.len());
                    t.states.push((
                        key,
                        KeyState {
                            row,
                            inserted: insert,
                            spread: h.finish(),
                        },
                    ));
                }
            }
        };
        match change {
            Change::Insert { row, .. } => set(key_of(&row), Some(row), true),
            Change::Delete { before, .. } => set(key_of(&before), None, false),
            Change::Update { before, after, .. } => {
                let (old, new) = (key_of(&before), key_of(&after));
                if old != new {
                    set(old, None, false);
                }
                set(new, Some(after), false);
            }
            Change::Ddl { .. } | Change::Commit { .. } => {}
        }
    }

    /// The batch split into one share per connection (by key hash). A small batch (a
    /// quiet source's few transactions) goes to one connection whole: one destination
    /// transaction instead of one per connection, and readers never see part of it.
    /// Batches are applied one after the other, so a key may change connection between
    /// batches without its changes being reordered.
    pub fn take(&mut self) -> Vec<Work> {
        let workers = if self.rows <= SMALL_BATCH {
            1
        } else {
            self.workers
        };
        let mut shares: Vec<Work> = (0..workers).map(|_| Vec::new()).collect();
        for t in self.tables.drain(..) {
            let mut per: Vec<TableWork> = (0..workers).map(|_| TableWork::default()).collect();
            // Every column copied, in order: the row is the destination's row as it is.
            let whole = t.plan.copied.iter().enumerate().all(|(at, &i)| at == i);
            for (key, state) in t.states {
                let w = (state.spread % workers as u64) as usize;
                match state.row {
                    Some(row) => {
                        let copied: Row = if whole && row.len() == t.plan.copied.len() {
                            row
                        } else {
                            t.plan.copied.iter().map(|&i| row[i].clone()).collect()
                        };
                        if self.exact && state.inserted && t.independent {
                            per[w].inserts.push(copied);
                        } else {
                            per[w].upserts.push(copied);
                        }
                    }
                    None => per[w].deletes.push(key),
                }
            }
            per[0].ordered = t.ordered;
            for (w, work) in per.into_iter().enumerate() {
                if !work.is_empty() {
                    shares[w].push((t.plan.clone(), work));
                }
            }
        }
        self.index.clear();
        self.rows = 0;
        self.bytes = 0;
        self.independent = true;
        shares
    }
}

/// Whether a key's changes depend on no other key's: the table has no unique index but
/// the one its rows are spread by (a keyless table's changes stay on one connection, in
/// order). Otherwise a change may free a unique value that another key's change, on
/// another connection, takes in a later batch; REPLACE would then delete the row that
/// took it if the later batch were written first. Unknown indexes count as unique ones.
fn keys_independent(plan: &TablePlan) -> bool {
    let def = plan.def();
    if def.key.is_none() {
        return true;
    }
    let indexes = &plan.source.indexes;
    !indexes.is_empty()
        && indexes
            .iter()
            .all(|(name, index)| !index.unique || def.key_name.as_deref() == Some(name.as_str()))
}

/// A key's identity within a batch: each value tagged with its kind, strings framed by
/// their length, so two ids are equal exactly when the values are (built without
/// formatting: this runs for every change).
fn key_id(key: &[Value]) -> Vec<u8> {
    let mut id = Vec::with_capacity(key.len() * 9);
    for v in key {
        match v {
            Value::Null => id.push(0),
            Value::Int(n) => push_fixed(&mut id, 1, &n.to_le_bytes()),
            Value::UInt(n) => push_fixed(&mut id, 2, &n.to_le_bytes()),
            Value::Float(f) => push_fixed(&mut id, 3, &f.to_le_bytes()),
            Value::Double(f) => push_fixed(&mut id, 4, &f.to_le_bytes()),
            Value::Bit(n) => push_fixed(&mut id, 5, &n.to_le_bytes()),
            Value::Decimal(t) => push_framed(&mut id, 6, t.as_bytes()),
            Value::Bytes(b) => push_framed(&mut id, 7, b),
            Value::Json(b) => push_framed(&mut id, 8, b),
            Value::Date(d) | Value::DateTime(d) => {
                push_fixed(
                    &mut id,
                    if matches!(v, Value::Date(_)) { 9 } else { 10 },
                    &d.year.to_le_bytes(),
                );
                id.extend_from_slice(&[d.month, d.day, d.hour, d.minute, d.second]);
                id.extend_from_slice(&d.micros.to_le_bytes());
            }
            Value::Time(t) => {
                push_fixed(&mut id, 11, &[u8::from(t.negative)]);
                id.extend_from_slice(&t.hours.to_le_bytes());
                id.extend_from_slice(&[t.minutes, t.seconds]);
                id.extend_from_slice(&t.micros.to_le_bytes());
            }
        }
    }
    id
}

/// A value of a fixed width for its tag.
fn push_fixed(id: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    id.push(tag);
    id.extend_from_slice(bytes);
}

/// A value of any length: the length first, so that it ends where it says.
fn push_framed(id: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    push_fixed(id, tag, &(bytes.len() as u64).to_le_bytes());
    id.extend_from_slice(bytes);
}

/// Writes the rows `part` of one share (by their place in the share: each table's
/// deletes, inserts, upserts, then keyless changes, table after table) in one
/// transaction. Returns the rows written. A share is written in parts when it would
/// exceed the destination's transaction size limit; keys are unique within a share,
/// so its parts may commit in any grouping.
///
/// `redo`: the share is written again after a lost connection, when its first attempt
/// may have committed (the answer to COMMIT never came): rows that must not exist yet
/// are then written with REPLACE too, so a committed first attempt is not reported as
/// a divergence.
pub fn apply(
    dst: &mut mysql::Conn,
    work: &Work,
    batch_bytes: usize,
    redo: bool,
    part: std::ops::Range<usize>,
) -> Result<u64, (mysql::Error, String)> {
    let run = |dst: &mut mysql::Conn, sql: String| -> Result<(), (mysql::Error, String)> {
        dst.query_drop(&sql).map_err(|e| (e, sql))
    };
    // A change whose value the destination had to alter fails the batch (the session is
    // not strict; see `writer::changed_values`), as the full copy fails its chunk.
    let checked = |dst: &mut mysql::Conn,
                   written: &[String],
                   (sql, error_values): (String, ErrorValues)|
     -> Result<(), (mysql::Error, String)> {
        dst.query_drop(&sql).map_err(|e| (e, sql.clone()))?;
        if dst.warnings() == 0 {
            return Ok(());
        }
        let serious =
            changed_values(dst, written, false, &error_values).map_err(|e| (e, sql.clone()))?;
        if serious.is_empty() {
            return Ok(());
        }
        let message = format!(
            "the destination changed or skipped values: {}; fix the destination table",
            serious
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        Err((
            mysql::Error::MySqlError(mysql::MySqlError {
                state: "01000".into(),
                code: 1265,
                message,
            }),
            sql,
        ))
    };
    run(dst, "START TRANSACTION".into())?;
    let mut rows = 0u64;
    let mut at = 0;
    for (plan, whole) in work {
        let n = whole.rows();
        let (lo, hi) = (part.start.max(at), part.end.min(at + n));
        let first = at;
        at += n;
        if lo >= hi {
            continue;
        }
        let (lo, hi) = (lo - first, hi - first);
        // The part's slice of each list, in the order above.
        let mut off = 0;
        let mut slice = |len: usize| {
            let r = lo.clamp(off, off + len) - off..hi.clamp(off, off + len) - off;
            off += len;
            r
        };
        let (d, i, u, o) = (
            slice(whole.deletes.len()),
            slice(whole.inserts.len()),
            slice(whole.upserts.len()),
            slice(whole.ordered.len()),
        );
        let w = Slices {
            deletes: &whole.deletes[d],
            inserts: &whole.inserts[i],
            upserts: &whole.upserts[u],
            ordered: &whole.ordered[o],
        };
        let written = plan.target_columns();
        for chunk in w.deletes.chunks(500) {
            run(dst, delete_keys(plan, chunk))?;
        }
        let insert = if redo {
            InsertMode::Replace
        } else {
            InsertMode::Insert
        };
        for (mode, list) in [(insert, w.inserts), (InsertMode::Replace, w.upserts)] {
            let mut b = InsertBuilder::new(plan, mode, 1_000, batch_bytes);
            for row in list {
                if b.push(row) {
                    let built = b.take();
                    checked(dst, &written, (built.body, built.error_values))?;
                }
            }
            if !b.is_empty() {
                let built = b.take();
                checked(dst, &written, (built.body, built.error_values))?;
            }
        }
        for change in w.ordered {
            for statement in keyless_statements(plan, change) {
                checked(dst, &written, statement)?;
            }
        }
        rows += (hi - lo) as u64;
    }
    run(dst, "COMMIT".into())?;
    Ok(rows)
}

/// A part of one table's [`TableWork`].
struct Slices<'a> {
    deletes: &'a [Row],
    inserts: &'a [Row],
    upserts: &'a [Row],
    ordered: &'a [Change],
}

/// `DELETE FROM t WHERE k IN (…)` or `WHERE (k1, k2) IN ((…), …)`.
fn delete_keys(plan: &TablePlan, keys: &[Row]) -> String {
    let def = plan.def();
    let tuple = |items: Vec<String>| {
        if items.len() > 1 {
            format!("({})", items.join(", "))
        } else {
            items.concat()
        }
    };
    let columns = def
        .key
        .iter()
        .flatten()
        .map(|&i| quote_ident(&plan.columns[&def.columns[i].name]))
        .collect();
    let literal = |v: &Value| {
        let mut s = String::new();
        push_literal(&mut s, v);
        s
    };
    let list: Vec<String> = keys
        .iter()
        .map(|k| tuple(k.iter().map(literal).collect()))
        .collect();
    format!(
        "DELETE FROM {} WHERE {} IN ({})",
        plan.target.quoted(),
        tuple(columns),
        list.join(",")
    )
}

/// Statements for one change of a keyless table: rows are matched on every copied
/// column (NULL-safe), one row at a time.
fn keyless_statements(plan: &TablePlan, change: &Change) -> Vec<(String, ErrorValues)> {
    let target = plan.target.quoted();
    let cols = plan.target_columns();
    let project = |row: &Row| -> Row { plan.copied.iter().map(|&i| row[i].clone()).collect() };
    let matching = |row: &Row| {
        let mut w = String::new();
        for (i, (c, v)) in cols.iter().zip(project(row)).enumerate() {
            if i > 0 {
                w.push_str(" AND ");
            }
            push_ident(&mut w, c);
            w.push_str(" <=> ");
            push_literal(&mut w, &v);
        }
        w
    };
    let insert = |row: &Row| {
        let mut b = InsertBuilder::new(plan, InsertMode::Insert, 1, usize::MAX);
        b.push(&project(row));
        let built = b.take();
        (built.body, built.error_values)
    };
    match change {
        Change::Insert { row, .. } => vec![insert(row)],
        Change::Delete { before, .. } => vec![(
            format!("DELETE FROM {target} WHERE {} LIMIT 1", matching(before)),
            ErrorValues::new(),
        )],
        Change::Update { before, after, .. } => {
            let mut set = String::new();
            for (i, (c, v)) in cols.iter().zip(project(after)).enumerate() {
                if i > 0 {
                    set.push_str(", ");
                }
                push_ident(&mut set, c);
                set.push_str(" = ");
                push_literal(&mut set, &v);
            }
            vec![(
                format!(
                    "UPDATE {target} SET {set} WHERE {} LIMIT 1",
                    matching(before)
                ),
                error_values_of(plan, &project(after)),
            )]
        }
        Change::Ddl { .. } | Change::Commit { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::key_id;
    use tidemark_core::Value;

    #[test]
    fn key_ids_are_equal_exactly_when_the_values_are() {
        let bytes = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        assert_eq!(
            key_id(&[Value::Int(7), bytes("a")]),
            key_id(&[Value::Int(7), bytes("a")])
        );
        // Framing: the boundary between two strings is part of the identity.
        assert_ne!(
            key_id(&[bytes("a"), bytes("bc")]),
            key_id(&[bytes("ab"), bytes("c")])
        );
        assert_ne!(key_id(&[Value::Null]), key_id(&[bytes("")]));
        assert_ne!(key_id(&[Value::Int(1)]), key_id(&[Value::Int(256)]));
    }
}
