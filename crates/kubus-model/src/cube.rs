//! Cubes: a fact table's dimension roles (each bound to a conformed dimension at a fact level), its typed value
//! columns, and its measures with their declared aggregation.

use crate::diagnostic::Sink;
use crate::raw::RawCube;
use crate::{Dimension, Result, closest};
use std::collections::BTreeMap;

/// The type of a fact value column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (e.g. a pseudonymised person key).
    String,
    /// 64-bit integer.
    Integer,
    /// 64-bit float (hours, amounts).
    Decimal,
}

/// How a measure aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Number of fact rows.
    Count,
    /// Sum of a column.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Average of a column (sum / count of non-null values).
    Avg,
    /// Exact number of distinct values (e.g. persons).
    CountDistinct,
}

impl Aggregate {
    const NAMES: [(&'static str, Aggregate); 6] = [
        ("count", Aggregate::Count),
        ("sum", Aggregate::Sum),
        ("min", Aggregate::Min),
        ("max", Aggregate::Max),
        ("avg", Aggregate::Avg),
        ("count_distinct", Aggregate::CountDistinct),
    ];

    /// The aggregate's name as written in schemas.
    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).unwrap_or("?")
    }
}

/// A role in which a cube uses a conformed dimension; the role name is also the fact column.
#[derive(Debug, Clone)]
pub struct CubeDimension {
    name: String,
    dimension: String,
    fact_level: usize,
}

impl CubeDimension {
    /// Role name (= fact column).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Name of the conformed dimension.
    pub fn dimension(&self) -> &str {
        &self.dimension
    }
    /// The level at which facts hold member keys.
    pub fn fact_level(&self) -> usize {
        self.fact_level
    }
}

/// A typed value column of the fact table.
#[derive(Debug, Clone)]
pub struct FactColumn {
    name: String,
    ty: ColumnType,
}

impl FactColumn {
    /// Column name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Column type.
    pub fn ty(&self) -> ColumnType {
        self.ty
    }
}

/// A measure: a named aggregation over a fact column (or over rows, for `count`).
#[derive(Debug, Clone)]
pub struct Measure {
    name: String,
    label: String,
    label_en: Option<String>,
    aggregate: Aggregate,
    column: Option<String>,
}

impl Measure {
    /// Measure name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// German label.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// English label, falling back to the German one.
    pub fn label_en(&self) -> &str {
        self.label_en.as_deref().unwrap_or(&self.label)
    }
    /// How it aggregates.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }
    /// The aggregated column (`None` for `count`).
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }
}

/// A validated cube.
#[derive(Debug, Clone)]
pub struct Cube {
    name: String,
    label: String,
    label_en: Option<String>,
    description: Option<String>,
    dimensions: Vec<CubeDimension>,
    columns: Vec<FactColumn>,
    measures: Vec<Measure>,
}

impl Cube {
    /// Cube name (= warehouse table name).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// German label.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// English label.
    pub fn label_en(&self) -> &str {
        self.label_en.as_deref().unwrap_or(&self.label)
    }
    /// Free-text description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// Dimension roles, in schema order.
    pub fn dimensions(&self) -> &[CubeDimension] {
        &self.dimensions
    }
    /// Value columns.
    pub fn columns(&self) -> &[FactColumn] {
        &self.columns
    }
    /// Measures.
    pub fn measures(&self) -> &[Measure] {
        &self.measures
    }
    /// A measure by name.
    pub fn measure(&self, name: &str) -> Result<&Measure> {
        self.measures
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| crate::unknown("measure", name, self.measures.iter().map(|m| &m.name)))
    }
    /// A dimension role by name.
    pub fn dimension(&self, role: &str) -> Result<&CubeDimension> {
        self.dimensions
            .iter()
            .find(|d| d.name == role)
            .ok_or_else(|| crate::unknown("dimension", role, self.dimensions.iter().map(|d| &d.name)))
    }
    /// A value column by name.
    pub fn column(&self, name: &str) -> Option<&FactColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Lowers a raw cube against the already lowered dimensions.
pub(crate) fn lower(raw: RawCube, dimensions: &BTreeMap<String, Dimension>, sink: &mut Sink<'_>) -> Option<Cube> {
    let before = sink.out.len();
    let mut roles: Vec<CubeDimension> = Vec::new();
    for (i, d) in raw.dimensions.iter().enumerate() {
        let path = format!("dimensions[{i}]");
        let d = d.get_ref();
        let role = d.name.get_ref().clone();
        if roles.iter().any(|r| r.name == role) {
            sink.at(Some(d.name.span()), format!("{path}.name"), format!("duplicate dimension role '{role}'"));
            continue;
        }
        let (dim_name, dim_span) = match &d.dimension {
            Some(n) => (n.get_ref().clone(), n.span()),
            None => (role.clone(), d.name.span()),
        };
        let Some(dim) = dimensions.get(&dim_name) else {
            sink.with(
                Some(dim_span),
                format!("{path}.dimension"),
                format!("unknown dimension '{dim_name}'"),
                closest(&dim_name, dimensions.keys().map(String::as_str)),
            );
            continue;
        };
        let fact_level = match &d.level {
            None => dim.finest(),
            Some(l) => match dim.level_index(l.get_ref()) {
                Ok(i) => i,
                Err(_) => {
                    let valid = dim.levels().iter().map(|l| l.name().to_owned()).collect();
                    sink.with(Some(l.span()), format!("{path}.level"), format!("unknown level '{}' of dimension {dim_name}", l.get_ref()), valid);
                    continue;
                }
            },
        };
        roles.push(CubeDimension { name: role, dimension: dim_name, fact_level });
    }
    let mut columns: Vec<FactColumn> = Vec::new();
    for (i, c) in raw.columns.iter().enumerate() {
        let c = c.get_ref();
        let name = c.name.get_ref().clone();
        if roles.iter().any(|r| r.name == name) || columns.iter().any(|x| x.name == name) || name.starts_with('_') {
            sink.at(Some(c.name.span()), format!("columns[{i}].name"), format!("column name '{name}' is taken or reserved"));
            continue;
        }
        let ty = match c.ty.get_ref().as_str() {
            "string" => ColumnType::String,
            "integer" => ColumnType::Integer,
            "decimal" => ColumnType::Decimal,
            other => {
                sink.with(Some(c.ty.span()), format!("columns[{i}].type"), format!("unknown column type '{other}'"), vec!["string".into(), "integer".into(), "decimal".into()]);
                continue;
            }
        };
        columns.push(FactColumn { name, ty });
    }
    let mut measures: Vec<Measure> = Vec::new();
    for (i, m) in raw.measures.iter().enumerate() {
        let path = format!("measures[{i}]");
        let m = m.get_ref();
        let name = m.name.get_ref().clone();
        if measures.iter().any(|x| x.name == name) {
            sink.at(Some(m.name.span()), format!("{path}.name"), format!("duplicate measure '{name}'"));
            continue;
        }
        let Some(aggregate) = Aggregate::NAMES.iter().find(|(n, _)| n == m.aggregate.get_ref()).map(|(_, a)| *a) else {
            let valid = Aggregate::NAMES.iter().map(|(n, _)| (*n).to_owned()).collect();
            sink.with(Some(m.aggregate.span()), format!("{path}.aggregate"), format!("unknown aggregate '{}'", m.aggregate.get_ref()), valid);
            continue;
        };
        let column = match (&m.column, aggregate) {
            (None, Aggregate::Count) => None,
            (Some(c), Aggregate::Count) => {
                sink.at(Some(c.span()), format!("{path}.column"), "`count` counts fact rows and takes no column");
                continue;
            }
            (None, _) => {
                sink.at(Some(m.aggregate.span()), format!("{path}.column"), format!("aggregate '{}' needs a column", aggregate.name()));
                continue;
            }
            (Some(c), _) => {
                let col = c.get_ref();
                let numeric = columns.iter().find(|x| &x.name == col).map(|x| x.ty != ColumnType::String);
                let is_role = roles.iter().any(|r| &r.name == col);
                let ok = match aggregate {
                    Aggregate::Sum | Aggregate::Avg => numeric == Some(true),
                    _ => numeric.is_some() || is_role,
                };
                if !ok {
                    let valid = columns
                        .iter()
                        .filter(|x| !matches!(aggregate, Aggregate::Sum | Aggregate::Avg) || x.ty != ColumnType::String)
                        .map(|x| x.name.clone())
                        .collect();
                    sink.with(Some(c.span()), format!("{path}.column"), format!("'{col}' is not a column that '{}' can aggregate", aggregate.name()), valid);
                    continue;
                }
                Some(col.clone())
            }
        };
        measures.push(Measure { name, label: m.label.clone(), label_en: m.label_en.clone(), aggregate, column });
    }
    if measures.is_empty() && sink.out.len() == before {
        sink.at(Some(raw.name.span()), "measures", "a cube needs at least one measure");
    }
    (sink.out.len() == before).then(|| Cube {
        name: raw.name.into_inner(),
        label: raw.label,
        label_en: raw.label_en,
        description: raw.description,
        dimensions: roles,
        columns,
        measures,
    })
}
