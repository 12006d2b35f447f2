//! The MySQL/MariaDB destination.

pub mod apply;
pub mod cluster;
pub mod schema;
pub mod writer;
