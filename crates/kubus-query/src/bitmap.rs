//! Exact distinct counts that roll up: each rollup cell stores the set of its persons' dense integer ids as a
//! roaring bitmap (serialized, a binary column); a query merges the cells' bitmaps and counts. Two aggregate
//! functions: `kubus_bitmap(id)` builds a cell's bitmap from ids, `kubus_bitmap_count(bitmap)` unions bitmaps and
//! returns the number of distinct ids. Both keep a serialized bitmap as partial state, so DataFusion can split
//! and merge them like any other aggregate.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, UInt32Type};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use datafusion::prelude::Expr;
use roaring::RoaringBitmap;
use std::sync::Arc;

type Result<T> = datafusion::common::Result<T>;

/// What the function does with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    /// Ids (UInt32) in, a serialized bitmap out.
    Build,
    /// Serialized bitmaps in, the number of distinct ids out (Int64, like `count(DISTINCT …)`).
    Count,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BitmapUdf {
    mode: Mode,
    signature: Signature,
}

impl AggregateUDFImpl for BitmapUdf {
    fn name(&self) -> &str {
        match self.mode {
            Mode::Build => "kubus_bitmap",
            Mode::Count => "kubus_bitmap_count",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.mode {
            Mode::Build => DataType::Binary,
            Mode::Count => DataType::Int64,
        })
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(BitmapAccumulator { mode: self.mode, bitmap: RoaringBitmap::new() }))
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

impl BitmapAccumulator {
    /// Unions serialized bitmaps (Binary or BinaryView) into this one; nulls are empty sets.
    fn union(&mut self, array: &ArrayRef) -> Result<()> {
        let mut add = |bytes: &[u8]| -> Result<()> {
            let other = RoaringBitmap::deserialize_unchecked_from(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
            self.bitmap |= other;
            Ok(())
        };
        match array.data_type() {
            DataType::BinaryView => array.as_binary_view().iter().flatten().try_for_each(&mut add),
            DataType::Binary => array.as_binary::<i32>().iter().flatten().try_for_each(&mut add),
            DataType::LargeBinary => array.as_binary::<i64>().iter().flatten().try_for_each(&mut add),
            other => Err(DataFusionError::Internal(format!("a bitmap column must be binary, not {other}"))),
        }
    }

    fn serialized(&self) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(self.bitmap.serialized_size());
        self.bitmap.serialize_into(&mut bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(bytes)
    }
}

impl Accumulator for BitmapAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match self.mode {
            Mode::Build => {
                let ids = datafusion::arrow::compute::cast(&values[0], &DataType::UInt32)?;
                self.bitmap.extend(ids.as_primitive::<UInt32Type>().iter().flatten());
                Ok(())
            }
            Mode::Count => self.union(&values[0]),
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.union(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.serialized()?))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.mode {
            Mode::Build => ScalarValue::Binary(Some(self.serialized()?)),
            Mode::Count => ScalarValue::Int64(Some(self.bitmap.len() as i64)),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bitmap.serialized_size()
    }
}

/// `kubus_bitmap(ids)`: the bitmap of a group's dense ids (UInt32; other integer types are cast).
pub fn build(ids: Expr) -> Expr {
    let udf = BitmapUdf { mode: Mode::Build, signature: Signature::any(1, Volatility::Immutable) };
    AggregateUDF::from(udf).call(vec![ids])
}

/// `kubus_bitmap_count(bitmaps)`: the number of distinct ids in the union of a group's bitmaps.
pub fn count(bitmaps: Expr) -> Expr {
    let udf = BitmapUdf { mode: Mode::Count, signature: Signature::any(1, Volatility::Immutable) };
    AggregateUDF::from(udf).call(vec![bitmaps])
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
        let cells = ctx.read_batch(batch).unwrap().aggregate(vec![col("g")], vec![build(col("id")).alias("b")]).unwrap();
        let total = cells.aggregate(vec![], vec![count(col("b")).alias("n")]).unwrap().collect().await.unwrap();
        let n = total[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(n, 3, "ids 7, 8, 9 across three groups, 7 and 8 twice, one null");
    }
}
