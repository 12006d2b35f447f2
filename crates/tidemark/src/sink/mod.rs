//! Writers: everything that puts data into a destination.
//!
//! * [`mysql::schema`]: creates databases, tables, views, routines and triggers on a MySQL
//!   destination, with renames applied inside the DDL.
//! * [`mysql::writer`]: batched multi-row INSERTs, one transaction per chunk.
//! * [`mysql::apply`]: binlog changes, coalesced per key and applied in parallel.
//!
//! Later destinations (analytic MySQL, wide-table stores, RocketMQ) are siblings of
//! `mysql` and consume the same rows.

pub mod mysql;
pub mod rocketmq;
