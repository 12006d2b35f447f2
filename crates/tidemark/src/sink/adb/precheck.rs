//! The ADB destination's precheck items: the connection, each table's layout (a primary
//! key holding the distribution and partition keys, every column a type ADB holds), a
//! warning per column whose values change under the type mapping, and what is not
//! migrated (foreign keys, triggers, routines, views).

use super::schema::{auto_increment, for_adb, layout, merge_problems, settings_for};
use super::Adb;
use crate::config::Task;
use crate::connect::{connect_raw, ServerInfo, Side};
use crate::precheck::Report;
use crate::sink::PlanFacts;
use crate::state::Store;
use crate::transform::mapping::Plan;
use mysql::Conn;

pub(super) struct Check<'a> {
    pub(super) kind: &'a Adb,
    pub(super) task: &'a Task,
    pub(super) conn: Option<Conn>,
    pub(super) info: Option<ServerInfo>,
}

impl crate::sink::Precheck for Check<'_> {
    fn connect(&mut self, r: &mut Report) -> bool {
        match connect_raw(&self.kind.endpoint, Side::Destination) {
            Ok(c) => {
                r.pass(
                    "destination-connection",
                    format!("connected to ADB at {}", self.kind.endpoint),
                );
                self.conn = Some(c);
                true
            }
            Err(e) => {
                r.fail(
                    "destination-connection",
                    format!("{e:#}"),
                    "fix `destination.url` or the cluster's whitelist, then rerun the precheck",
                );
                false
            }
        }
    }

    fn before_plan(&mut self, _source: &ServerInfo, _r: &mut Report) -> anyhow::Result<PlanFacts> {
        let Some(dst) = self.conn.as_mut() else {
            anyhow::bail!("internal: the destination precheck is not connected");
        };
        let info = ServerInfo::read(dst)?;
        let facts = PlanFacts {
            lower_case_names: info.lower_case_table_names != 0,
        };
        self.info = Some(info);
        Ok(facts)
    }

    fn check(&mut self, _store: Option<&Store>, plan: &Plan, r: &mut Report) -> anyhow::Result<()> {
        let mut src = connect_raw(&self.task.source, Side::Source)?;
        let mut ok = true;
        for p in merge_problems(&plan.tables, &self.kind.tables) {
            ok = false;
            r.fail(
                "adb-table-layout",
                p,
                "merge only tables of the same columns, or give each its own destination table",
            );
        }
        for t in &plan.tables {
            let ai = auto_increment(&mut src, t)?;
            let (t, _) = for_adb(t, &self.kind.tables);
            let t = &t;
            match layout(t, settings_for(&self.kind.tables, t), &ai) {
                Ok(l) => {
                    for (name, m) in &l.columns {
                        if let Some(note) = &m.note {
                            r.warn(
                                "adb-type-mapping",
                                format!("{}.{name}: {note}", t.target),
                                "accept the change, or change the column on the source",
                            );
                        }
                    }
                }
                Err(problems) => {
                    ok = false;
                    for p in problems {
                        r.fail(
                            "adb-table-layout",
                            p,
                            "fix the table or its `[[destination.tables]]` entry, then rerun the precheck",
                        );
                    }
                }
            }
        }
        for s in &self.kind.tables {
            let planned = plan.tables.iter().any(|t| {
                t.target.database.eq_ignore_ascii_case(&s.database)
                    && t.target.table.eq_ignore_ascii_case(&s.table)
            });
            if !planned {
                ok = false;
                r.fail(
                    "adb-table-layout",
                    format!(
                        "`destination.tables` names {}.{}, which is not a destination table of the task",
                        s.database, s.table
                    ),
                    "name a destination table of the selection (after renames)",
                );
            }
        }
        if ok {
            r.pass(
                "adb-table-layout",
                format!(
                    "{} table(s) have a primary key holding their distribution and partition keys",
                    plan.tables.len()
                ),
            );
        }
        let mut not_migrated = Vec::new();
        for db in &plan.databases {
            if db.whole {
                not_migrated.extend(
                    db.source
                        .views
                        .iter()
                        .map(|v| format!("view {}.{v}", db.source.name)),
                );
                not_migrated.extend(
                    db.source
                        .triggers
                        .iter()
                        .map(|(n, _)| format!("trigger {}.{n}", db.source.name)),
                );
                not_migrated.extend(
                    db.source
                        .routines
                        .iter()
                        .map(|(n, k)| format!("{} {}.{n}", k.to_lowercase(), db.source.name)),
                );
            }
        }
        let what = if not_migrated.is_empty() {
            "foreign keys, triggers, routines and views are not migrated to ADB".to_string()
        } else {
            format!(
                "foreign keys, triggers, routines and views are not migrated to ADB; not migrated: {}",
                not_migrated.join(", ")
            )
        };
        r.warn(
            "adb-not-migrated",
            what,
            "recreate what is needed on ADB by hand (ADB keeps foreign keys as hints only)",
        );
        Ok(())
    }

    fn server(&self) -> Option<ServerInfo> {
        self.info.clone()
    }
}
