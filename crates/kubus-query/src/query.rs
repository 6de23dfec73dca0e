//! The cube query: cube, measures, drilldowns, cuts, totals, order, limit — one model for the CLI, the library
//! and JSON. Cuts (defined in the model, since measure filters use them too) and orders have a text form
//! (`district=06,09`, `age=18..64`, `language_level<B1`, `-persons`) that is also their JSON form.

use crate::{Error, Result};
pub use kubus_model::{Cut, CutOp};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A cube query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// Cube name.
    pub cube: String,
    /// Measures to compute.
    pub measures: Vec<String>,
    /// Drilldowns: `role`, `role.level` or a level name that is unique in the cube.
    #[serde(default)]
    pub drilldowns: Vec<String>,
    /// Cuts (filters), all of which must hold, in their text form (`month=2024-06`, `age=18..64`).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub cuts: Vec<Cut>,
    /// Add subtotals along the drilldowns and a grand total.
    #[serde(default)]
    pub totals: bool,
    /// Order by measures (`persons`, or `-persons` for largest first); default: member order of the drilldowns.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub order: Vec<Order>,
    /// At most this many rows.
    #[serde(default)]
    pub limit: Option<usize>,
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
