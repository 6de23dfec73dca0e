//! Cuts: filters on one level (or dimension role) by member key, label or alias, in a text form that is also
//! their JSON form and the form measure filters take in schemas (`district=06,09`, `age=18..64`,
//! `district!=06`, `language_level<B1`). Parsing only; resolving members is the query planner's work.

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
    "cannot read cut '{text}': write level=value, level=a,b, level!=value, level=from..to or level<value (also <=, >, >=)"
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
        let list = || rest.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect::<Vec<_>>();
        let op = match (op, rest.split_once("..")) {
            ("=", Some((from, to))) if !from.trim().is_empty() && !to.trim().is_empty() => {
                CutOp::Range { from: from.trim().to_owned(), to: to.trim().to_owned() }
            }
            (_, Some(_)) => return Err(bad()),
            ("=", None) => CutOp::In(list()),
            ("!=", None) => CutOp::NotIn(list()),
            (symbol, None) => {
                let comparison =
                    Comparison::SYMBOLS.iter().find(|(s, _)| *s == symbol).map(|(_, c)| *c).ok_or_else(bad)?;
                CutOp::Compare(comparison, rest.to_owned())
            }
        };
        Ok(Cut { target: target.to_owned(), op })
    }
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            CutOp::In(v) => write!(f, "{}={}", self.target, v.join(",")),
            CutOp::NotIn(v) => write!(f, "{}!={}", self.target, v.join(",")),
            CutOp::Range { from, to } => write!(f, "{}={from}..{to}", self.target),
            CutOp::Compare(c, v) => write!(f, "{}{}{v}", self.target, c.symbol()),
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
        for bad in ["district", "=06", "age=..64", "x!=1..2", "x<1..2", "<B1"] {
            assert!(bad.parse::<Cut>().is_err(), "{bad}");
        }
    }
}
