//! Reads `SHOW GRANTS` into something that can answer "may this user do X on database Y".
//!
//! Only what the grant lines say is used; the lines themselves (which may carry password
//! hashes) are never logged or returned.

use tidemark_core::sql::{quote_ident, take_ident};

#[derive(Debug, Default)]
pub struct Grants {
    /// (privileges upper-cased, database pattern or None for *.*, table or None for db.*)
    entries: Vec<(Vec<String>, Option<String>, Option<String>)>,
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

impl Grants {
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Grants {
        let mut g = Grants::default();
        for line in lines {
            let Some(rest) = line.strip_prefix("GRANT ") else {
                continue;
            };
            let Some((privs, rest)) = rest.split_once(" ON ") else {
                continue;
            };
            let privs = split_top_level(privs)
                .into_iter()
                // "SELECT (a, b)" is a column grant: not enough for whole rows.
                .filter(|p| !p.contains('('))
                .map(|p| p.to_ascii_uppercase())
                .collect();
            let rest = rest.trim_start();
            let rest = rest.strip_prefix("TABLE ").unwrap_or(rest);
            let (db, table) = if rest.starts_with("*.*") {
                (None, None)
            } else if let Some((db, r)) = take_ident(rest) {
                match r.strip_prefix(".*") {
                    Some(_) => (Some(db), None),
                    None => (
                        Some(db),
                        r.strip_prefix('.').and_then(take_ident).map(|(t, _)| t),
                    ),
                }
            } else {
                continue;
            };
            g.entries.push((privs, db, table));
        }
        g
    }

    /// Whether `privilege` is held on all of `database` (or globally when `None`).
    pub fn has(&self, privilege: &str, database: Option<&str>, table: Option<&str>) -> bool {
        self.entries.iter().any(|(privs, db, t)| {
            let scope_ok = match (db, database) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(pattern), Some(name)) => {
                    db_matches(pattern, name)
                        && match (t, table) {
                            (None, _) => true,
                            (Some(gt), Some(want)) => gt == want,
                            (Some(_), None) => false,
                        }
                }
            };
            scope_ok
                && privs
                    .iter()
                    .any(|p| p == "ALL PRIVILEGES" || p == "ALL" || p == privilege)
        })
    }
}

impl Grants {
    /// The kinds of schema object in `database` that `information_schema` and `SHOW
    /// CREATE` hide from this user, each with the grant that shows them: without it
    /// they are silently absent from every list, so they would be neither migrated nor
    /// reported missing.
    pub fn hidden_objects(&self, database: &str) -> Vec<(&'static str, String)> {
        let mut hidden = Vec::new();
        if !self.has("TRIGGER", Some(database), None) {
            hidden.push((
                "triggers",
                format!("TRIGGER ON {}.*", quote_ident(database)),
            ));
        }
        // Routine bodies: MariaDB reads them from `mysql.proc` (or, from 11.3, with SHOW
        // CREATE ROUTINE), MySQL 8.0.20+ with SHOW_ROUTINE; global SELECT covers both.
        let routines = self.has("SELECT", Some("mysql"), Some("proc"))
            || self.has("SHOW_ROUTINE", None, None)
            || self.has("SHOW CREATE ROUTINE", Some(database), None);
        if !routines {
            hidden.push((
                "procedures and functions",
                "SELECT ON `mysql`.`proc` (MariaDB before 11.3), SHOW CREATE ROUTINE ON the database (MariaDB 11.3+) or SHOW_ROUTINE ON *.* (MySQL 8.0.20+)".to_string(),
            ));
        }
        hidden
    }
}

/// Database grant patterns: `%` and `_` are wildcards, `\_` and `\%` literal.
fn db_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('%') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('_') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_global_db_and_table_grants() {
        let g = Grants::parse([
            "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*ABC'",
            "GRANT SELECT, SHOW VIEW ON `shop\\_1`.* TO `u`@`%`",
            "GRANT SELECT (a, b), INSERT ON `crm`.`t` TO `u`@`%`",
        ]);
        assert!(g.has("SELECT", Some("shop_1"), Some("x")));
        assert!(!g.has("SELECT", Some("shopX1"), None));
        assert!(g.has("INSERT", Some("crm"), Some("t")));
        assert!(!g.has("SELECT", Some("crm"), Some("t")));
        assert!(!g.has("REPLICATION SLAVE", None, None));
        let all =
            Grants::parse(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert!(all.has("REPLICATION SLAVE", None, None));
        assert!(all.hidden_objects("shop").is_empty());
    }

    #[test]
    fn names_the_object_kinds_a_user_cannot_see() {
        let g = Grants::parse(["GRANT SELECT, SHOW VIEW ON `shop`.* TO `u`@`%`"]);
        let kinds: Vec<&str> = g.hidden_objects("shop").iter().map(|h| h.0).collect();
        assert_eq!(kinds, ["triggers", "procedures and functions"]);
        let g = Grants::parse([
            "GRANT SELECT, TRIGGER ON `shop`.* TO `u`@`%`",
            "GRANT SELECT ON `mysql`.`proc` TO `u`@`%`",
        ]);
        assert!(g.hidden_objects("shop").is_empty());
    }
}
