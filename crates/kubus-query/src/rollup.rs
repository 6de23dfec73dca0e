//! Rollups: a cube's facts pre-aggregated at the levels a rollup declares, storing for each aggregate measure
//! what it takes to aggregate it again (a count, a sum, a minimum or maximum, an average's sum, a distinct count's
//! bitmap of dense ids with the cell's own distinct count and key; a magnitude's count of values; for the cell key
//! method a count's or magnitude's record-key sum and a magnitude's largest value), with the measure's filter
//! already applied. Building rollups is one
//! DataFusion aggregation over the facts with a grouping set per rollup ([`scans`], [`build_frame`],
//! [`rollup_rows`]); answering from one is the same execution as over facts, with the
//! plan moved to the rollup's levels ([`at_rollup`]) once [`check`] found that the rollup answers it exactly.

use crate::Result;
use crate::aggregates::{self, Again, Part};
use crate::members::{cut_expr, member_key, member_ord};
use crate::plan::{CubePlan, FINEST_GRAIN, resolve_cut};
use datafusion::arrow::array::{ArrayRef, AsArray as _, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::JoinType;
use datafusion::logical_expr::{Expr, ExprFunctionExt, GroupingSet, cast, lit};
use datafusion::prelude::{DataFrame, SessionContext, col, ident};
use kubus_model::{Aggregate, Cube, MeasureKind, MemberRef, Model, Rollup};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Bumped whenever the stored layout changes, so that rollups written by an older kubus are rebuilt.
const FORMAT: &str = "kubus-rollup-5";

/// The value columns whose distinct counts a cube's rollups store as bitmaps, each needing a dictionary of ids.
pub fn distinct_columns(cube: &Cube, rollups: &[&Rollup]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for m in cube.measures() {
        if let MeasureKind::Aggregate { aggregate: Aggregate::CountDistinct, column: Some(c), .. } = m.kind()
            && rollups.iter().any(|r| r.measures().iter().any(|x| x == m.name()))
            && !columns.contains(c)
        {
            columns.push(c.clone());
        }
    }
    columns
}

/// The column of dense ids joined to the facts for a distinct column.
fn id_column(column: &str) -> String {
    format!("__id_{column}")
}

/// Dense ids for the distinct values of a column of the facts: a batch `value`, `id`. An id's lower 16 bits are
/// the low 16 bits of the value's record key (see [`crate::cellkey::record_key`]), its upper 16 bits number the
/// values that share them: a bitmap of ids then also gives the sum of its units' record keys modulo 2¹⁶, from
/// which the cell key method takes a cell's key. Numbered that way, the ids of a few million values lie in a few
/// dozen of a bitmap's containers of 2¹⁶ ids each, two bytes an id, where ids with the record key above spread one
/// cell's thousands of values over as many containers, ten bytes an id.
pub async fn dictionary(ctx: &SessionContext, facts: Arc<dyn TableProvider>, column: &str) -> Result<RecordBatch> {
    let values = ctx.read_table(facts)?.select(vec![col(column).alias("value")])?.distinct()?.collect().await?;
    let values: Vec<&RecordBatch> = values.iter().filter(|b| b.num_rows() > 0).collect();
    let schema = match values.first() {
        Some(b) => b.schema(),
        None => {
            return Ok(RecordBatch::new_empty(Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new("value", DataType::Utf8, true),
                datafusion::arrow::datatypes::Field::new("id", DataType::UInt32, false),
            ]))));
        }
    };
    let all = datafusion::arrow::compute::concat_batches(&schema, values.iter().copied())?;
    let text = datafusion::arrow::compute::cast(all.column(0), &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut next = vec![0u32; 1 << 16];
    let ids = text.iter().map(|value| next_id(&mut next, value, column)).collect::<Result<Vec<u32>>>()?;
    let ids: ArrayRef = Arc::new(UInt32Array::from(ids));
    Ok(RecordBatch::try_from_iter([("value", all.column(0).clone()), ("id", ids)])?)
}

/// The rollups built by one aggregation over the facts, in declaration order: those storing the same distinct
/// counts. One aggregation computes every measure of its rollups for all of them, which is cheap for counts,
/// sums and the like but not for bitmaps, so rollups with different distinct counts get a scan each.
pub fn scans<'r>(cube: &Cube, rollups: &[&'r Rollup]) -> Vec<Vec<&'r Rollup>> {
    let mut scans: Vec<(Vec<String>, Vec<&'r Rollup>)> = Vec::new();
    for r in rollups {
        let distinct: Vec<String> = r
            .measures()
            .iter()
            .filter(|m| {
                matches!(
                    cube.measure(m).map(|m| m.kind()),
                    Ok(MeasureKind::Aggregate { aggregate: Aggregate::CountDistinct, .. })
                )
            })
            .cloned()
            .collect();
        let fits = |scan: &(Vec<String>, Vec<&Rollup>)| {
            scan.0 == distinct && levels_of(&scan.1).len() + r.levels().len() <= MAX_SCAN_LEVELS
        };
        match scans.iter_mut().find(|s| fits(s)) {
            Some(scan) => scan.1.push(r),
            None => scans.push((distinct, vec![r])),
        }
    }
    scans.into_iter().map(|(_, s)| s).collect()
}

/// At most this many distinct levels in one aggregation: its grouping id is a 32-bit integer.
const MAX_SCAN_LEVELS: usize = 30;

/// The distinct levels of some rollups, in order of first appearance.
fn levels_of<'r>(rollups: &[&'r Rollup]) -> Vec<&'r (String, usize)> {
    let mut levels: Vec<&(String, usize)> = Vec::new();
    for l in rollups.iter().flat_map(|r| r.levels()) {
        if !levels.contains(&l) {
            levels.push(l);
        }
    }
    levels
}

/// The column that tells which grouping set of a shared aggregation a row belongs to.
const SET: &str = "__set";

/// The aggregation over the facts that builds some rollups (one of [`scans`]), not yet run: one grouping set per
/// rollup, each row one combination of a rollup's levels' members that has facts. [`rollup_rows`] picks one
/// rollup's rows out of its result. `ids` holds the dictionary of every column in [`distinct_columns`].
pub fn build_frame(
    ctx: &SessionContext,
    model: &Model,
    cube: &Cube,
    rollups: &[&Rollup],
    facts: Arc<dyn TableProvider>,
    ids: &HashMap<String, RecordBatch>,
) -> Result<DataFrame> {
    aggregate_rollups(ctx, model, cube, rollups, ctx.read_table(facts)?, ids, true)
}

/// [`build_frame`] over some facts, with the record-key sums of the cell key method or without them.
fn aggregate_rollups(
    ctx: &SessionContext,
    model: &Model,
    cube: &Cube,
    rollups: &[&Rollup],
    mut df: DataFrame,
    ids: &HashMap<String, RecordBatch>,
    keys: bool,
) -> Result<DataFrame> {
    // Only the dictionaries these rollups' distinct counts need: each is a join over every fact.
    for column in distinct_columns(cube, rollups) {
        let Some(dictionary) = ids.get(&column) else { continue };
        let id = id_column(&column);
        let renamed = ctx
            .read_batch(dictionary.clone())?
            .select(vec![col("value").alias(format!("{id}_value")), col("id").alias(id.as_str())])?;
        df = df.join(renamed, JoinType::Left, &[column.as_str()], &[format!("{id}_value").as_str()], None)?;
    }
    // The members' positions at the coarser levels the rollups hold.
    let levels = levels_of(rollups);
    for (role, level) in &levels {
        let r = cube.dimension(role)?;
        if *level != r.fact_level() {
            let ord = member_ord(model.dimension(r.dimension())?, r.fact_level(), *level, 0, col(role.as_str()));
            df = df.with_column(&level_column(model, cube, role, *level)?, ord)?;
        }
    }
    let group_expr = |(role, level): &(String, usize)| level_column(model, cube, role, *level).map(col);
    let mut measures: Vec<&String> = Vec::new();
    for m in rollups.iter().flat_map(|r| r.measures()) {
        if !measures.contains(&m) {
            measures.push(m);
        }
    }
    let record_keys = cube.unit_column().filter(|_| keys).map(|unit| crate::cellkey::record_keys_in(df.schema(), unit));
    let mut aggregates = Vec::new();
    for name in measures {
        aggregates.extend(stored_aggregates(model, cube, name, record_keys.as_ref())?);
    }
    let group = if let [rollup] = rollups {
        rollup.levels().iter().map(group_expr).collect::<Result<Vec<_>>>()?
    } else {
        let all = levels.iter().map(|l| group_expr(l)).collect::<Result<Vec<_>>>()?;
        aggregates.push(datafusion::functions_aggregate::grouping::grouping_udaf().call(all).alias(SET));
        let sets = rollups
            .iter()
            .map(|r| r.levels().iter().map(group_expr).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        vec![Expr::GroupingSet(GroupingSet::GroupingSets(sets))]
    };
    Ok(df.aggregate(group, aggregates)?)
}

/// The column of the build that holds a role's members at a level: the fact column (their keys) at the recorded
/// level, else their positions at the coarser level ([`member_ord`]), grouped as numbers and given their keys on
/// the grouped rows.
fn level_column(model: &Model, cube: &Cube, role: &str, level: usize) -> Result<String> {
    let r = cube.dimension(role)?;
    Ok(if level == r.fact_level() {
        role.to_owned()
    } else {
        format!("__m_{role}_{}_ord", model.dimension(r.dimension())?.levels()[level].name())
    })
}

/// The rows of rollup `which` of `rollups` out of their [`build_frame`] (run or not): the role columns holding
/// member keys at the rollup's levels, and the value columns of each stored measure.
pub fn rollup_rows(
    model: &Model,
    cube: &Cube,
    rollups: &[&Rollup],
    which: usize,
    built: DataFrame,
) -> Result<DataFrame> {
    rows_of(model, cube, rollups, which, built, true)
}

/// [`rollup_rows`] of an aggregation with the record-key sums or without them (see [`aggregate_rollups`]).
fn rows_of(
    model: &Model,
    cube: &Cube,
    rollups: &[&Rollup],
    which: usize,
    built: DataFrame,
    keys: bool,
) -> Result<DataFrame> {
    let rollup = rollups[which];
    let mut columns = Vec::new();
    for (role, level) in rollup.levels() {
        let r = cube.dimension(role)?;
        let members = col(level_column(model, cube, role, *level)?);
        let keys = match *level == r.fact_level() {
            true => cast(members, DataType::Utf8),
            false => member_key(model.dimension(r.dimension())?, *level, members),
        };
        columns.push(keys.alias(role.as_str()));
    }
    let keys = keys && cube.unit_column().is_some();
    for name in rollup.measures() {
        let MeasureKind::Aggregate { aggregate, .. } = cube.measure(name)?.kind() else { continue };
        // Each stored column as aggregated, and a bitmap's own distinct count and cell key beside it: a query
        // whose groups are single cells reads these instead of unioning bitmaps.
        let bitmap = col(Part::Bitmap.column(*aggregate, name));
        for part in aggregates::parts(*aggregate, keys) {
            let column = part.column(*aggregate, name);
            columns.push(match part.again(*aggregate, bitmap.clone()) {
                Again::FromBitmap(count_or_key) => count_or_key.alias(column),
                Again::Aggregated(_) => col(column),
            });
        }
    }
    let built = if rollups.len() > 1 {
        // GROUPING(levels…): bit i (from the right) is set when level i (from the end) is not grouped.
        let levels = levels_of(rollups);
        let set = levels.iter().fold(0i32, |mask, l| (mask << 1) | i32::from(!rollup.levels().contains(l)));
        built.filter(col(SET).eq(lit(set)))?
    } else {
        built
    };
    Ok(built.select(columns)?)
}

/// The aggregates over the facts that a rollup stores for an aggregate measure (none for other measures): its
/// [`aggregates::parts`] computed from the facts, with the record-key sums of the cell key method where
/// `record_keys` are given, each with the measure's filter applied.
fn stored_aggregates(model: &Model, cube: &Cube, name: &str, record_keys: Option<&Expr>) -> Result<Vec<Expr>> {
    let m = cube.measure(name)?;
    let MeasureKind::Aggregate { aggregate, column, filter, .. } = m.kind() else { return Ok(Vec::new()) };
    let condition = filter
        .iter()
        .map(|c| resolve_cut(model, cube, c).map(|r| cut_expr(&r, 0)))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .reduce(Expr::and);
    let column = || column.as_deref().expect("validated: non-count measures have a column");
    let (value, ids) = (|| col(column()), || col(id_column(column())));
    let mut stored = Vec::new();
    for part in aggregates::parts(*aggregate, record_keys.is_some()) {
        let Some((e, counted)) = part.over_facts(*aggregate, value, ids, record_keys) else { continue };
        let e = match (condition.clone(), counted) {
            (Some(c), Some(n)) => e.filter(c.and(n)).build()?,
            (Some(c), None) | (None, Some(c)) => e.filter(c).build()?,
            (None, None) => e,
        };
        stored.push(e.alias(part.column(*aggregate, name)));
    }
    Ok(stored)
}

/// A rollup's rows once facts were added to those it was built from: its `stored` rows and the rows of the added
/// facts alone ([`rollup_rows`] over them), each cell aggregated again — counts, sums, averages' sums, counts of
/// values and record-key sums added, minima, maxima and largest values kept, bitmaps unioned (with the union's
/// own distinct count and key). The added facts' bitmaps must use ids of the same dictionary, extended
/// ([`extend_dictionary`]). The same cells, with the same numbers, as a build over all the facts.
pub fn merge_rows(cube: &Cube, rollup: &Rollup, stored: DataFrame, added: DataFrame) -> Result<DataFrame> {
    // The stored rows come back from Parquet (strings as views): the added ones take their types.
    let fields = stored.schema().fields().clone();
    let typed =
        |df: DataFrame| df.select(fields.iter().map(|f| cast(ident(f.name()), f.data_type().clone()).alias(f.name())));
    let added = typed(added)?;
    let keys = cube.unit_column().is_some();
    let mut again = Vec::new();
    let mut columns: Vec<Expr> = rollup.levels().iter().map(|(role, _)| ident(role)).collect();
    for name in rollup.measures() {
        let MeasureKind::Aggregate { aggregate, .. } = cube.measure(name)?.kind() else { continue };
        let bitmap = ident(Part::Bitmap.column(*aggregate, name));
        for part in aggregates::parts(*aggregate, keys) {
            let column = part.column(*aggregate, name);
            match part.again(*aggregate, bitmap.clone()) {
                Again::Aggregated(merge) => {
                    again.push(merge(ident(&column)).alias(&column));
                    columns.push(ident(&column));
                }
                Again::FromBitmap(count_or_key) => columns.push(count_or_key.alias(column)),
            }
        }
    }
    let group = rollup.levels().iter().map(|(role, _)| ident(role)).collect();
    // In the stored types again (a sum of decimals widens them), so that every merge stores the same layout.
    Ok(typed(stored.union(added)?.aggregate(group, again)?.select(columns)?)?)
}

/// The time role's members (keys at its recorded level) of some facts: those of the periods that changed when the
/// facts were added or removed. `None` where the cube has no time role or a fact has no period.
pub async fn periods_of(
    ctx: &SessionContext,
    cube: &Cube,
    facts: &[Arc<dyn TableProvider>],
) -> Result<Option<Vec<String>>> {
    let Some(time) = cube.time_role() else { return Ok(None) };
    let mut keys = std::collections::BTreeSet::new();
    for table in facts {
        let key = cast(ident(time.name()), DataType::Utf8).alias("key");
        for batch in ctx.read_table(table.clone())?.select(vec![key])?.distinct()?.collect().await? {
            for key in batch.column(0).as_string::<i32>() {
                let Some(key) = key else { return Ok(None) };
                keys.insert(key.to_owned());
            }
        }
    }
    Ok(Some(keys.into_iter().collect()))
}

/// For a rollup that holds the time role, the periods at its level that `periods` (keys at the recorded level)
/// fall in, and the cut of the facts to them; `None` for a rollup without the time role.
pub fn period_cut(
    model: &Model,
    cube: &Cube,
    rollup: &Rollup,
    periods: &[String],
) -> Result<Option<(Vec<String>, Expr)>> {
    let Some(time) = cube.time_role() else { return Ok(None) };
    let Some(&(_, level)) = rollup.levels().iter().find(|(role, _)| role == time.name()) else { return Ok(None) };
    let dim = model.dimension(time.dimension())?;
    let mut at_level = std::collections::BTreeSet::new();
    for key in periods {
        let member = dim.resolve(Some(time.fact_level()), key)?;
        at_level.insert(dim.members(level)[dim.ancestor(member, level)].key().to_owned());
    }
    let at_level: Vec<String> = at_level.into_iter().collect();
    let cut = kubus_model::Cut {
        target: format!("{}.{}", time.name(), dim.levels()[level].name()),
        op: kubus_model::CutOp::In(at_level.clone()),
    };
    let facts = cut_expr(&resolve_cut(model, cube, &cut)?, 0);
    Ok(Some((at_level, facts)))
}

/// A rollup's rows once the facts of some periods changed (added, replaced): its `stored` rows of the other
/// periods, and `rebuilt`, the rows of `periods` (keys at the rollup's time level) built again from all their facts
/// ([`rollup_rows`] over the facts cut by [`period_cut`]). The same cells, with the same numbers, as a build over
/// all the facts.
pub fn replace_periods(cube: &Cube, stored: DataFrame, rebuilt: DataFrame, periods: &[String]) -> Result<DataFrame> {
    let time = cube.time_role().expect("checked by period_cut: the cube has a time role").name();
    let fields = stored.schema().fields().clone();
    let typed =
        |df: DataFrame| df.select(fields.iter().map(|f| cast(ident(f.name()), f.data_type().clone()).alias(f.name())));
    let others = datafusion::logical_expr::in_list(ident(time), periods.iter().map(lit).collect(), true);
    let kept = stored.filter(ident(time).is_null().or(others))?;
    Ok(kept.union(typed(rebuilt)?)?)
}

/// The dictionary `earlier` (see [`dictionary`]) with the values of `added` facts' column it lacks: every value it
/// holds keeps its id, a new one gets the next id of its record key's bucket. Bitmaps built with the earlier ids
/// stay valid, so a rollup's rows can be merged with those of the added facts ([`merge_rows`]).
pub async fn extend_dictionary(
    ctx: &SessionContext,
    earlier: &RecordBatch,
    added: Arc<dyn TableProvider>,
    column: &str,
) -> Result<RecordBatch> {
    // The earlier values in the type the facts have now (the dictionary came back from Parquet): it is joined to them.
    let value_type = added.schema().field_with_name(column)?.data_type().clone();
    let values = datafusion::arrow::compute::cast(earlier.column(0), &value_type)?;
    let new = ctx.read_table(added)?.select(vec![col(column).alias("value")])?.distinct()?.collect().await?;
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![datafusion::arrow::datatypes::Field::new(
        "value",
        value_type.clone(),
        true,
    )]));
    let new = datafusion::arrow::compute::concat_batches(&schema, &new)?;
    let as_text = |array: &ArrayRef| datafusion::arrow::compute::cast(array, &DataType::Utf8View);
    let (held, new_text) = (as_text(earlier.column(0))?, as_text(new.column(0))?);
    let new_text = new_text.as_string_view();
    // Which added values the dictionary holds: the few added ones in a set, each held one looked up in it (with a
    // set of the millions held instead, extending the dictionary at 50M facts took 335 ms instead of 156 ms).
    let mut known: datafusion::common::HashMap<Option<&str>, bool> = new_text.iter().map(|v| (v, false)).collect();
    for value in held.as_string_view().iter() {
        if let Some(found) = known.get_mut(&value) {
            *found = true;
        }
    }
    let ids = earlier.column(1).as_any().downcast_ref::<UInt32Array>().ok_or_else(|| {
        datafusion::error::DataFusionError::Plan(format!("the dictionary of {column} holds no UInt32 ids"))
    })?;
    let mut next = vec![0u32; 1 << 16];
    for id in ids.iter().flatten() {
        let bucket = &mut next[(id & 0xFFFF) as usize];
        *bucket = (*bucket).max((id >> 16) + 1);
    }
    let mut rows = Vec::new();
    let mut new_ids = Vec::new();
    for (row, value) in new_text.iter().enumerate() {
        if known[&value] {
            continue;
        }
        new_ids.push(next_id(&mut next, value, column)?);
        rows.push(row as u32);
    }
    let taken = datafusion::arrow::compute::take(new.column(0), &UInt32Array::from(rows), None)?;
    let values = datafusion::arrow::compute::concat(&[values.as_ref(), taken.as_ref()])?;
    let ids: ArrayRef = Arc::new(UInt32Array::from_iter_values(ids.iter().flatten().chain(new_ids)));
    Ok(RecordBatch::try_from_iter([("value", values), ("id", ids)])?)
}

/// The next id of a value's bucket (the low 16 bits of its record key) in `next`, counted up.
fn next_id(next: &mut [u32], value: Option<&str>, column: &str) -> Result<u32> {
    let bucket = value.map_or(0, |v| crate::cellkey::record_key(v) as u64 & 0xFFFF) as usize;
    if next[bucket] > 0xFFFF {
        return Err(datafusion::error::DataFusionError::Plan(format!(
            "{column} has more than 65,536 values whose record keys share their low 16 bits; a bitmap cannot hold them"
        ))
        .into());
    }
    next[bucket] += 1;
    Ok(((next[bucket] - 1) << 16) | bucket as u32)
}

/// What the rollup's stored rows depend on besides the facts: its levels and how their members roll up, and each
/// stored measure's definition with its filter's members. Equal fingerprints mean a stored rollup still fits.
pub fn fingerprint(model: &Model, cube: &Cube, rollup: &Rollup) -> Result<String> {
    let mut text = format!("{FORMAT}\n{}\n", rollup.name());
    for (role_name, level) in rollup.levels() {
        let role = cube.dimension(role_name)?;
        let dim = model.dimension(role.dimension())?;
        text += &format!("level {role_name} {} {}\n", dim.name(), dim.levels()[*level].name());
        if *level != role.fact_level() {
            for (index, m) in dim.members(role.fact_level()).iter().enumerate() {
                let up = dim.ancestor(MemberRef { level: role.fact_level(), index }, *level);
                text += &format!("  {} {}\n", m.key(), dim.members(*level)[up].key());
            }
        }
    }
    for name in rollup.measures() {
        let m = cube.measure(name)?;
        text += &format!("measure {name} {}\n", m.describe());
        if let MeasureKind::Aggregate { filter, .. } = m.kind() {
            for c in filter {
                text += &format!("  {}\n", resolve_cut(model, cube, c)?.keys().join(","));
            }
        }
    }
    let digest = Sha256::digest(text.as_bytes());
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// For a query read from its facts that aggregates them more than once — totals (one aggregation per grain) or a
/// share over a drilled role (the total it is a share of): a rollup of the roles it drills and cuts (and those its
/// stocks and dominance rules need), each at its recorded level, storing its aggregate measures. Built from the
/// facts once ([`build_finest_grain`]), held in memory while the query runs, it answers every grain instead of
/// each reading every fact again: its cells are the facts added up exactly (with their record-key sums), so every
/// number is the one the facts give. `None` where one aggregation is all the query needs, where it compares
/// periods (an earlier period lies outside the cuts the build applies) or counts distinct values (a rollup holds
/// them as bitmaps of ids from a dictionary of every value).
pub fn finest_grain(plan: &CubePlan<'_>) -> Option<Rollup> {
    let drilled = |role: &str| plan.drilldowns.iter().any(|(l, _)| l.role == role);
    let shares =
        plan.computed.iter().any(|pm| matches!(pm.measure.kind(), MeasureKind::Share { over, .. } if drilled(over)));
    if plan.rollup.is_some() || !plan.sides.is_empty() || (plan.grains().len() < 2 && !shares) {
        return None;
    }
    let mut roles: Vec<&str> =
        plan.drilldowns.iter().map(|(l, _)| l.role).chain(plan.cuts.iter().map(|c| c.role)).collect();
    for pm in &plan.computed {
        match pm.measure.kind() {
            MeasureKind::TimeComparison { .. } => return None,
            MeasureKind::Aggregate { aggregate, .. } if !aggregates::regroups(*aggregate) => return None,
            MeasureKind::Aggregate { last_snapshot, dominance, .. } => {
                roles.extend(plan.time.as_ref().filter(|_| *last_snapshot).map(|t| t.role));
                roles.extend(dominance.as_deref());
            }
            _ => {}
        }
    }
    let levels = plan
        .cube
        .dimensions()
        .iter()
        .filter(|d| roles.contains(&d.name()))
        .map(|d| (d.name().to_owned(), d.fact_level()))
        .collect();
    let measures = plan
        .cube
        .measures()
        .iter()
        .filter(|m| matches!(m.kind(), MeasureKind::Aggregate { .. }))
        .filter(|m| plan.computed.iter().any(|pm| pm.measure.name() == m.name()))
        .map(|m| m.name().to_owned())
        .collect();
    let rollup = Rollup::unlisted(FINEST_GRAIN, levels, measures);
    check(plan, &rollup).ok().map(|()| rollup)
}

/// The rows of the [`finest_grain`] rollup of `plan`, aggregated from `facts` with the plan's cuts applied first
/// (the query applies them again to the rollup), not yet run; with record-key sums where the plan adds noise.
pub fn build_finest_grain(
    ctx: &SessionContext,
    model: &Model,
    plan: &CubePlan<'_>,
    rollup: &Rollup,
    facts: Arc<dyn TableProvider>,
) -> Result<DataFrame> {
    let mut df = ctx.read_table(facts)?;
    for cut in &plan.cuts {
        df = df.filter(cut_expr(cut, 0))?;
    }
    let keys = plan.noise.is_some();
    let built = aggregate_rollups(ctx, model, plan.cube, &[rollup], df, &HashMap::new(), keys)?;
    rows_of(model, plan.cube, &[rollup], 0, built, keys)
}

/// Whether a rollup answers a plan exactly; the first rule it fails otherwise.
pub fn check(plan: &CubePlan<'_>, rollup: &Rollup) -> std::result::Result<(), String> {
    let level_name = |dim: &kubus_model::Dimension, level: usize| dim.levels()[level].name().to_owned();
    for pm in &plan.computed {
        let MeasureKind::Aggregate { aggregate, .. } = pm.measure.kind() else { continue };
        if !rollup.measures().iter().any(|m| m == pm.measure.name()) {
            let why =
                if aggregate.is_stored_in_rollups() { "" } else { " (no rollup can: a median needs every value)" };
            return Err(format!("stores no {}{why}", pm.measure.name()));
        }
    }
    for (l, _) in &plan.drilldowns {
        match rollup.level(l.role) {
            None => return Err(format!("rolls up {}, which the query drills", l.role)),
            Some(level) if !l.dimension.rolls_up(level, l.level) => {
                return Err(format!(
                    "holds {} by {}, which does not roll up into {}",
                    l.role,
                    level_name(l.dimension, level),
                    l.level_name()
                ));
            }
            Some(_) => {}
        }
    }
    for c in &plan.cuts {
        let Some(level) = rollup.level(c.role) else {
            return Err(format!("rolls up {}, which the query cuts", c.role));
        };
        if let Some(&given) = c.given_levels.iter().find(|&&g| !c.dimension.rolls_up(level, g)) {
            return Err(format!(
                "holds {} by {}, but the cut names members of level {}",
                c.role,
                level_name(c.dimension, level),
                level_name(c.dimension, given)
            ));
        }
    }
    for pm in &plan.computed {
        let MeasureKind::Aggregate { last_snapshot, dominance, .. } = pm.measure.kind() else { continue };
        if *last_snapshot {
            let time = plan.time.as_ref().expect("planned: stocks have a time role");
            if rollup.level(time.role) != Some(time.fact_level) {
                let recorded = level_name(time.dimension, time.fact_level);
                return Err(format!(
                    "{} is a stock and needs {} by {recorded}, the level its snapshots are taken at",
                    pm.measure.name(),
                    time.role
                ));
            }
        }
        if let Some(role) = dominance {
            let recorded = plan.cube.dimension(role).map(|r| r.fact_level()).ok();
            if rollup.level(role) != recorded {
                return Err(format!("{}'s dominance rule needs each {role} at its recorded level", pm.measure.name()));
            }
        }
    }
    Ok(())
}

/// The plan moved onto a rollup that [`check`] accepted: levels are the rollup's, cuts name its members, and
/// measure filters are gone (the rollup applied them when it was built).
pub fn at_rollup<'m>(plan: &CubePlan<'m>, rollup: &Rollup) -> CubePlan<'m> {
    let mut moved = plan.clone();
    let level_of = |role: &str| rollup.level(role).expect("checked: the rollup holds every drilled and cut role");
    for (l, _) in &mut moved.drilldowns {
        l.fact_level = level_of(l.role);
    }
    for c in &mut moved.cuts {
        let level = level_of(c.role);
        let mut members: Vec<usize> = c
            .members
            .iter()
            .map(|&index| c.dimension.ancestor(MemberRef { level: c.fact_level, index }, level))
            .collect();
        members.sort_unstable();
        members.dedup();
        c.members = members;
        c.fact_level = level;
    }
    if let Some(time) = &mut moved.time {
        time.fact_level = level_of(time.role);
    }
    for pm in &mut moved.computed {
        pm.filter.clear();
    }
    moved.rollup = Some(rollup.name().to_owned());
    moved
}

/// Per rollup of the plan's cube that is available (built for the facts' version; with its row count), in
/// schema order: whether it answers, and why not. The smallest that answers is chosen.
pub fn route<'m>(plan: &CubePlan<'m>, available: &[(&'m Rollup, u64)]) -> Routing<'m> {
    let mut verdicts = Vec::new();
    let mut chosen: Option<(&Rollup, u64)> = None;
    for &(rollup, rows) in available {
        let verdict = check(plan, rollup);
        if verdict.is_ok() && chosen.is_none_or(|(_, r)| rows < r) {
            chosen = Some((rollup, rows));
        }
        verdicts.push((rollup.name().to_owned(), rows, verdict));
    }
    Routing { chosen: chosen.map(|(r, _)| r), verdicts }
}

/// A routing decision.
#[derive(Debug, Clone)]
pub struct Routing<'m> {
    /// The smallest rollup that answers, if any.
    pub chosen: Option<&'m Rollup>,
    /// Every available rollup with its rows and whether it answers (else the first rule it fails).
    pub verdicts: Vec<(String, u64, std::result::Result<(), String>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, StringArray};
    use std::collections::HashSet;

    fn units(values: &[String]) -> Arc<dyn TableProvider> {
        let column: ArrayRef = Arc::new(StringArray::from_iter_values(values));
        let batch = RecordBatch::try_from_iter([("unit", column)]).unwrap();
        Arc::new(datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap())
    }

    fn ids_of(dictionary: &RecordBatch) -> HashMap<String, u32> {
        let values = datafusion::arrow::compute::cast(dictionary.column(0), &DataType::Utf8).unwrap();
        let ids = dictionary.column(1).as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
        let pairs = values.as_string::<i32>().iter().zip(ids.iter());
        pairs.map(|(v, id)| (v.unwrap().to_owned(), id.unwrap())).collect()
    }

    /// 200,000 values in 65,536 buckets share buckets: extended by the values of added facts (new ones, known ones
    /// and repeats), a dictionary keeps every id it had and gives each new value an id of its record key's bucket
    /// that no other value has.
    #[tokio::test]
    async fn an_extended_dictionary_keeps_its_ids_and_gives_new_values_unused_ones() {
        let ctx = SessionContext::new();
        let values: Vec<String> = (0..200_000).map(|i| format!("p{i}")).collect();
        let earlier = dictionary(&ctx, units(&values[..150_000]), "unit").await.unwrap();
        let added: Vec<String> = values[140_000..].iter().chain(&values[190_000..]).cloned().collect();
        let extended = extend_dictionary(&ctx, &earlier, units(&added), "unit").await.unwrap();
        let (before, after) = (ids_of(&earlier), ids_of(&extended));
        assert_eq!((before.len(), after.len(), extended.num_rows()), (150_000, 200_000, 200_000));
        assert!(before.iter().all(|(value, id)| after[value] == *id), "an earlier value keeps its id");
        assert_eq!(after.values().collect::<HashSet<_>>().len(), after.len(), "no two values share an id");
        for (value, id) in &after {
            assert_eq!(u64::from(id & 0xFFFF), crate::cellkey::record_key(value) as u64 & 0xFFFF, "{value}");
        }
    }

    /// A cell's persons are a few of all: their ids share the few containers of 2¹⁶ ids that the dictionary's
    /// values fill, about two bytes an id serialized (numbered with the record key in the upper bits instead, each
    /// id had a container of its own: ten bytes).
    #[tokio::test]
    async fn a_cells_ids_lie_in_few_containers() {
        let ctx = SessionContext::new();
        let values: Vec<String> = (0..200_000).map(|i| format!("p{i}")).collect();
        let ids = ids_of(&dictionary(&ctx, units(&values), "unit").await.unwrap());
        let cell: roaring::RoaringBitmap = values.iter().step_by(100).map(|v| ids[v]).collect();
        assert_eq!(cell.len(), 2_000);
        let bytes = cell.serialized_size();
        assert!(bytes < 3 * 2_000, "{bytes} bytes for 2,000 ids");
    }
}
