//! Any byte string given to the binlog file reader ends in events or an error, never a
//! panic, a hang or unbounded memory. Each input is decoded twice: as it is, and with
//! every event's CRC32 recomputed, so that damaged event bodies reach the parser instead
//! of stopping at the checksum.
//!
//! The decoder's modules (`source/binlog/{event,file,mariadb,value}.rs`) are compiled
//! here from their source files: they use nothing else of the tidemark crate, and
//! leaving out the rest (driver, TLS, SQLite, CLI) makes the instrumented build a few
//! minutes instead of most of an hour on a small machine. They must keep using only
//! `mysql::` names that `mysql_common` has (see `mysql-shim`), `tidemark_core` and the
//! crates listed in `fuzz/Cargo.toml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/tidemark/src/source/binlog/event.rs"]
mod event;
#[allow(dead_code)]
#[path = "../../crates/tidemark/src/source/binlog/file.rs"]
mod file;
#[allow(dead_code)]
#[path = "../../crates/tidemark/src/source/binlog/mariadb.rs"]
mod mariadb;
#[allow(dead_code)]
#[path = "../../crates/tidemark/src/source/binlog/value.rs"]
mod value;

fuzz_target!(|data: &[u8]| {
    // Rendering every value as JSON exercises the same paths `binlog inspect` takes.
    let render = |_: u64, e: &event::Event| serde_json::to_vec(e).map(drop).map_err(Into::into);
    let _ = file::read_bytes("fuzz", data, render);
    let mut fixed = data.to_vec();
    file::recompute_checksums(&mut fixed);
    if fixed != data {
        let _ = file::read_bytes("fuzz", &fixed, render);
    }
});
