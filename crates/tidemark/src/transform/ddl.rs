//! DDL statements from the binlog: which tables they touch, and the same statement with
//! source names replaced by destination names.
//!
//! This is a tokenizer, not a SQL parser: it knows the statement shapes that change
//! tables (CREATE / ALTER / DROP / RENAME / TRUNCATE TABLE, CREATE / DROP INDEX, and
//! database statements) and where table names sit in them, including `REFERENCES` and
//! `LIKE`. Strings and comments are carried through untouched. Any other statement is
//! [`Kind::Other`]: the caller decides whether to apply it (for whole databases) or
//! skip it.

use tidemark_core::sql::quote_ident;

/// A name in a statement: `table` or `db`.`table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRef {
    pub database: Option<String>,
    pub name: String,
    /// Token range in the statement (first..=last token of the name).
    span: (usize, usize),
}

/// What a statement does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    CreateTable,
    AlterTable,
    DropTable,
    /// `RENAME TABLE a TO b, c TO d` (also `ALTER TABLE a RENAME [TO] b`, as AlterTable
    /// with a second name).
    RenameTable,
    TruncateTable,
    CreateIndex,
    DropIndex,
    CreateDatabase,
    DropDatabase,
    AlterDatabase,
    /// Views, triggers, routines, users, grants, anything else.
    Other,
}

/// A statement split into tokens, with the table names it refers to.
#[derive(Clone, Debug)]
pub struct Statement {
    tokens: Vec<Token>,
    pub kind: Kind,
    /// Tables the statement names, in order (for RENAME: from, to, from, to, ...).
    pub tables: Vec<NameRef>,
    /// For database statements: the database.
    pub database: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A bare word (keyword or unquoted identifier).
    Word(String),
    /// A backtick-quoted identifier, unquoted.
    Quoted(String),
    /// Anything else, verbatim: strings, numbers, punctuation, comments, whitespace.
    Other(String),
}

impl Token {
    fn ident(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            Token::Other(_) => None,
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn is(&self, s: &str) -> bool {
        matches!(self, Token::Other(o) if o == s)
    }

    fn blank(&self) -> bool {
        matches!(self, Token::Other(o) if o.trim().is_empty() || o.starts_with("/*") || o.starts_with("--") || o.starts_with('#'))
    }
}

fn tokenize(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c == b'`' {
            let mut name = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == b'`' {
                    if b.get(i + 1) == Some(&b'`') {
                        name.push('`');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                let ch_len = utf8_len(b[i]);
                name.push_str(&sql[i..(i + ch_len).min(b.len())]);
                i += ch_len;
            }
            out.push(Token::Quoted(name));
        } else if c == b'\'' || c == b'"' {
            i += 1;
            while i < b.len() {
                if b[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(Token::Other(sql[start..i.min(b.len())].to_string()));
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i = (i + 2).min(b.len());
            out.push(Token::Other(sql[start..i].to_string()));
        } else if (c == b'-' && b.get(i + 1) == Some(&b'-')) || c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            out.push(Token::Other(sql[start..i].to_string()));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Token::Word(sql[start..i].to_string()));
        } else {
            i += utf8_len(c);
            out.push(Token::Other(sql[start..i.min(b.len())].to_string()));
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

/// Indices of the significant tokens (no whitespace or comments).
fn significant(tokens: &[Token]) -> Vec<usize> {
    (0..tokens.len()).filter(|&i| !tokens[i].blank()).collect()
}

impl Statement {
    pub fn parse(sql: &str) -> Statement {
        let tokens = tokenize(sql);
        let sig = significant(&tokens);
        let word = |k: usize| sig.get(k).map(|&i| &tokens[i]);
        let kw = |k: usize, s: &str| word(k).is_some_and(|t| t.is_kw(s));
        let mut st = Statement {
            tokens: tokens.clone(),
            kind: Kind::Other,
            tables: Vec::new(),
            database: None,
        };
        // Reads a name at significant index k: returns it and the next index.
        let name_at = |k: usize| -> Option<(NameRef, usize)> {
            let first = tokens.get(*sig.get(k)?)?.ident()?.to_string();
            if word(k + 1).is_some_and(|t| t.is(".")) {
                let second = word(k + 2)?.ident()?.to_string();
                Some((
                    NameRef {
                        database: Some(first),
                        name: second,
                        span: (sig[k], sig[k + 2]),
                    },
                    k + 3,
                ))
            } else {
                Some((
                    NameRef {
                        database: None,
                        name: first,
                        span: (sig[k], sig[k]),
                    },
                    k + 1,
                ))
            }
        };
        let skip_kw = |mut k: usize, kws: &[&str]| {
            while kws.iter().any(|w| kw(k, w)) {
                k += 1;
            }
            k
        };
        let mut k;
        if kw(0, "CREATE") {
            k = skip_kw(1, &["OR", "REPLACE", "TEMPORARY"]);
            if kw(k, "TABLE") {
                st.kind = Kind::CreateTable;
                k = skip_kw(k + 1, &["IF", "NOT", "EXISTS"]);
                if let Some((n, _)) = name_at(k) {
                    st.tables.push(n);
                }
            } else if kw(k, "DATABASE") || kw(k, "SCHEMA") {
                st.kind = Kind::CreateDatabase;
                k = skip_kw(k + 1, &["IF", "NOT", "EXISTS"]);
                st.database = word(k).and_then(|t| t.ident()).map(str::to_string);
            } else {
                let k2 = skip_kw(k, &["UNIQUE", "FULLTEXT", "SPATIAL", "ONLINE", "OFFLINE"]);
                if kw(k2, "INDEX") {
                    st.kind = Kind::CreateIndex;
                    if let Some(on) = (k2..sig.len()).find(|&j| kw(j, "ON")) {
                        if let Some((n, _)) = name_at(on + 1) {
                            st.tables.push(n);
                        }
                    }
                }
            }
        } else if kw(0, "ALTER") {
            k = skip_kw(1, &["ONLINE", "OFFLINE", "IGNORE"]);
            if kw(k, "TABLE") {
                st.kind = Kind::AlterTable;
                k = skip_kw(k + 1, &["IF", "EXISTS"]);
                if let Some((n, next)) = name_at(k) {
                    st.tables.push(n);
                    // ALTER TABLE a RENAME [TO|AS] b
                    if let Some(r) = (next..sig.len()).find(|&j| {
                        kw(j, "RENAME")
                            && !kw(j + 1, "COLUMN")
                            && !kw(j + 1, "INDEX")
                            && !kw(j + 1, "KEY")
                    }) {
                        let to = skip_kw(r + 1, &["TO", "AS"]);
                        if let Some((n, _)) = name_at(to) {
                            st.tables.push(n);
                            st.kind = Kind::RenameTable;
                        }
                    }
                }
            } else if kw(k, "DATABASE") || kw(k, "SCHEMA") {
                st.kind = Kind::AlterDatabase;
                st.database = word(k + 1).and_then(|t| t.ident()).map(str::to_string);
            }
        } else if kw(0, "DROP") {
            k = skip_kw(1, &["TEMPORARY"]);
            if kw(k, "TABLE") || kw(k, "TABLES") {
                st.kind = Kind::DropTable;
                k = skip_kw(k + 1, &["IF", "EXISTS"]);
                while let Some((n, next)) = name_at(k) {
                    st.tables.push(n);
                    if word(next).is_some_and(|t| t.is(",")) {
                        k = next + 1;
                    } else {
                        break;
                    }
                }
            } else if kw(k, "DATABASE") || kw(k, "SCHEMA") {
                st.kind = Kind::DropDatabase;
                k = skip_kw(k + 1, &["IF", "EXISTS"]);
                st.database = word(k).and_then(|t| t.ident()).map(str::to_string);
            } else if kw(k, "INDEX") {
                st.kind = Kind::DropIndex;
                if let Some(on) = (k..sig.len()).find(|&j| kw(j, "ON")) {
                    if let Some((n, _)) = name_at(on + 1) {
                        st.tables.push(n);
                    }
                }
            }
        } else if kw(0, "RENAME") && (kw(1, "TABLE") || kw(1, "TABLES")) {
            st.kind = Kind::RenameTable;
            k = 2;
            while let Some((from, next)) = name_at(k) {
                if !kw(next, "TO") {
                    break;
                }
                let Some((to, after)) = name_at(next + 1) else {
                    break;
                };
                st.tables.push(from);
                st.tables.push(to);
                if word(after).is_some_and(|t| t.is(",")) {
                    k = after + 1;
                } else {
                    break;
                }
            }
        } else if kw(0, "TRUNCATE") {
            st.kind = Kind::TruncateTable;
            k = skip_kw(1, &["TABLE"]);
            if let Some((n, _)) = name_at(k) {
                st.tables.push(n);
            }
        }
        // Other tables a table statement refers to: REFERENCES x, LIKE x.
        if matches!(st.kind, Kind::CreateTable | Kind::AlterTable) {
            for j in 0..sig.len() {
                if kw(j, "REFERENCES") || (kw(j, "LIKE") && st.kind == Kind::CreateTable) {
                    if let Some((n, _)) = name_at(j + 1) {
                        if !st.tables.contains(&n) {
                            st.tables.push(n);
                        }
                    }
                }
            }
        }
        st
    }

    /// The statement with each table name replaced by `map(database, table)` (a fully
    /// qualified, quoted destination name) and the database of database statements
    /// by `map_db`.
    pub fn rewrite(
        &self,
        map: &dyn Fn(&NameRef) -> (String, String),
        map_db: &dyn Fn(&str) -> String,
    ) -> String {
        let mut replace: Vec<((usize, usize), String)> = self
            .tables
            .iter()
            .map(|n| {
                let (db, t) = map(n);
                (n.span, format!("{}.{}", quote_ident(&db), quote_ident(&t)))
            })
            .collect();
        if let Some(db) = &self.database {
            if let Some(i) = self.tokens.iter().position(|t| {
                t.ident() == Some(db.as_str()) && !t.is_kw("DATABASE") && !t.is_kw("SCHEMA")
            }) {
                replace.push(((i, i), quote_ident(&map_db(db))));
            }
        }
        replace.sort_by_key(|r| r.0);
        let mut out = String::new();
        let mut i = 0;
        for ((from, to), text) in replace {
            if from < i {
                continue;
            }
            for t in &self.tokens[i..from] {
                push_token(&mut out, t);
            }
            out.push_str(&text);
            i = to + 1;
        }
        for t in &self.tokens[i.min(self.tokens.len())..] {
            push_token(&mut out, t);
        }
        out
    }
}

fn push_token(out: &mut String, t: &Token) {
    match t {
        Token::Word(w) | Token::Other(w) => out.push_str(w),
        Token::Quoted(q) => out.push_str(&quote_ident(q)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> (Kind, Vec<String>) {
        let st = Statement::parse(sql);
        let names = st
            .tables
            .iter()
            .map(|n| match &n.database {
                Some(d) => format!("{d}.{}", n.name),
                None => n.name.clone(),
            })
            .collect();
        (st.kind, names)
    }

    #[test]
    fn finds_tables_in_table_statements() {
        assert_eq!(
            names("ALTER TABLE `shop`.`orders` ADD COLUMN note TEXT"),
            (Kind::AlterTable, vec!["shop.orders".into()])
        );
        assert_eq!(
            names("create table if not exists t2 like t1"),
            (Kind::CreateTable, vec!["t2".into(), "t1".into()])
        );
        assert_eq!(
            names("DROP TABLE IF EXISTS a, `b c` /* generated by server */"),
            (Kind::DropTable, vec!["a".into(), "b c".into()])
        );
        assert_eq!(
            names("RENAME TABLE t TO _t_del, _t_gho TO t"),
            (
                Kind::RenameTable,
                vec!["t".into(), "_t_del".into(), "_t_gho".into(), "t".into()]
            )
        );
        assert_eq!(
            names("ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES c (id)"),
            (Kind::AlterTable, vec!["o".into(), "c".into()])
        );
        assert_eq!(names("TRUNCATE t").1, vec!["t".to_string()]);
        assert_eq!(
            names("CREATE UNIQUE INDEX i ON db.t (a)").1,
            vec!["db.t".to_string()]
        );
        assert_eq!(names("ALTER TABLE a RENAME TO b").0, Kind::RenameTable);
        assert_eq!(
            names("ALTER TABLE a RENAME COLUMN x TO y").0,
            Kind::AlterTable
        );
        assert_eq!(names("CREATE VIEW v AS SELECT 1").0, Kind::Other);
    }

    #[test]
    fn rewrites_names_but_not_strings_or_comments() {
        let st = Statement::parse(
            "ALTER TABLE shop.orders ADD COLUMN note VARCHAR(10) DEFAULT 'shop.orders' /* shop.orders */",
        );
        let out = st.rewrite(&|n| ("copy".into(), format!("{}_x", n.name)), &|d| {
            d.to_string()
        });
        assert_eq!(
            out,
            "ALTER TABLE `copy`.`orders_x` ADD COLUMN note VARCHAR(10) DEFAULT 'shop.orders' /* shop.orders */"
        );
        let st = Statement::parse("CREATE DATABASE IF NOT EXISTS `sh``op` CHARACTER SET utf8mb4");
        assert_eq!(st.database.as_deref(), Some("sh`op"));
        let out = st.rewrite(&|_| unreachable!(), &|_| "dst".into());
        assert_eq!(
            out,
            "CREATE DATABASE IF NOT EXISTS `dst` CHARACTER SET utf8mb4"
        );
    }
}
