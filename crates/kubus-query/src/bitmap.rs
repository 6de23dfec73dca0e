//! Exact distinct counts that roll up: each rollup cell stores the set of its persons' dense integer ids as a
//! roaring bitmap (serialized, a binary column); a query merges the cells' bitmaps and counts. The aggregate
//! functions: `kubus_bitmap(id)` builds a cell's bitmap from ids, `kubus_bitmap_count(bitmap)` unions bitmaps and
//! returns the number of distinct ids, `kubus_bitmap_union(bitmap)` returns the union (a rollup's cell merged
//! with the same cell of facts added since). Both keep a serialized bitmap as partial state, so DataFusion can split
//! and merge them like any other aggregate.

use crate::cellkey::PTable;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef, UInt32Type};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::Expr;
use roaring::RoaringBitmap;
use std::sync::Arc;

type Result<T> = datafusion::common::Result<T>;

/// What the function does with its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    /// Ids (UInt32) in, a serialized bitmap out.
    Build,
    /// Serialized bitmaps in, the number of distinct ids out (Int64, like `count(DISTINCT …)`).
    Count,
    /// Serialized bitmaps in, their union serialized out.
    Union,
    /// Serialized bitmaps in, the number of distinct ids as the cell key method publishes it out: ids that carry a
    /// unit's record key in their lower 16 bits (see [`crate::rollup::dictionary`]) give the count's cell key from
    /// the same union of the bitmaps.
    Published(Arc<PTable>),
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct BitmapUdf {
    mode: Mode,
    signature: Signature,
}

impl BitmapUdf {
    pub(crate) fn mode(&self) -> &Mode {
        &self.mode
    }
}

/// The aggregate function of a mode.
pub(crate) fn bitmap_udaf(mode: Mode) -> AggregateUDF {
    AggregateUDF::from(BitmapUdf { mode, signature: Signature::any(1, Volatility::Immutable) })
}

impl AggregateUDFImpl for BitmapUdf {
    fn name(&self) -> &str {
        match &self.mode {
            Mode::Build => "kubus_bitmap",
            Mode::Count => "kubus_bitmap_count",
            Mode::Union => "kubus_bitmap_union",
            Mode::Published(_) => "kubus_bitmap_published_count",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &self.mode {
            Mode::Build | Mode::Union => DataType::Binary,
            Mode::Count | Mode::Published(_) => DataType::Int64,
        })
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(BitmapAccumulator { mode: self.mode.clone(), bitmap: RoaringBitmap::new() }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(match self.mode {
            Mode::Union => Box::new(UnionGroups { cells: Vec::new(), bytes: 0 }),
            _ => Box::new(BitmapGroups { mode: self.mode.clone(), bitmaps: Vec::new(), values: 0 }),
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = datafusion::logical_expr::utils::format_state_name(args.name, "bitmap");
        Ok(vec![Arc::new(datafusion::arrow::datatypes::Field::new(name, DataType::Binary, false))])
    }
}

#[derive(Debug)]
struct BitmapAccumulator {
    mode: Mode,
    bitmap: RoaringBitmap,
}

/// The serialized bitmaps of a Binary, BinaryView or LargeBinary column, row by row (`None` for a null: an empty set).
fn serialized_rows(array: &ArrayRef) -> Result<Box<dyn Iterator<Item = Option<&[u8]>> + '_>> {
    Ok(match array.data_type() {
        DataType::BinaryView => Box::new(array.as_binary_view().iter()),
        DataType::Binary => Box::new(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => Box::new(array.as_binary::<i64>().iter()),
        other => return Err(DataFusionError::Internal(format!("a bitmap column must be binary, not {other}"))),
    })
}

fn deserialize(bytes: &[u8]) -> Result<RoaringBitmap> {
    RoaringBitmap::deserialize_unchecked_from(bytes).map_err(|e| DataFusionError::External(Box::new(e)))
}

fn serialize(bitmap: &RoaringBitmap) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap.serialize_into(&mut bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(bytes)
}

/// A column of serialized bitmaps.
fn binary_column<'b>(bitmaps: impl IntoIterator<Item = &'b RoaringBitmap>) -> Result<ArrayRef> {
    let mut out = BinaryBuilder::new();
    for b in bitmaps {
        out.append_value(serialize(b)?);
    }
    Ok(Arc::new(out.finish()))
}

/// Whether row `row` passes an aggregate's filter (a null is false, as in SQL).
fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl BitmapAccumulator {
    /// Unions serialized bitmaps (Binary or BinaryView) into this one; nulls are empty sets.
    fn union(&mut self, array: &ArrayRef) -> Result<()> {
        for bytes in serialized_rows(array)?.flatten() {
            self.bitmap |= deserialize(bytes)?;
        }
        Ok(())
    }

    fn serialized(&self) -> Result<Vec<u8>> {
        serialize(&self.bitmap)
    }
}

/// The accumulator of many groups at once (what DataFusion's hash aggregation uses): one bitmap per group.
#[derive(Debug)]
struct BitmapGroups {
    mode: Mode,
    bitmaps: Vec<RoaringBitmap>,
    /// Ids and bitmaps added so far: a bound of the memory held (kept as a count, `size` must be cheap).
    values: usize,
}

impl BitmapGroups {
    /// Unions serialized bitmaps into the groups their rows belong to.
    fn union(&mut self, array: &ArrayRef, groups: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        for ((row, bytes), &g) in serialized_rows(array)?.enumerate().zip(groups) {
            if let Some(bytes) = bytes.filter(|_| passes(filter, row)) {
                self.values += bytes.len() / 2;
                self.bitmaps[g] |= deserialize(bytes)?;
            }
        }
        Ok(())
    }
}

impl GroupsAccumulator for BitmapGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.bitmaps.resize_with(total_num_groups, RoaringBitmap::new);
        match &self.mode {
            Mode::Build => {
                let ids = datafusion::arrow::compute::cast(&values[0], &DataType::UInt32)?;
                let ids = ids.as_primitive::<UInt32Type>();
                for (row, &g) in groups.iter().enumerate() {
                    if ids.is_valid(row) && passes(filter, row) {
                        self.bitmaps[g].insert(ids.value(row));
                        self.values += 1;
                    }
                }
                Ok(())
            }
            Mode::Count | Mode::Union | Mode::Published(_) => self.union(&values[0], groups, filter),
        }
    }

    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total_num_groups: usize) -> Result<()> {
        self.bitmaps.resize_with(total_num_groups, RoaringBitmap::new);
        self.union(&values[0], groups, None)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let bitmaps = emit_to.take_needed(&mut self.bitmaps);
        match &self.mode {
            Mode::Build | Mode::Union => binary_column(&bitmaps),
            Mode::Count => Ok(Arc::new(bitmaps.iter().map(|b| b.len() as i64).collect::<Int64Array>())),
            Mode::Published(ptable) => {
                Ok(Arc::new(bitmaps.iter().map(|b| published(ptable.as_ref(), b)).collect::<Int64Array>()))
            }
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![binary_column(&emit_to.take_needed(&mut self.bitmaps))?])
    }

    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut bitmaps = vec![RoaringBitmap::new(); values[0].len()];
        match &self.mode {
            Mode::Build => {
                let ids = datafusion::arrow::compute::cast(&values[0], &DataType::UInt32)?;
                let ids = ids.as_primitive::<UInt32Type>();
                for (row, b) in bitmaps.iter_mut().enumerate() {
                    if ids.is_valid(row) && passes(filter, row) {
                        b.insert(ids.value(row));
                    }
                }
            }
            Mode::Count | Mode::Union | Mode::Published(_) => {
                for ((row, bytes), b) in serialized_rows(&values[0])?.enumerate().zip(bitmaps.iter_mut()) {
                    if let Some(bytes) = bytes.filter(|_| passes(filter, row)) {
                        *b = deserialize(bytes)?;
                    }
                }
            }
        }
        Ok(vec![binary_column(&bitmaps)?])
    }

    fn size(&self) -> usize {
        self.bitmaps.capacity() * std::mem::size_of::<RoaringBitmap>() + self.values * 2
    }
}

/// The unions of many groups' bitmaps, each group's first bitmap kept as it came, serialized: a group that gets no
/// second one (a rollup's cell that the facts added since do not touch) passes through unchanged, never
/// deserialized and serialized again.
#[derive(Debug)]
struct UnionGroups {
    cells: Vec<Union>,
    /// Bytes of the serialized bitmaps taken in so far: a bound of the memory held.
    bytes: usize,
}

#[derive(Debug, Default)]
enum Union {
    #[default]
    Empty,
    Serialized(Vec<u8>),
    Bitmap(RoaringBitmap),
}

impl UnionGroups {
    fn union(&mut self, array: &ArrayRef, groups: &[usize], filter: Option<&BooleanArray>, total: usize) -> Result<()> {
        self.cells.resize_with(total, Union::default);
        for ((row, bytes), &g) in serialized_rows(array)?.enumerate().zip(groups) {
            let Some(bytes) = bytes.filter(|_| passes(filter, row)) else { continue };
            self.bytes += bytes.len();
            let cell = &mut self.cells[g];
            *cell = match std::mem::take(cell) {
                Union::Empty => Union::Serialized(bytes.to_vec()),
                Union::Serialized(first) => Union::Bitmap(deserialize(&first)? | deserialize(bytes)?),
                Union::Bitmap(bitmap) => Union::Bitmap(bitmap | deserialize(bytes)?),
            };
        }
        Ok(())
    }

    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut out = BinaryBuilder::new();
        for cell in emit_to.take_needed(&mut self.cells) {
            match cell {
                Union::Serialized(bytes) => out.append_value(bytes),
                Union::Bitmap(bitmap) => out.append_value(serialize(&bitmap)?),
                Union::Empty => out.append_value(serialize(&RoaringBitmap::new())?),
            }
        }
        Ok(Arc::new(out.finish()))
    }
}

impl GroupsAccumulator for UnionGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.union(&values[0], groups, filter, total_num_groups)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total_num_groups: usize) -> Result<()> {
        self.union(&values[0], groups, None, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let mut out = BinaryBuilder::new();
        for (row, bytes) in serialized_rows(&values[0])?.enumerate() {
            match bytes.filter(|_| passes(filter, row)) {
                Some(bytes) => out.append_value(bytes),
                None => out.append_value(serialize(&RoaringBitmap::new())?),
            }
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.cells.capacity() * std::mem::size_of::<Union>() + self.bytes
    }
}

impl Accumulator for BitmapAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match &self.mode {
            Mode::Build => {
                let ids = datafusion::arrow::compute::cast(&values[0], &DataType::UInt32)?;
                self.bitmap.extend(ids.as_primitive::<UInt32Type>().iter().flatten());
                Ok(())
            }
            Mode::Count | Mode::Union | Mode::Published(_) => self.union(&values[0]),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.union(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.serialized()?))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match &self.mode {
            Mode::Build | Mode::Union => ScalarValue::Binary(Some(self.serialized()?)),
            Mode::Count => ScalarValue::Int64(Some(self.bitmap.len() as i64)),
            Mode::Published(ptable) => ScalarValue::Int64(Some(published(ptable.as_ref(), &self.bitmap))),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bitmap.serialized_size()
    }
}

/// The number of a bitmap's ids and the sum of their lower 16 bits modulo 2¹⁶, as `count · 2¹⁶ + key`.
fn count_and_key(bitmap: &RoaringBitmap) -> i64 {
    let key = bitmap.iter().fold(0u32, |sum, id| sum.wrapping_add(id)) & 0xFFFF;
    ((bitmap.len() as i64) << 16) | i64::from(key)
}

/// [`count_and_key`] of a serialized bitmap, read from its bytes without building the bitmap: the portable format
/// lists every container's cardinality in its header, and a container's lower 16 bits are summed where they lie
/// (an array of them, a bitmap of 2¹⁶ bits, or runs). `None` for bytes not in that format.
fn serialized_count_and_key(bytes: &[u8]) -> Option<i64> {
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let cookie = u32_at(0)?;
    // Without run containers: the cookie, the number of containers, then their keys and cardinalities and their
    // offsets. With them: the number in the cookie's upper half, a bit per container saying which are runs, the
    // keys and cardinalities, and offsets only from four containers on (see the format's specification, and
    // roaring's `serialize_into`).
    let (containers, runs, descriptions) = match cookie {
        12346 => (u32_at(4)? as usize, None, 8),
        _ if cookie & 0xFFFF == 12347 => {
            let containers = (cookie >> 16) as usize + 1;
            (containers, Some(4), 4 + containers.div_ceil(8))
        }
        _ => return None,
    };
    let offsets = match runs {
        Some(_) if containers < 4 => 0,
        _ => containers.checked_mul(4)?,
    };
    let header = bytes.get(descriptions..descriptions.checked_add(containers.checked_mul(4)?)?)?;
    let mut at = descriptions + header.len() + offsets;
    let (mut count, mut key) = (0i64, 0u32);
    for (i, description) in header.chunks_exact(4).enumerate() {
        let ids = u32::from(u16::from_le_bytes([description[2], description[3]])) + 1;
        count += i64::from(ids);
        let run = runs.is_some_and(|start| bytes.get(start + i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0));
        let (sum, length) = if run {
            let n = usize::from(u16_at(at)?);
            let pairs = bytes.get(at + 2..at + 2 + n * 4)?;
            let sum = pairs.chunks_exact(4).fold(0u32, |sum, pair| {
                let (start, more) = (
                    u32::from(u16::from_le_bytes([pair[0], pair[1]])),
                    u32::from(u16::from_le_bytes([pair[2], pair[3]])),
                );
                // start + (start + 1) + … + (start + more)
                sum.wrapping_add((more + 1).wrapping_mul(start).wrapping_add(more * (more + 1) / 2))
            });
            (sum, 2 + n * 4)
        } else if ids <= 4096 {
            let values = bytes.get(at..at + ids as usize * 2)?;
            let sum = values
                .chunks_exact(2)
                .fold(0u32, |sum, v| sum.wrapping_add(u32::from(u16::from_le_bytes([v[0], v[1]]))));
            (sum, ids as usize * 2)
        } else {
            (bitmap_sum(bytes.get(at..at + 8192)?), 8192)
        };
        key = key.wrapping_add(sum);
        at += length;
    }
    Some((count << 16) | i64::from(key & 0xFFFF))
}

/// The sum (modulo 2³²) of the positions of the set bits of a container's 2¹⁶-bit bitmap: per 64-bit word, its
/// base times its number of bits, plus each bit of the positions within the word counted by one mask.
fn bitmap_sum(words: &[u8]) -> u32 {
    const MASKS: [u64; 6] = [
        0xAAAA_AAAA_AAAA_AAAA,
        0xCCCC_CCCC_CCCC_CCCC,
        0xF0F0_F0F0_F0F0_F0F0,
        0xFF00_FF00_FF00_FF00,
        0xFFFF_0000_FFFF_0000,
        0xFFFF_FFFF_0000_0000,
    ];
    words.chunks_exact(8).enumerate().fold(0u32, |sum, (i, word)| {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let within: u32 = MASKS.iter().enumerate().map(|(bit, mask)| (word & mask).count_ones() << bit).sum();
        sum.wrapping_add(word.count_ones() * (i as u32 * 64)).wrapping_add(within)
    })
}

/// Where [`count_and_key`] keeps the count.
pub const COUNT_SHIFT: i64 = 1 << 16;

/// The published count of the ids of a bitmap: their number with the noise of its cell key.
fn published(ptable: &PTable, bitmap: &RoaringBitmap) -> i64 {
    let packed = count_and_key(bitmap);
    ptable.perturb(packed / COUNT_SHIFT, packed % COUNT_SHIFT)
}

/// `kubus_bitmap_published_count(bitmaps)`: the number of distinct ids in the union of a group's bitmaps as the
/// cell key method publishes it, with the sum of their lower 16 bits as its key.
pub fn published_count(ptable: &Arc<PTable>, bitmaps: Expr) -> Expr {
    bitmap_udaf(Mode::Published(ptable.clone())).call(vec![bitmaps])
}

/// `kubus_bitmap_cell(bitmap)`: per row, the number of ids in one stored bitmap and the sum of their lower 16 bits
/// modulo 2¹⁶, as `count · 2¹⁶ + key` (null for a null). Rollups store it next to each cell's bitmap, so that a
/// query whose groups are single cells reads two integers instead of deserializing bitmaps.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CellUdf {
    signature: Signature,
}

impl ScalarUDFImpl for CellUdf {
    fn name(&self) -> &str {
        "kubus_bitmap_cell"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let packed = serialized_rows(&array)?
            .map(|bytes| {
                bytes
                    .map(|b| match serialized_count_and_key(b) {
                        Some(packed) => Ok(packed),
                        None => deserialize(b).map(|bitmap| count_and_key(&bitmap)),
                    })
                    .transpose()
            })
            .collect::<Result<Int64Array>>()?;
        Ok(ColumnarValue::Array(Arc::new(packed)))
    }
}

/// `kubus_bitmap_cell(bitmap)`: each row's count and key of its own bitmap (see [`count_and_key`]).
pub fn cell_count_and_key(bitmap: Expr) -> Expr {
    cell_udf().call(vec![bitmap])
}

pub(crate) fn cell_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CellUdf { signature: Signature::any(1, Volatility::Immutable) })
}

/// `kubus_bitmap(ids)`: the bitmap of a group's dense ids (UInt32; other integer types are cast).
pub fn build(ids: Expr) -> Expr {
    bitmap_udaf(Mode::Build).call(vec![ids])
}

/// `kubus_bitmap_count(bitmaps)`: the number of distinct ids in the union of a group's bitmaps.
pub fn count(bitmaps: Expr) -> Expr {
    bitmap_udaf(Mode::Count).call(vec![bitmaps])
}

/// `kubus_bitmap_union(bitmaps)`: the union of a group's bitmaps, serialized.
pub fn union(bitmaps: Expr) -> Expr {
    bitmap_udaf(Mode::Union).call(vec![bitmaps])
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, UInt32Array};
    use datafusion::prelude::{SessionContext, col};

    #[tokio::test]
    async fn bitmaps_of_overlapping_groups_count_each_id_once() {
        let ctx = SessionContext::new();
        let batch = RecordBatch::try_from_iter([
            ("g", Arc::new(UInt32Array::from(vec![1, 1, 2, 2, 2, 3])) as ArrayRef),
            ("id", Arc::new(UInt32Array::from(vec![Some(7), Some(8), Some(8), Some(9), None, Some(7)])) as ArrayRef),
        ])
        .unwrap();
        let cells =
            ctx.read_batch(batch).unwrap().aggregate(vec![col("g")], vec![build(col("id")).alias("b")]).unwrap();
        let total = cells.aggregate(vec![], vec![count(col("b")).alias("n")]).unwrap().collect().await.unwrap();
        let n = total[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(n, 3, "ids 7, 8, 9 across three groups, 7 and 8 twice, one null");
    }

    /// A serialized bitmap's header gives its count and key as its ids do: small and large, dense and sparse, with
    /// run containers and without, empty.
    #[test]
    fn the_header_gives_the_count_and_key_of_the_ids() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut with_runs = 0;
        for case in 0..200 {
            let mut bitmap = RoaringBitmap::new();
            let spread = [1u64 << 16, 1 << 20, 1 << 32][case % 3];
            for _ in 0..next() % [3, 300, 30_000][case / 3 % 3] {
                bitmap.insert((next() % spread) as u32);
            }
            if case % 4 == 0 {
                let start = (next() % (1 << 31)) as u32;
                bitmap.insert_range(start..start + (next() % 200_000) as u32);
            }
            if case % 2 == 0 {
                bitmap.optimize();
            }
            let bytes = serialize(&bitmap).unwrap();
            with_runs += usize::from(bytes[..2] == 12347u16.to_le_bytes());
            assert_eq!(serialized_count_and_key(&bytes), Some(count_and_key(&bitmap)), "case {case}");
        }
        assert!(with_runs >= 20, "{with_runs} cases with run containers");
        assert_eq!(serialized_count_and_key(&serialize(&RoaringBitmap::new()).unwrap()), Some(0));
        assert_eq!(serialized_count_and_key(b"\x00\x01"), None);
        assert_eq!(serialized_count_and_key(&[0x3a, 0x30, 0, 0, 9, 0, 0, 0]), None, "nine containers, no headers");
    }

    /// Unioned, a group's only bitmap passes through byte for byte; two or more become their union; a filtered row
    /// adds nothing; the state of single rows is their own bitmap.
    #[test]
    fn a_union_passes_single_bitmaps_through_and_unions_the_others() {
        let bitmap = |ids: &[u32]| serialize(&ids.iter().copied().collect::<RoaringBitmap>()).unwrap();
        let rows: ArrayRef = Arc::new(datafusion::arrow::array::BinaryArray::from_iter_values([
            bitmap(&[1, 2, 3]),
            bitmap(&[3, 70_000]),
            bitmap(&[9]),
            bitmap(&[4]),
            bitmap(&[5]),
        ]));
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(true), None, Some(false)]);
        let mut union = UnionGroups { cells: Vec::new(), bytes: 0 };
        union.update_batch(std::slice::from_ref(&rows), &[0, 0, 1, 1, 2], Some(&filter), 3).unwrap();
        let out = union.evaluate(EmitTo::All).unwrap();
        let out = out.as_binary::<i32>();
        let ids = |row: usize| deserialize(out.value(row)).unwrap().iter().collect::<Vec<_>>();
        assert_eq!((ids(0), ids(1), ids(2)), (vec![1, 2, 3, 70_000], vec![9], vec![]));
        assert_eq!(out.value(1), bitmap(&[9]).as_slice(), "passed through as it came");
        let states = union.convert_to_state(std::slice::from_ref(&rows), Some(&filter)).unwrap();
        let states = states[0].as_binary::<i32>();
        assert_eq!((states.value(0), states.value(3)), (bitmap(&[1, 2, 3]).as_slice(), bitmap(&[]).as_slice()));
    }

    /// The hash aggregation may skip the partial step and pass each row's state on: that path and the direct one
    /// give the same bitmaps, with the aggregate's filter applied in both.
    #[test]
    fn states_of_single_rows_merge_to_the_same_groups() {
        let ids: ArrayRef = Arc::new(UInt32Array::from(vec![Some(5), Some(6), None, Some(5), Some(70_000), Some(9)]));
        let filter = BooleanArray::from(vec![Some(true), Some(true), Some(true), Some(true), Some(true), None]);
        let groups = [0, 1, 1, 1, 0, 0];
        let mut direct = BitmapGroups { mode: Mode::Build, bitmaps: Vec::new(), values: 0 };
        direct.update_batch(std::slice::from_ref(&ids), &groups, Some(&filter), 2).unwrap();
        let mut merged = BitmapGroups { mode: Mode::Count, bitmaps: Vec::new(), values: 0 };
        let states = direct.convert_to_state(std::slice::from_ref(&ids), Some(&filter)).unwrap();
        merged.merge_batch(&states, &groups, 2).unwrap();
        let counts = merged.evaluate(EmitTo::All).unwrap();
        let counts = counts.as_primitive::<datafusion::arrow::datatypes::Int64Type>().values().to_vec();
        assert_eq!(counts, vec![2, 2], "group 0: 5 and 70,000 (9 is filtered out); group 1: 6 and 5");
        let built = direct.evaluate(EmitTo::All).unwrap();
        let first = deserialize(built.as_binary::<i32>().value(0)).unwrap();
        assert_eq!(first.iter().collect::<Vec<_>>(), vec![5, 70_000]);
    }
}
