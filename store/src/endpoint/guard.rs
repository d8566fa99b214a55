//! What a read-only request may not do that the engine's own `readonly=1`
//! lets through. chDB runs ClickHouse's local client inside the engine, and
//! some of its work happens outside the server's readonly checks (measured
//! on libchdb 26.7.3): `SELECT … INTO OUTFILE 'path'` writes the file, and
//! `DESCRIBE file('path', 'CSVWithNames')` reads the file to infer its
//! schema, which names its first line. So read-only requests are lexed here
//! and refused when they would reach the filesystem that way.
//!
//! The lexer errs towards refusing: comments end at the first `*/` (ClickHouse
//! nests them), heredocs are not recognised, so text the engine treats as
//! inert may be read as code here, never the other way round.

/// Why `sql` may not run on a read-only session, or `None`.
pub fn readonly_refusal(sql: &str) -> Option<&'static str> {
    let tokens = lex(sql);
    let words = || {
        tokens.iter().filter_map(|t| match t {
            Token::Word(w) => Some(w.as_str()),
            Token::Punct(_) => None,
        })
    };
    if words().any(|w| w.eq_ignore_ascii_case("OUTFILE") || w.eq_ignore_ascii_case("INFILE")) {
        return Some("INTO OUTFILE and FROM INFILE are not allowed in readonly mode");
    }
    if let Some(end) = tokens.iter().position(|t| *t == Token::Punct(';'))
        && end + 1 < tokens.len()
    {
        return Some("one statement per request in readonly mode");
    }
    let is_describe =
        |w: &str| w.eq_ignore_ascii_case("DESCRIBE") || w.eq_ignore_ascii_case("DESC");
    let first = words().next().unwrap_or("");
    let describes = is_describe(first)
        || (first.eq_ignore_ascii_case("EXPLAIN") && words().skip(1).any(is_describe));
    if describes && tokens.contains(&Token::Punct('(')) {
        return Some("DESCRIBE of a table function is not allowed in readonly mode");
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word: keyword or unquoted identifier.
    Word(String),
    /// One punctuation character outside literals and comments.
    Punct(char),
}

/// Bare words and punctuation, with string literals, quoted identifiers and
/// comments removed.
fn lex(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '\'' | '"' | '`' => skip_quoted(&mut chars, c),
            '-' if chars.peek() == Some(&'-') => skip_line(&mut chars),
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '$' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            c => out.push(Token::Punct(c)),
        }
    }
    out
}

/// Past the closing `quote` (a doubled quote or a backslash escapes one).
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char) {
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            if chars.peek() == Some(&quote) {
                chars.next();
            } else {
                return;
            }
        }
    }
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_output_and_input_are_refused_however_written() {
        for sql in [
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "select 1 into outfile '/tmp/x' TRUNCATE",
            "SELECT * FROM numbers(2) INTO /* hidden */ OUTFILE '/tmp/x' AND STDOUT",
            "SELECT 1 INTO -- comment\n OutFile '/tmp/x'",
            "INSERT INTO loupe.t FROM INFILE '/etc/passwd'",
        ] {
            assert!(readonly_refusal(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn describe_of_a_table_function_is_refused_but_not_of_a_table() {
        for sql in [
            "DESCRIBE TABLE file('/etc/shadow', 'CSVWithNames')",
            "desc file('/etc/passwd')",
            "DESC s3('http://x/b/k')",
            "EXPLAIN AST DESCRIBE file('/etc/passwd')",
        ] {
            assert!(readonly_refusal(sql).is_some(), "{sql}");
        }
        for sql in [
            "DESCRIBE TABLE loupe.spans",
            "SELECT name FROM loupe.spans ORDER BY start_time DESC LIMIT 3",
            "SELECT count() FROM loupe.spans WHERE tenant_id = {t:String}",
        ] {
            assert_eq!(readonly_refusal(sql), None, "{sql}");
        }
    }

    #[test]
    fn words_inside_literals_identifiers_and_comments_are_inert() {
        for sql in [
            "SELECT 'INTO OUTFILE' AS a",
            "SELECT 'it''s INTO OUTFILE' AS a",
            r"SELECT 'a\' INTO OUTFILE' AS a",
            "SELECT \"outfile\" FROM loupe.t",
            "SELECT `infile` FROM loupe.t",
            "SELECT 1 -- INTO OUTFILE '/tmp/x'",
            "SELECT 1 /* INTO OUTFILE '/tmp/x' */",
            "SELECT 1;",
            "SELECT 1 ; ",
        ] {
            assert_eq!(readonly_refusal(sql), None, "{sql}");
        }
    }

    #[test]
    fn a_second_statement_is_refused() {
        assert!(readonly_refusal("SELECT 1; SELECT 2").is_some());
        assert!(readonly_refusal("SELECT ';' ; DESC file('/x')").is_some());
    }
}
