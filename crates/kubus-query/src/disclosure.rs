//! Statistical disclosure control over a query's answer, after aggregation: counts from 1 to a threshold are
//! suppressed (primary), then enough further cells (secondary) that no suppressed count can be recovered from the
//! totals and subtotals of the same answer — neither by subtracting along one total nor by solving all of them
//! together. Measures computed from a suppressed count (ratios, shares, changes) are suppressed with it. Knows
//! the answer and the plan, not the warehouse or output formats.
//!
//! Method: the answer's totals form equations "total = sum of its children" (one per total row, over the next
//! drilled dimension). Secondary suppression repeats until no step adds a cell: (1) an equation with exactly one
//! suppressed cell, or whose shown total bounds a hidden child to at most the threshold (each hidden cell is at
//! least 1, so it is at most their sum minus the others' minimum), gets a complementary cell — the smallest
//! non-zero child, else its total; (2) a suppressed cell that the equations still determine (its unit vector lies
//! in the row space of the equations over the suppressed cells) gets a complementary cell in one of its
//! equations the same way (an exact check of a dense matrix, run on answers with up to 400 hidden cells; the
//! nested totals make their equations a tree, where step (1) already leaves no cell determined); before it, bounds
//! that follow from several equations together (interval propagation over all of them) get a complementary cell
//! the same way. Both run on answers with up to 400 hidden cells.

use crate::plan::CubePlan;
use crate::result::{ColumnKind, QueryResult, ResultColumn};
use crate::{Error, Result};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, concat_batches, nullif};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use kubus_model::{Aggregate, MeasureKind};
use std::collections::HashMap;
use std::sync::Arc;

/// Up to this many hidden cells, secondary suppression also checks exactly that no hidden cell is determined.
const EXACT_CHECK_LIMIT: usize = 400;

/// Why a cell is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    /// Shown.
    None,
    /// A count from 1 to the threshold.
    Primary,
    /// Suppressed so that a primary cell cannot be recovered from the totals.
    Secondary,
}

/// How one answer is protected.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Shown instead of a suppressed value.
    pub symbol: String,
    /// Shown instead of a zero count.
    pub zero_symbol: String,
    /// A sum with a contributor role is suppressed where one contributor holds this share or more.
    pub dominance: f64,
}

/// What disclosure control did to one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protection {
    /// Cells (row × measure) suppressed because their count is small.
    pub primary: usize,
    /// Further cells suppressed to protect them, including derived measures of suppressed counts.
    pub secondary: usize,
}

/// A count that a measure of the answer is computed from, with the cube it counts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountPart {
    /// Its column in the answer (a measure, or a hidden part).
    pub column: String,
    /// The cube whose facts it counts.
    pub cube: String,
}

impl CubePlan<'_> {
    /// The counts a measure is computed from (itself, if it is a count), which disclosure control protects.
    pub fn count_parts(&self, measure: &str) -> Vec<CountPart> {
        let Some(pm) = self.computed.iter().find(|p| p.measure.name() == measure) else { return Vec::new() };
        match pm.measure.kind() {
            MeasureKind::Aggregate { aggregate: Aggregate::Count | Aggregate::CountDistinct, .. } => {
                vec![CountPart { column: measure.to_owned(), cube: self.cube.name().to_owned() }]
            }
            // A magnitude is protected by the count of facts it adds up.
            MeasureKind::Aggregate { .. } => {
                vec![CountPart { column: records_column(measure), cube: self.cube.name().to_owned() }]
            }
            MeasureKind::From { cube, measure: inner } => {
                let Some(side) = self.sides.iter().find(|s| s.cube.name() == cube) else { return Vec::new() };
                let parts = side.count_parts(inner);
                if parts.iter().any(|p| p.column == records_column(inner)) {
                    // A magnitude of the other cube: its count of facts comes along (see `exec::combine_sides`).
                    vec![CountPart { column: records_column(measure), cube: cube.clone() }]
                } else if parts.is_empty() {
                    Vec::new()
                } else {
                    vec![CountPart { column: measure.to_owned(), cube: cube.clone() }]
                }
            }
            MeasureKind::Ratio { numerator: a, denominator: b }
            | MeasureKind::Difference { minuend: a, subtrahend: b } => {
                let mut parts = self.count_parts(a);
                parts.extend(self.count_parts(b));
                parts
            }
            MeasureKind::Share { of, .. } | MeasureKind::Forecast { of, .. } => self.count_parts(of),
            MeasureKind::TimeComparison { of, .. } => {
                let mut parts = self.count_parts(of);
                // The earlier period's value is a count too, possibly of a row the answer does not show (a
                // magnitude's earlier value is perturbed, or shown as its sum over the earlier facts).
                if let Some(cube) = parts.first().filter(|p| p.column != records_column(of)).map(|p| p.cube.clone()) {
                    parts.push(CountPart { column: then_column(measure), cube });
                }
                parts
            }
        }
    }
}

/// A sum that a measure of the answer is computed from, whose contributors the dominance rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DominancePart {
    /// The sum's column in the answer.
    pub column: String,
    /// The hidden column with the largest single contribution to it.
    pub top: String,
}

impl CubePlan<'_> {
    /// The sums with a contributor role that a measure is computed from (itself, if it is one).
    pub fn dominance_parts(&self, measure: &str) -> Vec<DominancePart> {
        let Some(pm) = self.computed.iter().find(|p| p.measure.name() == measure) else { return Vec::new() };
        match pm.measure.kind() {
            MeasureKind::Aggregate { dominance: Some(_), .. } => {
                vec![DominancePart { column: measure.to_owned(), top: top_column(measure) }]
            }
            MeasureKind::From { cube, measure: inner } => {
                let dominated = self
                    .sides
                    .iter()
                    .find(|s| s.cube.name() == cube)
                    .is_some_and(|s| !s.dominance_parts(inner).is_empty());
                if dominated {
                    vec![DominancePart { column: measure.to_owned(), top: top_column(measure) }]
                } else {
                    Vec::new()
                }
            }
            MeasureKind::Aggregate { .. } | MeasureKind::TimeComparison { .. } => Vec::new(),
            MeasureKind::Ratio { numerator: a, denominator: b }
            | MeasureKind::Difference { minuend: a, subtrahend: b } => {
                [self.dominance_parts(a), self.dominance_parts(b)].concat()
            }
            MeasureKind::Share { of, .. } | MeasureKind::Forecast { of, .. } => self.dominance_parts(of),
        }
    }
}

/// The hidden column with the largest single contribution to a sum.
pub(crate) fn top_column(measure: &str) -> String {
    format!("__top_{measure}")
}

/// The hidden column with the number of facts with a value that a magnitude (sum, average, minimum, maximum) of a
/// cell adds up: a magnitude over as few facts as a small count is protected as that count is.
pub(crate) fn records_column(measure: &str) -> String {
    format!("__n_{measure}")
}

/// The hidden column with a time comparison's earlier value.
pub(crate) fn then_column(measure: &str) -> String {
    format!("__then_{measure}")
}

/// Suppresses the cells of one count column. `keys[row]` are the row's drilldown keys (`None` where the row is a
/// total over that drilldown); values are counts (`None` counts as 0).
pub fn suppress(keys: &[Vec<Option<String>>], values: &[Option<i64>], threshold: u64) -> Vec<Suppression> {
    let primary: Vec<bool> = values.iter().map(|v| v.unwrap_or(0) >= 1 && v.unwrap_or(0) as u64 <= threshold).collect();
    protect_cells(keys, values, &primary, Some(threshold))
}

/// Secondary suppression around the `primary` cells of one additive column. With a count `threshold`, a shown
/// total must also not bound a hidden cell to at most the threshold.
pub fn protect_cells(
    keys: &[Vec<Option<String>>],
    values: &[Option<i64>],
    primary: &[bool],
    threshold: Option<u64>,
) -> Vec<Suppression> {
    let values: Vec<i64> = values.iter().map(|v| v.unwrap_or(0)).collect();
    protect_graph(&values, primary, &equations(keys), &vec![threshold; values.len()])
}

/// Secondary suppression over explicit equations ("total = sum of children", as cell indices); `bounds` gives each
/// cell's count threshold for the bound rule (`None` for sums).
fn protect_graph(
    values: &[i64],
    primary: &[bool],
    equations: &[(usize, Vec<usize>)],
    bounds: &[Option<u64>],
) -> Vec<Suppression> {
    let value = |r: usize| values[r];
    let mut state: Vec<Suppression> =
        primary.iter().map(|&p| if p { Suppression::Primary } else { Suppression::None }).collect();
    if !state.contains(&Suppression::Primary) {
        return state;
    }
    let suppressed = |state: &[Suppression], r: usize| state[r] != Suppression::None;
    // A shown total also bounds its hidden children: every hidden cell is at least 1 (its row exists), so each is
    // at most S − (k − 1), S being their sum and k their number. That bound must stay above the threshold, or
    // the attacker learns the cell is small.
    let too_narrow = |state: &[Suppression], (total, children): &(usize, Vec<usize>)| -> bool {
        let Some(threshold) = bounds[*total] else { return false };
        if suppressed(state, *total) {
            return false;
        }
        let hidden: Vec<usize> = children.iter().copied().filter(|&c| suppressed(state, c)).collect();
        let sum: i64 = hidden.iter().map(|&c| value(c)).sum();
        !hidden.is_empty() && sum - (hidden.len() as i64 - 1) <= threshold as i64
    };
    // The complementary cell of an equation: its smallest non-zero shown child, else its total if shown.
    let complement = |state: &[Suppression], (total, children): &(usize, Vec<usize>)| -> Option<usize> {
        let child =
            children.iter().copied().filter(|&c| !suppressed(state, c) && value(c) != 0).min_by_key(|&c| (value(c), c));
        child.or((!suppressed(state, *total)).then_some(*total))
    };
    loop {
        let mut added = false;
        for eq in equations {
            let cells = std::iter::once(eq.0).chain(eq.1.iter().copied());
            let single = cells.filter(|&c| suppressed(&state, c)).count() == 1;
            if (single || too_narrow(&state, eq))
                && let Some(c) = complement(&state, eq)
            {
                state[c] = Suppression::Secondary;
                added = true;
            }
        }
        if added {
            continue;
        }
        // The totals of an answer nest (each cell is a child of one total and the total of at most one group), so
        // the equations form a tree, in which a cell is determined only through an equation with no other hidden
        // cell — which step (1) rules out. The exact check is a safety net; it is dense, so it runs on answers
        // with few hidden cells only.
        if state.iter().filter(|s| **s != Suppression::None).count() > EXACT_CHECK_LIMIT {
            break;
        }
        // (2) Bounds from all equations together: a hidden total is at least the sum of its hidden children's lower
        // bounds, which lowers its siblings' upper bounds, and so on (interval propagation); (3) the exact check.
        let Some(cell) = bounded(values, equations, &state, bounds).or_else(|| determined(equations, &state)) else {
            break;
        };
        let around =
            equations.iter().filter(|(t, ch)| *t == cell || ch.contains(&cell)).find_map(|eq| complement(&state, eq));
        // Where every cell of its own equations is hidden already, the bound comes through another equation: the
        // smallest shown cell of any equation with a hidden cell loosens the system (each step hides one more cell).
        let anywhere = || {
            equations
                .iter()
                .filter(|(t, ch)| suppressed(&state, *t) || ch.iter().any(|&c| suppressed(&state, c)))
                .flat_map(|(t, ch)| std::iter::once(*t).chain(ch.iter().copied()))
                .filter(|&c| !suppressed(&state, c) && value(c) != 0)
                .min_by_key(|&c| (value(c), c))
        };
        match around.or_else(anywhere) {
            Some(c) => state[c] = Suppression::Secondary,
            // Nothing left to suppress: every cell of every equation with a hidden cell is hidden; stop.
            None => break,
        }
    }
    state
}

/// A primary cell that the shown cells bound to its threshold or below, all equations taken together, if any.
/// Interval propagation: a shown cell is its value, a hidden one at least 1 (zeros are never hidden); each equation
/// narrows its total to the sum of its children's intervals and each child to the total's less the others'.
/// Rounds are capped: bounds are sound after any round, a cap only finds fewer.
fn bounded(
    values: &[i64],
    equations: &[(usize, Vec<usize>)],
    state: &[Suppression],
    bounds: &[Option<u64>],
) -> Option<usize> {
    const OPEN: i64 = i64::MAX / 4;
    let hidden = |r: usize| state[r] != Suppression::None;
    let mut lo: Vec<i64> = (0..values.len()).map(|r| if hidden(r) { 1 } else { values[r] }).collect();
    let mut hi: Vec<i64> = (0..values.len()).map(|r| if hidden(r) { OPEN } else { values[r] }).collect();
    for _ in 0..50 {
        let mut narrowed = false;
        for (total, children) in equations {
            let sum_lo: i64 = children.iter().map(|&c| lo[c]).sum();
            let open = children.iter().filter(|&&c| hi[c] >= OPEN).count();
            let finite_hi: i64 = children.iter().map(|&c| hi[c]).filter(|&h| h < OPEN).sum();
            let (total_lo, total_hi) =
                (sum_lo.max(lo[*total]), if open == 0 { finite_hi.min(hi[*total]) } else { hi[*total] });
            for &c in children {
                let others_lo = sum_lo - lo[c];
                let others_open = open - usize::from(hi[c] >= OPEN);
                let child_hi = if total_hi >= OPEN { hi[c] } else { hi[c].min(total_hi - others_lo) };
                let child_lo = if others_open > 0 {
                    lo[c]
                } else {
                    lo[c].max(total_lo - (finite_hi - if hi[c] >= OPEN { 0 } else { hi[c] }))
                };
                narrowed |= child_hi < hi[c] || child_lo > lo[c];
                (lo[c], hi[c]) = (child_lo, child_hi);
            }
            narrowed |= total_lo > lo[*total] || total_hi < hi[*total];
            (lo[*total], hi[*total]) = (total_lo, total_hi);
        }
        if !narrowed {
            break;
        }
    }
    (0..values.len()).find(|&r| state[r] == Suppression::Primary && bounds[r].is_some_and(|t| hi[r] <= t as i64))
}

/// The equations of an answer's totals: each total row with the rows one drilldown finer below it.
fn equations(keys: &[Vec<Option<String>>]) -> Vec<(usize, Vec<usize>)> {
    let grain = |r: usize| keys[r].iter().take_while(|k| k.is_some()).count();
    let mut by_prefix: HashMap<(usize, &[Option<String>]), Vec<usize>> = HashMap::new();
    for (r, key) in keys.iter().enumerate() {
        let g = grain(r);
        if g > 0 {
            by_prefix.entry((g - 1, &key[..g - 1])).or_default().push(r);
        }
    }
    (0..keys.len())
        .filter_map(|r| {
            let g = grain(r);
            let children = by_prefix.get(&(g, &keys[r][..g]))?;
            (g < keys[r].len()).then(|| (r, children.clone()))
        })
        .collect()
}

/// A suppressed cell whose value the equations determine, if any: its unit vector lies in the row space of the
/// equations restricted to the suppressed cells (Gauss-Jordan elimination; coefficients stay small integers).
fn determined(equations: &[(usize, Vec<usize>)], state: &[Suppression]) -> Option<usize> {
    let vars: Vec<usize> = (0..state.len()).filter(|&r| state[r] != Suppression::None).collect();
    let column: HashMap<usize, usize> = vars.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (total, children) in equations {
        let mut row = vec![0.0; vars.len()];
        if let Some(&i) = column.get(total) {
            row[i] = -1.0;
        }
        for c in children {
            if let Some(&i) = column.get(c) {
                row[i] = 1.0;
            }
        }
        if row.iter().any(|&x| x != 0.0) {
            rows.push(row);
        }
    }
    let mut pivot_row = 0;
    let mut pivots = Vec::new();
    for col in 0..vars.len() {
        let Some(p) = (pivot_row..rows.len()).find(|&r| rows[r][col].abs() > 1e-9) else { continue };
        rows.swap(pivot_row, p);
        let scale = rows[pivot_row][col];
        rows[pivot_row].iter_mut().for_each(|x| *x /= scale);
        for r in 0..rows.len() {
            if r != pivot_row && rows[r][col].abs() > 1e-9 {
                let factor = rows[r][col];
                let pivot = rows[pivot_row].clone();
                rows[r].iter_mut().zip(&pivot).for_each(|(x, p)| *x -= factor * p);
            }
        }
        pivots.push((pivot_row, col));
        pivot_row += 1;
    }
    pivots
        .into_iter()
        .find(|&(r, col)| rows[r].iter().enumerate().all(|(j, &x)| j == col || x.abs() <= 1e-9))
        .map(|(_, col)| vars[col])
}

/// Applies disclosure control to an answer: suppressed values become empty, each measure gets a status column
/// (`<measure>_status`: the symbol of a suppressed or zero cell), and hidden part columns are dropped. `threshold`
/// gives each cube's threshold (`None` for a cube published without suppression).
pub fn protect(
    result: QueryResult,
    plan: &CubePlan<'_>,
    threshold: &dyn Fn(&str) -> Option<u64>,
    rules: &Rules,
) -> Result<(QueryResult, Protection)> {
    let mut out = protect_together(vec![(result, plan)], threshold, rules)?;
    Ok(out.remove(0))
}

/// Which facts a cell counts, for recognising the same cell in several answers: per dimension role, the fact-level
/// members selected by the cuts and the row's coordinates (roles left open are not listed).
type Selection = Vec<(String, Vec<usize>)>;

/// One protected column of one answer: counts, or sums with a dominance rule.
struct Column {
    answer: usize,
    name: String,
    /// The cell of each row in the joint numbering.
    cells: Vec<usize>,
}

/// A column protected in an answer: a count (with its threshold), or a sum with its largest contribution's column.
type Part = (String, String, Option<u64>, Option<String>);

/// Protects several answers together — the tables of one report: a cell two answers share (the same facts counted
/// by the same measure) gets one decision in all of them, and the totals of every answer constrain the complements.
pub fn protect_together(
    answers: Vec<(QueryResult, &CubePlan<'_>)>,
    threshold: &dyn Fn(&str) -> Option<u64>,
    rules: &Rules,
) -> Result<Vec<(QueryResult, Protection)>> {
    // Per answer, its protected columns.
    let mut parts: Vec<Vec<Part>> = Vec::new();
    for (result, plan) in &answers {
        let mut own: Vec<Part> = Vec::new();
        for c in result.columns.iter().filter(|c| c.kind == ColumnKind::Measure) {
            let counts = plan
                .count_parts(&c.name)
                .into_iter()
                .filter_map(|p| threshold(&p.cube).map(|t| (p.column, p.cube, Some(t), None)));
            let sums = plan
                .dominance_parts(&c.name)
                .into_iter()
                .map(|p| (p.column, plan_cube(plan, &p.top), None, Some(p.top)));
            for part in counts.chain(sums) {
                if !own.iter().any(|o| o.0 == part.0) {
                    own.push(part);
                }
            }
        }
        parts.push(own);
    }
    // Nothing to protect (counts perturbed by the cell key method, or nothing about persons): no cell is hidden.
    if parts.iter().all(Vec::is_empty) {
        return answers
            .into_iter()
            .map(|(result, plan)| {
                let batch = concat_batches(&result.schema, &result.batches)?;
                apply(result, &batch, plan, &HashMap::new(), rules)
            })
            .collect();
    }
    let mut batches = Vec::new();
    let mut keys_of = Vec::new();
    for ((result, _), parts) in answers.iter().zip(&parts) {
        let batch = concat_batches(&result.schema, &result.batches)?;
        // The rows' keys make the equations between them; an answer with nothing to protect needs none.
        keys_of.push(if parts.is_empty() { Vec::new() } else { row_keys(result, &batch)? });
        batches.push(batch);
    }
    // The joint numbering of cells, with their values, primary flags and count thresholds (for the bound rule).
    let mut ids: HashMap<(String, String, Selection), usize> = HashMap::new();
    let (mut values, mut primary, mut bounds): (Vec<i64>, Vec<bool>, Vec<Option<u64>>) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut columns: Vec<Column> = Vec::new();
    let mut equations: Vec<(usize, Vec<usize>)> = Vec::new();
    let joint = answers.len() > 1;
    let mut descendants: HashMap<(String, usize, String), Vec<usize>> = HashMap::new();
    for (a, (result, plan)) in answers.iter().enumerate() {
        let batch = &batches[a];
        let index = |name: &str| result.columns.iter().position(|c| c.name == name);
        let local = self::equations(&keys_of[a]);
        for (column, cube, count_threshold, top) in std::mem::take(&mut parts[a]) {
            let at = index(&column).ok_or_else(|| missing(&column))?;
            let (row_values, row_primary): (Vec<i64>, Vec<bool>) = match (&top, count_threshold) {
                (None, Some(t)) => {
                    let v: Vec<i64> = cast(batch.column(at), &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.unwrap_or(0))
                        .collect();
                    let p = v.iter().map(|&v| v >= 1 && v as u64 <= t).collect();
                    (v, p)
                }
                (Some(top), _) => {
                    let top_at = index(top).ok_or_else(|| missing(top))?;
                    let sums: Vec<Option<f64>> =
                        cast(batch.column(at), &DataType::Float64)?.as_primitive::<Float64Type>().iter().collect();
                    let tops: Vec<Option<f64>> =
                        cast(batch.column(top_at), &DataType::Float64)?.as_primitive::<Float64Type>().iter().collect();
                    let p = sums
                        .iter()
                        .zip(&tops)
                        .map(|(s, t)| matches!((s, t), (Some(s), Some(t)) if *s > 0.0 && t / s >= rules.dominance))
                        .collect();
                    // Sums are protected in whole units; the equations need exact arithmetic.
                    (sums.iter().map(|s| s.map_or(0, |s| s.round() as i64)).collect(), p)
                }
                (None, None) => continue,
            };
            // The earlier value of a time comparison is only ever this answer's own.
            let shared = if column.starts_with("__then_") { format!("{a}:{column}") } else { column.clone() };
            let kind = if top.is_some() { "dominance" } else { "count" };
            let mut cells = Vec::with_capacity(row_values.len());
            for r in 0..row_values.len() {
                // Alone, an answer's rows are its cells; together, cells are matched by the facts they count.
                let facts = if joint {
                    selection(plan, &cube, &keys_of[a][r], &mut descendants)
                } else {
                    vec![(String::new(), vec![r])]
                };
                let identity = (format!("{kind}:{shared}"), cube.clone(), facts);
                let id = *ids.entry(identity).or_insert_with(|| {
                    values.push(row_values[r]);
                    primary.push(false);
                    bounds.push(count_threshold);
                    values.len() - 1
                });
                primary[id] |= row_primary[r];
                cells.push(id);
            }
            equations.extend(local.iter().map(|(t, ch)| (cells[*t], ch.iter().map(|&c| cells[c]).collect())));
            columns.push(Column { answer: a, name: column, cells });
        }
    }
    let state = protect_graph(&values, &primary, &equations, &bounds);
    answers
        .into_iter()
        .enumerate()
        .map(|(a, (result, plan))| {
            let flags: HashMap<&str, Vec<Suppression>> = columns
                .iter()
                .filter(|k| k.answer == a)
                .map(|k| (k.name.as_str(), k.cells.iter().map(|&id| state[id]).collect()))
                .collect();
            apply(result, &batches[a], plan, &flags, rules)
        })
        .collect()
}

/// The cube whose facts a dominated sum adds up (a drill-across measure comes from one of the combined cubes).
fn plan_cube(plan: &CubePlan<'_>, top: &str) -> String {
    let measure = top.trim_start_matches("__top_");
    plan.computed
        .iter()
        .find_map(|p| match p.measure.kind() {
            MeasureKind::From { cube, .. } if p.measure.name() == measure => Some(cube.clone()),
            _ => None,
        })
        .unwrap_or_else(|| plan.cube.name().to_owned())
}

/// Each row's drilldown keys (`None` on totals).
fn row_keys(result: &QueryResult, batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>> {
    let columns = result
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == ColumnKind::Key)
        .map(|(i, _)| cast(batch.column(i), &DataType::Utf8))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|r| columns.iter().map(|c| (!c.is_null(r)).then(|| c.as_string::<i32>().value(r).to_owned())).collect())
        .collect())
}

/// The facts a row of an answer counts in `cube`: the cuts that apply to that cube and the row's coordinates.
fn selection(
    plan: &CubePlan<'_>,
    cube: &str,
    keys: &[Option<String>],
    cache: &mut HashMap<(String, usize, String), Vec<usize>>,
) -> Selection {
    let source =
        if plan.sides.is_empty() { plan } else { plan.sides.iter().find(|s| s.cube.name() == cube).unwrap_or(plan) };
    let mut chosen: Vec<(String, Vec<usize>)> = Vec::new();
    let mut narrow = |role: &str, members: Vec<usize>, all: usize| {
        let at = match chosen.iter().position(|(r, _)| r == role) {
            Some(at) => {
                let keep: std::collections::HashSet<usize> = members.into_iter().collect();
                chosen[at].1.retain(|m| keep.contains(m));
                at
            }
            None => {
                chosen.push((role.to_owned(), members));
                chosen.len() - 1
            }
        };
        // A role selected in full is not constrained at all.
        if chosen[at].1.len() == all {
            chosen.remove(at);
        }
    };
    for cut in &source.cuts {
        let all = cut.dimension.members(cut.fact_level).len();
        let members =
            if cut.negated { (0..all).filter(|m| !cut.members.contains(m)).collect() } else { cut.members.clone() };
        narrow(cut.role, members, all);
    }
    for ((l, _), key) in source.drilldowns.iter().zip(keys) {
        let Some(key) = key else { continue };
        let members = cache
            .entry((l.role.to_owned(), l.level, key.clone()))
            .or_insert_with(|| {
                let index = l.dimension.members(l.level).iter().position(|m| m.key() == key);
                index
                    .map(|index| {
                        l.dimension.descendants(kubus_model::MemberRef { level: l.level, index }, l.fact_level)
                    })
                    .unwrap_or_default()
            })
            .clone();
        narrow(l.role, members, l.dimension.members(l.fact_level).len());
    }
    chosen.sort();
    chosen
}

/// Builds the protected answer from the flags of its protected columns.
fn apply(
    result: QueryResult,
    batch: &RecordBatch,
    plan: &CubePlan<'_>,
    flags: &HashMap<&str, Vec<Suppression>>,
    rules: &Rules,
) -> Result<(QueryResult, Protection)> {
    let mut protection = Protection::default();
    let mut out_columns: Vec<ResultColumn> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let mut statuses: Vec<(ResultColumn, ArrayRef)> = Vec::new();
    for (i, c) in result.columns.iter().enumerate() {
        if c.kind == ColumnKind::Hidden {
            continue;
        }
        if c.kind != ColumnKind::Measure {
            out_columns.push(c.clone());
            arrays.push(batch.column(i).clone());
            continue;
        }
        let parts: Vec<String> = plan
            .count_parts(&c.name)
            .into_iter()
            .map(|p| p.column)
            .chain(plan.dominance_parts(&c.name).into_iter().map(|p| p.column))
            .collect();
        // Which rows are hidden, and which of them for their own small value: none where no part was protected
        // by suppression (the cell key method), without a pass over the rows.
        let flagged: Vec<(&String, &Vec<Suppression>)> =
            parts.iter().filter_map(|part| flags.get(part.as_str()).map(|state| (part, state))).collect();
        let rows = if flagged.is_empty() { 0 } else { batch.num_rows() };
        let (mut hidden, mut primary) = (vec![false; rows], vec![false; rows]);
        for (part, state) in flagged {
            for (r, s) in state.iter().enumerate() {
                hidden[r] |= *s != Suppression::None;
                primary[r] |= *s == Suppression::Primary && *part == c.name;
            }
        }
        let own = plan.count_parts(&c.name).iter().any(|p| p.column == c.name);
        protection.primary += primary.iter().filter(|p| **p).count();
        protection.secondary += hidden.iter().zip(&primary).filter(|(h, p)| **h && !**p).count();
        // A count of 0 shows the zero symbol (null is not 0).
        let zero =
            own.then(|| eq(&cast(batch.column(i), &DataType::Int64)?, &Int64Array::new_scalar(0))).transpose()?;
        let any_zero = zero.as_ref().is_some_and(|z| z.true_count() > 0);
        let zero = |r: usize| zero.as_ref().is_some_and(|z| z.is_valid(r) && z.value(r));
        let any_hidden = hidden.contains(&true);
        let marked = any_hidden || any_zero;
        let status: ArrayRef = match marked {
            // Most answers mark no cell: a column of nulls needs no strings.
            false => new_null_array(&DataType::Utf8, batch.num_rows()),
            true => Arc::new(
                (0..batch.num_rows())
                    .map(|r| {
                        if hidden.get(r) == Some(&true) {
                            Some(rules.symbol.as_str())
                        } else if zero(r) {
                            Some(rules.zero_symbol.as_str())
                        } else {
                            None
                        }
                    })
                    .collect::<StringArray>(),
            ),
        };
        // Without suppression (the cell key method) no value is hidden.
        arrays.push(if any_hidden {
            nullif(batch.column(i), &BooleanArray::from(hidden))?
        } else {
            batch.column(i).clone()
        });
        out_columns.push(c.clone());
        let name = format!("{}_status", c.name);
        let column = ResultColumn {
            name,
            kind: ColumnKind::Status,
            heading: format!("{} (Status)", c.heading),
            dimension: None,
            measure: Some(c.name.clone()),
        };
        statuses.push((column, status));
    }
    for (column, array) in statuses {
        out_columns.push(column);
        arrays.push(array);
    }
    let fields: Vec<Field> = out_columns
        .iter()
        .zip(&arrays)
        .map(|(c, a)| Field::new(c.name.as_str(), a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays)?;
    Ok((QueryResult { schema, batches: vec![batch], columns: out_columns }, protection))
}

/// The answer without its hidden part columns, for roles that see unsuppressed numbers.
pub fn strip_hidden(result: QueryResult) -> Result<QueryResult> {
    let keep: Vec<usize> =
        (0..result.columns.len()).filter(|&i| result.columns[i].kind != ColumnKind::Hidden).collect();
    let schema = Arc::new(result.schema.project(&keep)?);
    let batches = result.batches.iter().map(|b| b.project(&keep)).collect::<Result<Vec<_>, _>>()?;
    let columns = keep.iter().map(|&i| result.columns[i].clone()).collect();
    Ok(QueryResult { schema, batches, columns })
}

fn missing(column: &str) -> Error {
    Error::DataFusion(datafusion::error::DataFusionError::Internal(format!(
        "the answer lacks the count column {column} that disclosure control needs"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rows: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
        rows.iter().map(|r| r.iter().map(|k| k.map(str::to_owned)).collect()).collect()
    }

    #[test]
    fn bounds_from_several_totals_together_are_protected_too() {
        // Areas A, B, C × x, y with totals. A's two cells (1 and 2) and B's only cell (1, so B's total is 1 too)
        // are small. Each equation alone leaves every hidden cell above 2 — but together they do not: A's total
        // hides two cells of at least 1 each, so it is at least 2, and then B's total, the grand total less A's
        // and C's, is at most 10 − 2 − 6 = 2. Found only by propagating bounds through both levels.
        let k = keys(&[
            &[Some("A"), Some("x")],
            &[Some("A"), Some("y")],
            &[Some("A"), None],
            &[Some("B"), Some("x")],
            &[Some("B"), None],
            &[Some("C"), Some("x")],
            &[Some("C"), None],
            &[None, None],
        ]);
        let v = [Some(1), Some(2), Some(3), Some(1), Some(1), Some(6), Some(6), Some(10)];
        let s = suppress(&k, &v, 2);
        let shown = |i: usize| s[i] == Suppression::None;
        assert!(!(shown(5) && shown(6) && shown(7)), "B's total would be pinned to at most 2: {s:?}");
    }

    #[test]
    fn a_small_cell_gets_a_complement_in_its_total() {
        // district × sex with totals: a=1 is small; its sibling and, one level up, a cell of another district
        // must follow so that neither the district total nor the grand total gives it away.
        let k = keys(&[
            &[Some("01"), Some("m")],
            &[Some("01"), Some("w")],
            &[Some("01"), None],
            &[Some("02"), Some("m")],
            &[Some("02"), Some("w")],
            &[Some("02"), None],
            &[None, None],
        ]);
        let v = [Some(1), Some(7), Some(8), Some(5), Some(9), Some(14), Some(22)];
        let s = suppress(&k, &v, 2);
        assert_eq!(s[0], Suppression::Primary);
        assert_eq!(s[1], Suppression::Secondary, "the sibling, else 01 = m + w gives m away");
        assert_eq!(s[2], Suppression::None, "the district total may stay: m and w are both hidden");
        let v = [Some(1), Some(7), Some(8), Some(5), Some(9), Some(14), Some(22)];
        assert_eq!(suppress(&k, &v, 0), vec![Suppression::None; 7], "threshold 0 suppresses nothing");
    }
}
