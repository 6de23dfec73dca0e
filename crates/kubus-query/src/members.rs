//! A dimension's members as DataFusion sees them: the member table of a role (keys, labels and order of its
//! coarser levels, joined to facts or rollup cells) and the filter of a cut on the fact-level keys.

use crate::Result;
use crate::plan::ResolvedCut;
use datafusion::arrow::array::{ArrayRef, AsArray as _, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};
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

/// `kubus_member_key(position)`: the key of the member at that position of its level (`_ord` of a member table;
/// null for none). Facts grouped by a coarser level are grouped by the members' positions, numbers that hash and
/// compare faster than their keys and that a join carries without copying text to every fact; the few groups then
/// get their keys.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MemberKeyUdf {
    keys: Vec<String>,
    signature: Signature,
}

impl ScalarUDFImpl for MemberKeyUdf {
    fn name(&self) -> &str {
        "kubus_member_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let positions = args.args[0].to_array(args.number_rows)?;
        let keys: StringArray = positions
            .as_primitive::<Int32Type>()
            .iter()
            .map(|p| p.and_then(|p| self.keys.get(usize::try_from(p).ok()?)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(keys)))
    }
}

/// The keys of `level`'s members at the positions `positions` (see [`MemberKeyUdf`]).
pub fn member_key(dim: &Dimension, level: usize, positions: Expr) -> Expr {
    let keys = dim.members(level).iter().map(|m| m.key().to_owned()).collect();
    let udf = MemberKeyUdf { keys, signature: Signature::exact(vec![DataType::Int32], Volatility::Immutable) };
    ScalarUDF::new_from_impl(udf).call(vec![positions])
}
