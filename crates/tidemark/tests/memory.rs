//! Memory stays bounded whatever the table size: the copy streams rows and holds at most
//! `threads` × 3 statements of `batch_bytes`. The peak RSS measured is the largest of this
//! binary's tidemark runs.

mod common;

use common::{assert_same, env, TaskDir};

fn peak_rss_of_children_mb() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid out-parameter for getrusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss as u64 / 1024
}

#[test]
fn wide_table_copies_with_bounded_memory() {
    let e = env();
    // 60 000 rows of about 2 KB (half of it bytes that are not UTF-8): ~120 MB to move.
    e.src_sql(
        "CREATE DATABASE mem_src; USE mem_src; \
         CREATE TABLE wide (id INT PRIMARY KEY, a VARCHAR(1000), b VARBINARY(1000)); \
         INSERT INTO wide SELECT seq, REPEAT(CONCAT('row ', seq, ' '), 1000 DIV (LENGTH(seq) + 5)), \
                                 RANDOM_BYTES(1000) FROM seq_1_to_60000; \
         ANALYZE TABLE wide;",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[full]\nchunk_rows = 5000\n\
         [[objects]]\ndatabase = \"mem_src\"\nrename = \"mem_dst\"\n",
    );
    t.run_ok();
    assert_same("mem_src", "wide", "mem_dst", "wide");
    let peak = peak_rss_of_children_mb();
    eprintln!("peak RSS of tidemark: {peak} MB");
    assert!(
        peak < 256,
        "tidemark used {peak} MB copying a 120 MB table; the bound is 256 MB"
    );
}

#[test]
fn values_larger_than_half_the_packet_limit_are_copied() {
    let e = env();
    // The sandbox's max_allowed_packet is 16 MB: a 9 MB binary value as a hex literal
    // would need 18 MB.
    e.src_sql(
        "CREATE DATABASE big_src; USE big_src; \
         CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB, t LONGTEXT); \
         INSERT INTO blobs VALUES (1, RANDOM_BYTES(1024), 'small'); \
         INSERT INTO blobs SELECT 2, REPEAT(RANDOM_BYTES(1024), 9 * 1024), REPEAT('é', 100000); \
         INSERT INTO blobs VALUES (3, NULL, NULL);",
    );
    let t = TaskDir::new(
        "[migration]\ntypes = [\"schema\", \"full\"]\n[[objects]]\ndatabase = \"big_src\"\n",
    );
    t.run_ok();
    assert_same("big_src", "blobs", "big_src", "blobs");
}
