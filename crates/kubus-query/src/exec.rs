//! Execution: a [`CubePlan`] becomes a DataFusion logical plan over the cube's facts (filters on fact keys,
//! left joins to in-memory member tables for labels and coarser levels, GROUPING SETS for totals) and runs.
//! Also the read-only SQL surface: one view per cube with member labels. No SQL text is assembled from input.

use crate::plan::{CubePlan, LevelRef};
use crate::{Error, Result};
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, grouping, max, min, sum};
use datafusion::logical_expr::{Expr, GroupingSet, SortExpr, lit, when};
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext, col, in_list};
use kubus_model::{Aggregate, Cube, Dimension, Model};
use std::sync::Arc;

/// Label of total rows.
pub const TOTAL_LABEL: &str = "Insgesamt";
/// Boolean column marking total and subtotal rows (present when totals were requested).
pub const TOTAL_COLUMN: &str = "_total";

/// What a result column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Member keys of a drilled level.
    Key,
    /// Member labels of a drilled level.
    Label,
    /// A measure's values.
    Measure,
    /// The total marker.
    Total,
}

/// A column of a query result.
#[derive(Debug, Clone)]
pub struct ResultColumn {
    /// Column name in the batches.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
    /// Human heading (level or measure label).
    pub heading: String,
}

/// A query's answer: Arrow batches plus the meaning of each column.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Column descriptions, in batch order.
    pub columns: Vec<ResultColumn>,
}

impl QueryResult {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Builds the member table of a role: one row per fact-level member, with key, label and order of each of
/// `levels` (all at or above the fact level). Column names: `{prefix}{level}_key|_label|_ord`, join key
/// `{prefix}join`.
pub fn member_batch(dim: &Dimension, fact_level: usize, levels: &[usize], prefix: &str) -> Result<RecordBatch> {
    let members = dim.members(fact_level);
    let mut fields = vec![Field::new(format!("{prefix}join"), DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(members.iter().map(|m| m.key())))];
    for &level in levels {
        let ancestors: Vec<usize> = (0..members.len())
            .map(|index| dim.ancestor(kubus_model::MemberRef { level: fact_level, index }, level))
            .collect();
        let at = dim.members(level);
        let name = dim.levels()[level].name();
        fields.push(Field::new(format!("{prefix}{name}_key"), DataType::Utf8, false));
        fields.push(Field::new(format!("{prefix}{name}_label"), DataType::Utf8, false));
        fields.push(Field::new(format!("{prefix}{name}_ord"), DataType::Int32, false));
        columns.push(Arc::new(StringArray::from_iter_values(ancestors.iter().map(|&a| at[a].key()))));
        columns.push(Arc::new(StringArray::from_iter_values(ancestors.iter().map(|&a| at[a].label()))));
        columns.push(Arc::new(Int32Array::from_iter_values(ancestors.iter().map(|&a| a as i32))));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

fn internal(l: &LevelRef<'_>, what: &str) -> String {
    format!("__m_{}_{}_{what}", l.role, l.level_name())
}

fn measure_expr(m: &kubus_model::Measure) -> Expr {
    let column = || col(m.column().expect("validated: non-count measures have a column"));
    let e = match m.aggregate() {
        Aggregate::Count => count(lit(1)),
        Aggregate::Sum => sum(column()),
        Aggregate::Min => min(column()),
        Aggregate::Max => max(column()),
        Aggregate::Avg => avg(column()),
        Aggregate::CountDistinct => count_distinct(column()),
    };
    e.alias(m.name())
}

/// Runs a planned query over the cube's facts.
pub async fn execute(ctx: &SessionContext, plan: &CubePlan<'_>, facts: Arc<dyn TableProvider>) -> Result<QueryResult> {
    let mut df = ctx.read_table(facts)?;
    for cut in &plan.cuts {
        let keys = cut.keys.iter().map(|k| lit(k.as_str())).collect();
        df = df.filter(in_list(col(cut.role), keys, cut.negated))?;
    }
    for (l, _) in &plan.drilldowns {
        let prefix = format!("__m_{}_", l.role);
        let members = ctx.read_batch(member_batch(l.dimension, l.fact_level, &[l.level], &prefix)?)?;
        let join = format!("{prefix}join");
        df = df.join(members, JoinType::Left, &[l.role], &[join.as_str()], None)?;
    }
    let group_cols = |l: &LevelRef<'_>| vec![col(internal(l, "key")), col(internal(l, "label")), col(internal(l, "ord"))];
    let mut aggregates: Vec<Expr> = plan.measures.iter().map(|m| measure_expr(m)).collect();
    let group: Vec<Expr> = if plan.totals && !plan.drilldowns.is_empty() {
        // One grouping set per prefix of the drilldowns: details, subtotals, grand total.
        let sets = (0..=plan.drilldowns.len())
            .rev()
            .map(|n| plan.drilldowns[..n].iter().flat_map(|(l, _)| group_cols(l)).collect())
            .collect();
        for (l, _) in &plan.drilldowns {
            aggregates.push(grouping(col(internal(l, "key"))).alias(internal(l, "grouping")));
        }
        vec![Expr::GroupingSet(GroupingSet::GroupingSets(sets))]
    } else {
        plan.drilldowns.iter().flat_map(|(l, _)| group_cols(l)).collect()
    };
    df = df.aggregate(group, aggregates)?;

    let with_totals = plan.totals && !plan.drilldowns.is_empty();
    let mut sort: Vec<SortExpr> = Vec::new();
    if with_totals && !plan.order.is_empty() {
        let any_total = plan
            .drilldowns
            .iter()
            .map(|(l, _)| col(internal(l, "grouping")))
            .reduce(|a, b| a + b)
            .expect("at least one drilldown");
        sort.push(any_total.sort(true, false));
    }
    for (measure, descending) in &plan.order {
        sort.push(col(measure.as_str()).sort(!descending, false));
    }
    for (l, _) in &plan.drilldowns {
        if with_totals {
            sort.push(col(internal(l, "grouping")).sort(true, false));
        }
        sort.push(col(internal(l, "ord")).sort(true, false));
    }
    if !sort.is_empty() {
        df = df.sort(sort)?;
    }
    if let Some(n) = plan.limit {
        df = df.limit(0, Some(n))?;
    }

    let mut select = Vec::new();
    let mut columns = Vec::new();
    for (l, name) in &plan.drilldowns {
        let level = &l.dimension.levels()[l.level];
        select.push(col(internal(l, "key")).alias(name.as_str()));
        columns.push(ResultColumn { name: name.clone(), kind: ColumnKind::Key, heading: level.label().to_owned() });
        let label = format!("{name}_label");
        let label_expr = if with_totals {
            when(col(internal(l, "grouping")).eq(lit(1)), lit(TOTAL_LABEL)).otherwise(col(internal(l, "label")))?
        } else {
            col(internal(l, "label"))
        };
        select.push(label_expr.alias(label.as_str()));
        columns.push(ResultColumn { name: label, kind: ColumnKind::Label, heading: format!("{} (Bezeichnung)", level.label()) });
    }
    for m in &plan.measures {
        select.push(col(m.name()));
        columns.push(ResultColumn { name: m.name().to_owned(), kind: ColumnKind::Measure, heading: m.label().to_owned() });
    }
    if with_totals {
        let any = plan
            .drilldowns
            .iter()
            .map(|(l, _)| col(internal(l, "grouping")).eq(lit(1)))
            .reduce(Expr::or)
            .expect("at least one drilldown");
        select.push(any.alias(TOTAL_COLUMN));
        columns.push(ResultColumn { name: TOTAL_COLUMN.to_owned(), kind: ColumnKind::Total, heading: TOTAL_LABEL.to_owned() });
    }
    let batches = df.select(select)?.collect().await?;
    Ok(QueryResult { batches, columns })
}

/// The read-only SQL view of a cube: its facts with, per dimension role, the member label and every coarser
/// level's key and label (`district`, `district_label`, `district_area`, `district_area_label`, ...).
pub fn cube_view(ctx: &SessionContext, model: &Model, cube: &Cube, facts: Arc<dyn TableProvider>) -> Result<DataFrame> {
    let mut df = ctx.read_table(facts)?;
    let mut select: Vec<Expr> = Vec::new();
    let mut measures: Vec<Expr> = cube.columns().iter().map(|c| col(c.name())).collect();
    for role in cube.dimensions() {
        let dim = model.dimension(role.dimension())?;
        let levels: Vec<usize> = (0..=role.fact_level()).collect();
        let prefix = format!("__v_{}_", role.name());
        let members = ctx.read_batch(member_batch(dim, role.fact_level(), &levels, &prefix)?)?;
        df = df.join(members, JoinType::Left, &[role.name()], &[format!("{prefix}join").as_str()], None)?;
        select.push(col(role.name()));
        for &level in levels.iter().rev() {
            let name = dim.levels()[level].name();
            let out = if level == role.fact_level() { role.name().to_owned() } else { format!("{}_{name}", role.name()) };
            if level != role.fact_level() {
                select.push(col(format!("{prefix}{name}_key")).alias(out.as_str()));
            }
            select.push(col(format!("{prefix}{name}_label")).alias(format!("{out}_label")));
        }
    }
    select.append(&mut measures);
    Ok(df.select(select)?)
}

/// Runs read-only SQL (a single query; no DDL, DML or other statements) against the registered cube views.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(|source| Error::Sql { source })?;
    Ok(df.collect().await?)
}
