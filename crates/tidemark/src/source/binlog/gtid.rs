//! GTID state: what the task has applied, in a form another server of the same
//! replication topology understands, so a switchover to a new primary loses nothing.
//!
//! - MariaDB: a GTID list, the last `domain-server-sequence` of each domain.
//! - MySQL: a GTID set, `uuid[:tag]:intervals` per source.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GtidState {
    /// MariaDB: domain → (server, sequence).
    mariadb: BTreeMap<u32, (u32, u64)>,
    /// MySQL: `uuid` or `uuid:tag` → sorted, disjoint, inclusive intervals.
    mysql: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidState {
    /// Parses a MariaDB GTID list (`0-1-100,1-2-7`) or a MySQL GTID set
    /// (`uuid:1-100:200,uuid2:tag:1-5`). Unreadable parts are an error naming them.
    pub fn parse(text: &str) -> Result<GtidState, String> {
        let mut s = GtidState::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains(':') {
                let mut fields: Vec<&str> = part.split(':').collect();
                let uuid = fields.remove(0);
                let mut source = uuid.to_string();
                for f in fields {
                    let range = if f.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                        let (a, b) = f.split_once('-').unwrap_or((f, f));
                        let a: u64 = a
                            .parse()
                            .map_err(|_| format!("bad GTID interval {f:?} in {part:?}"))?;
                        let b: u64 = b
                            .parse()
                            .map_err(|_| format!("bad GTID interval {f:?} in {part:?}"))?;
                        Some((a, b))
                    } else {
                        source = format!("{uuid}:{f}");
                        None
                    };
                    if let Some((a, b)) = range {
                        for_range(s.mysql.entry(source.clone()).or_default(), a, b);
                    }
                }
            } else {
                let n: Vec<&str> = part.split('-').collect();
                let [d, srv, seq] = n[..] else {
                    return Err(format!(
                        "bad MariaDB GTID {part:?} (expected domain-server-sequence)"
                    ));
                };
                let parse = |x: &str| {
                    x.parse::<u64>()
                        .map_err(|_| format!("bad MariaDB GTID {part:?}"))
                };
                s.mariadb
                    .insert(parse(d)? as u32, (parse(srv)? as u32, parse(seq)?));
            }
        }
        Ok(s)
    }

    /// Records an applied transaction's GTID (as the binlog names it).
    pub fn add(&mut self, gtid: &str) {
        if let Ok(one) = GtidState::parse(gtid) {
            for (d, v) in one.mariadb {
                self.mariadb.insert(d, v);
            }
            for (src, ranges) in one.mysql {
                let mine = self.mysql.entry(src).or_default();
                for (a, b) in ranges {
                    for_range(mine, a, b);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.is_empty()
    }

    /// MariaDB's form (as opposed to MySQL's).
    pub fn is_mariadb(&self) -> bool {
        !self.mariadb.is_empty()
    }
}

/// Adds `a..=b` to sorted disjoint intervals, merging neighbours.
fn for_range(ranges: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    ranges.push((a, b));
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(a, b) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *ranges = merged;
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .mariadb
            .iter()
            .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
            .collect();
        for (src, ranges) in &self.mysql {
            let r: Vec<String> = ranges
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            parts.push(format!("{src}:{}", r.join(":")));
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_lists_keep_the_last_of_each_domain() {
        let mut s = GtidState::parse("0-1-100,1-2-7").unwrap();
        s.add("0-3-101");
        s.add("2-1-1");
        assert_eq!(s.to_string(), "0-3-101,1-2-7,2-1-1");
        assert!(GtidState::parse("0-1").is_err());
    }

    #[test]
    fn mysql_sets_merge_intervals() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut s = GtidState::parse(&format!("{u}:1-5:7")).unwrap();
        s.add(&format!("{u}:6"));
        s.add(&format!("{u}:tag:3"));
        assert_eq!(s.to_string(), format!("{u}:1-7,{u}:tag:3"));
    }
}
