//! Cubes: a fact table's dimension roles (each bound to a conformed dimension at a fact level), its typed value
//! columns, and its measures with their declared aggregation.

use crate::cut::{Cut, CutOp};
use crate::diagnostic::Sink;
use crate::raw::{RawCube, RawMeasure, RawRollup, S};
use crate::{Dimension, DimensionKind, Result, closest};
use std::ops::Range;
use toml::Spanned;

type Span = Range<usize>;
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
    /// Middle value of a column (of an even number of values, the mean of the two in the middle). Its cells cannot
    /// be aggregated again: no rollup stores it, and every answer computes it from the facts.
    Median,
    /// Exact number of distinct values (e.g. persons).
    CountDistinct,
}

impl Aggregate {
    const NAMES: [(&'static str, Aggregate); 7] = [
        ("count", Aggregate::Count),
        ("sum", Aggregate::Sum),
        ("min", Aggregate::Min),
        ("max", Aggregate::Max),
        ("avg", Aggregate::Avg),
        ("median", Aggregate::Median),
        ("count_distinct", Aggregate::CountDistinct),
    ];

    /// The aggregate's name as written in schemas.
    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, a)| *a == self).map(|(n, _)| *n).unwrap_or("?")
    }

    /// Whether a rollup can store what it needs to aggregate its cells again: not for a median, which needs every
    /// value.
    pub fn is_stored_in_rollups(self) -> bool {
        self != Aggregate::Median
    }

    /// Whether it aggregates numbers only (a minimum, maximum or count also takes a member or a text).
    fn is_numeric(self) -> bool {
        matches!(self, Aggregate::Sum | Aggregate::Avg | Aggregate::Median)
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
    min: Option<f64>,
    max: Option<f64>,
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
    /// Whether a fact may hold `value`: it lies within the column's min and max, where the cube sets them.
    pub fn holds(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
    /// The values a fact may hold, in words: `from 0`, `up to 2000`, `from 0 to 2000`.
    pub fn bounds(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("from {min} to {max}"),
            (Some(min), None) => format!("from {min}"),
            (None, Some(max)) => format!("up to {max}"),
            (None, None) => "any number".to_owned(),
        }
    }
}

/// A declared rollup: the cube's facts pre-aggregated at some levels of some roles (the other roles rolled up),
/// storing what its aggregate measures need to be aggregated again. Queries are routed to the smallest rollup
/// that answers them exactly.
#[derive(Debug, Clone)]
pub struct Rollup {
    name: String,
    levels: Vec<(String, usize)>,
    measures: Vec<String>,
}

impl Rollup {
    /// A rollup not declared in the model: one a query builds from its facts while it runs. `levels` are in schema
    /// order, each role's level its recorded level or a coarser one, and `measures` the cube's aggregate measures in
    /// declaration order; the caller checks that they are.
    pub fn unlisted(name: &str, levels: Vec<(String, usize)>, measures: Vec<String>) -> Rollup {
        Rollup { name: name.to_owned(), levels, measures }
    }
    /// Rollup name (unique in its cube).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The roles it keeps, each with the level it holds (the recorded level or a coarser one), in schema order.
    pub fn levels(&self) -> &[(String, usize)] {
        &self.levels
    }
    /// The level it holds of a role, `None` when the role is rolled up.
    pub fn level(&self, role: &str) -> Option<usize> {
        self.levels.iter().find(|(r, _)| r == role).map(|(_, l)| *l)
    }
    /// The aggregate measures it stores, in the cube's declaration order.
    pub fn measures(&self) -> &[String] {
        &self.measures
    }
}

/// Which earlier period a time comparison looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The period just before, at the query's time level (last month, last quarter, last year).
    Previous,
    /// The same period one year earlier.
    LastYear,
}

/// What a time comparison reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The measure's value in the earlier period.
    None,
    /// Now minus then.
    Absolute,
    /// (now − then) / then × 100.
    Percent,
}

/// How a measure is computed. Derived measures name other measures of the same cube, declared before them, and
/// are computed from those at the query's grain, never summed from finer cells.
#[derive(Debug, Clone)]
pub enum MeasureKind {
    /// An aggregation over facts.
    Aggregate {
        /// How it aggregates.
        aggregate: Aggregate,
        /// The aggregated column (`None` for `count`).
        column: Option<String>,
        /// Cuts the facts must pass (a filtered measure).
        filter: Vec<Cut>,
        /// A stock: over a time range it takes the last snapshot of the range instead of adding up.
        last_snapshot: bool,
        /// For sums: the role whose members contribute; a cell one of them dominates is suppressed.
        dominance: Option<String>,
    },
    /// `numerator / denominator` as a decimal (empty where the denominator is 0).
    Ratio {
        /// Numerator measure.
        numerator: String,
        /// Denominator measure.
        denominator: String,
    },
    /// `minuend − subtrahend`.
    Difference {
        /// Measure subtracted from.
        minuend: String,
        /// Measure subtracted.
        subtrahend: String,
    },
    /// A measure's share of its total over a dimension role (the same measure with that role rolled up).
    Share {
        /// The measure.
        of: String,
        /// The role it is a share over.
        over: String,
    },
    /// In a drill-across cube: a measure of one of the combined cubes, aggregated there at the query's grain.
    From {
        /// The cube.
        cube: String,
        /// Its measure.
        measure: String,
    },
    /// A measure compared with an earlier period.
    TimeComparison {
        /// The measure.
        of: String,
        /// Which period.
        period: Period,
        /// Value, absolute or percent change.
        change: Change,
    },
    /// A forecast of a measure for the periods after the last one an answer observes, with a prediction interval.
    /// Computed from the answer's published values (after disclosure control), never mixed with them.
    Forecast {
        /// The measure.
        of: String,
        /// The time role it continues along.
        over: String,
        /// How many periods of the drilled time level it forecasts.
        horizon: u32,
        /// The prediction interval's coverage, in percent.
        interval: u32,
    },
}

/// A measure: a named aggregation over facts, or a measure derived from others.
#[derive(Debug, Clone)]
pub struct Measure {
    name: String,
    label: String,
    label_en: Option<String>,
    description: Option<String>,
    kind: MeasureKind,
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
    /// Free-text description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// How it is computed.
    pub fn kind(&self) -> &MeasureKind {
        &self.kind
    }
    /// The measures it is computed from.
    pub fn parts(&self) -> Vec<&str> {
        match &self.kind {
            MeasureKind::Aggregate { .. } | MeasureKind::From { .. } => Vec::new(),
            MeasureKind::Ratio { numerator: a, denominator: b }
            | MeasureKind::Difference { minuend: a, subtrahend: b } => vec![a, b],
            MeasureKind::Share { of, .. }
            | MeasureKind::TimeComparison { of, .. }
            | MeasureKind::Forecast { of, .. } => {
                vec![of]
            }
        }
    }
    /// How it aggregates over facts, for display: `count`, `sum(seats)`, `ratio(a, b)`, ...
    pub fn describe(&self) -> String {
        match &self.kind {
            MeasureKind::Aggregate { aggregate, column, filter, last_snapshot, dominance } => {
                let mut text = format!("{}({})", aggregate.name(), column.as_deref().unwrap_or("*"));
                if !filter.is_empty() {
                    let cuts: Vec<String> = filter.iter().map(Cut::to_string).collect();
                    text += &format!(" where {}", cuts.join(" and "));
                }
                if *last_snapshot {
                    text += ", last snapshot over time";
                }
                if let Some(role) = dominance {
                    text += &format!(", suppressed where one {role} dominates");
                }
                text
            }
            MeasureKind::From { cube, measure } => format!("{measure} of cube {cube}"),
            MeasureKind::Ratio { numerator, denominator } => format!("{numerator} / {denominator}"),
            MeasureKind::Difference { minuend, subtrahend } => format!("{minuend} − {subtrahend}"),
            MeasureKind::Share { of, over } => format!("{of} / {of} over all {over}"),
            MeasureKind::TimeComparison { of, period, change } => {
                let then = match period {
                    Period::Previous => "previous period",
                    Period::LastYear => "same period last year",
                };
                match change {
                    Change::None => format!("{of} in the {then}"),
                    Change::Absolute => format!("{of} − {of} in the {then}"),
                    Change::Percent => format!("({of} − {of} in the {then}) / {of} in the {then} × 100"),
                }
            }
            MeasureKind::Forecast { of, over, horizon, interval } => {
                format!(
                    "forecast of {of} over {over}, {horizon} periods ahead, with a {interval} % prediction interval"
                )
            }
        }
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
    time_role: Option<usize>,
    across: Vec<String>,
    rollups: Vec<Rollup>,
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

    /// The column whose values are the cube's units (persons): the column its distinct counts count, the first
    /// one declared if there are several. A cube without one has no record keys, and its counts no cell keys.
    pub fn unit_column(&self) -> Option<&str> {
        self.measures.iter().find_map(|m| match m.kind() {
            MeasureKind::Aggregate { aggregate: Aggregate::CountDistinct, column: Some(c), .. } => Some(c.as_str()),
            _ => None,
        })
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
    /// For a drill-across cube, the cubes it combines (it has no facts of its own); empty otherwise.
    pub fn across(&self) -> &[String] {
        &self.across
    }
    /// The role whose dimension is time, if the cube has exactly one.
    pub fn time_role(&self) -> Option<&CubeDimension> {
        self.time_role.map(|i| &self.dimensions[i])
    }
    /// Declared rollups, in schema order.
    pub fn rollups(&self) -> &[Rollup] {
        &self.rollups
    }
    /// A value column by name.
    pub fn column(&self, name: &str) -> Option<&FactColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Lowers a raw cube against the already lowered dimensions (and, for a drill-across cube, the cubes with facts).
pub(crate) fn lower(
    raw: RawCube,
    dimensions: &BTreeMap<String, Dimension>,
    cubes: &BTreeMap<String, Cube>,
    sink: &mut Sink<'_>,
) -> Option<Cube> {
    if !raw.across.is_empty() {
        return lower_across(raw, cubes, sink);
    }
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
                    sink.with(
                        Some(l.span()),
                        format!("{path}.level"),
                        format!("unknown level '{}' of dimension {dim_name}", l.get_ref()),
                        valid,
                    );
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
            sink.at(
                Some(c.name.span()),
                format!("columns[{i}].name"),
                format!("column name '{name}' is taken or reserved"),
            );
            continue;
        }
        let ty = match c.ty.get_ref().as_str() {
            "string" => ColumnType::String,
            "integer" => ColumnType::Integer,
            "decimal" => ColumnType::Decimal,
            other => {
                sink.with(
                    Some(c.ty.span()),
                    format!("columns[{i}].type"),
                    format!("unknown column type '{other}'"),
                    vec!["string".into(), "integer".into(), "decimal".into()],
                );
                continue;
            }
        };
        let (min, max) = (c.min.as_ref().map(|m| *m.get_ref()), c.max.as_ref().map(|m| *m.get_ref()));
        if let Some(bound) = c.min.as_ref().or(c.max.as_ref()).filter(|_| ty == ColumnType::String) {
            sink.at(Some(bound.span()), format!("columns[{i}]"), "only a number column has a min or max");
            continue;
        }
        if let Some(bound) = [&c.min, &c.max].into_iter().flatten().find(|b| !b.get_ref().is_finite()) {
            sink.at(Some(bound.span()), format!("columns[{i}]"), "a min or max is a finite number");
            continue;
        }
        if let (Some(least), Some(greatest), Some(at)) = (min, max, c.max.as_ref())
            && least > greatest
        {
            sink.at(Some(at.span()), format!("columns[{i}].max"), format!("max {greatest} is less than min {least}"));
            continue;
        }
        columns.push(FactColumn { name, ty, min, max });
    }
    let time_roles: Vec<usize> = roles
        .iter()
        .enumerate()
        .filter(|(_, r)| dimensions.get(&r.dimension).is_some_and(|d| d.kind() == DimensionKind::Time))
        .map(|(i, _)| i)
        .collect();
    let time_role = (time_roles.len() == 1).then(|| time_roles[0]);
    let mut context = Context {
        roles: &roles,
        columns: &columns,
        dimensions,
        time_role: time_role.map(|i| roles[i].name.as_str()),
        invalid: Vec::new(),
    };
    let mut measures: Vec<Measure> = Vec::new();
    for (i, m) in raw.measures.iter().enumerate() {
        let path = format!("measures[{i}]");
        let m = m.get_ref();
        let name = m.name.get_ref().clone();
        if measures.iter().any(|x| x.name == name) || roles.iter().any(|r| r.name == name) {
            sink.at(
                Some(m.name.span()),
                format!("{path}.name"),
                format!("duplicate measure '{name}' (measure and role names must be unique)"),
            );
            continue;
        }
        if let Some(from) = &m.from {
            sink.at(
                Some(from.span()),
                format!("{path}.from"),
                "`from` belongs to drill-across cubes (with `across = [...]`)",
            );
            continue;
        }
        match lower_measure(m, &path, &context, &measures, sink) {
            Some(kind) => measures.push(Measure {
                name,
                label: m.label.clone(),
                label_en: m.label_en.clone(),
                description: m.description.clone(),
                kind,
            }),
            None => context.invalid.push(name),
        }
    }
    let rollups = raw
        .rollups
        .iter()
        .enumerate()
        .filter_map(|(i, r)| lower_rollup(r, i, &context, &measures, &raw.rollups[..i], sink))
        .collect();
    let shape = Shape { dimensions: roles, columns, measures, time_role, across: Vec::new(), rollups };
    finish(raw, shape, before, sink)
}

/// What lowering found of a cube, before the last checks.
struct Shape {
    dimensions: Vec<CubeDimension>,
    columns: Vec<FactColumn>,
    measures: Vec<Measure>,
    time_role: Option<usize>,
    across: Vec<String>,
    rollups: Vec<Rollup>,
}

/// The cube, if it has a measure and no problem was found since `before`.
fn finish(raw: RawCube, shape: Shape, before: usize, sink: &mut Sink<'_>) -> Option<Cube> {
    if shape.measures.is_empty() && sink.out.len() == before {
        sink.at(Some(raw.name.span()), "measures", "a cube needs at least one measure");
    }
    (sink.out.len() == before).then(|| Cube {
        name: raw.name.into_inner(),
        label: raw.label,
        label_en: raw.label_en,
        description: raw.description,
        dimensions: shape.dimensions,
        columns: shape.columns,
        measures: shape.measures,
        time_role: shape.time_role,
        across: shape.across,
        rollups: shape.rollups,
    })
}

/// A drill-across cube: its roles are those every combined cube has (same name, same dimension), recorded at
/// the finest level they all have; its measures come `from` the combined cubes, or are ratios and differences
/// of those.
fn lower_across(raw: RawCube, cubes: &BTreeMap<String, Cube>, sink: &mut Sink<'_>) -> Option<Cube> {
    let before = sink.out.len();
    let mut sides: Vec<&Cube> = Vec::new();
    for (i, name) in raw.across.iter().enumerate() {
        match cubes.get(name.get_ref()) {
            Some(c) if c.across.is_empty() && !sides.iter().any(|s| s.name == c.name) => sides.push(c),
            Some(_) => sink.at(
                Some(name.span()),
                format!("across[{i}]"),
                format!("'{}' is listed twice or combines cubes itself", name.get_ref()),
            ),
            None => sink.with(
                Some(name.span()),
                format!("across[{i}]"),
                format!("unknown cube '{}'", name.get_ref()),
                closest(name.get_ref(), cubes.keys().map(String::as_str)),
            ),
        }
    }
    for (key, present, span) in [
        ("dimensions", !raw.dimensions.is_empty(), raw.dimensions.first().map(|d| d.span())),
        ("columns", !raw.columns.is_empty(), raw.columns.first().map(|c| c.span())),
    ] {
        if present {
            sink.at(
                span,
                key,
                format!("a drill-across cube has no {key} of its own: it uses the roles its cubes share"),
            );
        }
    }
    if let Some(r) = raw.rollups.first() {
        sink.at(
            Some(r.span()),
            "rollups",
            "a drill-across cube has no facts to roll up: declare rollups on the cubes it combines",
        );
    }
    if raw.across.len() < 2 {
        sink.at(Some(raw.name.span()), "across", "a drill-across cube combines at least two cubes");
    }
    if sink.out.len() != before {
        return None;
    }
    let shared: Vec<CubeDimension> = sides[0]
        .dimensions
        .iter()
        .filter_map(|role| {
            let levels: Option<Vec<usize>> = sides
                .iter()
                .map(|c| {
                    c.dimensions
                        .iter()
                        .find(|r| r.name == role.name && r.dimension == role.dimension)
                        .map(|r| r.fact_level)
                })
                .collect();
            Some(CubeDimension {
                name: role.name.clone(),
                dimension: role.dimension.clone(),
                fact_level: levels?.into_iter().min()?,
            })
        })
        .collect();
    if shared.is_empty() {
        sink.at(
            Some(raw.name.span()),
            "across",
            "these cubes share no dimension role (same name and dimension), so there is nothing to combine over",
        );
        return None;
    }
    let mut measures: Vec<Measure> = Vec::new();
    let mut invalid: Vec<String> = Vec::new();
    for (i, m) in raw.measures.iter().enumerate() {
        let path = format!("measures[{i}]");
        let m = m.get_ref();
        let name = m.name.get_ref().clone();
        if measures.iter().any(|x| x.name == name) || shared.iter().any(|r| r.name == name) {
            sink.at(
                Some(m.name.span()),
                format!("{path}.name"),
                format!("duplicate measure '{name}' (measure and role names must be unique)"),
            );
            continue;
        }
        let kind = match &m.from {
            Some(from) => {
                let found = from.get_ref().split_once('.').and_then(|(c, mm)| {
                    let cube = sides.iter().find(|s| s.name == c)?;
                    cube.measures
                        .iter()
                        .any(|x| x.name == mm)
                        .then(|| MeasureKind::From { cube: c.to_owned(), measure: mm.to_owned() })
                });
                let others = [
                    m.aggregate.is_some(),
                    m.ratio.is_some(),
                    m.difference.is_some(),
                    m.share.is_some(),
                    m.previous.is_some(),
                    m.last_year.is_some(),
                    m.change.is_some(),
                ];
                if others.contains(&true) {
                    sink.at(
                        Some(from.span()),
                        format!("{path}.from"),
                        "a measure has exactly one of: from, ratio, difference",
                    );
                    invalid.push(name);
                    continue;
                }
                let Some(kind) = found else {
                    let valid = sides
                        .iter()
                        .flat_map(|c| c.measures.iter().map(move |x| format!("{}.{}", c.name, x.name)))
                        .collect::<Vec<_>>();
                    sink.with(
                        Some(from.span()),
                        format!("{path}.from"),
                        format!("'{}' is not cube.measure of a combined cube", from.get_ref()),
                        closest(from.get_ref(), valid.iter().map(String::as_str)),
                    );
                    invalid.push(name);
                    continue;
                };
                kind
            }
            None if m.ratio.is_some() || m.difference.is_some() => {
                let context = Context {
                    roles: &shared,
                    columns: &[],
                    dimensions: &BTreeMap::new(),
                    time_role: None,
                    invalid: invalid.clone(),
                };
                match lower_measure(m, &path, &context, &measures, sink) {
                    Some(kind) => kind,
                    None => {
                        invalid.push(name);
                        continue;
                    }
                }
            }
            None => {
                sink.with(
                    Some(m.name.span()),
                    path.clone(),
                    "a measure of a drill-across cube needs one of these keys",
                    vec!["from".into(), "ratio".into(), "difference".into()],
                );
                invalid.push(name);
                continue;
            }
        };
        measures.push(Measure {
            name,
            label: m.label.clone(),
            label_en: m.label_en.clone(),
            description: m.description.clone(),
            kind,
        });
    }
    let across = sides.iter().map(|c| c.name.clone()).collect();
    finish(
        raw,
        Shape { dimensions: shared, columns: Vec::new(), measures, time_role: None, across, rollups: Vec::new() },
        before,
        sink,
    )
}

/// A rollup's levels name roles (at their recorded level) or `role.level` at or above it, each role once; its
/// measures name measures of the cube, derived ones standing for the aggregates they are computed from.
fn lower_rollup(
    spanned: &S<RawRollup>,
    i: usize,
    cx: &Context<'_>,
    measures: &[Measure],
    earlier: &[S<RawRollup>],
    sink: &mut Sink<'_>,
) -> Option<Rollup> {
    let r = spanned.get_ref();
    let path = format!("rollups[{i}]");
    let before = sink.out.len();
    let name = r.name.get_ref().clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        sink.at(
            Some(r.name.span()),
            format!("{path}.name"),
            format!("rollup name '{name}' must be lower-case letters, digits and _ (it names a warehouse table)"),
        );
    }
    if earlier.iter().any(|e| e.get_ref().name.get_ref() == &name) {
        sink.at(Some(r.name.span()), format!("{path}.name"), format!("duplicate rollup '{name}'"));
    }
    let mut levels: Vec<(String, usize)> = Vec::new();
    for (j, text) in r.levels.iter().enumerate() {
        let at = format!("{path}.levels[{j}]");
        let (role_name, level_name) = match text.get_ref().split_once('.') {
            Some((role, level)) => (role, Some(level)),
            None => (text.get_ref().as_str(), None),
        };
        let Some(role) = cx.roles.iter().find(|x| x.name == role_name) else {
            sink.with(
                Some(text.span()),
                at,
                format!("unknown dimension role '{role_name}'"),
                cx.roles.iter().map(|x| x.name.clone()).collect(),
            );
            continue;
        };
        let dim = &cx.dimensions[&role.dimension];
        let level = match level_name {
            None => role.fact_level,
            Some(l) => match dim.level_index(l) {
                Ok(level) if dim.rolls_up(role.fact_level, level) => level,
                _ => {
                    let valid = dim
                        .levels_above(role.fact_level)
                        .into_iter()
                        .map(|l| format!("{role_name}.{}", dim.levels()[l].name()))
                        .collect();
                    sink.with(
                        Some(text.span()),
                        at,
                        format!("'{}' is not a level at or above the one {role_name} is recorded at", text.get_ref()),
                        valid,
                    );
                    continue;
                }
            },
        };
        if levels.iter().any(|(x, _)| x == role_name) {
            sink.at(Some(text.span()), at, format!("role {role_name} is listed twice"));
            continue;
        }
        levels.push((role_name.to_owned(), level));
    }
    let stores =
        |m: &Measure| matches!(m.kind, MeasureKind::Aggregate { aggregate, .. } if aggregate.is_stored_in_rollups());
    let mut wanted: Vec<String> = Vec::new();
    match &r.measures {
        None => wanted.extend(measures.iter().filter(|m| stores(m)).map(|m| m.name.clone())),
        Some(names) => {
            for (j, text) in names.iter().enumerate() {
                let measure = measures.iter().find(|m| &m.name == text.get_ref());
                if let Some(m) = measure.filter(|m| matches!(m.kind, MeasureKind::Aggregate { .. }) && !stores(m)) {
                    sink.at(
                        Some(text.span()),
                        format!("{path}.measures[{j}]"),
                        format!(
                            "'{}' is a median, which cannot be aggregated again from a rollup's cells: every answer \
                             with it reads the facts",
                            m.name
                        ),
                    );
                } else if measure.is_some() {
                    wanted.push(text.get_ref().clone());
                } else if !cx.invalid.contains(text.get_ref()) {
                    let valid = measures.iter().map(|m| m.name.as_str());
                    sink.with(
                        Some(text.span()),
                        format!("{path}.measures[{j}]"),
                        format!("unknown measure '{}'", text.get_ref()),
                        closest(text.get_ref(), valid),
                    );
                }
            }
        }
    }
    // Derived measures stand for their parts, down to the aggregates.
    let mut k = 0;
    while k < wanted.len() {
        let parts: Vec<String> = measures
            .iter()
            .find(|m| m.name == wanted[k])
            .map(|m| m.parts().into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        for part in parts {
            if !wanted.contains(&part) {
                wanted.push(part);
            }
        }
        k += 1;
    }
    // A derived measure with a median among its parts is answered from the facts.
    let stored: Vec<String> =
        measures.iter().filter(|m| stores(m) && wanted.contains(&m.name)).map(|m| m.name.clone()).collect();
    (sink.out.len() == before).then_some(Rollup { name, levels, measures: stored })
}

/// What a measure's lowering may refer to.
struct Context<'a> {
    roles: &'a [CubeDimension],
    columns: &'a [FactColumn],
    dimensions: &'a BTreeMap<String, Dimension>,
    time_role: Option<&'a str>,
    /// Measures declared earlier that did not lower; references to them are not reported again.
    invalid: Vec<String>,
}

fn lower_measure(
    m: &RawMeasure,
    path: &str,
    cx: &Context<'_>,
    earlier: &[Measure],
    sink: &mut Sink<'_>,
) -> Option<MeasureKind> {
    let kinds: Vec<(&str, Span)> = [
        ("aggregate", m.aggregate.as_ref().map(|x| x.span())),
        ("ratio", m.ratio.as_ref().map(|x| x.span())),
        ("difference", m.difference.as_ref().map(|x| x.span())),
        ("share", m.share.as_ref().map(|x| x.span())),
        ("previous", m.previous.as_ref().map(|x| x.span())),
        ("last_year", m.last_year.as_ref().map(|x| x.span())),
        ("change", m.change.as_ref().map(|x| x.span())),
        ("forecast", m.forecast.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(k, span)| span.map(|s| (k, s)))
    .collect();
    let valid = || {
        ["aggregate", "ratio", "difference", "share", "previous", "last_year", "change", "forecast"]
            .map(String::from)
            .to_vec()
    };
    match kinds.as_slice() {
        [] => {
            sink.with(Some(m.name.span()), path.to_owned(), "a measure needs one of these keys", valid());
            return None;
        }
        [_] => {}
        [_, (second, span), ..] => {
            sink.at(
                Some(span.clone()),
                format!("{path}.{second}"),
                format!("a measure has exactly one of: {}", valid().join(", ")),
            );
            return None;
        }
    }
    let derived_only = |key: &str, present: bool, span: Option<Span>, sink: &mut Sink<'_>| {
        if present {
            sink.at(
                span,
                format!("{path}.{key}"),
                format!(
                    "`{key}` belongs to {}",
                    if key == "over" {
                        "`share` or `forecast`"
                    } else if key == "against" || key == "percent" {
                        "`change`"
                    } else if key == "horizon" || key == "interval" {
                        "`forecast`"
                    } else {
                        "`aggregate`"
                    }
                ),
            );
        }
    };
    let before = sink.out.len();
    if kinds[0].0 != "aggregate" {
        derived_only("column", m.column.is_some(), m.column.as_ref().map(|c| c.span()), sink);
        derived_only("filter", !m.filter.is_empty(), m.filter.first().map(|f| f.span()), sink);
        derived_only("over_time", m.over_time.is_some(), m.over_time.as_ref().map(|c| c.span()), sink);
        derived_only("dominance", m.dominance.is_some(), m.dominance.as_ref().map(|c| c.span()), sink);
    }
    if kinds[0].0 != "share" && kinds[0].0 != "forecast" {
        derived_only("over", m.over.is_some(), m.over.as_ref().map(|c| c.span()), sink);
    }
    if kinds[0].0 != "change" {
        derived_only("against", m.against.is_some(), m.against.as_ref().map(|c| c.span()), sink);
        derived_only("percent", m.percent, Some(m.name.span()), sink);
    }
    if kinds[0].0 != "forecast" {
        derived_only("horizon", m.horizon.is_some(), m.horizon.as_ref().map(|c| c.span()), sink);
        derived_only("interval", m.interval.is_some(), m.interval.as_ref().map(|c| c.span()), sink);
    }
    // A part must be declared earlier, which also rules out cycles.
    let part = |name: &S<String>, key: &str, sink: &mut Sink<'_>| -> Option<String> {
        let wanted = name.get_ref();
        if earlier.iter().any(|x| &x.name == wanted) {
            return Some(wanted.clone());
        }
        if cx.invalid.contains(wanted) {
            // Declared before but invalid: that measure's own diagnostic says what is wrong.
            return None;
        }
        sink.with(
            Some(name.span()),
            format!("{path}.{key}"),
            format!("unknown measure '{wanted}': a derived measure uses measures declared before it"),
            closest(wanted, earlier.iter().map(|x| x.name.as_str())),
        );
        None
    };
    let needs_time = |key: &str, span: Span, sink: &mut Sink<'_>| -> bool {
        if cx.time_role.is_none() {
            sink.at(
                Some(span),
                format!("{path}.{key}"),
                "this needs the cube to have exactly one role with a time dimension",
            );
            return false;
        }
        true
    };
    let kind = match kinds[0].0 {
        "aggregate" => lower_aggregate(m, path, cx, sink),
        "ratio" | "difference" => {
            let pair = m.ratio.as_ref().or(m.difference.as_ref()).expect("one of them is present");
            let [a, b] = pair.get_ref();
            let spanned = |t: &String| Spanned::new(pair.span(), t.clone());
            let (a, b) = (part(&spanned(a), kinds[0].0, sink), part(&spanned(b), kinds[0].0, sink));
            let (a, b) = (a?, b?);
            Some(if kinds[0].0 == "ratio" {
                MeasureKind::Ratio { numerator: a, denominator: b }
            } else {
                MeasureKind::Difference { minuend: a, subtrahend: b }
            })
        }
        "share" => {
            let of = part(m.share.as_ref().expect("present"), "share", sink);
            let over = match &m.over {
                None => {
                    sink.at(Some(m.name.span()), format!("{path}.over"), "a share needs `over = \"<dimension role>\"`");
                    None
                }
                Some(o) if cx.roles.iter().any(|r| &r.name == o.get_ref()) => Some(o.get_ref().clone()),
                Some(o) => {
                    sink.with(
                        Some(o.span()),
                        format!("{path}.over"),
                        format!("unknown dimension role '{}'", o.get_ref()),
                        cx.roles.iter().map(|r| r.name.clone()).collect(),
                    );
                    None
                }
            };
            Some(MeasureKind::Share { of: of?, over: over? })
        }
        "forecast" => {
            let spanned = m.forecast.as_ref().expect("present");
            let of = part(spanned, "forecast", sink);
            // Along the cube's time role, or the one `over` names where it has several (allocation and arrival).
            let timed: Vec<&str> = cx
                .roles
                .iter()
                .filter(|r| cx.dimensions.get(&r.dimension).is_some_and(|d| d.kind() == DimensionKind::Time))
                .map(|r| r.name.as_str())
                .collect();
            let over = match (&m.over, timed.as_slice()) {
                (Some(o), _) if timed.contains(&o.get_ref().as_str()) => Some(o.get_ref().clone()),
                (Some(o), _) => {
                    let text = format!("'{}' is no role of this cube with a time dimension", o.get_ref());
                    sink.with(
                        Some(o.span()),
                        format!("{path}.over"),
                        text,
                        timed.iter().map(|t| (*t).to_owned()).collect(),
                    );
                    None
                }
                (None, [one]) => Some((*one).to_owned()),
                (None, []) => {
                    sink.at(
                        Some(spanned.span()),
                        format!("{path}.forecast"),
                        "a forecast needs a role with a time dimension",
                    );
                    None
                }
                (None, several) => {
                    let text =
                        format!("the cube has several time roles ({}): name one with `over`", several.join(", "));
                    sink.at(Some(spanned.span()), format!("{path}.over"), text);
                    None
                }
            };
            let horizon = m.horizon.as_ref().map_or(Some(6), |h| match *h.get_ref() {
                1..=60 => Some(*h.get_ref()),
                n => {
                    sink.at(
                        Some(h.span()),
                        format!("{path}.horizon"),
                        format!("horizon {n}: forecast 1 to 60 periods"),
                    );
                    None
                }
            });
            let interval = m.interval.as_ref().map_or(Some(95), |i| match *i.get_ref() {
                50..=99 => Some(*i.get_ref()),
                n => {
                    let text = format!("interval {n}: a prediction interval covers 50 to 99 percent");
                    sink.at(Some(i.span()), format!("{path}.interval"), text);
                    None
                }
            });
            Some(MeasureKind::Forecast { of: of?, over: over?, horizon: horizon?, interval: interval? })
        }
        key => {
            let (of, period) = match key {
                "previous" => (m.previous.as_ref(), Some(Period::Previous)),
                "last_year" => (m.last_year.as_ref(), Some(Period::LastYear)),
                _ => (
                    m.change.as_ref(),
                    match m.against.as_ref().map(|a| a.get_ref().as_str()) {
                        Some("previous") => Some(Period::Previous),
                        Some("last_year") => Some(Period::LastYear),
                        _ => {
                            let span = m.against.as_ref().map(|a| a.span()).unwrap_or(m.name.span());
                            sink.with(
                                Some(span),
                                format!("{path}.against"),
                                "a change needs `against`",
                                vec!["previous".into(), "last_year".into()],
                            );
                            None
                        }
                    },
                ),
            };
            let of = of.expect("present");
            let timed = needs_time(key, of.span(), sink);
            let of = part(of, key, sink);
            let change = match (key, m.percent) {
                ("change", false) => Change::Absolute,
                ("change", true) => Change::Percent,
                _ => Change::None,
            };
            timed.then_some(())?;
            Some(MeasureKind::TimeComparison { of: of?, period: period?, change })
        }
    };
    (sink.out.len() == before).then_some(kind).flatten()
}

fn lower_aggregate(m: &RawMeasure, path: &str, cx: &Context<'_>, sink: &mut Sink<'_>) -> Option<MeasureKind> {
    let spanned = m.aggregate.as_ref().expect("checked by the caller");
    let Some(aggregate) = Aggregate::NAMES.iter().find(|(n, _)| n == spanned.get_ref()).map(|(_, a)| *a) else {
        let valid = Aggregate::NAMES.iter().map(|(n, _)| (*n).to_owned()).collect();
        sink.with(
            Some(spanned.span()),
            format!("{path}.aggregate"),
            format!("unknown aggregate '{}'", spanned.get_ref()),
            valid,
        );
        return None;
    };
    let column = match (&m.column, aggregate) {
        (None, Aggregate::Count) => None,
        (Some(c), Aggregate::Count) => {
            sink.at(Some(c.span()), format!("{path}.column"), "`count` counts fact rows and takes no column");
            return None;
        }
        (None, _) => {
            sink.at(
                Some(spanned.span()),
                format!("{path}.column"),
                format!("aggregate '{}' needs a column", aggregate.name()),
            );
            return None;
        }
        (Some(c), _) => {
            let col = c.get_ref();
            let numeric = cx.columns.iter().find(|x| &x.name == col).map(|x| x.ty != ColumnType::String);
            let is_role = cx.roles.iter().any(|r| &r.name == col);
            let ok = if aggregate.is_numeric() { numeric == Some(true) } else { numeric.is_some() || is_role };
            if !ok {
                let valid = cx
                    .columns
                    .iter()
                    .filter(|x| !aggregate.is_numeric() || x.ty != ColumnType::String)
                    .map(|x| x.name.clone())
                    .collect();
                sink.with(
                    Some(c.span()),
                    format!("{path}.column"),
                    format!("'{col}' is not a column that '{}' can aggregate", aggregate.name()),
                    valid,
                );
                return None;
            }
            Some(col.clone())
        }
    };
    let mut filter = Vec::new();
    for (j, text) in m.filter.iter().enumerate() {
        let at = format!("{path}.filter[{j}]");
        match text.get_ref().parse::<Cut>() {
            Err(e) => sink.at(Some(text.span()), at, e.to_string()),
            Ok(cut) => {
                if let Err(message) = check_filter(&cut, cx) {
                    sink.at(Some(text.span()), at, message);
                } else {
                    filter.push(cut);
                }
            }
        }
    }
    let last_snapshot = match m.over_time.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
        None | Some(("sum", _)) => false,
        Some(("last", span)) => {
            if cx.time_role.is_none() {
                sink.at(
                    Some(span),
                    format!("{path}.over_time"),
                    "a stock needs the cube to have exactly one role with a time dimension",
                );
            }
            true
        }
        Some((other, span)) => {
            sink.with(
                Some(span),
                format!("{path}.over_time"),
                format!("unknown over_time '{other}'"),
                vec!["sum".into(), "last".into()],
            );
            false
        }
    };
    let dominance = match &m.dominance {
        None => None,
        Some(role) if aggregate == Aggregate::Sum && cx.roles.iter().any(|r| &r.name == role.get_ref()) => {
            Some(role.get_ref().clone())
        }
        Some(role) if aggregate != Aggregate::Sum => {
            sink.at(Some(role.span()), format!("{path}.dominance"), "the dominance rule applies to sums");
            None
        }
        Some(role) => {
            sink.with(
                Some(role.span()),
                format!("{path}.dominance"),
                format!("unknown dimension role '{}'", role.get_ref()),
                cx.roles.iter().map(|r| r.name.clone()).collect(),
            );
            None
        }
    };
    (filter.len() == m.filter.len() && m.dominance.is_some() == dominance.is_some()).then_some(MeasureKind::Aggregate {
        aggregate,
        column,
        filter,
        last_snapshot,
        dominance,
    })
}

/// A measure filter names a role of the cube (or `role.level`) and members of its dimension.
fn check_filter(cut: &Cut, cx: &Context<'_>) -> std::result::Result<(), String> {
    let role_name = cut.target.split_once('.').map_or(cut.target.as_str(), |(r, _)| r);
    let Some(role) = cx.roles.iter().find(|r| r.name == role_name) else {
        let valid: Vec<&str> = cx.roles.iter().map(|r| r.name.as_str()).collect();
        return Err(format!("unknown dimension role '{role_name}' (valid: {})", valid.join(", ")));
    };
    let dim = &cx.dimensions[&role.dimension];
    let level = match cut.target.split_once('.') {
        Some((_, level)) => Some(dim.level_index(level).map_err(|e| e.to_string())?),
        None => None,
    };
    let values: Vec<&String> = match &cut.op {
        CutOp::In(v) | CutOp::NotIn(v) => v.iter().collect(),
        CutOp::Range { from, to } => vec![from, to],
        CutOp::Compare(_, v) => {
            if !dim.is_ordered() {
                return Err(format!("dimension {} has no member order; use = or != instead of {}", dim.name(), cut));
            }
            vec![v]
        }
    };
    for v in values {
        dim.resolve(level, v).map_err(|e| e.to_string())?;
    }
    Ok(())
}
