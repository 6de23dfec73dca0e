//! A dimension's members as DataFusion sees them: the member table of a role (keys, labels and order of its
//! coarser levels, joined to facts or rollup cells) and the filter of a cut on the fact-level keys.

use crate::Result;
use crate::plan::ResolvedCut;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::{Expr, lit};
use datafusion::prelude::{col, in_list};
use kubus_model::Dimension;
use std::sync::Arc;

/// Builds the member table of a role: one row per fact-level member, with key, label and order of each of
/// `levels` (all at or above the fact level). Column names: `{prefix}{level}_key|_label|_ord`, join key
/// `{prefix}join`. With a `shift`, each member carries the levels of the member `shift` places later, so that
/// facts of an earlier period group under the period they are compared with; members without one are left out.
pub fn member_batch(
    dim: &Dimension,
    fact_level: usize,
    levels: &[usize],
    prefix: &str,
    shift: usize,
) -> Result<RecordBatch> {
    let members = dim.members(fact_level);
    let rows = members.len().saturating_sub(shift);
    let mut fields = vec![Field::new(format!("{prefix}join"), DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(StringArray::from_iter_values(members[..rows].iter().map(|m| m.key())))];
    for &level in levels {
        let ancestors: Vec<usize> = (0..rows)
            .map(|index| dim.ancestor(kubus_model::MemberRef { level: fact_level, index: index + shift }, level))
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

/// The filter of a cut, with the time role moved `shift` members back.
pub fn cut_expr(cut: &ResolvedCut<'_>, shift: usize) -> Expr {
    let level = cut.dimension.members(cut.fact_level);
    let keys = cut.members.iter().filter(|&&i| i >= shift).map(|&i| lit(level[i - shift].key())).collect::<Vec<_>>();
    if keys.is_empty() {
        return lit(cut.negated);
    }
    in_list(col(cut.role), keys, cut.negated)
}
