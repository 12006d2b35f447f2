//! The MySQL/MariaDB destination.

pub mod apply;
pub mod schema;
pub mod writer;
