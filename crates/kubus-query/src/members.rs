//! A dimension's members as DataFusion sees them: the member table of a role (keys, labels and order of its
//! coarser levels, joined to facts or rollup cells) and the filter of a cut on the fact-level keys.

use crate::Result;
use crate::plan::ResolvedCut;
use datafusion::arrow::array::builder::make_view;
use datafusion::arrow::array::{
    Array as _, ArrayRef, AsArray as _, BooleanArray, Int32Array, RecordBatch, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};
use datafusion::prelude::{col, in_list};
use kubus_model::{Dimension, DimensionKind};
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

/// The filter of a cut, with the time role moved `shift` members back. A time role's cut is an `IN` list, which
/// the Parquet scan prunes files and row groups by (their statistics hold the period); any other role's is
/// [`is_member`], as fact files hold no statistics for it.
pub fn cut_expr(cut: &ResolvedCut<'_>, shift: usize) -> Expr {
    let level = cut.dimension.members(cut.fact_level);
    let keys = cut.members.iter().filter(|&&i| i >= shift).map(|&i| lit(level[i - shift].key())).collect::<Vec<_>>();
    if keys.is_empty() {
        return lit(cut.negated);
    }
    if cut.dimension.kind() == DimensionKind::Time {
        return in_list(col(cut.role), keys, cut.negated);
    }
    let kept = is_member(col(cut.role), keys);
    if cut.negated { !kept } else { kept }
}

/// `kubus_is_member(column, key, …)`: whether each row's member key is one of the keys (null where the column
/// is). DataFusion compares text views through a general comparison per row and per key; member keys are
/// short, so most fit into the view itself (12 bytes or less), and a row is then one of the keys when its view,
/// compared as one 128-bit number, is one of theirs (a share of a cut's facts by district, q05 of
/// `benches/queries` at 10M facts: the comparisons of `IN` were 54 % of it in perf; 138.6 → 65.9 ms with this).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IsMemberUdf {
    signature: Signature,
}

impl ScalarUDFImpl for IsMemberUdf {
    fn name(&self) -> &str {
        "kubus_is_member"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let mut keys = Vec::with_capacity(args.args.len() - 1);
        for key in &args.args[1..] {
            match key {
                ColumnarValue::Scalar(ScalarValue::Utf8(k) | ScalarValue::Utf8View(k) | ScalarValue::LargeUtf8(k)) => {
                    keys.extend(k.as_deref().map(str::as_bytes))
                }
                other => return exec_err!("kubus_is_member takes member keys as text, not {other:?}"),
            }
        }
        let column = text_views(&args.args[0], args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(KeySet::new(&keys).contains(column.as_string_view()))))
    }
}

/// A column of member keys as text views (as the Parquet scan reads them; other text, from member tables or
/// rollups, converted).
fn text_views(column: &ColumnarValue, rows: usize) -> datafusion::common::Result<ArrayRef> {
    let column = column.to_array(rows)?;
    Ok(match column.data_type() {
        DataType::Utf8View => column,
        _ => cast(&column, &DataType::Utf8View)?,
    })
}

/// `column`'s rows whose member is one of `keys` (see [`IsMemberUdf`]).
pub fn is_member(column: Expr, keys: Vec<Expr>) -> Expr {
    is_member_udf().call([vec![column], keys].concat())
}

pub(crate) fn is_member_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(IsMemberUdf { signature: Signature::variadic_any(Volatility::Immutable) })
}

/// Member keys as text views: those of 12 bytes or less as their whole view (length and bytes), longer ones as
/// their length and first four bytes, with the bytes to compare where those match. Both sorted.
struct KeySet<'k> {
    short: Vec<u128>,
    long: Vec<(u64, &'k [u8])>,
}

impl<'k> KeySet<'k> {
    fn new(keys: &[&'k [u8]]) -> KeySet<'k> {
        let (mut short, mut long) = (Vec::new(), Vec::new());
        for &key in keys {
            match key.len() <= 12 {
                true => short.push(make_view(key, 0, 0)),
                false => long.push((make_view(key, 0, 0) as u64, key)),
            }
        }
        short.sort_unstable();
        long.sort_unstable();
        KeySet { short, long }
    }

    fn contains(&self, array: &StringViewArray) -> BooleanArray {
        let views = array.views();
        // A valid view of a short value is zero after its bytes, so it equals a short key's view exactly when
        // the texts are equal, and never a longer value's (whose length differs). Compared with every short key
        // without a branch on each: a cut keeps rows at random, and a search's mispredicted branches cost more
        // than the comparisons (perf).
        let short = |view: u128| match self.short.len() <= 16 {
            true => self.short.iter().fold(false, |found, &key| found | (key == view)),
            false => self.short.binary_search(&view).is_ok(),
        };
        let found = match self.long.is_empty() {
            true => bits(views, short),
            false => BooleanBuffer::collect_bool(array.len(), |row| {
                let view = views[row];
                if view as u32 <= 12 {
                    return short(view);
                }
                let head = view as u64;
                let from = self.long.partition_point(|&(h, _)| h < head);
                let mut candidates = self.long[from..].iter().take_while(|&&(h, _)| h == head);
                candidates.any(|&(_, key)| array.value(row).as_bytes() == key)
            }),
        };
        BooleanArray::new(found, array.nulls().cloned())
    }
}

/// `test` of each view as bits, 64 views at a time (without the bounds check and the index of a row at a time).
fn bits(views: &[u128], test: impl Fn(u128) -> bool) -> BooleanBuffer {
    let word = |views: &[u128]| views.iter().rev().fold(0u64, |word, &view| (word << 1) | u64::from(test(view)));
    let chunks = views.chunks_exact(64);
    let last = chunks.remainder();
    let mut words: Vec<u64> = chunks.map(word).collect();
    if !last.is_empty() {
        words.push(word(last));
    }
    BooleanBuffer::new(words.into(), 0, views.len())
}

/// `kubus_member_ord(column)`: the position, at a coarser level, of the ancestor of each row's fact-level member
/// (of the member `shift` places later, for facts of an earlier period compared with a later one); null for a
/// key that is not a member, or that has no member `shift` places later. What a join of the facts to the member
/// table gave, without the join: a member's key is found by its text view (see [`IsMemberUdf`]) in a hash map,
/// the row before's answer reused while the key repeats (facts lie in period order).
#[derive(Debug)]
pub(crate) struct MemberOrdUdf {
    /// (fact-level key, position of its ancestor): what the function computes, its identity.
    entries: Vec<(String, i32)>,
    table: ViewTable,
    signature: Signature,
}

impl MemberOrdUdf {
    pub(crate) fn entries(&self) -> &[(String, i32)] {
        &self.entries
    }
}

impl PartialEq for MemberOrdUdf {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for MemberOrdUdf {}

impl std::hash::Hash for MemberOrdUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.entries.hash(state)
    }
}

impl ScalarUDFImpl for MemberOrdUdf {
    fn name(&self) -> &str {
        "kubus_member_ord"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        let column = text_views(&args.args[0], args.number_rows)?;
        let array = column.as_string_view();
        let mut last: (u128, Option<i32>) = (u128::MAX, None); // the length of no short value
        let ords: Int32Array = array
            .views()
            .iter()
            .enumerate()
            .map(|(row, &view)| {
                if array.is_null(row) {
                    return None;
                }
                if view as u32 > 12 {
                    return self.table.long.get(array.value(row).as_bytes()).copied();
                }
                if view != last.0 {
                    last = (view, self.table.short.get(&view).copied());
                }
                last.1
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(ords)))
    }
}

/// Text keys with a number each, found by their views: short keys (12 bytes or less) by their whole view, longer
/// ones by their bytes.
#[derive(Debug, Default)]
struct ViewTable {
    short: datafusion::common::HashMap<u128, i32>,
    long: datafusion::common::HashMap<Vec<u8>, i32>,
}

impl ViewTable {
    fn new(entries: &[(String, i32)]) -> ViewTable {
        let mut table = ViewTable::default();
        for (key, number) in entries {
            match key.len() <= 12 {
                true => table.short.insert(make_view(key.as_bytes(), 0, 0), *number),
                false => table.long.insert(key.as_bytes().to_vec(), *number),
            };
        }
        table
    }
}

/// The position at `level` of the ancestor of each fact-level member in `column`, moved `shift` members on (see
/// [`MemberOrdUdf`]): the `_ord` of [`member_batch`] without joining it.
pub fn member_ord(dim: &Dimension, fact_level: usize, level: usize, shift: usize, column: Expr) -> Expr {
    let members = dim.members(fact_level);
    let entries: Vec<(String, i32)> = (0..members.len().saturating_sub(shift))
        .map(|index| {
            let ancestor = dim.ancestor(kubus_model::MemberRef { level: fact_level, index: index + shift }, level);
            (members[index].key().to_owned(), ancestor as i32)
        })
        .collect();
    member_ord_udf(entries).call(vec![column])
}

/// `kubus_member_ord` of (fact-level key, position of its ancestor) pairs.
pub(crate) fn member_ord_udf(entries: Vec<(String, i32)>) -> ScalarUDF {
    let table = ViewTable::new(&entries);
    ScalarUDF::new_from_impl(MemberOrdUdf { entries, table, signature: Signature::any(1, Volatility::Immutable) })
}

/// `kubus_member_key(position)`: the key of the member at that position of its level (`_ord` of a member table;
/// null for none). Facts grouped by a coarser level are grouped by the members' positions ([`member_ord`]),
/// numbers that hash and compare faster than their keys; the few groups then get their keys.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MemberKeyUdf {
    keys: Vec<String>,
    signature: Signature,
}

impl MemberKeyUdf {
    pub(crate) fn keys(&self) -> &[String] {
        &self.keys
    }
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
    member_key_udf(dim.members(level).iter().map(|m| m.key().to_owned()).collect()).call(vec![positions])
}

/// `kubus_member_key` of a level's keys in order.
pub(crate) fn member_key_udf(keys: Vec<String>) -> ScalarUDF {
    ScalarUDF::new_from_impl(MemberKeyUdf {
        keys,
        signature: Signature::exact(vec![DataType::Int32], Volatility::Immutable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values of every length around the 12 bytes a view holds, sharing prefixes and lengths.
    fn texts() -> Vec<String> {
        let mut texts = vec![String::new()];
        for len in 1..=18 {
            for first in ['a', 'b', 'ä'] {
                let text: String =
                    std::iter::once(first).chain((1..len).map(|i| (b'a' + (i % 3) as u8) as char)).collect();
                texts.push(text.chars().take(len).collect());
            }
        }
        texts.push("Innenstadt-Ost".into());
        texts.push("Innenstadt-West".into());
        texts.push("Innenstadt-Nord".into());
        texts
    }

    #[test]
    fn a_row_is_a_member_exactly_when_its_text_is_one_of_the_keys() {
        let texts = texts();
        let column: Vec<Option<&str>> = texts
            .iter()
            .map(|t| Some(t.as_str()))
            .chain([None])
            .chain(texts.iter().rev().map(|t| Some(t.as_str())))
            .collect();
        let array = StringViewArray::from(column.clone());
        // Every third text as keys, every text, every other short one, none: each answer against the keys' own set.
        let short = texts.iter().filter(|t| t.len() <= 12);
        for keys in
            [texts.iter().step_by(3).collect::<Vec<_>>(), texts.iter().collect(), short.step_by(2).collect(), vec![]]
        {
            let bytes: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let found = KeySet::new(&bytes).contains(&array);
            let expected: BooleanArray =
                column.iter().map(|v| v.map(|v| keys.iter().any(|k| k.as_str() == v))).collect();
            assert_eq!(found, expected, "keys {keys:?}");
        }
    }

    /// The position `member_ord` gives each key is the `_ord` the member table joined on that key gave, for every
    /// member, unknown keys short and long, nulls, a coarser level and shifts; in a column of any text type.
    #[tokio::test]
    async fn a_members_position_is_the_member_tables() {
        use datafusion::prelude::SessionContext;
        use kubus_model::{SchemaFile, SchemaKind, load_model};
        let model = crate::plan::tests::model();
        // The districts of the Ortsbezirke with keys longer than a view holds.
        let text = include_str!("../../../cube-schemas/dimensions/district.toml");
        let text = text.replace("key = \"1", "key = \"Ortsbezirk Nummer 1");
        let long =
            load_model(&[SchemaFile { origin: "district.toml".into(), text, kind: SchemaKind::Dimension }]).unwrap();
        let ctx = SessionContext::new();
        let dims = [("time", "month", "year"), ("time", "quarter", "year"), ("district", "district", "area")];
        for (model, (name, fact_level, level)) in dims.into_iter().map(|d| (&model, d)).chain([(&long, dims[2])]) {
            let dim = model.dimension(name).unwrap();
            let (fact_level, level) = (dim.level_index(fact_level).unwrap(), dim.level_index(level).unwrap());
            let mut keys: Vec<Option<String>> =
                dim.members(fact_level).iter().map(|m| Some(m.key().to_owned())).collect();
            keys.extend([None, Some("9999-99".into()), Some("a key longer than twelve".into()), Some(String::new())]);
            keys.extend(keys.clone().into_iter().rev());
            for shift in [0, 1, 4] {
                let table = member_batch(dim, fact_level, &[level], "m_", shift).unwrap();
                let join = table.column(0).as_string::<i32>();
                let ords = table.column(3).as_primitive::<Int32Type>();
                let expected: Int32Array = keys
                    .iter()
                    .map(|k| {
                        (0..table.num_rows()).find(|&r| Some(join.value(r)) == k.as_deref()).map(|r| ords.value(r))
                    })
                    .collect();
                for text in [DataType::Utf8, DataType::Utf8View] {
                    let column = cast(&(Arc::new(StringArray::from(keys.clone())) as ArrayRef), &text).unwrap();
                    let batch = RecordBatch::try_from_iter([("k", column)]).unwrap();
                    let ord = member_ord(dim, fact_level, level, shift, col("k"));
                    let got = ctx.read_batch(batch).unwrap().select(vec![ord]).unwrap().collect().await.unwrap();
                    assert_eq!(got[0].column(0).as_primitive::<Int32Type>(), &expected, "{name} shifted {shift}");
                }
            }
        }
    }
}
