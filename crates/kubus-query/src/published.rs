//! The cell key method's published aggregates: one aggregate function per published number, which counts (or
//! sums) and adds up the record keys of what it counts in the same pass, and ends with the published value — the
//! count with its noise from the perturbation table, the magnitude with its noise scaled to the cell's largest
//! value (see [`crate::cellkey`]). An answer with noise then has as many aggregates as one without and no
//! projection to perturb them: most of an answer from a rollup is DataFusion's planning, which grows with every
//! expression of the plan.
//!
//! A published magnitude whose count of values is published as 0 is empty, as it would be without values.

use crate::cellkey::{PTable, perturb_magnitude};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, PrimitiveArray,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, Field, FieldRef, Float64Type, Int32Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion::prelude::Expr;
use std::collections::HashSet;
use std::sync::Arc;

type Result<T> = datafusion::common::Result<T>;

/// What the rows an aggregate reads are, and which of them count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Input {
    /// Facts, each counted: `(keys)`, each fact's record key (see [`Keys`]).
    Rows,
    /// Units, each counted once per value (with DISTINCT, once in all): `(units)`; their record keys are hashed
    /// from them.
    Units,
    /// Facts with a value, each counted: `(values, keys)`.
    Values,
    /// Rollup cells: `(counts, key sums)`, as the rollup stores them.
    Stored,
    /// Rollup cells of a magnitude: `(values, counts of values, key sums, largest values)`; a minimum or maximum
    /// passes its values again as the largest.
    StoredValues,
}

/// Where the record keys of [`Input::Rows`] and [`Input::Values`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Keys {
    /// The facts' stored record keys (see [`kubus_model::RECORD_KEY_COLUMN`]).
    Stored,
    /// Hashed from the unit column (a table written before kubus stored them).
    Hashed,
}

/// The number an aggregate publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Output {
    /// The count of what it counts, with the count's noise.
    Count,
    /// The sum of the values, with the magnitude's noise.
    Sum,
    /// The published sum over the published count of values.
    Avg,
    /// The smallest value, with noise scaled to itself.
    Min,
    /// The largest value, with noise scaled to itself.
    Max,
    /// The middle value, with noise scaled to itself.
    Median,
}

/// `kubus_published_*(…)`: see the module.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Published {
    ptable: Arc<PTable>,
    /// A magnitude's noise is at most this many percent of the cell's largest single value.
    percent: u32,
    input: Input,
    keys: Keys,
    output: Output,
    signature: Signature,
}

/// The published `output` of the rows `args` hold, as `input` describes them.
pub fn aggregate(noise: &crate::cellkey::Noise, input: Input, keys: Keys, output: Output, args: Vec<Expr>) -> Expr {
    udaf(noise.ptable.clone(), noise.magnitude, input, keys, output).call(args)
}

/// The aggregate function that publishes `output` of rows as `input` describes them, with noise from `ptable`.
pub(crate) fn udaf(ptable: Arc<PTable>, percent: u32, input: Input, keys: Keys, output: Output) -> AggregateUDF {
    let arity = match input {
        Input::Rows | Input::Units => 1,
        Input::Values | Input::Stored => 2,
        Input::StoredValues => 4,
    };
    let signature = Signature::any(arity, Volatility::Immutable);
    AggregateUDF::new_from_impl(Published { ptable, percent, input, keys, output, signature })
}

impl Published {
    /// What it computes with: perturbation table, magnitude percent, input, keys and output.
    pub(crate) fn parts(&self) -> (&Arc<PTable>, u32, Input, Keys, Output) {
        (&self.ptable, self.percent, self.input, self.keys, self.output)
    }

    fn magnitude(&self) -> bool {
        self.output != Output::Count
    }

    /// Whether a magnitude is published as a whole number: its values are (and it is not a mean of them).
    fn integer(&self, value_type: &DataType) -> bool {
        self.magnitude() && !matches!(self.output, Output::Avg | Output::Median) && value_type.is_integer()
    }

    fn cells(&self, integer: bool) -> Cells {
        Cells::new(self.output, integer, self.ptable.clone(), self.percent)
    }
}

impl AggregateUDFImpl for Published {
    fn name(&self) -> &str {
        match self.output {
            Output::Count => "kubus_published_count",
            Output::Sum => "kubus_published_sum",
            Output::Avg => "kubus_published_avg",
            Output::Min => "kubus_published_min",
            Output::Max => "kubus_published_max",
            Output::Median => "kubus_published_median",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(if !self.magnitude() || self.integer(&arg_types[0]) { DataType::Int64 } else { DataType::Float64 })
    }

    fn is_nullable(&self) -> bool {
        self.magnitude()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let integer = self.integer(&args.exprs[0].data_type(args.schema)?);
        if args.is_distinct {
            if self.input != Input::Units {
                return Err(datafusion::error::DataFusionError::Internal(format!(
                    "{} counts distinct units only",
                    self.name()
                )));
            }
            return Ok(Box::new(DistinctUnits { units: HashSet::new(), cells: self.cells(integer) }));
        }
        Ok(Box::new(One { input: self.input, keys: self.keys, cells: self.cells(integer) }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = |part: &str| datafusion::logical_expr::utils::format_state_name(args.name, part);
        if args.is_distinct {
            let list = Field::new_list(name("keys"), Field::new_list_field(DataType::Int64, true), false);
            return Ok(vec![Arc::new(list)]);
        }
        let mut fields =
            vec![Field::new(name("count"), DataType::Int64, false), Field::new(name("key"), DataType::Int64, false)];
        if self.output == Output::Median {
            fields.push(Field::new_list(name("values"), Field::new_list_field(DataType::Float64, true), false));
        } else if self.magnitude() {
            fields.push(Field::new(name("value"), DataType::Float64, true));
            fields.push(Field::new(name("largest"), DataType::Float64, false));
        }
        Ok(fields.into_iter().map(Arc::new).collect())
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let integer = self.integer(&args.exprs[0].data_type(args.schema)?);
        Ok(Box::new(Groups { input: self.input, keys: self.keys, cells: self.cells(integer) }))
    }
}

/// Per group: what was counted, its record keys' wrapping sum, and for a magnitude the value so far (sum,
/// minimum or maximum) and the largest single value in absolute terms — for a median, every value.
#[derive(Debug)]
struct Cells {
    output: Output,
    integer: bool,
    ptable: Arc<PTable>,
    percent: u32,
    /// Each cell's count and key sum in one word (see [`Tally`]).
    tally: Vec<Tally>,
    value: Vec<Option<f64>>,
    largest: Vec<f64>,
    /// A median's values, and how many they are in all.
    samples: Vec<Vec<f64>>,
    sampled: usize,
}

/// A cell's count and the wrapping sum of its record keys in one word: the count in the low [`Tally::COUNT_BITS`]
/// bits, the sum's low 24 bits above it (the method reads 16 of them: see [`PTable::perturb`] and
/// [`crate::cellkey::magnitude_noise`]). Counting a row is then one addition to its cell where a count and a key
/// sum of their own took two, the row after waiting on both. Counts reach 2⁴⁰ (10¹²) before they would carry
/// into the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally(u64);

impl Tally {
    const COUNT_BITS: u32 = 40;
    const ZERO: Tally = Tally(0);

    /// `count` things whose keys sum to `key`.
    #[inline]
    fn of(count: i64, key: i64) -> Tally {
        Tally((count as u64).wrapping_add((key as u64) << Self::COUNT_BITS))
    }

    /// Itself where `kept`, else nothing (without a branch).
    #[inline]
    fn kept(self, kept: bool) -> Tally {
        Tally(self.0 & u64::from(kept).wrapping_neg())
    }

    fn count(self) -> i64 {
        (self.0 & ((1 << Self::COUNT_BITS) - 1)) as i64
    }

    /// The key sum's low 24 bits.
    fn key(self) -> i64 {
        (self.0 >> Self::COUNT_BITS) as i64
    }
}

impl std::ops::AddAssign for Tally {
    #[inline]
    fn add_assign(&mut self, other: Tally) {
        self.0 = self.0.wrapping_add(other.0);
    }
}

impl Cells {
    fn new(output: Output, integer: bool, ptable: Arc<PTable>, percent: u32) -> Cells {
        Cells {
            output,
            integer,
            ptable,
            percent,
            tally: Vec::new(),
            value: Vec::new(),
            largest: Vec::new(),
            samples: Vec::new(),
            sampled: 0,
        }
    }

    fn resize(&mut self, groups: usize) {
        self.tally.resize(groups, Tally::ZERO);
        match self.output {
            Output::Count => {}
            Output::Median => self.samples.resize_with(groups, Vec::new),
            _ => {
                self.value.resize(groups, None);
                self.largest.resize(groups, 0.0);
            }
        }
    }

    fn add(&mut self, g: usize, count: i64, key: i64) {
        self.tally[g] += Tally::of(count, key);
    }

    /// Counts each row (or each row `kept`) in its group and adds its key.
    fn add_rows<K: Copy + Into<i64>>(&mut self, groups: &[usize], keys: &[K], kept: Option<BooleanBuffer>) {
        match kept {
            None if let Some(g) = one_group(groups) => {
                self.add(g, groups.len() as i64, keys.iter().fold(0i64, |sum, &key| sum.wrapping_add(key.into())));
            }
            None => {
                for (&g, &key) in groups.iter().zip(keys) {
                    self.tally[g] += Tally::of(1, key.into());
                }
            }
            // Without a branch: a filter keeps rows at random.
            Some(kept) => {
                for ((&g, &key), kept) in groups.iter().zip(keys).zip(&kept) {
                    self.tally[g] += Tally::of(1, key.into()).kept(kept);
                }
            }
        }
    }

    /// Adds stored counts and key sums (of a rollup's rows) to their groups, those of every row or of each row
    /// `kept`.
    fn add_stored(&mut self, groups: &[usize], counts: &[i64], keys: &[i64], kept: Option<BooleanBuffer>) {
        match kept {
            None if let Some(g) = one_group(groups) => {
                self.add(g, counts.iter().sum(), keys.iter().fold(0i64, |sum, &key| sum.wrapping_add(key)));
            }
            None => {
                for ((&g, &count), &key) in groups.iter().zip(counts).zip(keys) {
                    self.tally[g] += Tally::of(count, key);
                }
            }
            Some(kept) => {
                for (((&g, &count), &key), kept) in groups.iter().zip(counts).zip(keys).zip(&kept) {
                    self.tally[g] += Tally::of(count, key).kept(kept);
                }
            }
        }
    }

    /// Counts the `rows` with values in their groups, adds their keys and (for a magnitude) their values.
    fn add_values(
        &mut self,
        rows: impl Iterator<Item = usize>,
        groups: &[usize],
        keys: &Int64Array,
        numbers: &Float64Array,
    ) {
        let magnitude = self.output != Output::Count;
        for row in rows {
            let g = groups[row];
            self.add(g, 1, if keys.is_valid(row) { keys.value(row) } else { 0 });
            if magnitude {
                let v = numbers.value(row);
                self.add_value(g, v, v);
            }
        }
    }

    fn add_value(&mut self, g: usize, value: f64, largest: f64) {
        if self.output == Output::Median {
            self.samples[g].push(value);
            self.sampled += 1;
            return;
        }
        let v = &mut self.value[g];
        *v = Some(match (self.output, *v) {
            (_, None) => value,
            (Output::Min, Some(v)) => v.min(value),
            (Output::Max, Some(v)) => v.max(value),
            (_, Some(v)) => v + value,
        });
        self.largest[g] = self.largest[g].max(largest.abs());
    }

    /// The published magnitude of group `g`, whose count is published as `count`: empty without values or where
    /// their count is published as 0.
    fn published_value(&self, g: usize, count: i64) -> Option<f64> {
        let value = if self.output == Output::Median { median(&self.samples[g]) } else { self.value[g] };
        value.filter(|_| count != 0).map(|v| {
            let largest =
                if matches!(self.output, Output::Min | Output::Max | Output::Median) { v } else { self.largest[g] };
            let v = perturb_magnitude(v, largest, self.tally[g].key(), self.percent);
            if self.output == Output::Avg { v / count as f64 } else { v }
        })
    }

    /// The published numbers of `groups`: one pass over their counts and keys (a published number is a few
    /// instructions; a call per number, with its bounds checks, took longer than its lookup).
    fn evaluate(&self, groups: std::ops::Range<usize>) -> ArrayRef {
        let ptable = self.ptable.as_ref();
        let counts = self.tally[groups.clone()].iter().map(|t| ptable.perturb(t.count(), t.key()));
        if self.output == Output::Count {
            return Arc::new(Int64Array::from_iter_values(counts));
        }
        let values = groups.zip(counts).map(|(g, count)| self.published_value(g, count));
        if self.integer {
            Arc::new(values.map(|v| v.map(|v| v.round() as i64)).collect::<Int64Array>())
        } else {
            Arc::new(values.collect::<Float64Array>())
        }
    }

    fn state(&self, groups: std::ops::Range<usize>) -> Vec<ArrayRef> {
        let mut state: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(self.tally[groups.clone()].iter().map(|t| t.count()))),
            Arc::new(Int64Array::from_iter_values(self.tally[groups.clone()].iter().map(|t| t.key()))),
        ];
        if self.output == Output::Median {
            let lists = self.samples[groups].iter().map(|values| Some(values.iter().map(|&v| Some(v))));
            state.push(Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(lists)));
        } else if self.output != Output::Count {
            state.push(Arc::new(Float64Array::from(self.value[groups.clone()].to_vec())));
            state.push(Arc::new(Float64Array::from(self.largest[groups].to_vec())));
        }
        state
    }

    /// Drops the first `n` groups (emitted).
    fn drain(&mut self, n: usize) {
        self.tally.drain(..n);
        match self.output {
            Output::Count => {}
            Output::Median => self.sampled -= self.samples.drain(..n).map(|values| values.len()).sum::<usize>(),
            _ => {
                self.value.drain(..n);
                self.largest.drain(..n);
            }
        }
    }

    fn merge(&mut self, states: &[ArrayRef], groups: &[usize]) {
        let (count, key) = (states[0].as_primitive::<Int64Type>(), states[1].as_primitive::<Int64Type>());
        for (row, &g) in groups.iter().enumerate() {
            self.add(g, count.value(row), key.value(row));
        }
        if self.output == Output::Median {
            let lists = states[2].as_list::<i32>();
            for (row, &g) in groups.iter().enumerate() {
                let values = lists.value(row);
                let values = values.as_primitive::<Float64Type>().values();
                self.samples[g].extend_from_slice(values);
                self.sampled += values.len();
            }
        } else if self.output != Output::Count {
            let (value, largest) = (states[2].as_primitive::<Float64Type>(), states[3].as_primitive::<Float64Type>());
            for (row, &g) in groups.iter().enumerate() {
                if value.is_valid(row) {
                    self.add_value(g, value.value(row), largest.value(row));
                }
            }
        }
    }

    /// Adds each row of `values` (as `input` describes them) that `filter` keeps to its group.
    fn update(
        &mut self,
        input: Input,
        keys: Keys,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let kept = |row: usize| filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        match input {
            // The hot loops of a count from the facts: stored keys, none missing, every row kept or some.
            Input::Rows if values[0].null_count() == 0 && keys == Keys::Stored => {
                let kept = filter.map(kept_rows);
                match values[0].data_type() {
                    DataType::Int32 => self.add_rows(groups, values[0].as_primitive::<Int32Type>().values(), kept),
                    _ => self.add_rows(groups, record_keys(&values[0], keys)?.values(), kept),
                }
            }
            Input::Rows => {
                let keys = record_keys(&values[0], keys)?;
                for (row, &g) in groups.iter().enumerate() {
                    if kept(row) {
                        self.add(g, 1, if keys.is_valid(row) { keys.value(row) } else { 0 });
                    }
                }
            }
            Input::Units => {
                let keys = record_keys(&values[0], Keys::Hashed)?;
                for (row, &g) in groups.iter().enumerate() {
                    if kept(row) && keys.is_valid(row) {
                        self.add(g, 1, keys.value(row));
                    }
                }
            }
            Input::Values => {
                let keys = record_keys(&values[1], keys)?;
                let numbers = as_f64(&values[0])?;
                // The rows counted: those the filter keeps that have a value.
                let counted = match (filter.map(kept_rows), numbers.nulls()) {
                    (Some(kept), Some(valid)) => Some(&kept & valid.inner()),
                    (Some(kept), None) => Some(kept),
                    (None, valid) => valid.map(|v| v.inner().clone()),
                };
                match counted {
                    Some(counted) => self.add_values(counted.set_indices(), groups, &keys, &numbers),
                    None => self.add_values(0..groups.len(), groups, &keys, &numbers),
                }
            }
            Input::Stored | Input::StoredValues => {
                let (counts, keys) = if input == Input::Stored { (0, 1) } else { (1, 2) };
                let (counts, keys) = (as_i64(&values[counts])?, as_i64(&values[keys])?);
                if counts.null_count() == 0 && keys.null_count() == 0 {
                    self.add_stored(groups, counts.values(), keys.values(), filter.map(kept_rows));
                } else {
                    let stored = |a: &Int64Array, row: usize| if a.is_valid(row) { a.value(row) } else { 0 };
                    for (row, &g) in groups.iter().enumerate() {
                        if kept(row) {
                            self.add(g, stored(&counts, row), stored(&keys, row));
                        }
                    }
                }
                if input == Input::StoredValues {
                    let (numbers, largest) = (as_f64(&values[0])?, as_f64(&values[3])?);
                    if filter.is_none() && numbers.null_count() == 0 && largest.null_count() == 0 {
                        for ((&g, &v), &l) in groups.iter().zip(numbers.values()).zip(largest.values()) {
                            self.add_value(g, v, l);
                        }
                    } else {
                        for (row, &g) in groups.iter().enumerate() {
                            if kept(row) && numbers.is_valid(row) {
                                let v = numbers.value(row);
                                self.add_value(g, v, if largest.is_valid(row) { largest.value(row) } else { v });
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The middle value of `values` (the mean of the two middle ones of an even number), `None` of none.
fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    let (lower, &mut upper, _) = sorted.select_nth_unstable_by(values.len() / 2, f64::total_cmp);
    if values.len() % 2 == 1 {
        return Some(upper);
    }
    Some((lower.iter().copied().max_by(f64::total_cmp)? + upper) / 2.0)
}

/// The group of every row where all are in one (an aggregation without grouping, mostly): their counts and keys
/// are then summed as whole columns, which the compiler vectorises, rather than into one cell row by row, each
/// addition waiting for the one before.
fn one_group(groups: &[usize]) -> Option<usize> {
    let &first = groups.first()?;
    groups.iter().all(|&g| g == first).then_some(first)
}

/// The rows a filter keeps: true, not null.
pub(crate) fn kept_rows(filter: &BooleanArray) -> BooleanBuffer {
    match filter.nulls() {
        Some(valid) => filter.values() & valid.inner(),
        None => filter.values().clone(),
    }
}

/// The record keys of a column of stored keys (16-bit, see [`kubus_model::stored_record_key`]) or, hashed, of
/// units; null stays null.
fn record_keys(array: &ArrayRef, keys: Keys) -> Result<Int64Array> {
    Ok(match (keys, array.data_type()) {
        (Keys::Stored, DataType::Int64) => array.as_primitive::<Int64Type>().clone(),
        (Keys::Stored, DataType::Int32) => array.as_primitive::<Int32Type>().unary(i64::from),
        (Keys::Stored, _) => as_i64(array)?,
        (Keys::Hashed, _) => crate::cellkey::record_keys(array)?,
    })
}

fn as_i64(array: &ArrayRef) -> Result<Int64Array> {
    primitive::<Int64Type>(array)
}

fn as_f64(array: &ArrayRef) -> Result<Float64Array> {
    primitive::<Float64Type>(array)
}

/// The array as `T`'s primitive array: itself where it is one, else cast.
fn primitive<T: ArrowPrimitiveType>(array: &ArrayRef) -> Result<PrimitiveArray<T>> {
    Ok(match array.as_primitive_opt::<T>() {
        Some(a) => a.clone(),
        None => datafusion::arrow::compute::cast(array, &T::DATA_TYPE)?.as_primitive::<T>().clone(),
    })
}

/// [`Cells`] for DataFusion's hash aggregation.
#[derive(Debug)]
struct Groups {
    input: Input,
    keys: Keys,
    cells: Cells,
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.cells.resize(total_num_groups);
        self.cells.update(self.input, self.keys, values, groups, filter)
    }

    fn merge_batch(&mut self, values: &[ArrayRef], groups: &[usize], total_num_groups: usize) -> Result<()> {
        self.cells.resize(total_num_groups);
        self.cells.merge(values, groups);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = emitted(emit_to, self.cells.tally.len());
        let out = self.cells.evaluate(0..n);
        self.cells.drain(n);
        Ok(out)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = emitted(emit_to, self.cells.tally.len());
        let out = self.cells.state(0..n);
        self.cells.drain(n);
        Ok(out)
    }

    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        // Each row its own group.
        let rows = values[0].len();
        let c = &self.cells;
        let mut cells = Cells::new(c.output, c.integer, c.ptable.clone(), c.percent);
        cells.resize(rows);
        cells.update(self.input, self.keys, values, &(0..rows).collect::<Vec<_>>(), filter)?;
        Ok(cells.state(0..rows))
    }

    fn size(&self) -> usize {
        let c = &self.cells;
        c.tally.capacity() * 8 + c.value.capacity() * 24 + c.samples.capacity() * 24 + c.sampled * 8
    }
}

fn emitted(emit_to: EmitTo, groups: usize) -> usize {
    match emit_to {
        EmitTo::All => groups,
        EmitTo::First(n) => n.min(groups),
    }
}

/// [`Cells`] of one group (an aggregation without grouping).
#[derive(Debug)]
struct One {
    input: Input,
    keys: Keys,
    cells: Cells,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.cells.resize(1);
        let groups = vec![0; values[0].len()];
        self.cells.update(self.input, self.keys, values, &groups, None)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.cells.resize(1);
        self.cells.merge(states, &vec![0; states[0].len()]);
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.cells.resize(1);
        self.cells.state(0..1).iter().map(|a| ScalarValue::try_from_array(a, 0)).collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.cells.resize(1);
        ScalarValue::try_from_array(&self.cells.evaluate(0..1), 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// A distinct count of units by their record keys (64 bits of an HMAC: two persons sharing one is as likely as a
/// collision of the hash itself).
#[derive(Debug)]
struct DistinctUnits {
    units: HashSet<i64>,
    cells: Cells,
}

impl Accumulator for DistinctUnits {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.units.extend(record_keys(&values[0], Keys::Hashed)?.iter().flatten());
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: &ListArray = states[0].as_list::<i32>();
        for keys in lists.iter().flatten() {
            self.units.extend(keys.as_primitive::<Int64Type>().iter().flatten());
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let keys = Arc::new(Int64Array::from_iter_values(self.units.iter().copied()));
        Ok(vec![SingleRowListArrayBuilder::new(keys).build_list_scalar()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let key = self.units.iter().fold(0i64, |sum, &k| sum.wrapping_add(k));
        self.cells.tally = vec![Tally::of(self.units.len() as i64, key)];
        ScalarValue::try_from_array(&self.cells.evaluate(0..1), 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.units.capacity() * std::mem::size_of::<i64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cellkey::PTableParams;
    use datafusion::arrow::array::Int32Array;

    /// Rows of (group, record key, value) from a fixed linear congruential sequence: a few values missing.
    fn rows() -> Vec<Row> {
        let mut x: u64 = 12345;
        let mut next = move || {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            x >> 33
        };
        (0..5000)
            .map(|_| {
                ((next() % 7) as usize, (next() % 65_536) as i64, (next() % 10 != 0).then(|| (next() % 40) as i64))
            })
            .collect()
    }

    /// A test row: its group, its record key and its value.
    type Row = (usize, i64, Option<i64>);

    /// A perturbation table, the [`rows`], and their groups.
    fn fixture() -> (Arc<PTable>, Vec<Row>, Vec<usize>) {
        let ptable =
            Arc::new(PTable::generate(&PTableParams { max_noise: 3, variance: 2.0, small: 2, keys: 256 }).unwrap());
        let rows = rows();
        let groups = rows.iter().map(|r| r.0).collect();
        (ptable, rows, groups)
    }

    #[test]
    fn a_tally_keeps_the_count_and_the_low_bits_of_any_key_sum() {
        let mut x: u64 = 99;
        let mut tally = Tally::ZERO;
        let (mut count, mut key) = (0i64, 0i64);
        for _ in 0..100_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Hashed record keys span all 64 bits, negative ones included; stored counts come in any size.
            let (n, k) = ((x >> 50) as i64, x as i64);
            let kept = !x.is_multiple_of(3);
            tally += Tally::of(n, k).kept(kept);
            if kept {
                count += n;
                key = key.wrapping_add(k);
            }
        }
        assert_eq!(tally.count(), count);
        assert_eq!(tally.key() & 0xFFFF, key & 0xFFFF, "the bits a cell key reads");
    }

    #[test]
    fn counted_rows_are_the_rows_a_filter_keeps_with_their_keys() {
        let (ptable, rows, groups) = fixture();
        // A filter that keeps two rows in three and is unknown (null: not kept) for every fifth.
        let keeps = |row: usize| (!row.is_multiple_of(5)).then_some(!row.is_multiple_of(3));
        let filter = BooleanArray::from((0..rows.len()).map(keeps).collect::<Vec<_>>());
        let stored: [ArrayRef; 2] = [
            Arc::new(Int32Array::from(rows.iter().map(|r| r.1 as i32).collect::<Vec<_>>())),
            Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        ];
        for keys in &stored {
            for filter in [None, Some(&filter)] {
                let kept = |row: usize| filter.is_none() || keeps(row) == Some(true);
                let expected: Vec<i64> = (0..7)
                    .map(|g| {
                        let mine: Vec<i64> = (0..rows.len())
                            .filter(|&row| rows[row].0 == g && kept(row))
                            .map(|row| rows[row].1)
                            .collect();
                        ptable.perturb(mine.len() as i64, mine.iter().sum())
                    })
                    .collect();
                let mut counted = Groups {
                    input: Input::Rows,
                    keys: Keys::Stored,
                    cells: Cells::new(Output::Count, true, ptable.clone(), 20),
                };
                counted.update_batch(std::slice::from_ref(keys), &groups, filter, 7).unwrap();
                let published = counted.evaluate(EmitTo::All).unwrap();
                let published: Vec<i64> = published.as_primitive::<Int64Type>().values().to_vec();
                assert_eq!(published, expected, "{}, filtered: {}", keys.data_type(), filter.is_some());
            }
        }
        // A magnitude counts and adds the rows the filter keeps that have a value.
        let values: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
        let expected: Vec<Option<f64>> = (0..7)
            .map(|g| {
                let mine: Vec<(i64, i64)> = (0..rows.len())
                    .filter(|&row| rows[row].0 == g && keeps(row) == Some(true))
                    .filter_map(|row| rows[row].2.map(|v| (rows[row].1, v)))
                    .collect();
                let key = mine.iter().map(|(k, _)| k).sum();
                let largest = mine.iter().map(|(_, v)| *v as f64).fold(0.0, f64::max);
                let sum = mine.iter().map(|(_, v)| *v as f64).sum();
                (ptable.perturb(mine.len() as i64, key) != 0).then(|| perturb_magnitude(sum, largest, key, 20))
            })
            .collect();
        let mut summed = Groups {
            input: Input::Values,
            keys: Keys::Stored,
            cells: Cells::new(Output::Sum, false, ptable.clone(), 20),
        };
        summed.update_batch(&[values, stored[1].clone()], &groups, Some(&filter), 7).unwrap();
        let published: Vec<Option<f64>> =
            summed.evaluate(EmitTo::All).unwrap().as_primitive::<Float64Type>().iter().collect();
        assert_eq!(published, expected);
    }

    #[test]
    fn published_numbers_are_the_tables_and_the_formulas_in_any_split_of_the_rows() {
        let (ptable, rows, groups) = fixture();
        let keys: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
        let values: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()));
        for output in [Output::Count, Output::Sum, Output::Avg, Output::Min, Output::Max, Output::Median] {
            // Expected, group by group, straight from the rows: the table's noise and the magnitude formula.
            let expected: Vec<Option<f64>> = (0..7)
                .map(|g| {
                    let with_value: Vec<(i64, i64)> =
                        rows.iter().filter(|r| r.0 == g).filter_map(|r| r.2.map(|v| (r.1, v))).collect();
                    let key = with_value.iter().fold(0i64, |k, (key, _)| k.wrapping_add(*key));
                    let count = ptable.perturb(with_value.len() as i64, key);
                    let values = with_value.iter().map(|(_, v)| *v as f64);
                    let (value, largest) = match output {
                        Output::Count => return Some(count as f64),
                        Output::Sum | Output::Avg => (values.clone().sum::<f64>(), values.fold(0.0, f64::max)),
                        Output::Min => (values.fold(f64::INFINITY, f64::min), 0.0),
                        Output::Max => (values.fold(0.0, f64::max), 0.0),
                        Output::Median => {
                            // Sorted whole: the middle one, or the mean of the middle two.
                            let mut sorted: Vec<f64> = values.collect();
                            sorted.sort_by(f64::total_cmp);
                            let n = sorted.len();
                            match n {
                                0 => return None,
                                _ if n % 2 == 1 => (sorted[n / 2], 0.0),
                                _ => ((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0, 0.0),
                            }
                        }
                    };
                    let largest =
                        if matches!(output, Output::Min | Output::Max | Output::Median) { value } else { largest };
                    let published = perturb_magnitude(value, largest, key, 20);
                    (count != 0).then(|| match output {
                        Output::Avg => published / count as f64,
                        Output::Median => published,
                        _ => published.round(),
                    })
                })
                .collect();
            // In two partial aggregations merged, as DataFusion splits the rows of two partitions.
            let integer = !matches!(output, Output::Avg | Output::Median);
            let make = || Groups {
                input: Input::Values,
                keys: Keys::Stored,
                cells: Cells::new(output, integer, ptable.clone(), 20),
            };
            let (mut first, mut second, mut last) = (make(), make(), make());
            let half = rows.len() / 2;
            first.update_batch(&[values.slice(0, half), keys.slice(0, half)], &groups[..half], None, 7).unwrap();
            let rest = rows.len() - half;
            second.update_batch(&[values.slice(half, rest), keys.slice(half, rest)], &groups[half..], None, 7).unwrap();
            for mut partial in [first, second] {
                last.merge_batch(&partial.state(EmitTo::All).unwrap(), &(0..7).collect::<Vec<_>>(), 7).unwrap();
            }
            let merged =
                datafusion::arrow::compute::cast(&last.evaluate(EmitTo::All).unwrap(), &DataType::Float64).unwrap();
            let merged: Vec<Option<f64>> = merged.as_primitive::<Float64Type>().iter().collect();
            assert_eq!(merged, expected, "{output:?}");
            // One group at a time, without grouping.
            for (g, expected) in expected.iter().enumerate() {
                let mut one = One {
                    input: Input::Values,
                    keys: Keys::Stored,
                    cells: Cells::new(output, integer, ptable.clone(), 20),
                };
                let mine = BooleanArray::from(groups.iter().map(|&x| x == g).collect::<Vec<_>>());
                let only = |a: &ArrayRef| datafusion::arrow::compute::filter(a, &mine).unwrap();
                one.update_batch(&[only(&values), only(&keys)]).unwrap();
                let value = match one.evaluate().unwrap() {
                    ScalarValue::Int64(v) => v.map(|v| v as f64),
                    ScalarValue::Float64(v) => v,
                    other => panic!("{other:?}"),
                };
                assert_eq!(value, *expected, "{output:?}, group {g}");
            }
        }
    }
}
