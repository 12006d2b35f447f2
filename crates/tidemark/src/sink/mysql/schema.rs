//! Schema migration to MySQL: the source's own `SHOW CREATE ...` text, rewritten for the
//! destination.
//!
//! Rewriting works on backtick-quoted identifiers, the form servers always print:
//! databases, tables and columns are renamed per the plan, unselected columns and the
//! indexes over them are dropped, `DEFINER=` clauses are removed and views, procedures and
//! functions run with `SQL SECURITY INVOKER`, as the reference service does.

use crate::transform::mapping::{Plan, TablePlan};
use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use std::collections::BTreeMap;
use tidemark_core::sql::{push_ident, qualified, quote_ident, take_ident};
use tidemark_core::TableName;

/// A CREATE TABLE for the destination, and what was left for later.
#[derive(Debug, Default)]
pub struct TableDdl {
    pub create: String,
    /// `ADD ...` clauses of secondary indexes deferred until after the load.
    pub deferred_indexes: Vec<String>,
    /// Notes for the operator (dropped indexes or foreign keys, and why).
    pub notes: Vec<String>,
}

/// Replaces every backtick identifier for which `f` returns a new name, outside string
/// literals.
fn map_idents(text: &str, mut f: impl FnMut(&str, &str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(['`', '\'', '"']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with('`') {
            match take_ident(tail) {
                Some((name, after)) => {
                    match f(&name, after) {
                        Some(new) => push_ident(&mut out, &new),
                        None => out.push_str(&tail[..tail.len() - after.len()]),
                    }
                    rest = after;
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            // Skip a string literal, honouring backslash escapes and doubled quotes.
            let q = tail.as_bytes()[0];
            let bytes = tail.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i] == q {
                    if bytes.get(i + 1) == Some(&q) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            let end = i.min(tail.len());
            out.push_str(&tail[..end]);
            rest = &tail[end..];
        }
    }
    out.push_str(rest);
    out
}

fn rename_columns(text: &str, columns: &BTreeMap<String, String>) -> String {
    map_idents(text, |name, _| {
        columns
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    })
}

/// Renames `` `db`.`table` `` references (and `` `db`. `` prefixes) per the plan.
pub fn rename_qualified(text: &str, plan: &Plan) -> String {
    rename_qualified_with(text, plan, &|_, _| None)
}

/// As [`rename_qualified`]; `other(db, name)` names the target of any other identifier:
/// one qualified by a selected database (`db` set) that is not a table of the plan, or one
/// without a qualifier.
fn rename_qualified_with(
    text: &str,
    plan: &Plan,
    other: &dyn Fn(Option<&str>, &str) -> Option<String>,
) -> String {
    let mut pending_db: Option<String> = None;
    map_idents(text, |name, after| {
        let previous_db = pending_db.take();
        if after.starts_with('.') {
            if let Some(target) = plan.target_database(name) {
                pending_db = Some(name.to_string());
                return Some(target.to_string());
            }
        }
        match previous_db {
            Some(db) => plan
                .target_table(&TableName::new(db.as_str(), name))
                .map(|t| t.table.clone())
                .or_else(|| other(Some(&db), name)),
            None => other(None, name),
        }
    })
}

/// The `name_case` policy the plan applied, seen from (source, target) name pairs: views
/// are not in the plan, so a view that selects from another view finds that view's
/// destination name this way.
fn inferred_case<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> fn(&str) -> String {
    for (s, t) in pairs {
        if s != t && t == s.to_lowercase() {
            return str::to_lowercase;
        }
        if s != t && t == s.to_uppercase() {
            return str::to_uppercase;
        }
    }
    str::to_string
}

/// Removes `DEFINER=`user`@`host`` (or `DEFINER=CURRENT_USER`), so objects belong to the
/// migration's user on the destination.
pub fn strip_definer(text: &str) -> String {
    let Some(start) = text.find("DEFINER=") else {
        return text.to_string();
    };
    let rest = &text[start + "DEFINER=".len()..];
    let after = if let Some((_, r)) = take_ident(rest) {
        let r = r.strip_prefix('@').unwrap_or(r);
        take_ident(r).map_or(r, |(_, r2)| r2)
    } else if let Some(r) = rest.strip_prefix("CURRENT_USER") {
        r.strip_prefix("()").unwrap_or(r)
    } else {
        // Unquoted user@host.
        rest.split_once(' ').map_or("", |(_, r)| r)
    };
    format!("{}{}", &text[..start], after.trim_start())
}

fn idents_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    map_idents(text, |n, _| {
        found.push(n.to_string());
        None
    });
    found
}

/// Rewrites `SHOW CREATE TABLE` output for the destination.
pub fn table_ddl(
    show_create: &str,
    t: &TablePlan,
    plan: &Plan,
    defer_secondary: bool,
) -> Result<TableDdl> {
    let mut ddl = TableDdl::default();
    let mut lines = show_create.lines();
    let Some(header) = lines.next() else {
        bail!("empty SHOW CREATE TABLE for {}", t.def().name)
    };
    if !header.starts_with("CREATE TABLE ") {
        bail!(
            "unexpected SHOW CREATE TABLE output for {}: {header}",
            t.def().name
        );
    }
    let selected = |c: &str| t.columns.keys().any(|k| k.eq_ignore_ascii_case(c));
    let mut body: Vec<String> = Vec::new();
    let mut tail: Vec<String> = Vec::new();
    let mut in_tail = false;
    for line in lines {
        if in_tail {
            tail.push(rename_columns(line, &t.columns));
            continue;
        }
        if line.starts_with(')') {
            in_tail = true;
            tail.push(rename_columns(line, &t.columns));
            continue;
        }
        let item = line.trim().trim_end_matches(',');
        if item.starts_with('`') {
            let Some((col, _)) = take_ident(item) else {
                continue;
            };
            if selected(&col) {
                body.push(rename_columns(item, &t.columns));
            }
            continue;
        }
        if let Some(fk) = item
            .strip_prefix("CONSTRAINT ")
            .filter(|r| r.contains("FOREIGN KEY"))
        {
            match foreign_key(fk, t, plan) {
                Ok(s) => body.push(s),
                Err(why) => {
                    let name = take_ident(fk).map(|(n, _)| n).unwrap_or_default();
                    ddl.notes.push(format!(
                        "foreign key `{name}` of {} not migrated: {why}",
                        t.def().name
                    ))
                }
            }
            continue;
        }
        let is_index = [
            "PRIMARY KEY",
            "UNIQUE KEY",
            "KEY ",
            "FULLTEXT ",
            "SPATIAL ",
            "INDEX ",
            "UNIQUE INDEX",
        ]
        .iter()
        .any(|p| item.starts_with(p));
        if is_index {
            let paren = item.find('(').unwrap_or(item.len());
            let cols = idents_in(&item[paren..]);
            if let Some(missing) = cols
                .iter()
                .find(|c| !selected(c) && t.def().column_index(c).is_some())
            {
                ddl.notes.push(format!(
                    "index `{}` of {} not migrated: its column `{missing}` is not selected",
                    item,
                    t.def().name
                ));
                continue;
            }
            let rewritten = rename_columns(item, &t.columns);
            let secondary = item.starts_with("KEY ")
                || item.starts_with("FULLTEXT ")
                || item.starts_with("SPATIAL ")
                || item.starts_with("INDEX ");
            if defer_secondary && secondary {
                ddl.deferred_indexes.push(format!("ADD {rewritten}"));
            } else {
                body.push(rewritten);
            }
            continue;
        }
        // CHECK constraints, PERIOD FOR and anything newer: keep, with renames, unless they
        // use a column that is not selected (the destination would reject the table).
        let used = match item.strip_prefix("CONSTRAINT ").and_then(take_ident) {
            Some((_, rest)) => idents_in(rest),
            None => idents_in(item),
        };
        if let Some(missing) = used
            .iter()
            .find(|c| !selected(c) && t.def().column_index(c).is_some())
        {
            ddl.notes.push(format!(
                "`{item}` of {} not migrated: its column `{missing}` is not selected",
                t.def().name
            ));
            continue;
        }
        body.push(rename_columns(item, &t.columns));
    }
    let mut create = format!("CREATE TABLE {} (\n  ", t.target.quoted());
    create.push_str(&body.join(",\n  "));
    create.push('\n');
    create.push_str(&tail.join("\n"));
    ddl.create = create;
    Ok(ddl)
}

/// `name FOREIGN KEY (...) REFERENCES ...` with the referenced table and columns renamed;
/// an error (the reason) when the referenced table is not migrated.
fn foreign_key(fk: &str, t: &TablePlan, plan: &Plan) -> std::result::Result<String, String> {
    let Some(refs_at) = fk.find(" REFERENCES ") else {
        return Err("unreadable definition".into());
    };
    let (local, refs) = fk.split_at(refs_at);
    let refs = &refs[" REFERENCES ".len()..];
    let (first, rest) = take_ident(refs).ok_or("unreadable definition")?;
    let (parent, rest) = match rest.strip_prefix('.').and_then(take_ident) {
        Some((table, r)) => (TableName::new(first, table), r),
        None => (TableName::new(t.def().name.database.clone(), first), rest),
    };
    let Some(parent_plan) = plan.table(&parent) else {
        return Err(format!("it references {parent}, which is not selected"));
    };
    // Every column on both sides must be selected.
    let is_in =
        |cols: &BTreeMap<String, String>, c: &str| cols.keys().any(|k| k.eq_ignore_ascii_case(c));
    let own = local.find("FOREIGN KEY").map_or(local, |at| &local[at..]);
    if let Some(c) = idents_in(own).into_iter().find(|c| !is_in(&t.columns, c)) {
        return Err(format!("its column `{c}` is not selected"));
    }
    let referenced = rest.find(')').map_or(rest, |end| &rest[..end]);
    if let Some(c) = idents_in(referenced)
        .into_iter()
        .find(|c| !is_in(&parent_plan.columns, c))
    {
        return Err(format!(
            "it references column `{c}` of {parent}, which is not selected"
        ));
    }
    let local = rename_columns(local, &t.columns);
    let rest = rename_columns(rest, &parent_plan.columns);
    Ok(format!(
        "CONSTRAINT {local} REFERENCES {}{rest}",
        parent_plan.target.quoted()
    ))
}

/// Rewrites `SHOW CREATE VIEW` output: no definer, SQL SECURITY INVOKER, renamed references.
pub fn view_ddl(show_create: &str, target: &TableName, plan: &Plan) -> Result<String> {
    let text =
        strip_definer(show_create).replacen("SQL SECURITY DEFINER", "SQL SECURITY INVOKER", 1);
    // `CREATE VIEW IF NOT EXISTS` (MariaDB) keeps its clause in the binlog's text.
    let name_at = [" VIEW `", " VIEW IF NOT EXISTS `"]
        .iter()
        .find_map(|p| text.find(p).map(|at| at + p.len() - 1));
    let Some(at) = name_at else {
        bail!("unexpected SHOW CREATE VIEW output: {text}")
    };
    let (head, rest) = text.split_at(at);
    let (mut name, body) =
        take_ident(rest).ok_or_else(|| anyhow::anyhow!("unexpected SHOW CREATE VIEW output"))?;
    // The name may be printed qualified: `db`.`view`.
    let body = match body.strip_prefix('.').and_then(take_ident) {
        Some((n, b)) => {
            name = n;
            b
        }
        None => body,
    };
    // References to views (a view on a view) follow the same name policy as this view and
    // the tables of whole databases.
    let pairs = std::iter::once((name.as_str(), target.table.as_str())).chain(
        plan.tables
            .iter()
            .filter(|t| t.whole_database)
            .map(|t| (t.def().name.table.as_str(), t.target.table.as_str())),
    );
    let case = inferred_case(pairs);
    let home = plan
        .databases
        .iter()
        .find(|d| d.whole && d.target == target.database)
        .map(|d| d.source.name.as_str());
    let view_target = |db: &str, n: &str| {
        plan.databases
            .iter()
            .any(|d| d.whole && d.source.name == db && d.source.views.iter().any(|v| v == n))
            .then(|| case(n))
    };
    // Unqualified names are tables and views of the view's own database, or aliases: a
    // table's name serves as its alias (`` `t`.`col` ``) and must change with the table.
    // (Tables of a whole database change only in case, so a column or alias that happens
    // to share a table's name only changes case, which MySQL ignores for them.)
    let other = |db: Option<&str>, n: &str| match (db, home) {
        (Some(db), _) => view_target(db, n),
        (None, Some(home)) => plan
            .target_table(&TableName::new(home, n))
            .map(|t| t.table.clone())
            .or_else(|| view_target(home, n)),
        (None, None) => None,
    };
    Ok(format!(
        "{head}{}{}",
        target.quoted(),
        rename_qualified_with(body, plan, &other)
    ))
}

/// Rewrites a routine's or trigger's CREATE statement: no definer, renamed references. The
/// caller has selected the destination database with USE.
pub fn routine_ddl(create: &str, plan: &Plan) -> String {
    rename_qualified(&strip_definer(create), plan)
}

/// Rewrites `CREATE TRIGGER name ... ON table` for the destination: the trigger's table
/// gets its destination name, and neither name keeps a database qualifier (the caller has
/// selected the destination database with USE). The statement is the text its author
/// wrote, so names may be bare or quoted, keywords in any case.
pub fn trigger_ddl(create: &str, table: &TableName, plan: &Plan) -> String {
    let text = routine_ddl(create, plan);
    let Some(target) = plan.target_table(table) else {
        return text;
    };
    let Some((name, on)) = trigger_header(&text) else {
        return text;
    };
    format!(
        "{}{}{}{}{}",
        &text[..name.start],
        quote_ident(&name.last),
        &text[name.end..on.start],
        quote_ident(&target.table),
        &text[on.end..]
    )
}

/// With incremental migration, a trigger on the destination must not fire for rows the
/// task writes: the source's own trigger already wrote its effects, and they arrive
/// through the binlog. The body is wrapped so it runs only in sessions that are not
/// Tidemark's (the apply connections set `@tidemark_apply`), the way the reference
/// service handles triggers: applications writing to the destination after cut-over
/// fire it as usual.
pub fn guard_trigger(ddl: &str) -> Option<String> {
    let upper = ddl.to_ascii_uppercase();
    let at = upper.find("FOR EACH ROW")? + "FOR EACH ROW".len();
    let mut body = at;
    if let Some(t) = next_token(ddl, at) {
        if t.is("FOLLOWS") || t.is("PRECEDES") {
            body = next_token(ddl, t.end)?.end;
        }
    }
    Some(format!(
        "{} IF @tidemark_apply IS NULL THEN {}; END IF",
        &ddl[..body],
        ddl[body..].trim()
    ))
}

/// A token of SQL text: its byte range, its text (unquoted for `` `identifiers` ``), and
/// whether it was quoted.
struct Token {
    start: usize,
    end: usize,
    text: String,
    quoted: bool,
}

impl Token {
    fn is(&self, keyword: &str) -> bool {
        !self.quoted && self.text.eq_ignore_ascii_case(keyword)
    }
}

/// The token at or after `pos`, skipping white space and comments.
fn next_token(text: &str, mut pos: usize) -> Option<Token> {
    loop {
        let rest = text.get(pos..)?;
        let trimmed = rest.trim_start();
        pos += rest.len() - trimmed.len();
        if let Some(c) = trimmed.strip_prefix("/*") {
            pos += 2 + c.find("*/")? + 2;
        } else if trimmed.starts_with("-- ") || trimmed.starts_with('#') {
            pos += trimmed.find('\n')? + 1;
        } else {
            break;
        }
    }
    let rest = text.get(pos..)?;
    let c = rest.chars().next()?;
    if c == '`' {
        let (name, after) = take_ident(rest)?;
        return Some(Token {
            start: pos,
            end: text.len() - after.len(),
            text: name,
            quoted: true,
        });
    }
    let word = |ch: char| ch.is_alphanumeric() || ch == '_' || ch == '$';
    let len = if word(c) {
        rest.find(|ch: char| !word(ch)).unwrap_or(rest.len())
    } else {
        c.len_utf8()
    };
    Some(Token {
        start: pos,
        end: pos + len,
        text: rest[..len].to_string(),
        quoted: false,
    })
}

/// A possibly qualified name: its byte range and its last part.
struct NameRef {
    start: usize,
    end: usize,
    last: String,
}

/// Reads `name` or `db.name` at `pos`.
fn name_ref(text: &str, pos: usize) -> Option<NameRef> {
    let first = next_token(text, pos)?;
    if !first.quoted && first.text == "." {
        return None;
    }
    match next_token(text, first.end) {
        Some(dot) if !dot.quoted && dot.text == "." => {
            let second = next_token(text, dot.end)?;
            Some(NameRef {
                start: first.start,
                end: second.end,
                last: second.text,
            })
        }
        _ => Some(NameRef {
            start: first.start,
            end: first.end,
            last: first.text,
        }),
    }
}

/// The trigger's name and its table in `CREATE ... TRIGGER [IF NOT EXISTS] name
/// {BEFORE|AFTER} {INSERT|UPDATE|DELETE} ON table`.
fn trigger_header(text: &str) -> Option<(NameRef, NameRef)> {
    let mut pos = 0;
    loop {
        let t = next_token(text, pos)?;
        pos = t.end;
        if t.is("TRIGGER") {
            break;
        }
        if !t.quoted && t.text == "(" {
            return None;
        }
    }
    let t = next_token(text, pos)?;
    if t.is("IF") {
        let n = next_token(text, t.end)?;
        let e = next_token(text, n.end)?;
        if !n.is("NOT") || !e.is("EXISTS") {
            return None;
        }
        pos = e.end;
    }
    let name = name_ref(text, pos)?;
    let timing = next_token(text, name.end)?;
    let event = next_token(text, timing.end)?;
    let on = next_token(text, event.end)?;
    let timing_ok = timing.is("BEFORE") || timing.is("AFTER");
    let event_ok = event.is("INSERT") || event.is("UPDATE") || event.is("DELETE");
    if !timing_ok || !event_ok || !on.is("ON") {
        return None;
    }
    let table = name_ref(text, on.end)?;
    Some((name, table))
}

/// The table a `CREATE TRIGGER` statement is defined on (last part of its name).
pub fn trigger_table(create: &str) -> Option<String> {
    trigger_header(create).map(|(_, table)| table.last)
}

/// The name after `VIEW` in a `CREATE/ALTER … VIEW name` statement.
pub fn view_name(create: &str) -> Option<String> {
    let mut pos = 0;
    loop {
        let t = next_token(create, pos)?;
        pos = t.end;
        if t.is("VIEW") {
            let mut at = pos;
            for word in ["IF", "NOT", "EXISTS"] {
                match next_token(create, at) {
                    Some(t) if t.is(word) => at = t.end,
                    _ => break,
                }
            }
            return name_ref(create, at).map(|n| n.last);
        }
        if t.is("AS") {
            return None;
        }
    }
}

/// Executes `sql` in the given database with the sql_mode the object was created with.
pub fn execute_in(c: &mut Conn, database: &str, sql_mode: Option<&str>, sql: &str) -> Result<()> {
    c.query_drop(format!("USE {}", quote_ident(database)))?;
    if let Some(mode) = sql_mode {
        c.exec_drop("SET SESSION sql_mode = ?", (mode,))?;
    }
    c.query_drop(sql)
        .with_context(|| format!("the destination rejected: {sql}"))
}

/// `SHOW CREATE <kind> db.name`, column `col` of the single row.
///
/// A table's TIMESTAMP defaults are printed in the session time zone: they are read in UTC
/// (`+00:00`), so the destination session that runs the CREATE TABLE must use UTC too.
pub fn show_create(
    c: &mut Conn,
    kind: &str,
    db: &str,
    name: &str,
    col: usize,
) -> Result<(String, Option<String>)> {
    if kind == "TABLE" {
        c.query_drop("SET time_zone = '+00:00'")
            .context("setting the source session's time zone")?;
    }
    let q = format!("SHOW CREATE {kind} {}", qualified(db, name));
    let row: Option<mysql::Row> = c
        .query_first(&q)
        .with_context(|| format!("reading the definition of {kind} {db}.{name}"))?;
    let row =
        row.ok_or_else(|| anyhow::anyhow!("{kind} {db}.{name} disappeared from the source"))?;
    let text: String = row
        .get_opt::<String, usize>(col)
        .and_then(|r| r.ok())
        .ok_or_else(|| anyhow::anyhow!("no definition for {kind} {db}.{name}: the user needs SHOW VIEW / SELECT on mysql.proc or the object's owner rights"))?;
    // Routines and triggers report their sql_mode in column 1.
    let mode = if kind == "TABLE" || kind == "VIEW" {
        None
    } else {
        row.get_opt::<String, usize>(1).and_then(|r| r.ok())
    };
    Ok((text, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_definers() {
        assert_eq!(
            strip_definer("CREATE DEFINER=`root`@`localhost` PROCEDURE `p`() SELECT 1"),
            "CREATE PROCEDURE `p`() SELECT 1"
        );
        assert_eq!(
            strip_definer("CREATE DEFINER=CURRENT_USER TRIGGER x"),
            "CREATE TRIGGER x"
        );
    }

    /// A whole database `Src` → `src` (name_case = lower) with table `MixedTable` and views
    /// `MixedView`, `V2`.
    fn lower_plan() -> Plan {
        use crate::source::catalog::{DatabaseInfo, TableInfo};
        use crate::transform::mapping::DatabasePlan;
        use tidemark_core::TableDef;
        let def = TableDef {
            name: TableName::new("Src", "MixedTable"),
            columns: vec![],
            key: None,
            key_name: None,
        };
        let info = TableInfo {
            def,
            rows: 0,
            bytes: 0,
            indexes: Default::default(),
            adb: None,
        };
        let db = DatabaseInfo {
            name: "Src".into(),
            tables: vec![info.clone()],
            views: vec!["MixedView".into(), "V2".into()],
            ..Default::default()
        };
        Plan {
            databases: vec![DatabasePlan {
                source: db,
                target: "src".into(),
                whole: true,
                operations: Default::default(),
            }],
            tables: vec![TablePlan {
                source: info,
                target: TableName::new("src", "mixedtable"),
                columns: BTreeMap::new(),
                copied: vec![],
                where_clause: None,
                whole_database: true,
                operations: Default::default(),
            }],
            dest_lower: false,
        }
    }

    #[test]
    fn trigger_table_is_renamed_whatever_its_spelling() {
        let plan = lower_plan();
        let t = TableName::new("Src", "MixedTable");
        for (create, want) in [
            (
                "CREATE DEFINER=`root`@`localhost` trigger Trg before insert on MixedTable for each row set NEW.a = 1",
                "CREATE trigger `Trg` before insert on `mixedtable` for each row set NEW.a = 1",
            ),
            (
                "CREATE TRIGGER `Src`.`T``x` AFTER UPDATE ON `Src`.`MixedTable` FOR EACH ROW SET @on = 'ON MixedTable'",
                "CREATE TRIGGER `T``x` AFTER UPDATE ON `mixedtable` FOR EACH ROW SET @on = 'ON MixedTable'",
            ),
            (
                "CREATE TRIGGER IF NOT EXISTS /* c */ Trg\n  BEFORE DELETE\n  ON Src . MixedTable FOR EACH ROW DELETE FROM x",
                "CREATE TRIGGER IF NOT EXISTS /* c */ `Trg`\n  BEFORE DELETE\n  ON `mixedtable` FOR EACH ROW DELETE FROM x",
            ),
        ] {
            assert_eq!(trigger_ddl(create, &t, &plan), want);
        }
    }

    #[test]
    fn views_on_views_follow_the_name_case() {
        let plan = lower_plan();
        let sql = view_ddl(
            "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `V2` AS select `MixedView`.`Id` AS `Id`,`Src`.`MixedTable`.`x` AS `MixedTable` from `Src`.`MixedView` join `Src`.`MixedTable` where `MixedView`.`Id` > 'MixedView'",
            &TableName::new("src", "v2"),
            &plan,
        )
        .unwrap();
        assert_eq!(
            sql,
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `src`.`v2` AS select `mixedview`.`Id` AS `Id`,`src`.`mixedtable`.`x` AS `mixedtable` from `src`.`mixedview` join `src`.`mixedtable` where `mixedview`.`Id` > 'MixedView'"
        );
    }

    #[test]
    fn constraints_over_unselected_columns_are_left_out() {
        use crate::source::catalog::TableInfo;
        use tidemark_core::{ColumnDef, ColumnKind, TableDef};
        let col = |n: &str| ColumnDef {
            name: n.into(),
            column_type: "int(11)".into(),
            kind: ColumnKind::Int { unsigned: false },
            nullable: true,
            generated: false,
            invisible: false,
            charset: None,
        };
        let def = TableDef {
            name: TableName::new("d", "p"),
            columns: vec![col("id"), col("a"), col("b")],
            key: Some(vec![0]),
            key_name: Some("PRIMARY".into()),
        };
        let mut plan = lower_plan();
        plan.tables[0].columns = [("Id", "Id")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        plan.tables.push(TablePlan {
            source: TableInfo {
                def,
                rows: 0,
                bytes: 0,
                indexes: Default::default(),
                adb: None,
            },
            target: TableName::new("d", "q"),
            columns: [("id", "id"), ("a", "x")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            copied: vec![0, 1],
            where_clause: None,
            whole_database: false,
            operations: Default::default(),
        });
        let show = "CREATE TABLE `p` (\n  `id` int(11) NOT NULL,\n  `a` int(11) DEFAULT NULL,\n  `b` int(11) DEFAULT NULL,\n  \
            PRIMARY KEY (`id`),\n  KEY `fk_b` (`b`),\n  KEY `fk_a` (`a`),\n  \
            CONSTRAINT `fk_a` FOREIGN KEY (`a`) REFERENCES `Src`.`MixedTable` (`Id`),\n  \
            CONSTRAINT `fk_b` FOREIGN KEY (`b`) REFERENCES `Src`.`MixedTable` (`Id`),\n  \
            CONSTRAINT `fk_a2` FOREIGN KEY (`a`) REFERENCES `Src`.`MixedTable` (`Other`),\n  \
            CONSTRAINT `c_b` CHECK (`b` > 0 and `a` > 0),\n  CONSTRAINT `b` CHECK (`a` <> 'b')\n) ENGINE=InnoDB";
        let ddl = table_ddl(show, &plan.tables[1], &plan, false).unwrap();
        assert_eq!(
            ddl.create,
            "CREATE TABLE `d`.`q` (\n  `id` int(11) NOT NULL,\n  `x` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  \
             KEY `fk_a` (`x`),\n  CONSTRAINT `fk_a` FOREIGN KEY (`x`) REFERENCES `src`.`mixedtable` (`Id`),\n  \
             CONSTRAINT `b` CHECK (`x` <> 'b')\n) ENGINE=InnoDB"
        );
        let notes = ddl.notes.join("\n");
        assert!(
            notes.contains("`fk_b`") && notes.contains("`fk_a2`") && notes.contains("c_b"),
            "{notes}"
        );
    }

    #[test]
    fn idents_in_strings_are_left_alone() {
        let out = map_idents("`a` = '`a`' AND \"`a`\" AND `a`", |n, _| {
            (n == "a").then(|| "b".into())
        });
        assert_eq!(out, "`b` = '`a`' AND \"`a`\" AND `b`");
    }
}
