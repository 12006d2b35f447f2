//! A small SQL lexer and parsing helpers shared by the stand-ins: enough to split a
//! multi-statement query, recognise statement kinds and parse the DDL each engine
//! documents. Not a general SQL parser: DML text is forwarded to MariaDB as written
//! (after the few rewrites each stand-in documents).

use super::wire::SqlError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An unquoted word: keyword or identifier.
    Word(String),
    /// A backtick-quoted identifier, unescaped.
    Quoted(String),
    /// A string literal, unescaped. `double` when it was written in double quotes.
    Str {
        text: String,
        double: bool,
    },
    Num(String),
    /// An optimizer hint `/*+ ... */`, its inside.
    Hint(String),
    Sym(String),
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

pub fn syntax(msg: impl Into<String>) -> SqlError {
    SqlError::new(1064, "42000", msg)
}

/// Splits `src` into tokens; comments (other than hints) are dropped.
pub fn lex(src: &str) -> Result<Vec<Token>, SqlError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' || (c == b'-' && b.get(i + 1) == Some(&b'-')) {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = src[i + 2..]
                .find("*/")
                .map(|p| i + 2 + p)
                .ok_or_else(|| syntax("unterminated comment"))?;
            if b.get(i + 2) == Some(&b'+') {
                out.push(Token {
                    tok: Tok::Hint(src[i + 3..end].trim().to_string()),
                    start,
                    end: end + 2,
                });
            }
            i = end + 2;
            continue;
        }
        if c == b'\'' || c == b'"' || c == b'`' {
            let q = c;
            i += 1;
            let mut text = Vec::new();
            loop {
                let Some(&ch) = b.get(i) else {
                    return Err(syntax(format!(
                        "unterminated {} starting at offset {start}",
                        if q == b'`' { "identifier" } else { "string" }
                    )));
                };
                if ch == q {
                    if b.get(i + 1) == Some(&q) {
                        text.push(q);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                if ch == b'\\' && q != b'`' {
                    let Some(&n) = b.get(i + 1) else {
                        return Err(syntax("unterminated string"));
                    };
                    text.push(match n {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'0' => 0,
                        b'Z' => 26,
                        b'b' => 8,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                text.push(ch);
                i += 1;
            }
            let text = String::from_utf8_lossy(&text).into_owned();
            out.push(Token {
                tok: if q == b'`' {
                    Tok::Quoted(text)
                } else {
                    Tok::Str {
                        text,
                        double: q == b'"',
                    }
                },
                start,
                end: i,
            });
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                // An exponent's sign belongs to the number: 1.5E-3.
                if (b[i] == b'e' || b[i] == b'E')
                    && matches!(b.get(i + 1), Some(b'+') | Some(b'-'))
                    && !src[start..i].starts_with("0x")
                {
                    i += 1;
                }
                i += 1;
            }
            out.push(Token {
                tok: Tok::Num(src[start..i].to_string()),
                start,
                end: i,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(src[start..i].to_string()),
                start,
                end: i,
            });
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let sym = if ["->", ">=", "<=", "!=", "<>", ":="].contains(&two) {
            two
        } else {
            // Any one character (a multi-byte one whole).
            let len = src[i..].chars().next().map_or(1, char::len_utf8);
            &src[i..i + len]
        };
        i += sym.len();
        out.push(Token {
            tok: Tok::Sym(sym.to_string()),
            start,
            end: i,
        });
    }
    Ok(out)
}

/// The statements of a multi-statement query, as slices of `src` (empty ones dropped).
pub fn split(src: &str) -> Result<Vec<&str>, SqlError> {
    let toks = lex(src)?;
    let mut out = Vec::new();
    let mut from = 0;
    // A piece holding only comments is no statement.
    let mut has_tokens = false;
    for t in &toks {
        if t.tok == Tok::Sym(";".into()) {
            if has_tokens {
                out.push(src[from..t.start].trim());
            }
            from = t.end;
            has_tokens = false;
        } else {
            has_tokens = true;
        }
    }
    if has_tokens {
        out.push(src[from..].trim());
    }
    Ok(out)
}

/// A cursor over the tokens of one statement.
pub struct P<'a> {
    pub src: &'a str,
    pub toks: Vec<Token>,
    pub i: usize,
}

impl<'a> P<'a> {
    pub fn new(src: &'a str) -> Result<P<'a>, SqlError> {
        Ok(P {
            src,
            toks: lex(src)?,
            i: 0,
        })
    }

    pub fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    pub fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.i + n).map(|t| &t.tok)
    }

    pub fn done(&self) -> bool {
        self.i >= self.toks.len()
    }

    /// Byte offset of the next token (the end of the text when there is none).
    pub fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.src.len(), |t| t.start)
    }

    /// End offset of the previous token.
    pub fn prev_end(&self) -> usize {
        if self.i == 0 {
            0
        } else {
            self.toks[self.i - 1].end
        }
    }

    pub fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    pub fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    pub fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, k)| self.is_kw_at(n, k)) {
            self.i += kws.len();
            true
        } else {
            false
        }
    }

    pub fn expect_kw(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{kw}`")))
        }
    }

    pub fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if x == s)
    }

    pub fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub fn expect_sym(&mut self, s: &str) -> Result<(), SqlError> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{s}`")))
        }
    }

    /// What follows, for error messages.
    pub fn near(&self) -> String {
        let rest = &self.src[self.pos()..];
        let cut: String = rest.chars().take(40).collect();
        if cut.is_empty() {
            "the end of the statement".into()
        } else {
            format!("'{cut}'")
        }
    }

    pub fn unexpected(&self, wanted: &str) -> SqlError {
        syntax(format!(
            "You have an error in your SQL syntax: expected {wanted} near {}",
            self.near()
        ))
    }

    /// An identifier: a word or a backtick-quoted name.
    pub fn ident(&mut self) -> Result<String, SqlError> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.i += 1;
                Ok(w)
            }
            Some(Tok::Quoted(q)) => {
                let q = q.clone();
                self.i += 1;
                Ok(q)
            }
            _ => Err(self.unexpected("a name")),
        }
    }

    /// `name` or `db.name`.
    pub fn table_ref(&mut self) -> Result<(Option<String>, String), SqlError> {
        let a = self.ident()?;
        if self.eat_sym(".") {
            let b = self.ident()?;
            Ok((Some(a), b))
        } else {
            Ok((None, a))
        }
    }

    pub fn string(&mut self) -> Result<String, SqlError> {
        match self.peek() {
            Some(Tok::Str { text, .. }) => {
                let t = text.clone();
                self.i += 1;
                Ok(t)
            }
            _ => Err(self.unexpected("a quoted string")),
        }
    }

    pub fn number(&mut self) -> Result<String, SqlError> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = n.clone();
                self.i += 1;
                Ok(n)
            }
            _ => Err(self.unexpected("a number")),
        }
    }

    /// `( name, name … )`.
    pub fn name_list(&mut self) -> Result<Vec<String>, SqlError> {
        self.expect_sym("(")?;
        let mut out = vec![self.ident()?];
        while self.eat_sym(",") {
            out.push(self.ident()?);
        }
        self.expect_sym(")")?;
        Ok(out)
    }

    /// Skips a balanced `( … )` and returns the text inside.
    pub fn parens_raw(&mut self) -> Result<String, SqlError> {
        self.expect_sym("(")?;
        let from = self.pos();
        let mut depth = 1;
        while let Some(t) = self.peek() {
            if *t == Tok::Sym("(".into()) {
                depth += 1;
            } else if *t == Tok::Sym(")".into()) {
                depth -= 1;
                if depth == 0 {
                    let to = self.pos();
                    self.i += 1;
                    return Ok(self.src[from..to].trim().to_string());
                }
            }
            self.i += 1;
        }
        Err(syntax("unbalanced parentheses"))
    }

    /// The source text of a single literal or expression token run up to (not including)
    /// a `,` or `)` at depth 0, or one of the stop words.
    pub fn raw_until(&mut self, stop_words: &[&str]) -> String {
        let from = self.pos();
        let mut depth = 0;
        while let Some(t) = self.peek() {
            match t {
                Tok::Sym(s) if s == "(" => depth += 1,
                Tok::Sym(s) if s == ")" => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1
                }
                Tok::Sym(s) if s == "," && depth == 0 => break,
                Tok::Word(w)
                    if depth == 0 && stop_words.iter().any(|k| w.eq_ignore_ascii_case(k)) =>
                {
                    break
                }
                _ => {}
            }
            self.i += 1;
        }
        self.src[from..self.prev_end().max(from)].trim().to_string()
    }
}

/// `name` in backticks, with backticks doubled.
pub fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A single-quoted SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_semicolons_in_strings_and_comments() {
        let s = split("SELECT ';' ; /* ; */ SELECT `a;b`; -- ;\n ;").unwrap();
        assert_eq!(s, vec!["SELECT ';'", "/* ; */ SELECT `a;b`"]);
    }

    #[test]
    fn numbers_keep_their_exponent() {
        let t = lex("1.5E-3, 2e+10, 7").unwrap();
        assert_eq!(t[0].tok, Tok::Num("1.5E-3".into()));
        assert_eq!(t[2].tok, Tok::Num("2e+10".into()));
        assert_eq!(t[4].tok, Tok::Num("7".into()));
    }

    #[test]
    fn hints_are_tokens() {
        let t = lex("UPSERT /*+ _l_ts_(10) */ INTO t").unwrap();
        assert_eq!(t[1].tok, Tok::Hint("_l_ts_(10)".into()));
    }
}
