//! ADB's `SHOW CREATE TABLE`, read: columns with ADB's types, the primary key, the
//! distribution (`DISTRIBUTED BY HASH(…)` / `BROADCAST`, also the older spelling
//! `DISTRIBUTE BY`), the partition (`PARTITION BY VALUE(col | DATE_FORMAT(col, 'fmt') |
//! FROM_UNIXTIME(col, 'fmt')) LIFECYCLE n`) and the table options that matter to a
//! migration (`ENGINE`, `BINLOG`, `binlog_ttl`), in whatever order the options come.
//! Options Tidemark has no use for (`INDEX_ALL`, `STORAGE_POLICY`, `BLOCK_SIZE`,
//! `TABLE_PROPERTIES`, `COMMENT`, …) are skipped whole, including their quoted values.

use anyhow::{anyhow, bail, Result};
use std::time::Duration;

/// One column as ADB shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The type as written, lower-case, e.g. `decimal(12,2)`, `varchar`, `boolean`.
    pub ty: String,
    pub not_null: bool,
}

impl Column {
    /// The type's name without arguments, upper-case: `DECIMAL`, `VARCHAR`.
    pub fn base(&self) -> String {
        self.ty
            .split(['(', '<', ' '])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Distribution {
    Hash(Vec<String>),
    Broadcast,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionExpr {
    Value(String),
    /// Column and format.
    DateFormat(String, String),
    FromUnixtime(String, String),
}

impl PartitionExpr {
    pub fn column(&self) -> &str {
        match self {
            PartitionExpr::Value(c)
            | PartitionExpr::DateFormat(c, _)
            | PartitionExpr::FromUnixtime(c, _) => c,
        }
    }
}

/// What a migration needs to know of one ADB table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdbTable {
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// `None` when the output names no distribution (the primary key is used).
    pub distribution: Option<Distribution>,
    pub partition: Option<(PartitionExpr, Option<u32>)>,
    pub engine: Option<String>,
    pub binlog: bool,
    /// `binlog_ttl` as written (`6h`, `1d`, `60000`).
    pub binlog_ttl: Option<String>,
}

/// The column ADB adds to a table created without a primary key.
pub const AUTO_ID: &str = "__adb_auto_id__";

impl AdbTable {
    /// The table was created without a primary key: ADB keyed it on [`AUTO_ID`].
    pub fn auto_keyed(&self) -> bool {
        self.primary_key
            .iter()
            .any(|k| k.eq_ignore_ascii_case(AUTO_ID))
            || self
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(AUTO_ID))
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// `binlog_ttl` as a duration (default 6 h when binlog is on and none is shown).
    pub fn retention(&self) -> Result<Duration> {
        match &self.binlog_ttl {
            None => Ok(Duration::from_secs(6 * 3600)),
            Some(t) => parse_ttl(t),
        }
    }
}

/// `binlog_ttl` values: plain digits are milliseconds, or a number followed by `s`, `h`
/// or `d` (ADB's "Subscribe to binary logs" pages).
pub fn parse_ttl(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("binlog_ttl {text:?} is not a number with an optional s, h or d"))?;
    let secs = |m: u64| Duration::from_secs(n.saturating_mul(m));
    Ok(match unit.to_ascii_lowercase().as_str() {
        "" => Duration::from_millis(n),
        "s" => secs(1),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => bail!("binlog_ttl {text:?} has unit {unit:?}; ADB takes ms (plain digits), s, h or d"),
    })
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A bare word or a backquoted identifier (`quoted` tells them apart).
    Word {
        text: String,
        quoted: bool,
    },
    Str(String),
    Num(String),
    Punct(char),
}

fn lex(sql: &str) -> Result<Vec<Tok>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'`' || c == b'\'' || c == b'"' {
            let mut s = Vec::new();
            i += 1;
            loop {
                let Some(&d) = b.get(i) else {
                    bail!("unterminated {} in SHOW CREATE TABLE output", c as char);
                };
                if d == c {
                    if b.get(i + 1) == Some(&c) {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                if d == b'\\' && c != b'`' {
                    if let Some(&e) = b.get(i + 1) {
                        s.push(match e {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'0' => 0,
                            other => other,
                        });
                        i += 2;
                        continue;
                    }
                }
                s.push(d);
                i += 1;
            }
            let text = String::from_utf8_lossy(&s).into_owned();
            out.push(if c == b'`' {
                Tok::Word { text, quoted: true }
            } else {
                Tok::Str(text)
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(sql[start..i].to_string()));
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(Tok::Word {
                text: sql[start..i].to_string(),
                quoted: false,
            });
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    at: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word { text, quoted: false }) if text.eq_ignore_ascii_case(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.at += 1;
        }
        yes
    }
    fn is_punct(&self, p: char) -> bool {
        self.peek() == Some(&Tok::Punct(p))
    }
    fn eat_punct(&mut self, p: char) -> bool {
        let yes = self.is_punct(p);
        if yes {
            self.at += 1;
        }
        yes
    }
    fn expect_punct(&mut self, p: char, what: &str) -> Result<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            bail!("expected `{p}` {what}, found {:?}", self.peek())
        }
    }
    fn ident(&mut self, what: &str) -> Result<String> {
        match self.next() {
            Some(Tok::Word { text, .. }) => Ok(text),
            other => bail!("expected {what}, found {other:?}"),
        }
    }
    /// `(a, b, …)`: identifiers.
    fn ident_list(&mut self, what: &str) -> Result<Vec<String>> {
        self.expect_punct('(', what)?;
        let mut out = Vec::new();
        loop {
            out.push(self.ident(what)?);
            // Index parts may carry a length or an order.
            while !self.is_punct(',') && !self.is_punct(')') {
                self.skip_one()?;
            }
            if self.eat_punct(')') {
                return Ok(out);
            }
            self.expect_punct(',', what)?;
        }
    }
    /// One token, or a whole parenthesised group.
    fn skip_one(&mut self) -> Result<()> {
        match self.next() {
            None => bail!("SHOW CREATE TABLE output ended early"),
            Some(Tok::Punct('(')) => {
                let mut depth = 1;
                while depth > 0 {
                    match self.next() {
                        None => bail!("unbalanced parentheses in SHOW CREATE TABLE output"),
                        Some(Tok::Punct('(')) => depth += 1,
                        Some(Tok::Punct(')')) => depth -= 1,
                        Some(_) => {}
                    }
                }
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }
    /// The text of the tokens up to the next top-level `,` or `)`, re-joined.
    fn type_text(&mut self) -> Result<String> {
        let mut s = String::new();
        let mut depth = 0i32;
        loop {
            match self.peek() {
                None => bail!("SHOW CREATE TABLE output ended inside a column type"),
                Some(Tok::Punct(',' | ')')) if depth == 0 => return Ok(s),
                Some(Tok::Word { quoted: false, .. }) if depth == 0 && !s.is_empty() => {
                    // Attributes after the type (`NOT NULL`, `DEFAULT …`) end it.
                    return Ok(s);
                }
                _ => {}
            }
            match self.next() {
                Some(Tok::Punct(c)) => {
                    match c {
                        '(' | '<' => depth += 1,
                        ')' | '>' => depth -= 1,
                        _ => {}
                    }
                    s.push(c);
                }
                Some(Tok::Word { text, .. }) => s.push_str(&text.to_ascii_lowercase()),
                Some(Tok::Num(n)) => s.push_str(&n),
                Some(Tok::Str(v)) => s.push_str(&format!("'{v}'")),
                None => {}
            }
        }
    }
    fn string_or_word(&mut self, what: &str) -> Result<String> {
        match self.next() {
            Some(Tok::Str(s) | Tok::Num(s)) => Ok(s),
            Some(Tok::Word { text, .. }) => Ok(text),
            other => bail!("expected a value for {what}, found {other:?}"),
        }
    }
}

/// Parses the `Create Table` text of ADB's `SHOW CREATE TABLE`.
pub fn parse(sql: &str) -> Result<AdbTable> {
    let mut p = P {
        toks: lex(sql)?,
        at: 0,
    };
    if !(p.eat_kw("CREATE") && p.eat_kw("TABLE")) {
        bail!("expected CREATE TABLE");
    }
    if p.eat_kw("IF") {
        p.eat_kw("NOT");
        p.eat_kw("EXISTS");
    }
    p.ident("the table name")?;
    if p.eat_punct('.') {
        p.ident("the table name")?;
    }
    p.expect_punct('(', "after the table name")?;
    let mut t = AdbTable {
        columns: Vec::new(),
        primary_key: Vec::new(),
        distribution: None,
        partition: None,
        engine: None,
        binlog: false,
        binlog_ttl: None,
    };
    loop {
        let constraint = [
            "PRIMARY",
            "KEY",
            "INDEX",
            "UNIQUE",
            "FULLTEXT",
            "CLUSTERED",
            "CONSTRAINT",
            "FOREIGN",
            "ANN",
        ]
        .iter()
        .any(|k| p.is_kw(k));
        if constraint {
            if p.eat_kw("PRIMARY") {
                p.eat_kw("KEY");
                if !p.is_punct('(') {
                    p.ident("the primary key's name")?;
                }
                t.primary_key = p.ident_list("the primary key")?;
            }
            while !p.is_punct(',') && !p.is_punct(')') {
                p.skip_one()?;
            }
        } else {
            let name = p.ident("a column name")?;
            let ty = p.type_text()?;
            let mut not_null = false;
            let mut inline_pk = false;
            while !p.is_punct(',') && !p.is_punct(')') {
                if p.eat_kw("NOT") {
                    not_null |= p.eat_kw("NULL");
                } else if p.eat_kw("PRIMARY") {
                    p.eat_kw("KEY");
                    inline_pk = true;
                } else {
                    p.skip_one()?;
                }
            }
            if inline_pk {
                t.primary_key = vec![name.clone()];
            }
            t.columns.push(Column { name, ty, not_null });
        }
        if p.eat_punct(')') {
            break;
        }
        p.expect_punct(',', "between column definitions")?;
    }
    while p.peek().is_some() {
        if p.eat_kw("DISTRIBUTED") || p.eat_kw("DISTRIBUTE") {
            if !p.eat_kw("BY") {
                bail!("expected BY after DISTRIBUTED");
            }
            if p.eat_kw("BROADCAST") {
                t.distribution = Some(Distribution::Broadcast);
            } else if p.eat_kw("HASH") {
                t.distribution = Some(Distribution::Hash(p.ident_list("the distribution key")?));
            } else {
                bail!(
                    "expected HASH(…) or BROADCAST after DISTRIBUTED BY, found {:?}",
                    p.peek()
                );
            }
        } else if p.eat_kw("PARTITION") {
            if !(p.eat_kw("BY") && p.eat_kw("VALUE")) {
                bail!("expected PARTITION BY VALUE(…)");
            }
            p.expect_punct('(', "after PARTITION BY VALUE")?;
            let expr = if p.is_kw("DATE_FORMAT") || p.is_kw("FROM_UNIXTIME") {
                let date = p.is_kw("DATE_FORMAT");
                p.next();
                p.expect_punct('(', "after the partition function")?;
                let col = p.ident("the partition column")?;
                p.expect_punct(',', "in the partition function")?;
                let fmt = p.string_or_word("the partition format")?;
                p.expect_punct(')', "after the partition format")?;
                if date {
                    PartitionExpr::DateFormat(col, fmt)
                } else {
                    PartitionExpr::FromUnixtime(col, fmt)
                }
            } else {
                PartitionExpr::Value(p.ident("the partition column")?)
            };
            p.expect_punct(')', "after the partition expression")?;
            let lifecycle = if p.eat_kw("LIFECYCLE") {
                let n = p.string_or_word("LIFECYCLE")?;
                Some(
                    n.parse()
                        .map_err(|_| anyhow!("LIFECYCLE {n:?} is not a number"))?,
                )
            } else {
                None
            };
            t.partition = Some((expr, lifecycle));
        } else {
            // `NAME [=] value`, or a bare word (ADB prints `COMMENT '…'` both ways).
            let name = p.ident("a table option")?;
            p.eat_punct('=');
            let value = if p.is_punct('(') {
                p.skip_one()?;
                String::new()
            } else if p.peek().is_some() && !p.is_kw("DISTRIBUTED") && !p.is_kw("PARTITION") {
                p.string_or_word(&name)?
            } else {
                String::new()
            };
            match name.to_ascii_lowercase().as_str() {
                "engine" => t.engine = Some(value),
                "binlog" => t.binlog = value.eq_ignore_ascii_case("true"),
                "binlog_ttl" => t.binlog_ttl = Some(value),
                _ => {}
            }
        }
    }
    if t.columns.is_empty() {
        bail!("the table shows no columns");
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_spellings_and_options_in_any_order() {
        let a = parse(
            "CREATE TABLE `login` (\n  `login_time` datetime NOT NULL COMMENT 'a, (b)',\n  `customer_id` bigint NOT NULL,\n  `phone_num` varchar NOT NULL DEFAULT 'x,y',\n  `amount` decimal(12, 2),\n  `ok` boolean,\n  KEY `k` (`phone_num`),\n  PRIMARY KEY (`login_time`,`customer_id`,`phone_num`)\n) DISTRIBUTED BY HASH(`customer_id`) PARTITION BY VALUE(DATE_FORMAT(login_time, '%Y%m%d')) LIFECYCLE 30 INDEX_ALL='Y' STORAGE_POLICY='HOT' ENGINE='XUANWU' TABLE_PROPERTIES='{\"format\":\"columnstore\"}' BINLOG=true binlog_ttl='1d' COMMENT='logins'",
        )
        .unwrap();
        assert_eq!(a.columns.len(), 5);
        assert_eq!(a.columns[3].ty, "decimal(12,2)");
        assert_eq!(a.columns[4].base(), "BOOLEAN");
        assert!(a.columns[0].not_null && !a.columns[3].not_null);
        assert_eq!(a.primary_key, ["login_time", "customer_id", "phone_num"]);
        assert_eq!(
            a.distribution,
            Some(Distribution::Hash(vec!["customer_id".into()]))
        );
        assert_eq!(
            a.partition,
            Some((
                PartitionExpr::DateFormat("login_time".into(), "%Y%m%d".into()),
                Some(30)
            ))
        );
        assert!(a.binlog);
        assert_eq!(a.retention().unwrap(), Duration::from_secs(86_400));
        assert_eq!(a.engine.as_deref(), Some("XUANWU"));

        let b = parse(
            "CREATE TABLE `d` (\n `id` int NOT NULL,\n `ts` bigint,\n PRIMARY KEY (`id`, `ts`)\n) COMMENT 'dim' ENGINE='XUANWU_V2' DISTRIBUTE BY BROADCAST PARTITION BY VALUE(FROM_UNIXTIME(ts, '%Y%m')) LIFECYCLE 12",
        )
        .unwrap();
        assert_eq!(b.distribution, Some(Distribution::Broadcast));
        assert_eq!(
            b.partition,
            Some((
                PartitionExpr::FromUnixtime("ts".into(), "%Y%m".into()),
                Some(12)
            ))
        );
        assert!(!b.binlog && !b.auto_keyed());
    }

    #[test]
    fn auto_keyed_tables_and_bad_ttls_are_recognised() {
        let t = parse(
            "CREATE TABLE `k` (`__adb_auto_id__` bigint AUTO_INCREMENT, `v` varchar, PRIMARY KEY (`__adb_auto_id__`)) DISTRIBUTED BY HASH(`__adb_auto_id__`)",
        )
        .unwrap();
        assert!(t.auto_keyed());
        assert_eq!(parse_ttl("60").unwrap(), Duration::from_millis(60));
        assert_eq!(parse_ttl("30s").unwrap(), Duration::from_secs(30));
        assert!(parse_ttl("2w").is_err() && parse_ttl("h").is_err());
        assert!(parse("CREATE TABLE `x` (").is_err());
    }
}
