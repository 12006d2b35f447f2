//! Object selection, renames, column subsets, row filters and the name case policy.

use crate::config::{NameCase, ObjectSpec, Operation, Task};
use crate::source::catalog::{DatabaseInfo, TableInfo};
use std::collections::BTreeMap;
use tidemark_core::{ColumnDef, TableDef, TableName};

/// One selected database.
#[derive(Clone, Debug)]
pub struct DatabasePlan {
    pub source: DatabaseInfo,
    pub target: String,
    /// The whole database is selected: views, triggers and routines move too.
    pub whole: bool,
    /// With `whole`: the binlog changes applied to its objects.
    pub operations: Operations,
}

/// Which binlog changes are applied to an object (`operations` in `[[objects]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operations {
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    pub ddl: bool,
}

impl Default for Operations {
    fn default() -> Self {
        Operations {
            insert: true,
            update: true,
            delete: true,
            ddl: true,
        }
    }
}

impl Operations {
    pub fn from_spec(ops: Option<&[Operation]>) -> Operations {
        match ops {
            None => Operations::default(),
            Some(ops) => Operations {
                insert: ops.contains(&Operation::Insert),
                update: ops.contains(&Operation::Update),
                delete: ops.contains(&Operation::Delete),
                ddl: ops.contains(&Operation::Ddl),
            },
        }
    }
}

/// One selected table and how it maps to the destination.
#[derive(Clone, Debug)]
pub struct TablePlan {
    pub source: TableInfo,
    pub target: TableName,
    /// Source column name → destination column name, for every selected column.
    pub columns: BTreeMap<String, String>,
    /// Positions (in `source.def.columns`) of the columns whose values are copied: selected
    /// and not generated, in table order.
    pub copied: Vec<usize>,
    pub where_clause: Option<String>,
    /// Whether the table was selected with its whole database.
    pub whole_database: bool,
    /// The binlog changes applied to it.
    pub operations: Operations,
}

impl TablePlan {
    pub fn def(&self) -> &TableDef {
        &self.source.def
    }

    pub fn copied_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.copied.iter().map(|&i| &self.source.def.columns[i])
    }

    /// Destination names of the copied columns, in order.
    pub fn target_columns(&self) -> Vec<String> {
        self.copied_columns()
            .map(|c| self.columns[&c.name].clone())
            .collect()
    }

    /// Whether the key used to chunk and identify rows survives the column subset.
    pub fn key_is_copied(&self) -> bool {
        match &self.source.def.key {
            Some(k) => k.iter().all(|i| self.copied.contains(i)),
            None => true,
        }
    }
}

/// Everything a task moves.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub databases: Vec<DatabasePlan>,
    pub tables: Vec<TablePlan>,
    /// The destination folds table names to lower case (`lower_case_table_names` != 0).
    pub dest_lower: bool,
}

impl Plan {
    /// Destination name of a source database, when selected.
    pub fn target_database(&self, source: &str) -> Option<&str> {
        self.databases
            .iter()
            .find(|d| d.source.name == source)
            .map(|d| d.target.as_str())
    }

    /// Destination name of a source table, when selected.
    pub fn target_table(&self, source: &TableName) -> Option<&TableName> {
        self.tables
            .iter()
            .find(|t| &t.source.def.name == source)
            .map(|t| &t.target)
    }

    pub fn table(&self, source: &TableName) -> Option<&TablePlan> {
        self.tables.iter().find(|t| &t.source.def.name == source)
    }

    /// The source names of every selected table.
    pub fn source_tables(&self) -> Vec<TableName> {
        self.tables
            .iter()
            .map(|t| t.source.def.name.clone())
            .collect()
    }
}

/// Applies the `name_case` policy; `dest_lower` is the destination's
/// `lower_case_table_names != 0`.
pub fn apply_case(policy: NameCase, dest_lower: bool, name: &str) -> String {
    match policy {
        NameCase::Default | NameCase::Source => name.to_string(),
        NameCase::Destination if dest_lower => name.to_lowercase(),
        NameCase::Destination => name.to_string(),
        NameCase::Lower => name.to_lowercase(),
        NameCase::Upper => name.to_uppercase(),
    }
}

/// Builds the plan. `databases` holds what the catalog found for each selected database
/// (missing ones are absent). Returns the plan and the problems found, each a sentence
/// naming the object and the fix.
pub fn build(
    task: &Task,
    databases: &BTreeMap<String, DatabaseInfo>,
    dest_lower: bool,
) -> (Plan, Vec<String>) {
    let case = |n: &str| apply_case(task.migration.name_case, dest_lower, n);
    let mut plan = Plan {
        dest_lower,
        ..Plan::default()
    };
    let mut problems = Vec::new();
    for spec in &task.objects {
        let Some(db) = databases.get(&spec.database) else {
            problems.push(format!(
                "database `{}` does not exist on the source: fix `database` in [[objects]] or create it",
                spec.database
            ));
            continue;
        };
        let db_target = match (&spec.table, &spec.rename) {
            (None, Some(r)) => r.clone(),
            _ => case(&spec.database),
        };
        if !plan.databases.iter().any(|d| d.source.name == db.name) {
            plan.databases.push(DatabasePlan {
                source: db.clone(),
                target: db_target.clone(),
                whole: spec.table.is_none(),
                operations: Operations::from_spec(spec.operations.as_deref()),
            });
        }
        let db_target = plan
            .target_database(&db.name)
            .unwrap_or(&db_target)
            .to_string();
        match &spec.table {
            None => {
                for t in &db.tables {
                    let mut tp = table_plan(t, &db_target, None, &case, true, &mut problems);
                    tp.operations = Operations::from_spec(spec.operations.as_deref());
                    plan.tables.push(tp);
                }
            }
            Some(name) => match db.table(name) {
                Some(t) => plan.tables.push(table_plan(t, &db_target, Some(spec), &case, false, &mut problems)),
                None if db.views.contains(name) => problems.push(format!(
                    "`{}`.`{}` is a view: views move only with their whole database; select the database instead",
                    spec.database, name
                )),
                None => problems.push(format!(
                    "table `{}`.`{}` does not exist on the source: fix `table` in [[objects]]",
                    spec.database, name
                )),
            },
        }
    }
    (plan, problems)
}

/// For unit tests: the plan of `def` (no size estimates, no indexes), written to a table
/// of the same name with every operation.
#[cfg(test)]
pub fn test_plan(def: TableDef) -> TablePlan {
    let target = def.name.clone();
    let info = TableInfo {
        def,
        rows: 0,
        bytes: 0,
        indexes: Default::default(),
        adb: None,
    };
    whole_table(info, target, Operations::default())
}

/// The plan of a table that a DDL statement created or changed inside a database
/// selected whole: every column, under the names `t` has (read from the destination),
/// written to `target`.
pub fn whole_table(t: TableInfo, target: TableName, operations: Operations) -> TablePlan {
    let columns = t
        .def
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.name.clone()))
        .collect();
    let copied = (0..t.def.columns.len())
        .filter(|&i| !t.def.columns[i].generated)
        .collect();
    TablePlan {
        source: t,
        target,
        columns,
        copied,
        where_clause: None,
        whole_database: true,
        operations,
    }
}

fn table_plan(
    t: &TableInfo,
    db_target: &str,
    spec: Option<&ObjectSpec>,
    case: &dyn Fn(&str) -> String,
    whole_database: bool,
    problems: &mut Vec<String>,
) -> TablePlan {
    let def = &t.def;
    let table_target = spec
        .and_then(|s| s.rename.clone())
        .unwrap_or_else(|| case(&def.name.table));
    let wanted: Option<Vec<String>> = spec.and_then(|s| s.columns.clone());
    if let Some(w) = &wanted {
        for c in w {
            if def.column_index(c).is_none() {
                problems.push(format!(
                    "column `{c}` of `columns` does not exist in {}: use one of {}",
                    def.name,
                    def.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    let renames = spec.map(|s| s.column_rename.clone()).unwrap_or_default();
    for from in renames.keys() {
        if def.column_index(from).is_none() {
            problems.push(format!(
                "column `{from}` of `column_rename` does not exist in {}",
                def.name
            ));
        }
    }
    let mut columns = BTreeMap::new();
    let mut copied = Vec::new();
    for (i, c) in def.columns.iter().enumerate() {
        let selected = wanted
            .as_ref()
            .is_none_or(|w| w.iter().any(|n| n.eq_ignore_ascii_case(&c.name)));
        if !selected {
            continue;
        }
        let target = renames
            .iter()
            .find(|(from, _)| from.eq_ignore_ascii_case(&c.name))
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| case(&c.name));
        columns.insert(c.name.clone(), target);
        if !c.generated {
            copied.push(i);
        }
    }
    let plan = TablePlan {
        source: t.clone(),
        target: TableName::new(db_target, table_target),
        columns,
        copied,
        where_clause: spec.and_then(|s| s.where_clause.clone()),
        whole_database,
        operations: Operations::from_spec(spec.and_then(|s| s.operations.as_deref())),
    };
    if !plan.key_is_copied() {
        let key: Vec<&str> = def
            .key
            .iter()
            .flatten()
            .map(|&i| def.columns[i].name.as_str())
            .collect();
        problems.push(format!(
            "`columns` of {} leaves out key column(s) {}: rows could not be identified on the destination; add them to `columns`",
            def.name,
            key.join(", ")
        ));
    }
    plan
}
