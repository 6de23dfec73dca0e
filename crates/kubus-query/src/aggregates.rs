//! Every aggregate kind in one table, as DataFusion's accumulators have state and merge: its aggregate over facts,
//! the columns a rollup stores of it per cell ([`Part`]) with how each is computed from the facts and aggregated
//! again (into a coarser query's cells, into a new version's cells), and the published number the cell key method
//! answers it with. A new aggregate is a variant of [`Aggregate`] (its name, what it may aggregate) and its rows
//! here; `published.rs` only if its noise is new.

use crate::published::Output;
use crate::{Result, bitmap};
use datafusion::arrow::datatypes::DataType;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, median, min, sum};
use datafusion::logical_expr::{Expr, cast, lit};
use datafusion::prelude::{abs, col};
use kubus_model::Aggregate;

/// The aggregate of a measure's `column` over facts, exact (`count` reads no column).
pub(crate) fn over_facts(aggregate: Aggregate, column: impl FnOnce() -> Expr) -> Expr {
    match aggregate {
        Aggregate::Count => count(lit(1)),
        Aggregate::Sum => sum(column()),
        Aggregate::Min => min(column()),
        Aggregate::Max => max(column()),
        Aggregate::Avg => avg(column()),
        // Of integers too the mean of the two middle values, not its integer part.
        Aggregate::Median => median(cast(column(), DataType::Float64)),
        Aggregate::CountDistinct => count_distinct(column()),
    }
}

/// The exact aggregate of measure `name` over a rollup's stored cells (its [`parts`]): an average's sum, to be
/// divided by its count of values. `single_cells`: every group is one stored cell, whose distinct count is stored
/// beside its bitmap.
pub(crate) fn over_cells(aggregate: Aggregate, name: &str, single_cells: bool) -> Result<Expr> {
    let stored = |part: Part| col(part.column(aggregate, name));
    Ok(match aggregate {
        Aggregate::Count | Aggregate::Sum | Aggregate::Avg => sum(stored(Part::Value)),
        Aggregate::Min => min(stored(Part::Value)),
        Aggregate::Max => max(stored(Part::Value)),
        Aggregate::CountDistinct if single_cells => sum(stored(Part::BitmapCount)),
        Aggregate::CountDistinct => bitmap::count(stored(Part::Bitmap)),
        Aggregate::Median => return Err(not_stored(name)),
    })
}

/// Whether it aggregates values of the facts rather than counting them: a magnitude, protected by the count of
/// its values.
pub(crate) fn is_magnitude(aggregate: Aggregate) -> bool {
    !matches!(aggregate, Aggregate::Count | Aggregate::CountDistinct)
}

/// Whether a fact counted twice changes it (a count, sum, average or median; not a minimum, maximum or distinct
/// count): over the overlapping members of a dimension that is not additive, it would be wrong.
pub(crate) fn weighs_each_fact(aggregate: Aggregate) -> bool {
    matches!(aggregate, Aggregate::Count | Aggregate::Sum | Aggregate::Avg | Aggregate::Median)
}

/// Whether the cells of a query's finest grain, aggregated again, give its coarser grains (see
/// `rollup::finest_grain`): not for a distinct count (a unit in two cells would count twice) nor a median.
pub(crate) fn regroups(aggregate: Aggregate) -> bool {
    !matches!(aggregate, Aggregate::CountDistinct | Aggregate::Median)
}

/// The number the cell key method publishes for it.
pub(crate) fn output(aggregate: Aggregate) -> Output {
    match aggregate {
        Aggregate::Count | Aggregate::CountDistinct => Output::Count,
        Aggregate::Sum => Output::Sum,
        Aggregate::Avg => Output::Avg,
        Aggregate::Min => Output::Min,
        Aggregate::Max => Output::Max,
        Aggregate::Median => Output::Median,
    }
}

/// A column a rollup stores of an aggregate measure, per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The count, sum, minimum or maximum, under the measure's name; an average's sum.
    Value,
    /// A magnitude's count of values.
    Values,
    /// The record-key sum of what is counted (for a magnitude: the facts with a value), for the cell key method.
    KeySum,
    /// A sum's or average's largest single value in absolute terms, which scales its noise.
    Largest,
    /// A distinct count's units, as a bitmap of their ids.
    Bitmap,
    /// The bitmap's distinct count, taken from it once aggregated.
    BitmapCount,
    /// The bitmap's cell key, taken from it once aggregated.
    BitmapKey,
}

/// What a rollup stores of an aggregate, column by column (none of a median: it needs every value); `keys`: the
/// cube has units, whose record keys the cell key method sums.
pub(crate) fn parts(aggregate: Aggregate, keys: bool) -> Vec<Part> {
    let (plain, with_keys): (&[Part], &[Part]) = match aggregate {
        Aggregate::Count => (&[Part::Value], &[Part::KeySum]),
        Aggregate::Sum | Aggregate::Avg => (&[Part::Value, Part::Values], &[Part::KeySum, Part::Largest]),
        Aggregate::Min | Aggregate::Max => (&[Part::Value, Part::Values], &[Part::KeySum]),
        Aggregate::CountDistinct => (&[Part::Bitmap, Part::BitmapCount], &[Part::BitmapKey]),
        Aggregate::Median => (&[], &[]),
    };
    plain.iter().chain(if keys { with_keys } else { &[] }).copied().collect()
}

impl Part {
    /// Its column in a rollup, for measure `name`.
    pub(crate) fn column(self, aggregate: Aggregate, name: &str) -> String {
        match self {
            Part::Value if aggregate == Aggregate::Avg => format!("{name}__sum"),
            Part::Value | Part::Bitmap => name.to_owned(),
            Part::Values | Part::BitmapCount => format!("{name}__n"),
            Part::KeySum | Part::BitmapKey => crate::cellkey::stored_key_column(name),
            Part::Largest => format!("{name}__max"),
        }
    }

    /// Its aggregate over the facts of a cell, and the condition a fact must meet besides the measure's filter:
    /// `value` is the measure's column, `ids` its units' ids (a distinct count), `record_keys` the facts' keys.
    /// `None` for the columns taken from a bitmap after aggregating (see [`Part::again`]).
    pub(crate) fn over_facts(
        self,
        aggregate: Aggregate,
        value: impl Fn() -> Expr,
        ids: impl FnOnce() -> Expr,
        record_keys: Option<&Expr>,
    ) -> Option<(Expr, Option<Expr>)> {
        let counted = (aggregate != Aggregate::Count).then(|| value().is_not_null());
        Some(match self {
            Part::Value => match aggregate {
                Aggregate::Avg => (sum(cast(value(), DataType::Float64)), None),
                _ => (over_facts(aggregate, value), None),
            },
            Part::Values => (count(value()), None),
            Part::KeySum => (sum(record_keys?.clone()), counted),
            Part::Largest => (max(abs(value())), None),
            Part::Bitmap => (bitmap::build(ids()), None),
            Part::BitmapCount | Part::BitmapKey => return None,
        })
    }

    /// How the column is had again once cells are aggregated (a new version's cells merged, a coarser query):
    /// aggregated itself, or taken from the cell's aggregated `bitmap` (its distinct count, its cell key).
    pub(crate) fn again(self, aggregate: Aggregate, bitmap: Expr) -> Again {
        let packed = || bitmap::cell_count_and_key(bitmap);
        match self {
            Part::Value if aggregate == Aggregate::Min => Again::Aggregated(min),
            Part::Value if aggregate == Aggregate::Max => Again::Aggregated(max),
            Part::Value | Part::Values | Part::KeySum => Again::Aggregated(sum),
            Part::Largest => Again::Aggregated(max),
            Part::Bitmap => Again::Aggregated(bitmap::union),
            Part::BitmapCount => Again::FromBitmap(packed() / lit(bitmap::COUNT_SHIFT)),
            Part::BitmapKey => Again::FromBitmap(packed() % lit(bitmap::COUNT_SHIFT)),
        }
    }
}

/// See [`Part::again`].
pub(crate) enum Again {
    /// Aggregated by this function.
    Aggregated(fn(Expr) -> Expr),
    /// Computed from the aggregated bitmap.
    FromBitmap(Expr),
}

/// A median asked of a rollup: none stores one.
pub(crate) fn not_stored(measure: &str) -> crate::Error {
    datafusion::common::DataFusionError::Internal(format!("median {measure} asked of a rollup, which cannot hold it"))
        .into()
}
