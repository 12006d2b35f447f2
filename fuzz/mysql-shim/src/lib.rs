//! `mysql::…` for the decoder's source files, from `mysql_common` as the `mysql` crate
//! re-exports it: `mysql::consts` is `mysql_common::constants`, and `mysql::binlog` also
//! holds `mysql_common::binlog::consts`' items.
pub use mysql_common::constants as consts;
pub use mysql_common::*;

pub mod binlog {
    pub use mysql_common::binlog::consts::*;
    pub use mysql_common::binlog::*;
}
