//! Execution: a [`CubePlan`] becomes a DataFusion logical plan over the cube's facts (filters on fact keys,
//! joins to in-memory member tables for coarser levels, one aggregation per grain, derived measures from their
//! parts, joins for shares and time comparisons) and runs; the answer's rows then get labels, order and limit.
//! Also the read-only SQL surface: one view per cube with member labels. No SQL text is assembled from input.

use crate::aggregates::{self, Part};
use crate::members::{cut_expr, member_batch, member_key, member_ord};
use crate::plan::{CubePlan, LevelRef, PlannedMeasure};
use crate::result::{ColumnKind, QueryResult, ResultColumn, TOTAL_COLUMN, TOTAL_LABEL};
use crate::{Error, Result};
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::JoinType;
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{count, max, sum};
use datafusion::logical_expr::{Expr, ExprFunctionExt, cast, lit};
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext, coalesce, col, in_list, nullif};
use kubus_model::{Aggregate, Change, Cube, MeasureKind, Model, Period};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

fn internal(l: &LevelRef<'_>, what: &str) -> String {
    format!("__m_{}_{}_{what}", l.role, l.level_name())
}

// Columns of a per-grain frame: the key of drilldown `i`, and whether it is rolled up.
fn key(i: usize) -> String {
    format!("__k{i}")
}
fn rolled_up(i: usize) -> String {
    format!("__g{i}")
}

/// Runs a planned query over the cube's facts. Each grain (the drilldowns, and with totals every prefix of
/// them down to the grand total) is aggregated on its own, so that derived measures, shares, time comparisons
/// and stocks are computed from their parts at that grain; the grains are then stacked. The answer's few rows
/// then get their members' labels and order, and are sorted and cut to the limit ([`arrange`]): here rather than
/// in the DataFusion plan, whose planning (not its reading) is most of the time of an answer from a rollup.
pub async fn execute(ctx: &SessionContext, plan: &CubePlan<'_>, facts: &Facts) -> Result<QueryResult> {
    run(ctx, plan, &prepare(ctx, plan, facts).await?).await
}

/// A query planned down to DataFusion's physical plan, which [`run`] runs as often as asked while the facts it
/// was planned over stay the same: a prepared statement. Planning is most of the time of an answer from a
/// rollup; a plan run again is reset first (see `reset_plan_states`), and must not use dynamic filters, which
/// the session it was planned in switches off.
#[derive(Debug, Clone)]
pub struct Prepared {
    physical: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    hidden: Vec<String>,
}

/// Plans a query over the cube's facts, for [`run`].
pub async fn prepare(ctx: &SessionContext, plan: &CubePlan<'_>, facts: &Facts) -> Result<Prepared> {
    let (df, hidden) = frame(ctx, plan, facts).await?;
    Ok(Prepared { physical: df.create_physical_plan().await?, hidden })
}

/// Runs a prepared query (see [`execute`]); `plan` is the plan it was prepared from.
pub async fn run(ctx: &SessionContext, plan: &CubePlan<'_>, prepared: &Prepared) -> Result<QueryResult> {
    let physical = datafusion::physical_plan::execution_plan::reset_plan_states(prepared.physical.clone())?;
    let schema = physical.schema();
    let batches = datafusion::physical_plan::collect(physical, ctx.task_ctx()).await?;
    // The answer's rows count against the query's memory as DataFusion's own work does: held twice while arranged.
    let held = datafusion::execution::memory_pool::MemoryConsumer::new("kubus answer")
        .register(&ctx.runtime_env().memory_pool);
    held.try_grow(2 * batches.iter().map(RecordBatch::get_array_memory_size).sum::<usize>())?;
    let rows = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
    arrange(plan, &prepared.hidden, &rows)
}

/// How a planned query is computed: the plan in cube terms, then DataFusion's optimized logical plan and its
/// physical plan, and what is done with its rows after.
pub async fn explain(ctx: &SessionContext, plan: &CubePlan<'_>, facts: &Facts) -> Result<String> {
    let (df, _) = frame(ctx, plan, facts).await?;
    let marked = df.schema().has_column_with_unqualified_name(SHOWN);
    let logical = df.clone().into_optimized_plan()?;
    let physical = df.create_physical_plan().await?;
    Ok(format!(
        "{}\nDataFusion logical plan (optimized):\n{}\n\nDataFusion physical plan:\n{}\nThen, on the rows of the answer: \
         {}each member's label and place in its level, the order ({}){}.",
        plan.describe(),
        logical.display_indent(),
        datafusion::physical_plan::displayable(physical.as_ref()).indent(true),
        if marked { "the cells whose counts are all published as 0 left out (as cells without facts), " } else { "" },
        order_described(plan),
        plan.limit.map(|l| format!(", the first {l} rows")).unwrap_or_default()
    ))
}

fn order_described(plan: &CubePlan<'_>) -> String {
    let mut by: Vec<String> = plan
        .order
        .iter()
        .map(|(m, descending)| format!("{m} {}", if *descending { "descending" } else { "ascending" }))
        .collect();
    if plan.totals && !plan.drilldowns.is_empty() && !by.is_empty() {
        by.insert(0, "cells before totals".to_owned());
    }
    by.extend(plan.drilldowns.iter().map(|(_, name)| format!("{name} in its level's order")));
    if by.is_empty() { "one row".to_owned() } else { by.join(", then ") }
}

/// The query as one DataFrame (not yet run): per row the key `__k{i}` of each drilldown (empty where rolled up),
/// whether it is rolled up (`__g{i}`), the requested measures and the hidden columns (which it returns).
async fn frame(ctx: &SessionContext, plan: &CubePlan<'_>, facts: &Facts) -> Result<(DataFrame, Vec<String>)> {
    let n = plan.drilldowns.len();
    let grains: Vec<Vec<usize>> = plan.grains().into_iter().map(|k| (0..k).collect()).collect();
    let requested: Vec<&str> = plan.measures.iter().map(|m| m.name()).collect();
    // The counts and dominated sums the requested measures are computed from ride along, hidden, for disclosure
    // control.
    let mut hidden: Vec<String> = Vec::new();
    for m in &requested {
        let counts = plan.count_parts(m).into_iter().map(|p| p.column);
        let sums = plan.dominance_parts(m).into_iter().flat_map(|p| [p.column, p.top]);
        for column in counts.chain(sums) {
            if !requested.contains(&column.as_str()) && !hidden.contains(&column) {
                hidden.push(column);
            }
        }
    }
    let mut frames = Vec::with_capacity(grains.len());
    for grain in &grains {
        frames.push(evaluate(ctx, plan, facts, grain, &requested, 0, Unshown::Marked).await?);
    }
    let marked = frames.iter().any(|df| df.schema().has_column_with_unqualified_name(SHOWN));
    let mut stacked: Option<DataFrame> = None;
    for (grain, df) in grains.iter().zip(frames) {
        let mut select = Vec::new();
        for i in 0..n {
            if grain.contains(&i) {
                select.extend([col(key(i)), lit(0i32).alias(rolled_up(i))]);
            } else {
                select.extend([lit(ScalarValue::Utf8(None)).alias(key(i)), lit(1i32).alias(rolled_up(i))]);
            }
        }
        select.extend(requested.iter().map(|m| col(*m)));
        select.extend(hidden.iter().map(|h| col(h.as_str())));
        if marked {
            let shown = df.schema().has_column_with_unqualified_name(SHOWN);
            select.push(if shown { col(SHOWN) } else { lit(true).alias(SHOWN) });
        }
        let df = df.select(select)?;
        stacked = Some(match stacked {
            None => df,
            Some(all) => all.union(df)?,
        });
    }
    Ok((stacked.expect("at least one grain"), hidden))
}

/// The answer from the stacked grains' rows ([`frame`]): each drilldown's key and its member's label (the total
/// label where rolled up), the measures, the hidden columns and the total marker; sorted by the plan's order
/// (cells before totals when ordered by a measure), then by each drilldown's members in their level's order with
/// the total after them, and cut to the plan's limit. Rows marked as not shown ([`Unshown::Marked`]) are left
/// out. Only the rows kept are copied and labelled: one `take` per column.
fn arrange(plan: &CubePlan<'_>, hidden: &[String], rows: &RecordBatch) -> Result<QueryResult> {
    use datafusion::arrow::array::{Array, AsArray, BooleanArray, StringBuilder};
    use datafusion::arrow::compute::{SortColumn, SortOptions, lexsort_to_indices, take};
    let n = plan.drilldowns.len();
    let with_totals = plan.totals && n > 0;
    let column = |name: &str| -> Result<ArrayRef> { Ok(rows.column(rows.schema().index_of(name)?).clone()) };
    let rolled: Vec<ArrayRef> = (0..n).map(|i| column(&rolled_up(i))).collect::<Result<_>>()?;
    let is_total =
        |i: usize, row: usize| rolled[i].as_primitive::<datafusion::arrow::datatypes::Int32Type>().value(row) == 1;
    let shown: Vec<u32> = match rows.schema().index_of(SHOWN) {
        Ok(at) => {
            crate::published::kept_rows(rows.column(at).as_boolean()).set_indices().map(|row| row as u32).collect()
        }
        Err(_) => (0..rows.num_rows() as u32).collect(),
    };
    // Each drilldown's keys as plain text, and their ranks, looked up among its level's members: the members in
    // their level's order, unknown keys after them (rank `size - 2`) and the total last (`size - 1`).
    let keys: Vec<ArrayRef> = (0..n)
        .map(|i| Ok(datafusion::arrow::compute::cast(&column(&key(i))?, &DataType::Utf8)?))
        .collect::<Result<_>>()?;
    let sizes: Vec<u64> = plan.drilldowns.iter().map(|(l, _)| l.dimension.members(l.level).len() as u64 + 2).collect();
    let mut ranks_of: Vec<Vec<u64>> = Vec::with_capacity(n);
    for (i, (l, _)) in plan.drilldowns.iter().enumerate() {
        // DataFusion's hash map (foldhash): SipHash over short keys was a tenth of a large answer's time.
        let index: datafusion::common::HashMap<&str, u64> =
            l.dimension.members(l.level).iter().enumerate().map(|(at, m)| (m.key(), at as u64)).collect();
        let keys = keys[i].as_string::<i32>();
        let rank = |row: usize| match keys.is_valid(row).then(|| index.get(keys.value(row))).flatten() {
            _ if is_total(i, row) => sizes[i] - 1,
            Some(&at) => at,
            None => sizes[i] - 2,
        };
        ranks_of.push(shown.iter().map(|&row| rank(row as usize)).collect());
    }

    // Empty values last, in either direction (as the measures' order always put them).
    let nulls_last = |descending: bool| SortOptions { descending, nulls_first: false };
    let mut sort: Vec<SortColumn> = Vec::new();
    if with_totals && !plan.order.is_empty() {
        let any_total: Int32Array =
            shown.iter().map(|&row| (0..n).filter(|&i| is_total(i, row as usize)).count() as i32).collect();
        sort.push(SortColumn { values: Arc::new(any_total), options: Some(nulls_last(false)) });
    }
    if !plan.order.is_empty() {
        let shown_rows = UInt32Array::from(shown.clone());
        for (measure, descending) in &plan.order {
            let values = take(&column(measure)?, &shown_rows, None)?;
            sort.push(SortColumn { values, options: Some(nulls_last(*descending)) });
        }
    }
    // Then by each drilldown's ranks: all of them in one number where it fits (one column sorts much faster).
    let ranks: Vec<UInt64Array> = if sizes.iter().try_fold(1u64, |all, &size| all.checked_mul(size)).is_some() {
        vec![(0..shown.len()).map(|at| (0..n).fold(0, |all, i| all * sizes[i] + ranks_of[i][at])).collect()]
    } else {
        ranks_of.iter().map(|r| UInt64Array::from(r.clone())).collect()
    };
    let rows_kept = plan.limit.map_or(shown.len(), |l| l.min(shown.len()));
    // Positions among the shown rows, in the answer's order.
    let order: Vec<u32> = match ranks.as_slice() {
        [ranks] if sort.is_empty() => {
            // Stable: ties (only rows with unknown keys) keep the rows' order.
            let mut order: Vec<u32> = (0..shown.len() as u32).collect();
            order.sort_by_key(|&at| ranks.value(at as usize));
            order.truncate(rows_kept);
            order
        }
        _ => {
            let by_rank = ranks.into_iter().map(|r| SortColumn { values: Arc::new(r), options: None });
            sort.extend(by_rank);
            lexsort_to_indices(&sort, Some(rows_kept))?.values().to_vec()
        }
    };
    let taken = UInt32Array::from(order.iter().map(|&at| shown[at as usize]).collect::<Vec<u32>>());

    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut columns = Vec::new();
    let mut add = |field: Field, array: ArrayRef, described: ResultColumn| {
        fields.push(field);
        arrays.push(array);
        columns.push(described);
    };
    for (i, (l, name)) in plan.drilldowns.iter().enumerate() {
        let level = &l.dimension.levels()[l.level];
        let members = l.dimension.members(l.level);
        let dimension = Some(l.dimension.name().to_owned());
        add(
            Field::new(name.as_str(), DataType::Utf8, true),
            take(keys[i].as_ref(), &taken, None)?,
            ResultColumn {
                name: name.clone(),
                kind: ColumnKind::Key,
                heading: level.label().to_owned(),
                dimension: dimension.clone(),
                measure: None,
            },
        );
        let mut label = StringBuilder::new();
        for &at in &order {
            match ranks_of[i][at as usize] {
                rank if rank == sizes[i] - 1 => label.append_value(TOTAL_LABEL),
                rank if rank == sizes[i] - 2 => label.append_null(),
                rank => label.append_value(members[rank as usize].label()),
            }
        }
        let label_name = format!("{name}_label");
        add(
            Field::new(label_name.as_str(), DataType::Utf8, true),
            Arc::new(label.finish()),
            ResultColumn {
                name: label_name,
                kind: ColumnKind::Label,
                heading: format!("{} (Bezeichnung)", level.label()),
                dimension,
                measure: None,
            },
        );
    }
    let measures = plan.measures.iter().map(|m| (m.name(), ColumnKind::Measure, m.label()));
    let hidden = hidden.iter().map(|h| (h.as_str(), ColumnKind::Hidden, h.as_str()));
    for (name, kind, heading) in measures.chain(hidden) {
        let field = rows.schema().field_with_name(name)?.clone();
        let described =
            ResultColumn { name: name.to_owned(), kind, heading: heading.to_owned(), dimension: None, measure: None };
        add(field, take(&column(name)?, &taken, None)?, described);
    }
    if with_totals {
        let any: BooleanArray =
            taken.values().iter().map(|&row| Some((0..n).any(|i| is_total(i, row as usize)))).collect();
        let described = ResultColumn {
            name: TOTAL_COLUMN.to_owned(),
            kind: ColumnKind::Total,
            heading: TOTAL_LABEL.to_owned(),
            dimension: None,
            measure: None,
        };
        add(Field::new(TOTAL_COLUMN, DataType::Boolean, false), Arc::new(any), described);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok(QueryResult { schema, batches: vec![batch], columns })
}

/// The facts of each cube a plan reads, by cube name (one cube, or the combined cubes of a drill-across).
pub type Facts = HashMap<String, Arc<dyn TableProvider>>;

type Frame<'a> = Pin<Box<dyn Future<Output = Result<DataFrame>> + Send + 'a>>;

/// What becomes of a cell whose counts the cell key method all publishes as 0: like a cell without facts, it has
/// no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unshown {
    /// Its row is dropped in the plan: the rows other frames are joined to (shares, earlier periods, combined cubes).
    Dropped,
    /// Its row is marked (`SHOWN` false) and dropped with the answer's rows ([`arrange`]): the answer's own cells,
    /// where a filter in the plan would cost more planning than the answer's reading.
    Marked,
}

/// The column marking the answer's rows that are shown (see [`Unshown`]).
const SHOWN: &str = "__shown";

/// The measures `wanted` (and the parts they need) at one grain: a frame with the key `__k{i}` of each drilldown
/// `i` in `grain` and one column per measure. `shift` moves the time role that many fact-level
/// members back (for time comparisons): facts of the earlier period, keyed as the period they are compared with.
fn evaluate<'a>(
    ctx: &'a SessionContext,
    plan: &'a CubePlan<'a>,
    facts: &'a Facts,
    grain: &'a [usize],
    wanted: &'a [&'a str],
    shift: usize,
    unshown: Unshown,
) -> Frame<'a> {
    Box::pin(async move {
        let needed = closure(plan, wanted);
        let mut df = if plan.sides.is_empty() {
            aggregate_facts(ctx, plan, facts, grain, &needed, shift, unshown).await?
        } else {
            combine_sides(ctx, plan, facts, grain, &needed).await?
        };
        // Computed measures wait to be added together in one projection, until one needs another's value or a
        // join (see `with_columns`).
        let mut pending: Vec<(String, Expr)> = Vec::new();
        for pm in &needed {
            let m = pm.measure;
            if matches!(m.kind(), MeasureKind::Share { .. } | MeasureKind::TimeComparison { .. }) {
                df = with_columns(df, std::mem::take(&mut pending))?;
            }
            let value = match m.kind() {
                MeasureKind::Aggregate { .. } | MeasureKind::From { .. } => continue,
                MeasureKind::Forecast { .. } => return Err(Error::Forecast { measure: m.name().to_owned() }),
                MeasureKind::Ratio { numerator, denominator } => {
                    ratio(col(numerator.as_str()), col(denominator.as_str()))
                }
                MeasureKind::Difference { minuend, subtrahend } => col(minuend.as_str()) - col(subtrahend.as_str()),
                MeasureKind::Share { of, over } => {
                    let total = format!("__share_{}", m.name());
                    let coarser: Vec<usize> =
                        grain.iter().copied().filter(|&i| plan.drilldowns[i].0.role != over.as_str()).collect();
                    if coarser.len() == grain.len() {
                        // Not drilled by `over`: every cell is its own total.
                        df = df.with_column(&total, col(of.as_str()))?;
                    } else {
                        let parts = [of.as_str()];
                        let sub = evaluate(ctx, plan, facts, &coarser, &parts, shift, Unshown::Dropped).await?;
                        df = attach(df, sub, &coarser, of, &total)?;
                    }
                    ratio(col(of.as_str()), col(total.as_str()))
                }
                MeasureKind::TimeComparison { of, period, change } => {
                    let then = crate::disclosure::then_column(m.name());
                    match period_length(plan, grain, *period) {
                        // The earlier period is a row of this very frame: read from it, no second scan.
                        Some(length) if let Some(t) = earlier_in_frame(plan, grain, of) => {
                            df = earlier_of(ctx, df, plan, grain, t, length, of, &then)?;
                        }
                        Some(length) => {
                            let parts = [of.as_str()];
                            let sub =
                                evaluate(ctx, plan, facts, grain, &parts, shift + length, Unshown::Dropped).await?;
                            df = attach(df, sub, grain, of, &then)?;
                        }
                        None => {
                            // A total over a time range that is neither drilled nor cut has no earlier period.
                            let ty = df.schema().field_with_unqualified_name(of)?.data_type().clone();
                            df = df.with_column(&then, cast(lit(ScalarValue::Null), ty))?;
                        }
                    }
                    match change {
                        Change::None => col(then.as_str()),
                        Change::Absolute => col(of.as_str()) - col(then.as_str()),
                        Change::Percent => {
                            ratio(col(of.as_str()) - col(then.as_str()), col(then.as_str())) * lit(100.0)
                        }
                    }
                }
            };
            if value.column_refs().iter().any(|c| pending.iter().any(|(name, _)| *name == c.name)) {
                df = with_columns(df, std::mem::take(&mut pending))?;
            }
            pending.push((m.name().to_owned(), value));
        }
        with_columns(df, pending)
    })
}

/// Aggregates a cube's facts at one grain: cuts, member tables for the drilled levels, one aggregate per measure
/// (with its filter, and a stock's last-snapshot filter).
async fn aggregate_facts(
    ctx: &SessionContext,
    plan: &CubePlan<'_>,
    facts: &Facts,
    grain: &[usize],
    needed: &[&PlannedMeasure<'_>],
    shift: usize,
    unshown: Unshown,
) -> Result<DataFrame> {
    let time_role = plan.time.as_ref().map(|t| t.role);
    let shifted = |role: &str| if Some(role) == time_role { shift } else { 0 };
    let mut df = ctx.read_table(facts.get(plan.cube.name()).cloned().ok_or_else(|| missing_facts(plan))?)?;
    for cut in &plan.cuts {
        df = df.filter(cut_expr(cut, shifted(cut.role)))?;
    }
    // A drilldown at the level the facts record groups by the fact column itself (its labels come with the answer's
    // rows, see `arrange`); coarser (or shifted) levels by their members' positions.
    let late = |i: usize| {
        let l = &plan.drilldowns[i].0;
        l.level == l.fact_level && shifted(l.role) == 0
    };
    for &i in grain.iter().filter(|&&i| !late(i)) {
        let (l, _) = &plan.drilldowns[i];
        let by = shifted(l.role);
        let ord = internal(l, "ord");
        df = df.with_column(&ord, member_ord(l.dimension, l.fact_level, l.level, by, col(l.role)))?;
        // Facts of a member with no later period drop out.
        if by > 0 {
            df = df.filter(col(ord).is_not_null())?;
        }
    }

    // Whether each group is one cell of the rollup that answers: the grain drills every level the rollup holds, at
    // that level and unshifted, or a cut keeps one member of it (one month). A distinct count is then the cell's
    // stored count, not a union of its bitmaps.
    let single = |role: &str| {
        grain.iter().any(|&i| plan.drilldowns[i].0.role == role && late(i))
            || plan.cuts.iter().any(|c| c.role == role && !c.negated && c.members.len() == 1)
    };
    let single_cells = plan
        .rollup
        .as_deref()
        .and_then(|name| plan.cube.rollups().iter().find(|r| r.name() == name))
        .is_some_and(|r| r.levels().iter().all(|(role, _)| single(role)));
    let time_drilled = grain.iter().map(|&i| &plan.drilldowns[i].0).find(|l| Some(l.role) == time_role);
    let mut aggregates = Vec::new();
    // Sums with a contributor role also get their largest contributor's share, for the dominance rule.
    let mut tops: Vec<(String, Expr, &str)> = Vec::new();
    // Counts taken from a rollup's stored counts after the aggregation; measures computed from other aggregates
    // (averages) after it.
    let mut counted: Vec<(String, Expr)> = Vec::new();
    let mut after: Vec<(&str, Expr)> = Vec::new();
    // The published counts of the cell key method: a cell whose counts are all 0 has no row (see `Unshown`).
    let mut published: Vec<String> = Vec::new();
    for pm in needed {
        let MeasureKind::Aggregate { aggregate, column, last_snapshot, dominance, .. } = pm.measure.kind() else {
            continue;
        };
        let mut conditions: Vec<Expr> = pm.filter.iter().map(|c| cut_expr(c, shifted(c.role))).collect();
        if *last_snapshot && time_drilled.is_none_or(|l| l.level != l.fact_level) {
            conditions.push(last_snapshot_filter(&df, plan, time_drilled).await?);
        }
        let name = pm.measure.name();
        let column = || col(column.as_deref().expect("validated: non-count measures have a column"));
        // Over a rollup, each measure is aggregated again from the values its cells store (see `rollup`).
        let from_rollup = plan.rollup.is_some();
        let e = if from_rollup {
            aggregates::over_cells(*aggregate, name, single_cells)?
        } else {
            aggregates::over_facts(*aggregate, column)
        };
        let condition = conditions.into_iter().reduce(Expr::and);
        let with_condition = |e: Expr| -> Result<Expr> {
            Ok(match &condition {
                // The builder sets every flag of the aggregate, so a distinct count must say so again.
                Some(c) if *aggregate == Aggregate::CountDistinct && !from_rollup => {
                    e.distinct().filter(c.clone()).build()?
                }
                Some(c) => e.filter(c.clone()).build()?,
                None => e,
            })
        };
        let e = with_condition(e)?;
        if let Some(role) = dominance {
            tops.push((crate::disclosure::top_column(name), e.clone(), role.as_str()));
        }
        let magnitude = aggregates::is_magnitude(*aggregate);
        // How many facts have a value: a magnitude over too few is protected like a small count.
        let records = crate::disclosure::records_column(name);
        if let Some(noise) = &plan.noise {
            // Each number as published, aggregated in one pass with the record keys of what it counts (see
            // `published`). A magnitude's noise comes from the key of its facts with a value, whose count is
            // published too: else an average next to its sum would give the exact count away.
            let target = if magnitude { records.clone() } else { name.to_owned() };
            for (value, e) in
                published_aggregates(noise, df.schema(), *aggregate, from_rollup, single_cells, name, column)?
            {
                let e = match (value, aggregate, from_rollup) {
                    (false, Aggregate::CountDistinct, false) => e.distinct().build()?,
                    _ => e,
                };
                aggregates.push(with_condition(e)?.alias(if value { name } else { target.as_str() }));
            }
            published.push(target);
            continue;
        }
        if magnitude {
            let n = if from_rollup { sum(col(Part::Values.column(*aggregate, name))) } else { count(column()) };
            aggregates.push(with_condition(n)?.alias(records.as_str()));
            counted.push((records.clone(), coalesce(vec![col(records.as_str()), lit(0i64)])));
        }
        match (aggregate, from_rollup) {
            (Aggregate::Count | Aggregate::CountDistinct, true) => {
                // A count over no cells is 0, as over no facts.
                aggregates.push(e.alias(format!("__sum_{name}")));
                counted.push((name.to_owned(), coalesce(vec![col(format!("__sum_{name}")), lit(0i64)])));
            }
            (Aggregate::Avg, true) => {
                aggregates.push(e.alias(format!("__sum_{name}")));
                after.push((name, ratio(col(format!("__sum_{name}")), col(records.as_str()))));
            }
            _ => aggregates.push(e.alias(name)),
        }
    }
    let group: Vec<Expr> = grain
        .iter()
        .map(|&i| {
            let l = &plan.drilldowns[i].0;
            if late(i) {
                // Grouped as stored (a view of the file's strings), made plain text on the few grouped rows.
                col(l.role).alias(key(i))
            } else {
                // Grouped by the members' positions, given their keys on the few grouped rows.
                col(internal(l, "ord")).alias(key(i))
            }
        })
        .collect();
    let mut out = aggregate_unaliased(df.clone(), group.clone(), aggregates)?;
    out = with_columns(out, counted)?;
    // A cell whose counts are all published as 0 is shown as no cell at all, as a cell without facts is: otherwise
    // its row would tell that it has at least one unit, which the noise hid.
    let shown = published.iter().map(|name| col(name.as_str()).not_eq(lit(0i64))).reduce(Expr::or);
    let mut finished: Vec<(String, Expr)> = Vec::new();
    if let Some(shown) = shown.filter(|_| !grain.is_empty()) {
        match unshown {
            Unshown::Dropped => out = out.filter(shown)?,
            Unshown::Marked => finished.push((SHOWN.to_owned(), shown)),
        }
    }
    // Averages from their parts, and the grouped keys as plain text.
    finished.extend(after.into_iter().map(|(name, e)| (name.to_owned(), e)));
    let as_text: Vec<(String, Expr)> = grain
        .iter()
        .map(|&i| {
            let (l, _) = &plan.drilldowns[i];
            let text = match late(i) {
                true => cast(col(key(i)), DataType::Utf8),
                false => member_key(l.dimension, l.level, col(key(i))),
            };
            (key(i), text)
        })
        .collect();
    finished.extend(as_text.iter().cloned());
    out = with_columns(out, finished)?;
    for (top, e, role) in tops {
        // Per cell and contributor first, then the largest contribution per cell.
        let keys: Vec<Expr> = grain.iter().map(|&i| col(key(i))).collect();
        let per_contributor =
            df.clone().aggregate([group.clone(), vec![col(role)]].concat(), vec![e.alias("__contribution")])?;
        let largest = per_contributor.aggregate(keys, vec![max(col("__contribution")).alias(top.as_str())])?;
        out = attach(out, with_columns(largest, as_text.clone())?, grain, &top, &top)?;
    }
    Ok(out)
}

/// The cell key method's published aggregates of an aggregate measure (see [`crate::published`]): its published
/// count, or for a magnitude the published count of its values and the published value (marked `true`).
fn published_aggregates(
    noise: &crate::cellkey::Noise,
    schema: &datafusion::common::DFSchema,
    aggregate: Aggregate,
    from_rollup: bool,
    single_cells: bool,
    name: &str,
    column: impl Fn() -> Expr,
) -> Result<Vec<(bool, Expr)>> {
    use crate::published::{Input, Keys, Output};
    let publish = |input, keys, output, args| crate::published::aggregate(noise, input, keys, output, args);
    // The facts' record keys: stored with them, else hashed from their units.
    let (keys, record_keys) = if schema.has_column_with_unqualified_name(kubus_model::RECORD_KEY_COLUMN) {
        (Keys::Stored, col(kubus_model::RECORD_KEY_COLUMN))
    } else {
        (Keys::Hashed, col(noise.unit.as_str()))
    };
    // A rollup's count of what `part` counts and the sum of its record keys.
    let stored = |part: Part| vec![col(part.column(aggregate, name)), col(Part::KeySum.column(aggregate, name))];
    let output = aggregates::output(aggregate);
    Ok(match (aggregate, from_rollup) {
        (Aggregate::Count, false) => vec![(false, publish(Input::Rows, keys, output, vec![record_keys]))],
        (Aggregate::CountDistinct, false) => vec![(false, publish(Input::Units, keys, output, vec![column()]))],
        (Aggregate::Count, true) => vec![(false, publish(Input::Stored, keys, output, stored(Part::Value)))],
        (Aggregate::CountDistinct, true) if single_cells => {
            vec![(false, publish(Input::Stored, keys, output, stored(Part::BitmapCount)))]
        }
        // One union of the bitmaps gives both the count and its key.
        (Aggregate::CountDistinct, true) => vec![(false, crate::bitmap::published_count(&noise.ptable, col(name)))],
        (_, false) => vec![
            (false, publish(Input::Values, keys, Output::Count, vec![column(), record_keys.clone()])),
            (true, publish(Input::Values, keys, output, vec![column(), record_keys])),
        ],
        (Aggregate::Median, true) => return Err(aggregates::not_stored(name)),
        (_, true) => {
            // A minimum's or maximum's noise scales with itself, a sum's or average's with the cell's largest value.
            let largest =
                if aggregates::parts(aggregate, true).contains(&Part::Largest) { Part::Largest } else { Part::Value };
            let n = stored(Part::Values);
            let args = vec![
                col(Part::Value.column(aggregate, name)),
                n[0].clone(),
                n[1].clone(),
                col(largest.column(aggregate, name)),
            ];
            vec![
                (false, publish(Input::Stored, keys, Output::Count, n)),
                (true, publish(Input::StoredValues, keys, output, args)),
            ]
        }
    })
}

/// `df.aggregate(group, aggregates)` with each aggregate named after the aggregation, by a projection: DataFusion
/// rewrites distinct aggregates of one column into a grouping by that column (much faster than a set per group)
/// only where the aggregation's expressions are plain aggregates, not aliases. Equal aggregates are computed once.
fn aggregate_unaliased(df: DataFrame, group: Vec<Expr>, aggregates: Vec<Expr>) -> Result<DataFrame> {
    let mut plain: Vec<Expr> = Vec::new();
    // Each wanted name and the position of its aggregate in `plain`.
    let mut names: Vec<(String, usize)> = Vec::new();
    for e in aggregates {
        let (e, name) = match e {
            Expr::Alias(a) => (*a.expr, a.name),
            e => {
                let name = e.schema_name().to_string();
                (e, name)
            }
        };
        let at = plain.iter().position(|p| *p == e).unwrap_or_else(|| {
            // Two aggregates that differ only where their names do not show (a cast) keep a name of their own.
            let clash = plain.iter().any(|p| p.schema_name().to_string() == e.schema_name().to_string());
            plain.push(if clash { e.alias(format!("__aggregate{}", plain.len())) } else { e });
            plain.len() - 1
        });
        names.push((name, at));
    }
    let grouped = group.len();
    let out = df.aggregate(group, plain)?;
    // The aggregation's output: its groups, then its aggregates, in order.
    let field = |i: usize| Expr::Column(datafusion::common::Column::from(out.schema().qualified_field(i)));
    let keys = (0..grouped).map(field);
    let named = names.into_iter().map(|(name, at)| field(grouped + at).alias(name));
    let select: Vec<Expr> = keys.chain(named).collect();
    Ok(out.select(select)?)
}

/// `df` with each named column replaced by its expression, or added at the end where no column has that name, in
/// one projection: `DataFrame::with_column` adds a projection per column, and each costs planning time (most of
/// a rollup answer's time is planning). The expressions see `df`'s columns, not each other.
fn with_columns(df: DataFrame, columns: Vec<(String, Expr)>) -> Result<DataFrame> {
    if columns.is_empty() {
        return Ok(df);
    }
    let mut columns: Vec<Option<(String, Expr)>> = columns.into_iter().map(Some).collect();
    let mut take =
        |name: &str| columns.iter_mut().find(|c| c.as_ref().is_some_and(|(n, _)| n == name)).and_then(Option::take);
    let mut select: Vec<Expr> = df
        .schema()
        .iter()
        .map(|(qualifier, field)| match take(field.name()) {
            Some((name, e)) => e.alias(name),
            None => Expr::Column(datafusion::common::Column::from((qualifier, field))),
        })
        .collect();
    select.extend(columns.into_iter().flatten().map(|(name, e)| e.alias(name)));
    Ok(df.select(select)?)
}

fn missing_facts(plan: &CubePlan<'_>) -> Error {
    Error::DataFusion(datafusion::error::DataFusionError::Internal(format!(
        "no facts were handed in for cube {}",
        plan.cube.name()
    )))
}

/// A drill-across grain: each combined cube aggregated at the grain on its own, then full-joined on the grain's
/// keys, so that cells of either side appear and nothing fans out. Counts and sums a side has no cell for are 0.
async fn combine_sides(
    ctx: &SessionContext,
    plan: &CubePlan<'_>,
    facts: &Facts,
    grain: &[usize],
    needed: &[&PlannedMeasure<'_>],
) -> Result<DataFrame> {
    let mut joined: Option<DataFrame> = None;
    let mut zero_if_missing: Vec<String> = Vec::new();
    for side in &plan.sides {
        let from: Vec<(&str, &str)> = needed
            .iter()
            .filter_map(|pm| match pm.measure.kind() {
                MeasureKind::From { cube, measure } if cube == side.cube.name() => {
                    Some((pm.measure.name(), measure.as_str()))
                }
                _ => None,
            })
            .collect();
        if from.is_empty() {
            continue;
        }
        let names: Vec<&str> = from.iter().map(|(_, m)| *m).collect();
        let frame = evaluate(ctx, side, facts, grain, &names, 0, Unshown::Dropped).await?;
        let mut select: Vec<Expr> = grain.iter().map(|&i| col(key(i))).collect();
        for (name, measure) in &from {
            select.push(col(*measure).alias(*name));
            if side
                .cube
                .measure(measure)
                .is_ok_and(|m| matches!(m.kind(), MeasureKind::Aggregate { dominance: Some(_), .. }))
            {
                // The dominance rule follows the sum across: its largest contribution comes along.
                select.push(col(crate::disclosure::top_column(measure)).alias(crate::disclosure::top_column(name)));
            }
            if side.count_parts(measure).iter().any(|p| p.column == crate::disclosure::records_column(measure)) {
                // A magnitude's count of facts follows it across, for disclosure control.
                let records = crate::disclosure::records_column(name);
                select.push(col(crate::disclosure::records_column(measure)).alias(records.as_str()));
                zero_if_missing.push(records);
            }
            let additive = side.cube.measure(measure).is_ok_and(|m| {
                matches!(
                    m.kind(),
                    MeasureKind::Aggregate {
                        aggregate: Aggregate::Count | Aggregate::CountDistinct | Aggregate::Sum,
                        ..
                    }
                )
            });
            if additive {
                zero_if_missing.push((*name).to_owned());
            }
        }
        let frame = frame.select(select)?;
        joined = Some(match joined {
            None => frame,
            Some(left) => full_join(left, frame, grain)?,
        });
    }
    let df = joined.expect("planned: a drill-across query wants a measure of at least one cube");
    let mut zeros = Vec::new();
    for name in zero_if_missing {
        let ty = df.schema().field_with_unqualified_name(&name)?.data_type().clone();
        zeros.push((name.clone(), coalesce(vec![col(name.as_str()), cast(lit(0), ty)])));
    }
    with_columns(df, zeros)
}

/// Joins two frames of the same grain on its keys, keeping the cells of both.
fn full_join(left: DataFrame, right: DataFrame, grain: &[usize]) -> Result<DataFrame> {
    let renamed = |c: String| format!("__r{c}");
    let keys: Vec<String> = grain.iter().map(|&i| key(i)).collect();
    let values = |df: &DataFrame| -> Vec<String> {
        df.schema().fields().iter().map(|f| f.name().clone()).filter(|n| !keys.contains(n)).collect()
    };
    let measures = values(&right);
    let mut select: Vec<Expr> = keys.iter().map(|c| col(c.as_str()).alias(renamed(c.clone()))).collect();
    select.extend(measures.iter().map(|m| col(m.as_str())));
    let right = right.select(select)?;
    if grain.is_empty() {
        return Ok(left.join_on(right, JoinType::Inner, [lit(true)])?);
    }
    let left_keys: Vec<String> = grain.iter().map(|&i| key(i)).collect();
    let right_keys: Vec<String> = grain.iter().map(|&i| renamed(key(i))).collect();
    let left_keys: Vec<&str> = left_keys.iter().map(String::as_str).collect();
    let right_keys: Vec<&str> = right_keys.iter().map(String::as_str).collect();
    let left_measures = values(&left);
    let df = left.join(right, JoinType::Full, &left_keys, &right_keys, None)?;
    let mut select: Vec<Expr> =
        keys.iter().map(|c| coalesce(vec![col(c.as_str()), col(renamed(c.clone()).as_str())]).alias(c)).collect();
    select.extend(left_measures.iter().chain(&measures).map(|m| col(m.as_str())));
    Ok(df.select(select)?)
}

/// The planned measures `wanted` needs, parts first.
fn closure<'p, 'm>(plan: &'p CubePlan<'m>, wanted: &[&str]) -> Vec<&'p PlannedMeasure<'m>> {
    let mut names: Vec<&str> = wanted.to_vec();
    let mut i = 0;
    while i < names.len() {
        for part in
            plan.computed.iter().find(|p| p.measure.name() == names[i]).map(|p| p.measure.parts()).unwrap_or_default()
        {
            if !names.contains(&part) {
                names.push(part);
            }
        }
        i += 1;
    }
    plan.computed.iter().filter(|p| names.contains(&p.measure.name())).collect()
}

/// `a / b` as a decimal, empty where `b` is 0 or empty.
fn ratio(a: Expr, b: Expr) -> Expr {
    cast(a, DataType::Float64) / nullif(cast(b, DataType::Float64), lit(0.0))
}

/// Keeps a stock's facts to the last snapshot of each period of the grain (of the whole range when time is
/// not drilled): the latest fact-level time member that has facts at all under the query's cuts.
async fn last_snapshot_filter(
    df: &DataFrame,
    plan: &CubePlan<'_>,
    time_drilled: Option<&LevelRef<'_>>,
) -> Result<Expr> {
    let time = plan.time.as_ref().expect("planned: stocks have a time role");
    let group = time_drilled.map(|l| vec![col(internal(l, "ord"))]).unwrap_or_default();
    let last = df
        .clone()
        .aggregate(group, vec![max(col(time.role)).alias("__last")])?
        .select(vec![col("__last")])?
        .collect()
        .await?;
    let mut keys = Vec::new();
    for batch in &last {
        let column = cast_to_utf8(batch.column(0))?;
        let strings = column.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        keys.extend(strings.iter().flatten().map(|k| lit(k.to_owned())));
    }
    Ok(if keys.is_empty() { lit(false) } else { in_list(col(time.role), keys, false) })
}

fn cast_to_utf8(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(datafusion::arrow::compute::cast(array, &DataType::Utf8)?)
}

/// How many fact-level time members one comparison step spans at this grain: the drilled time level's length
/// (a month, quarter or year), or the length of the time cut when time is not drilled; a year for `LastYear`.
/// `None` for a total over time without a time cut, which has no earlier period.
fn period_length(plan: &CubePlan<'_>, grain: &[usize], period: Period) -> Option<usize> {
    let time = plan.time.as_ref().expect("planned: time comparisons have a time role");
    let months = |level: usize| time.dimension.months_per_member(level).expect("a time dimension");
    let per = |level: usize| months(level) / months(time.fact_level);
    let drilled = grain.iter().map(|&i| &plan.drilldowns[i].0).find(|l| l.role == time.role);
    let cut = plan.cuts.iter().find(|c| c.role == time.role && !c.negated);
    match (period, drilled, cut) {
        (_, None, None) => None,
        (Period::LastYear, _, _) => Some(12 / months(time.fact_level)),
        (Period::Previous, Some(l), _) => Some(per(l.level)),
        (Period::Previous, None, Some(c)) => Some(c.members.last()? - c.members.first()? + 1),
    }
}

/// Whether a time comparison of `of` at `grain` finds each cell's earlier period among the frame's own rows, and
/// if so the position in `grain` of the time drilldown: the time role is drilled and neither cut (a cut would leave
/// the earlier periods out) nor filtered or read at its last snapshot by a measure `of` needs (their earlier value
/// is what the shifted facts give, which these rows need not be), and the plan reads one cube's facts. A rollup's
/// few rows are aggregated a second time faster than a window is set up over them (q07 at 10M: 0.17 ms with two
/// aggregations, 0.43 ms with the window; from the facts 308 → 157 ms).
fn earlier_in_frame(plan: &CubePlan<'_>, grain: &[usize], of: &str) -> Option<usize> {
    if plan.rollup.is_some() {
        return None;
    }
    let time = plan.time.as_ref()?;
    let t = grain.iter().position(|&i| plan.drilldowns[i].0.role == time.role)?;
    let plain = |pm: &&PlannedMeasure<'_>| {
        !pm.filter.iter().any(|c| c.role == time.role)
            && !matches!(pm.measure.kind(), MeasureKind::Aggregate { last_snapshot: true, .. })
    };
    let cut = plan.cuts.iter().any(|c| c.role == time.role);
    (plan.sides.is_empty() && !cut && closure(plan, &[of]).iter().all(plain)).then_some(t)
}

/// Adds to `df` (the frame at `grain`, whose `t`-th drilldown is the time role) the column `name`: each row's `of`
/// of the period `length` fact-level members earlier, from the frame's own row of it (none: null). A window over
/// the frame's rows: partitioned by the other drilldowns, ordered by the period's first fact-level member, the
/// frame is the one row exactly `length` members before. A row the cell key method does not show counts as none.
#[allow(clippy::too_many_arguments)]
fn earlier_of(
    ctx: &SessionContext,
    df: DataFrame,
    plan: &CubePlan<'_>,
    grain: &[usize],
    t: usize,
    length: usize,
    of: &str,
    name: &str,
) -> Result<DataFrame> {
    use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};
    let level = &plan.drilldowns[grain[t]].0;
    // Each member of the drilled level with the position of its first fact-level member.
    let mut first: Vec<Option<i64>> = vec![None; level.dimension.members(level.level).len()];
    for index in 0..level.dimension.members(level.fact_level).len() {
        let member = kubus_model::MemberRef { level: level.fact_level, index };
        let at = &mut first[level.dimension.ancestor(member, level.level)];
        at.get_or_insert(index as i64);
    }
    let members = level.dimension.members(level.level);
    let (keys, firsts): (Vec<&str>, Vec<i64>) =
        first.iter().enumerate().filter_map(|(i, f)| Some((members[i].key(), (*f)?))).unzip();
    let (join, ordinal) = ("__earlier_key", "__earlier_ord");
    let schema =
        Schema::new(vec![Field::new(join, DataType::Utf8, false), Field::new(ordinal, DataType::Int64, false)]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(keys)) as ArrayRef,
            Arc::new(datafusion::arrow::array::Int64Array::from(firsts)),
        ],
    )?;
    let columns: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
    let shown = columns.iter().any(|c| c == SHOWN);
    let df = df.join(ctx.read_batch(batch)?, JoinType::Left, &[key(grain[t]).as_str()], &[join], None)?;
    // A row that is not shown, or whose period is no member (no ordinal), is no earlier period of any row.
    let counts = if shown { col(SHOWN).and(col(ordinal).is_not_null()) } else { col(ordinal).is_not_null() };
    let value = datafusion::logical_expr::when(counts, col(of)).end()?;
    let back = WindowFrameBound::Preceding(ScalarValue::Int64(Some(length as i64)));
    let window = datafusion::logical_expr::expr::WindowFunction::new(
        datafusion::functions_aggregate::min_max::max_udaf(),
        vec![value],
    );
    let earlier = Expr::from(window)
        .partition_by(grain.iter().filter(|&&i| i != grain[t]).map(|&i| col(key(i))).collect())
        .order_by(vec![col(ordinal).sort(true, true)])
        .window_frame(WindowFrame::new_bounds(WindowFrameUnits::Range, back.clone(), back))
        .build()?
        .alias(name);
    let df = df.window(vec![earlier])?;
    Ok(df.select(columns.iter().map(|c| col(c.as_str())).chain([col(name)]).collect::<Vec<_>>())?)
}

/// Left-joins the measure `of` of `sub` (a frame at the `keys` grain) to `df` as column `name`.
fn attach(df: DataFrame, sub: DataFrame, keys: &[usize], of: &str, name: &str) -> Result<DataFrame> {
    let mut select: Vec<Expr> = keys.iter().map(|&i| col(key(i)).alias(format!("__r{i}"))).collect();
    select.push(col(of).alias(name));
    let sub = sub.select(select)?;
    if keys.is_empty() {
        // A one-row total: a join without keys.
        return Ok(df.join_on(sub, JoinType::Left, [lit(true)])?);
    }
    let left: Vec<String> = keys.iter().map(|&i| key(i)).collect();
    let right: Vec<String> = keys.iter().map(|&i| format!("__r{i}")).collect();
    let left: Vec<&str> = left.iter().map(String::as_str).collect();
    let right: Vec<&str> = right.iter().map(String::as_str).collect();
    let columns: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).chain([name.to_owned()]).collect();
    let joined = df.join(sub, JoinType::Left, &left, &right, None)?;
    Ok(joined.select(columns.iter().map(|c| col(c.as_str())).collect::<Vec<_>>())?)
}

/// The read-only SQL view of a cube: its facts with, per dimension role, the member label and every coarser
/// level's key and label (`district`, `district_label`, `district_area`, `district_area_label`, ...).
pub fn cube_view(ctx: &SessionContext, model: &Model, cube: &Cube, facts: Arc<dyn TableProvider>) -> Result<DataFrame> {
    let mut df = ctx.read_table(facts)?;
    let mut select: Vec<Expr> = Vec::new();
    let mut measures: Vec<Expr> = cube.columns().iter().map(|c| col(c.name())).collect();
    for role in cube.dimensions() {
        let dim = model.dimension(role.dimension())?;
        let levels = dim.levels_above(role.fact_level());
        let prefix = format!("__v_{}_", role.name());
        let members = ctx.read_batch(member_batch(dim, role.fact_level(), &levels, &prefix, 0)?)?;
        df = df.join(members, JoinType::Left, &[role.name()], &[format!("{prefix}join").as_str()], None)?;
        select.push(col(role.name()));
        for &level in &levels {
            let name = dim.levels()[level].name();
            let out =
                if level == role.fact_level() { role.name().to_owned() } else { format!("{}_{name}", role.name()) };
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
