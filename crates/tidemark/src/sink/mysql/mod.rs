//! The MySQL/MariaDB destination.

pub mod schema;
pub mod writer;
