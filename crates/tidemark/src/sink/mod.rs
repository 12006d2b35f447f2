//! Writers: everything that puts data into a destination.
//!
//! * [`mysql::schema`]: creates databases, tables, views, routines and triggers on a MySQL
//!   destination, with renames applied inside the DDL.
//! * [`mysql::writer`]: batched multi-row INSERTs, one transaction per chunk.
//! * [`mysql::apply`]: binlog changes, coalesced per key and applied in parallel.
//! * [`rocketmq`]: rows and changes as messages on RocketMQ topics (Canal JSON, Debezium
//!   JSON, Avro), ordered per key, delivered at least once.
//!
//! Later destinations (analytic MySQL, wide-table stores) are siblings of these and
//! consume the same rows.

pub mod mysql;
pub mod rocketmq;
