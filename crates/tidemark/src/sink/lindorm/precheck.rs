//! The Lindorm destination's precheck items: connection; every planned table against
//! the engine's rules (a primary key, a non-key column, at most 5 key columns and a key
//! of at most 2 KB, no BIT, DECIMAL of at most 38 digits); existing tables compared with
//! the source (key, column types under the mapping, DECIMAL precision), missing ones
//! refused unless `create_tables`; values that change meaning as warnings per column.

use super::types::{self, LindormTable};
use super::Lindorm;
use crate::config::{Phase, Task};
use crate::connect::ServerInfo;
use crate::precheck::Report;
use crate::sink::PlanFacts;
use crate::state::Store;
use crate::transform::mapping::{Plan, TablePlan};
use mysql::prelude::Queryable;
use tidemark_core::schema::ColumnKind;

pub(super) struct Check<'a> {
    pub(super) kind: &'a Lindorm,
    pub(super) task: &'a Task,
    pub(super) conn: Option<mysql::Conn>,
}

/// Most bytes a key value of a column can take (from its MySQL type).
fn key_bytes(c: &tidemark_core::schema::ColumnDef) -> u64 {
    let n = |t: &str| {
        t.find('(')
            .and_then(|i| t[i + 1..].split([')', ',']).next())
            .and_then(|n| n.trim().parse::<u64>().ok())
    };
    match c.kind {
        ColumnKind::Text => {
            let chars = n(&c.column_type).unwrap_or(65_535);
            let per = match c.charset.as_deref() {
                Some("latin1" | "ascii" | "binary") => 1,
                Some("utf8" | "utf8mb3") => 3,
                _ => 4,
            };
            chars * per
        }
        ColumnKind::Binary | ColumnKind::Other | ColumnKind::Geometry => {
            n(&c.column_type).unwrap_or(65_535)
        }
        ColumnKind::Decimal | ColumnKind::Json | ColumnKind::Enum | ColumnKind::Set => 64,
        _ => 8,
    }
}

impl Check<'_> {
    fn table(&mut self, t: &TablePlan, r: &mut Report) -> anyhow::Result<()> {
        let name = &t.def().name;
        let fix_schema = "change the table on the source, or leave it out of `[[objects]]`";
        let Some(key) = t
            .def()
            .key
            .clone()
            .filter(|_| t.def().key_name.as_deref() == Some("PRIMARY"))
        else {
            r.fail(
                "lindorm-tables",
                format!("{name} has no primary key; LindormTable rows are identified by their primary key"),
                "add a PRIMARY KEY on the source, or leave the table out of `[[objects]]`",
            );
            return Ok(());
        };
        let (cols, key_names) = super::target_columns(t);
        if cols.len() <= key.len() {
            r.fail(
                "lindorm-tables",
                format!(
                    "{name} has only key columns; LindormTable needs at least one non-key column"
                ),
                fix_schema,
            );
        }
        if key.len() > super::config::MAX_KEY_COLUMNS {
            r.fail(
                "lindorm-tables",
                format!(
                    "{name}: its primary key has {} columns, LindormTable allows at most 5",
                    key.len()
                ),
                fix_schema,
            );
        }
        let kb: u64 = key.iter().map(|&i| key_bytes(&t.def().columns[i])).sum();
        if kb > super::config::MAX_KEY_BYTES as u64 {
            r.fail(
                "lindorm-tables",
                format!("{name}: its primary key can take {kb} bytes, over LindormTable's 2 KB per key"),
                "shorten the key columns on the source (e.g. VARCHAR(500) in utf8mb4 is 2000 bytes), or leave the table out",
            );
        }
        for (target_name, c) in &cols {
            if let Err(e) = types::lindorm_type(c) {
                r.fail(
                    "lindorm-types",
                    format!("{name}.{}: {e}", c.name),
                    "change the column's type on the source, or leave the column out with `columns`",
                );
                continue;
            }
            let _ = target_name;
            let charset = c
                .charset
                .as_deref()
                .unwrap_or("utf8mb4")
                .to_ascii_lowercase();
            if c.kind == ColumnKind::Text
                && !["utf8mb4", "utf8mb3", "utf8", "ascii", "latin1", "binary"]
                    .contains(&charset.as_str())
            {
                r.fail(
                    "lindorm-types",
                    format!("{name}.{}: character set {charset} (LindormTable stores UTF-8; Tidemark converts utf8, ascii and latin1 only)", c.name),
                    format!("on the source: ALTER TABLE … MODIFY `{}` … CHARACTER SET utf8mb4, or leave the column out with `columns`", c.name),
                );
            }
            if c.kind == ColumnKind::Binary {
                r.warn(
                    "lindorm-values",
                    format!(
                        "{name}.{}: an empty VARBINARY value becomes NULL on LindormTable",
                        c.name
                    ),
                    "accept it, or store a non-empty marker on the source",
                );
            }
            if matches!(
                c.kind,
                ColumnKind::DateTime | ColumnKind::Timestamp | ColumnKind::Time
            ) && types::fsp_of(&c.column_type) > types::TARGET_FSP
            {
                r.warn(
                    "lindorm-values",
                    format!(
                        "{name}.{}: {} keeps fractional seconds beyond the milliseconds LindormTable keeps; they are truncated",
                        c.name, c.column_type
                    ),
                    "accept it, or compare values at millisecond precision",
                );
            }
        }
        // The table on the destination.
        let Some(conn) = self.conn.as_mut() else {
            anyhow::bail!("internal: the destination precheck is not connected");
        };
        let shown: Result<Option<(String, String)>, _> =
            conn.query_first(format!("SHOW CREATE TABLE {}", t.target.quoted()));
        let have = match shown {
            Ok(Some((_, ddl))) => LindormTable::parse(&ddl)?,
            _ if self.kind.config.create_tables => {
                r.pass(
                    "lindorm-existing",
                    format!("{} will be created on Lindorm", t.target),
                );
                return Ok(());
            }
            _ => {
                r.fail(
                    "lindorm-existing",
                    format!("{} does not exist on Lindorm (it is not created by default, as with the engine's own migration service)", t.target),
                    "create it on Lindorm first (see docs/task-file.md for the type mapping), or set `destination.create_tables = true` and add \"schema\" to `migration.types`",
                );
                return Ok(());
            }
        };
        if have.key != key_names {
            r.fail(
                "lindorm-existing",
                format!(
                    "{}: its primary key on Lindorm is ({}) but the source's is ({})",
                    t.target,
                    have.key.join(", "),
                    key_names.join(", ")
                ),
                "recreate the Lindorm table with the source's key columns in the source's order",
            );
        }
        for (target_name, c) in &cols {
            let Ok(want) = types::lindorm_type(c) else {
                continue;
            };
            match have.column(target_name) {
                None => r.fail(
                    "lindorm-existing",
                    format!("{}: column {target_name} is missing on Lindorm", t.target),
                    format!("on Lindorm: ALTER TABLE {} ADD COLUMN `{target_name}` {want}", t.target.quoted()),
                ),
                Some(h) if c.kind == ColumnKind::Decimal && !types::compatible(&want, &h.ty) => r.fail(
                    "lindorm-existing",
                    format!("{}: column {target_name} is {} on Lindorm but the source's {} needs {want}: a DECIMAL precision that differs from the source's", t.target, h.ty, c.column_type),
                    format!("recreate the Lindorm table with {target_name} {want}"),
                ),
                Some(h) if !types::compatible(&want, &h.ty) => r.fail(
                    "lindorm-existing",
                    format!("{}: column {target_name} is {} on Lindorm but the source's {} maps to {want}", t.target, h.ty, c.column_type),
                    format!("recreate the Lindorm table with {target_name} {want}"),
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl crate::sink::Precheck for Check<'_> {
    fn connect(&mut self, r: &mut Report) -> bool {
        match self.kind.connect() {
            Ok(c) => {
                r.pass(
                    "destination-connection",
                    format!("connected to {}", self.kind.describe_endpoint()),
                );
                self.conn = Some(c);
                true
            }
            Err(e) => {
                r.fail(
                    "destination-connection",
                    format!("{e:#}"),
                    "fix `destination.url` (LindormTable's MySQL port, 33060) or the server, then rerun the precheck",
                );
                false
            }
        }
    }

    fn before_plan(&mut self, _: &ServerInfo, _: &mut Report) -> anyhow::Result<PlanFacts> {
        Ok(PlanFacts::default())
    }

    fn check(&mut self, _: Option<&Store>, plan: &Plan, r: &mut Report) -> anyhow::Result<()> {
        let task = self.task;
        if task.has(Phase::Schema) && !self.kind.config.create_tables {
            r.fail(
                "schema-migration",
                "schema migration to Lindorm creates tables only with `destination.create_tables = true`",
                "set `destination.create_tables = true`, or remove \"schema\" from `migration.types` and create the tables on Lindorm first",
            );
        }
        if self.kind.config.create_tables && !task.has(Phase::Schema) {
            r.fail(
                "schema-migration",
                "`destination.create_tables = true` creates tables in the schema phase, which this task does not run",
                "add \"schema\" to `migration.types`",
            );
        }
        if task.verification.mode == crate::config::VerificationMode::Continuous {
            r.fail(
                "verification",
                "continuous verification is not offered for a Lindorm destination yet (`tidemark verify` and `mode = \"after-full\"` are)",
                "set `[verification] mode = \"after-full\"` or \"off\", and run `tidemark verify` when the stream is quiet",
            );
        }
        for t in &plan.tables {
            self.table(t, r)?;
        }
        Ok(())
    }

    fn server(&self) -> Option<ServerInfo> {
        None
    }
}
