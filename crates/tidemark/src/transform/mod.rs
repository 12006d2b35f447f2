//! Transforms: what happens to objects and rows between reader and writer.
//!
//! [`mapping`] turns the task's `[[objects]]` into a [`mapping::Plan`]: which databases,
//! tables and columns move, under which destination names (renames and the `name_case`
//! policy), with which row filter. Readers and writers both work from the plan, so a
//! rename is applied the same way to data, schema and change events. [`ddl`] finds the
//! tables a binlog DDL statement names and rewrites them to destination names.
//! [`filter`] applies `where` filters to binlog changes, evaluated by the source.

pub mod ddl;
pub mod filter;
pub mod mapping;
