//! Cuts: filters on one level (or dimension role) by member key, label or alias, in a text form that is also
//! their JSON form and the form measure filters take in schemas (`district=06,09`, `age=18..64`,
//! `district!=06`, `language_level<B1`). A value with a comma, two dots or a quote is written in double quotes,
//! a quote in it doubled (`kreis="Kaiserslautern, Landkreis"`). Parsing only; resolving members is the query
//! planner's work.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a comparison cut compares member order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Members before the given one.
    Below,
    /// Members up to and including the given one.
    AtMost,
    /// Members after the given one.
    Above,
    /// Members from the given one on.
    AtLeast,
}

impl Comparison {
    const SYMBOLS: [(&'static str, Comparison); 4] =
        [("<=", Comparison::AtMost), (">=", Comparison::AtLeast), ("<", Comparison::Below), (">", Comparison::Above)];

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        Self::SYMBOLS.iter().find(|(_, c)| *c == self).map(|(s, _)| *s).unwrap_or("?")
    }

    /// Whether a member at `index` passes the comparison with the member at `pivot`.
    pub fn holds(self, index: usize, pivot: usize) -> bool {
        match self {
            Comparison::Below => index < pivot,
            Comparison::AtMost => index <= pivot,
            Comparison::Above => index > pivot,
            Comparison::AtLeast => index >= pivot,
        }
    }
}

/// What a cut keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutOp {
    /// Members in the list (one member: a point cut).
    In(Vec<String>),
    /// Members not in the list.
    NotIn(Vec<String>),
    /// Members from `from` to `to`, inclusive, in member order.
    Range {
        /// First member.
        from: String,
        /// Last member.
        to: String,
    },
    /// Members before or after one member, in member order (ordered dimensions only).
    Compare(Comparison, String),
}

/// A filter on one level (or dimension role) by member key, label or alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cut {
    /// `role`, `role.level` or a level name.
    pub target: String,
    /// The members it keeps.
    pub op: CutOp,
}

/// A cut's text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read cut '{text}': write level=value, level=a,b, level!=value, level=from..to or level<value (also <=, >, >=); \
     a value with a comma in double quotes: level=\"Kaiserslautern, Landkreis\""
)]
pub struct BadCut {
    /// The text as given.
    pub text: String,
}

impl FromStr for Cut {
    type Err = BadCut;
    fn from_str(text: &str) -> Result<Self, BadCut> {
        let bad = || BadCut { text: text.to_owned() };
        // The first operator in the text wins, so a value may contain `=` or `<` after it.
        let ops = ["!=", "<=", ">=", "<", ">", "="];
        let (at, op) = ops
            .iter()
            .filter_map(|op| text.find(op).map(|at| (at, *op)))
            .min_by_key(|(at, op)| (*at, std::cmp::Reverse(op.len())))
            .ok_or_else(bad)?;
        let target = text[..at].trim();
        let rest = text[at + op.len()..].trim();
        if target.is_empty() || rest.is_empty() {
            return Err(bad());
        }
        // One value, as a range's end or a comparison's member: no list, no further range.
        let one = |text: &str| match values(text).filter(|_| outside_quotes(text, "..").is_none()).as_deref() {
            Some([value]) => Ok(value.clone()),
            _ => Err(bad()),
        };
        let op = match (op, outside_quotes(rest, "..")) {
            ("=", Some(at)) => CutOp::Range { from: one(&rest[..at])?, to: one(&rest[at + 2..])? },
            (_, Some(_)) => return Err(bad()),
            ("=", None) => CutOp::In(values(rest).ok_or_else(bad)?),
            ("!=", None) => CutOp::NotIn(values(rest).ok_or_else(bad)?),
            (symbol, None) => {
                let comparison =
                    Comparison::SYMBOLS.iter().find(|(s, _)| *s == symbol).map(|(_, c)| *c).ok_or_else(bad)?;
                CutOp::Compare(comparison, one(rest)?)
            }
        };
        Ok(Cut { target: target.to_owned(), op })
    }
}

/// Where `pattern` first occurs in `text` outside double quotes.
fn outside_quotes(text: &str, pattern: &str) -> Option<usize> {
    let mut quoted = false;
    for (at, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && text[at..].starts_with(pattern) {
            return Some(at);
        }
    }
    None
}

/// The values of a cut, separated by commas, each trimmed, empty ones left out; a value in double quotes is taken
/// as it is (a quote in it doubled). `None`: a quote is not closed, or text follows a closing quote.
fn values(text: &str) -> Option<Vec<String>> {
    let mut values = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (value, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices().peekable();
            let end = loop {
                match chars.next()? {
                    (_, '"') if chars.peek().is_some_and(|(_, c)| *c == '"') => {
                        value.push('"');
                        chars.next();
                    }
                    (at, '"') => break at + 1,
                    (_, c) => value.push(c),
                }
            };
            let after = quoted[end..].trim_start();
            if !after.is_empty() && !after.starts_with(',') {
                return None;
            }
            (value, after)
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            (rest[..end].trim().to_owned(), &rest[end..])
        };
        if !value.is_empty() {
            values.push(value);
        }
        rest = after.strip_prefix(',').unwrap_or(after).trim_start();
    }
    Some(values)
}

/// A value as a cut writes it: in double quotes where it has a comma, two dots, a quote or space at an end.
pub(crate) fn quoted(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains([',', '"']) || value.contains("..") || value.trim() != value || value.is_empty() {
        format!("\"{}\"", value.replace('"', "\"\"")).into()
    } else {
        value.into()
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| v.iter().map(|v| quoted(v)).collect::<Vec<_>>().join(",");
        match &self.op {
            CutOp::In(v) => write!(f, "{}={}", self.target, list(v)),
            CutOp::NotIn(v) => write!(f, "{}!={}", self.target, list(v)),
            CutOp::Range { from, to } => write!(f, "{}={}..{}", self.target, quoted(from), quoted(to)),
            CutOp::Compare(c, v) => write!(f, "{}{}{}", self.target, c.symbol(), quoted(v)),
        }
    }
}

impl TryFrom<String> for Cut {
    type Error = BadCut;
    fn try_from(text: String) -> Result<Self, BadCut> {
        text.parse()
    }
}

impl From<Cut> for String {
    fn from(cut: Cut) -> String {
        cut.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_text_forms() {
        let c: Cut = "district=06, 09".parse().unwrap();
        assert_eq!(c.op, CutOp::In(vec!["06".into(), "09".into()]));
        let c: Cut = "age=18..64".parse().unwrap();
        assert_eq!(c.op, CutOp::Range { from: "18".into(), to: "64".into() });
        let c: Cut = "district!=Betzenberg".parse().unwrap();
        assert_eq!(c.op, CutOp::NotIn(vec!["Betzenberg".into()]));
        assert_eq!(c.to_string(), "district!=Betzenberg");
        let c: Cut = "language_level < B1".parse().unwrap();
        assert_eq!(
            (c.target.as_str(), c.op.clone()),
            ("language_level", CutOp::Compare(Comparison::Below, "B1".into()))
        );
        assert_eq!(c.to_string(), "language_level<B1");
        let c: Cut = "age>=65".parse().unwrap();
        assert_eq!(c.op, CutOp::Compare(Comparison::AtLeast, "65".into()));
        for bad in
            ["district", "=06", "age=..64", "x!=1..2", "x<1..2", "<B1", "kreis=\"open", "kreis=\"a\"b", "x=1..2..3"]
        {
            assert!(bad.parse::<Cut>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quoted_values_keep_commas_dots_and_quotes() {
        let c: Cut = r#"kreis="Kaiserslautern, Landkreis""#.parse().unwrap();
        assert_eq!(c.op, CutOp::In(vec!["Kaiserslautern, Landkreis".into()]));
        let c: Cut = r#"kreis = "Kaiserslautern, Landkreis" , Mainz,"Der ""Kreis""""#.parse().unwrap();
        assert_eq!(c.op, CutOp::In(vec!["Kaiserslautern, Landkreis".into(), "Mainz".into(), "Der \"Kreis\"".into()]));
        let c: Cut = r#"x="a..b".."c, d""#.parse().unwrap();
        assert_eq!(c.op, CutOp::Range { from: "a..b".into(), to: "c, d".into() });
        let c: Cut = r#"x!="1,5""#.parse().unwrap();
        assert_eq!(c.op, CutOp::NotIn(vec!["1,5".into()]));
        let c: Cut = r#"x<"a, b""#.parse().unwrap();
        assert_eq!(c.op, CutOp::Compare(Comparison::Below, "a, b".into()));
        // Written back so that it reads the same again.
        for text in [
            r#"kreis="Kaiserslautern, Landkreis",Mainz"#,
            r#"x="a..b".."c, d""#,
            r#"x!="Der ""Kreis""""#,
            "district=06,09",
            "age=18..64",
        ] {
            let cut: Cut = text.parse().unwrap();
            assert_eq!(cut.to_string(), text);
            assert_eq!(cut.to_string().parse::<Cut>().unwrap(), cut);
        }
    }
}
