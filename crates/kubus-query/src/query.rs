//! The cube query: cube, measures, drilldowns, cuts, totals, order, limit — one model for the CLI, the library
//! and JSON. Cuts and orders have a text form (`district=06,09`, `age=18..64`, `district!=06`, `-persons`) that
//! is also their JSON form.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A cube query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Cube name.
    pub cube: String,
    /// Measures to compute.
    pub measures: Vec<String>,
    /// Drilldowns: `role`, `role.level` or a level name that is unique in the cube.
    #[serde(default)]
    pub drilldowns: Vec<String>,
    /// Cuts (filters), all of which must hold.
    #[serde(default)]
    pub cuts: Vec<Cut>,
    /// Add subtotals along the drilldowns and a grand total.
    #[serde(default)]
    pub totals: bool,
    /// Order by measures; default: member order of the drilldowns.
    #[serde(default)]
    pub order: Vec<Order>,
    /// At most this many rows.
    #[serde(default)]
    pub limit: Option<usize>,
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

impl FromStr for Cut {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let bad = || Error::BadCut { text: text.to_owned() };
        let (target, op, rest) = if let Some((t, r)) = text.split_once("!=") {
            (t, "!=", r)
        } else if let Some((t, r)) = text.split_once('=') {
            (t, "=", r)
        } else {
            return Err(bad());
        };
        let target = target.trim();
        let rest = rest.trim();
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
            _ => CutOp::NotIn(list()),
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
        }
    }
}

impl TryFrom<String> for Cut {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<Cut> for String {
    fn from(cut: Cut) -> String {
        cut.to_string()
    }
}

/// Order by a measure; text form `persons` (ascending) or `-persons` (descending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Order {
    /// Measure name.
    pub measure: String,
    /// Largest first.
    pub descending: bool,
}

impl FromStr for Order {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        let (descending, measure) = match text.trim().strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, text.trim().strip_prefix('+').unwrap_or(text.trim())),
        };
        if measure.is_empty() {
            return Err(Error::BadOrder { text: text.to_owned() });
        }
        Ok(Order { measure: measure.to_owned(), descending })
    }
}

impl TryFrom<String> for Order {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        text.parse()
    }
}

impl From<Order> for String {
    fn from(o: Order) -> String {
        format!("{}{}", if o.descending { "-" } else { "" }, o.measure)
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
        for bad in ["district", "=06", "age=..64", "x!=1..2"] {
            assert!(bad.parse::<Cut>().is_err(), "{bad}");
        }
    }

    #[test]
    fn query_json_round_trip() {
        let json = r#"{"cube":"newcomers","measures":["persons"],"drilldowns":["district"],
                       "cuts":["month=2024-06"],"order":["-persons"],"limit":3}"#;
        let q: Query = serde_json::from_str(json).unwrap();
        assert_eq!(q.cuts[0].target, "month");
        assert!(q.order[0].descending);
        let back: Query = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(back, q);
    }
}
