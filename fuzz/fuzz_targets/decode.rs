//! Any byte string given to the binlog file reader ends in events or an error, never a
//! panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tidemark::source::binlog::file::read_bytes("fuzz", data, |_, _| Ok(()));
});
