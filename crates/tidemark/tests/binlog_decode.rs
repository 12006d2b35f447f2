//! The binlog decoder, offline: every fixture file from MySQL 5.1 to 9.x decodes
//! completely (the damaged ones end in a clear error), known values come out exactly,
//! and randomly damaged input never panics.

use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use tidemark::source::binlog::{file, Body, Event};
use tidemark_core::Value;

const DAMAGED: [&str; 3] = [
    "binlog_truncated_event.000001",
    "binlog_truncated_prev_gtid_event.000001",
    "corrupt-relay-bin.000624",
];

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binlog-mysql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures at {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().map(|x| x != "md").unwrap_or(true))
        .collect();
    files.sort();
    assert!(
        files.len() >= 30,
        "expected the fixture files in {}",
        dir.display()
    );
    files
}

fn events(path: &Path) -> anyhow::Result<Vec<(u64, Event)>> {
    let mut out = Vec::new();
    file::read(path, |at, e| {
        out.push((at, e.clone()));
        Ok(())
    })?;
    Ok(out)
}

#[test]
fn every_fixture_decodes_or_reports_damage() {
    for path in fixtures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = events(&path);
        if DAMAGED.contains(&name.as_str()) {
            let Err(err) = result else {
                panic!("{name} is damaged but decoded")
            };
            let err = format!("{err:#}");
            assert!(
                err.contains(&name) && err.contains("offset"),
                "{name}: the error should name the file and offset: {err}"
            );
            continue;
        }
        let evs = result.unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(
            matches!(evs[0].1.body, Body::FormatDescription { .. }),
            "{name}: first event should be FORMAT_DESCRIPTION"
        );
        // Every rows event's rows decoded to values.
        for (at, e) in &evs {
            if let Body::Rows { rows, .. } = &e.body {
                assert!(
                    !rows.is_empty(),
                    "{name} at {at}: a rows event without rows"
                );
            }
        }
    }
}

fn first_insert(path: &str) -> Vec<Option<Value>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binlog-mysql");
    let evs = events(&dir.join(path)).expect("decode");
    evs.into_iter()
        .find_map(|(_, e)| match e.body {
            Body::Rows { rows, .. } => rows.into_iter().next().and_then(|r| r.after),
            _ => None,
        })
        .expect("an insert")
}

#[test]
fn known_values_decode_exactly() {
    // CREATE TABLE foo(a BIT(3), b TEXT, c BIT(8)); INSERT (b'100', 'foo', b'00100000')
    assert_eq!(
        first_insert("mysql_type_bit.000001"),
        vec![
            Some(Value::Bit(4)),
            Some(Value::Bytes(b"foo".to_vec())),
            Some(Value::Bit(32))
        ]
    );
    let row = first_insert("time_issue.000001");
    assert!(
        matches!(&row[0], Some(Value::Time(t)) if t.negative && t.hours == 507 && t.minutes == 48 && t.seconds == 27),
        "{row:?}"
    );
    let row = first_insert("binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(row[2], Some(Value::Decimal("250.00".into())));
}

#[test]
fn gtids_of_both_kinds_are_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binlog-mysql");
    let evs = events(&dir.join("binlog_transaction_with_GTID_TAG.000001")).expect("decode");
    let gtids: Vec<String> = evs
        .iter()
        .filter_map(|(_, e)| match &e.body {
            Body::Gtid { gtid, .. } => Some(gtid.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(gtids, vec!["55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"]);
}

/// The decoder's fuzz check, run as a test: flipped bytes, cut files and random lengths
/// in every fixture must end in an error or a decode, never a panic or a hang.
#[test]
fn damaged_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7ead);
    for path in fixtures() {
        let data = std::fs::read(&path).expect("read fixture");
        let name = path.display().to_string();
        for round in 0..200 {
            let mut d = data.clone();
            match round % 3 {
                0 => {
                    for _ in 0..rng.gen_range(1..8) {
                        let i = rng.gen_range(4..d.len().max(5));
                        if i < d.len() {
                            d[i] = rng.gen();
                        }
                    }
                }
                1 => d.truncate(rng.gen_range(0..d.len())),
                _ => {
                    // Corrupt an event size field.
                    let i = rng.gen_range(4..d.len().max(5));
                    for b in d.iter_mut().skip(i).take(4) {
                        *b = rng.gen();
                    }
                }
            }
            let r = std::panic::catch_unwind(|| file::read_bytes(&name, &d, |_, _| Ok(())));
            assert!(r.is_ok(), "{name}: round {round} panicked");
        }
    }
}
