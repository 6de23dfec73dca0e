//! Partial aggregation grouped by text views, without hashing the text of every row.
//!
//! Facts keep member keys as text, which the Parquet scan reads as views (`Utf8View`). DataFusion's partial
//! aggregation hashes each row's text and then looks the hash up with a comparison of views: perf of a count by
//! district over 10M facts showed that lookup and hashing at over half of the query's time. Member keys are short
//! (`D04`, `2024-06`, `B1`), and a view of at most 12 bytes holds its whole text, so its 16 bytes are the text: one
//! multiplication finds its slot in a small table, and rows of the same member meet the same slot. Views of longer
//! texts hold their buffer and offset; within a batch the same buffer and offset are the same text, so those are
//! numbered per batch by view and per query by text.
//!
//! [`TextGroups`] (a physical optimizer rule) puts [`TextGroupsExec`] in place of every partial aggregation that
//! groups by text view columns and whose aggregates all update by group index; it feeds the same accumulators
//! (DataFusion's and kubus's own) and emits what the partial aggregation would, so the final aggregation above it
//! is unchanged.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringViewBuilder};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{HashMap, Result};
use datafusion::config::ConfigOptions;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PhysicalExpr, PlanProperties,
};
use futures::StreamExt;
use std::sync::Arc;

/// The rule that puts [`TextGroupsExec`] in place of the partial aggregations it can take.
#[derive(Debug, Default)]
pub struct TextGroups;

impl PhysicalOptimizerRule for TextGroups {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match node.downcast_ref::<AggregateExec>().and_then(TextGroupsExec::new) {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "kubus_text_groups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A partial aggregation grouped by text view columns (see the module's documentation).
#[derive(Debug)]
pub struct TextGroupsExec {
    /// The aggregation it stands for: its input, groups, aggregates, filters and output.
    aggregate: Arc<AggregateExec>,
    /// The input columns grouped by, in the order of the output's group columns.
    columns: Vec<usize>,
}

impl TextGroupsExec {
    /// Stands for `aggregate` where it is a partial aggregation by plain text view columns, without grouping
    /// sets, limit or order, whose aggregates all update by group index; `None` otherwise.
    fn new(aggregate: &AggregateExec) -> Option<TextGroupsExec> {
        let groups = aggregate.group_expr();
        let input = aggregate.input_schema();
        let columns = groups
            .expr()
            .iter()
            .map(|(expr, _)| {
                let column = expr.downcast_ref::<Column>()?;
                (input.field(column.index()).data_type() == &DataType::Utf8View).then_some(column.index())
            })
            .collect::<Option<Vec<usize>>>()?;
        let plain = *aggregate.mode() == AggregateMode::Partial
            && (1..=4).contains(&columns.len())
            && groups.is_single()
            && aggregate.limit_options().is_none()
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && aggregate.aggr_expr().iter().all(|a| a.groups_accumulator_supported() && a.order_bys().is_empty());
        plain.then(|| TextGroupsExec { aggregate: Arc::new(aggregate.clone()), columns })
    }
}

impl DisplayAs for TextGroupsExec {
    /// As the aggregation it stands for (mode, groups, aggregates), under its own name.
    fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        struct Shown<'a>(&'a AggregateExec, DisplayFormatType);
        impl std::fmt::Display for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                self.0.fmt_as(self.1, f)
            }
        }
        let shown = Shown(&self.aggregate, t).to_string();
        write!(f, "TextGroupsExec: {}", shown.strip_prefix("AggregateExec: ").unwrap_or(&shown))
    }
}

impl ExecutionPlan for TextGroupsExec {
    fn name(&self) -> &str {
        "TextGroupsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.aggregate.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).with_new_children(children)?;
        Ok(match aggregate.downcast_ref::<AggregateExec>().and_then(TextGroupsExec::new) {
            Some(exec) => Arc::new(exec),
            None => aggregate,
        })
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.aggregate.input().execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("TextGroupsExec[{partition}]")).register(context.memory_pool());
        let aggregates = self.aggregate.aggr_expr();
        let mut state = Aggregation {
            groups: Groups::new(self.columns.clone()),
            accumulators: aggregates.iter().map(|a| a.create_groups_accumulator()).collect::<Result<_>>()?,
            arguments: aggregates.iter().map(|a| a.expressions()).collect(),
            filters: self.aggregate.filter_expr().to_vec(),
            indices: Vec::new(),
            reservation,
        };
        let schema = self.schema();
        let out = Arc::clone(&schema);
        let stream = futures::stream::once(async move {
            let mut input = input;
            while let Some(batch) = input.next().await {
                state.update(&batch?)?;
            }
            state.emit(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One partition's aggregation: its groups, and the accumulators with their arguments and filters.
struct Aggregation {
    groups: Groups,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// Each row's group, reused from batch to batch.
    indices: Vec<usize>,
    reservation: MemoryReservation,
}

impl Aggregation {
    fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        self.groups.assign(batch, &mut self.indices);
        let total = self.groups.len();
        for ((accumulator, arguments), filter) in self.accumulators.iter_mut().zip(&self.arguments).zip(&self.filters) {
            let values = arguments
                .iter()
                .map(|a| a.evaluate(batch).and_then(|v| v.into_array(batch.num_rows())))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let filter =
                filter.as_ref().map(|f| f.evaluate(batch).and_then(|v| v.into_array(batch.num_rows()))).transpose()?;
            accumulator.update_batch(&values, &self.indices, filter.as_ref().map(|f| f.as_boolean()), total)?;
        }
        let size = self.groups.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>();
        self.reservation.try_resize(size)
    }

    /// The group columns and each accumulator's state, as the partial aggregation writes them.
    fn emit(mut self, schema: SchemaRef) -> Result<RecordBatch> {
        let mut columns = self.groups.emit();
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// The groups met so far: each group column's texts numbered, and each combination of numbers a group.
struct Groups {
    columns: Vec<Texts>,
    /// For several columns: each group's numbers, column by column.
    numbers: Vec<Vec<u32>>,
    /// The bits each column's numbers take in a combination's place in `dense`.
    widths: Vec<u32>,
    /// Each place's group, `u32::MAX` for none: the combinations of numbers as a table, while the columns' widths
    /// add up to at most [`DENSE_BITS`] (member keys: q10's districts, residence statuses, sexes and language
    /// levels take 17 bits, with room for as many members again).
    dense: Vec<u32>,
    /// The combinations (32 bits a column) and their groups, once the widths exceed [`DENSE_BITS`].
    combinations: Option<HashMap<u128, u32>>,
    /// Each row's combination of numbers, reused from batch to batch.
    keys: Vec<u128>,
}

/// The most bits a combination's place in the table of groups takes: 2²⁰ places of 4 bytes.
const DENSE_BITS: u32 = 20;

impl Groups {
    fn new(columns: Vec<usize>) -> Groups {
        Groups {
            numbers: vec![Vec::new(); columns.len()],
            widths: vec![0; columns.len()],
            columns: columns.into_iter().map(Texts::new).collect(),
            dense: Vec::new(),
            combinations: None,
            keys: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        match self.columns.as_slice() {
            [one] => one.texts.len(),
            _ => self.numbers[0].len(),
        }
    }

    fn size(&self) -> usize {
        self.columns.iter().map(Texts::size).sum::<usize>()
            + self.dense.capacity() * 4
            + self.combinations.as_ref().map_or(0, |c| c.capacity() * 24)
            + self.numbers.iter().map(|n| n.capacity() * 4).sum::<usize>()
    }

    /// Each row's group in `indices`, new groups numbered as they come.
    fn assign(&mut self, batch: &RecordBatch, indices: &mut Vec<usize>) {
        indices.clear();
        for column in &mut self.columns {
            column.number(batch);
        }
        if let [one] = self.columns.as_slice() {
            indices.extend(one.numbers.iter().map(|&n| n as usize));
            return;
        }
        self.widen();
        // The columns' numbers side by side: in the table's widths, else 32 bits each (up to four columns).
        let widths: Vec<u32> = match self.combinations {
            None => self.widths.clone(),
            Some(_) => vec![32; self.columns.len()],
        };
        self.keys.clear();
        self.keys.resize(batch.num_rows(), 0);
        let mut shift = 0;
        for (column, width) in self.columns.iter().zip(widths) {
            for (key, &n) in self.keys.iter_mut().zip(&column.numbers) {
                *key |= u128::from(n) << shift;
            }
            shift += width;
        }
        let (numbers, columns) = (&mut self.numbers, &self.columns);
        let mut add = |row: usize| {
            for (c, column) in columns.iter().enumerate() {
                numbers[c].push(column.numbers[row]);
            }
            (numbers[0].len() - 1) as u32
        };
        match &mut self.combinations {
            None => {
                for (row, &key) in self.keys.iter().enumerate() {
                    let place = &mut self.dense[key as usize];
                    if *place == u32::MAX {
                        *place = add(row);
                    }
                    indices.push(*place as usize);
                }
            }
            Some(combinations) => {
                for (row, &key) in self.keys.iter().enumerate() {
                    indices.push(*combinations.entry(key).or_insert_with(|| add(row)) as usize);
                }
            }
        }
    }

    /// Widens the table where a column's numbers outgrew their bits (with room for as many again), its groups
    /// placed anew; beyond [`DENSE_BITS`], moves them to the map of combinations for good.
    fn widen(&mut self) {
        if self.combinations.is_some() {
            return;
        }
        let fits = |n: usize, width: u32| n <= 1 << width;
        if !self.dense.is_empty() && self.columns.iter().zip(&self.widths).all(|(c, &w)| fits(c.texts.len(), w)) {
            return;
        }
        let widths: Vec<u32> =
            self.columns.iter().map(|c| (2 * c.texts.len()).next_power_of_two().trailing_zeros()).collect();
        let groups = self.numbers[0].len();
        let key = |widths: &[u32], g: usize| {
            let mut shift = 0;
            widths.iter().zip(&self.numbers).fold(0u128, |key, (&w, numbers)| {
                let key = key | (u128::from(numbers[g]) << shift);
                shift += w;
                key
            })
        };
        if widths.iter().sum::<u32>() <= DENSE_BITS {
            let mut dense = vec![u32::MAX; 1 << widths.iter().sum::<u32>()];
            for g in 0..groups {
                dense[key(&widths, g) as usize] = g as u32;
            }
            (self.dense, self.widths) = (dense, widths);
        } else {
            let wide = vec![32; self.columns.len()];
            self.combinations = Some((0..groups).map(|g| (key(&wide, g), g as u32)).collect());
            self.dense = Vec::new();
        }
    }

    /// The group columns, each group's texts in the order the groups were numbered.
    fn emit(&self) -> Vec<ArrayRef> {
        match self.columns.as_slice() {
            [one] => vec![one.emit(&(0..one.texts.len() as u32).collect::<Vec<_>>())],
            columns => columns.iter().zip(&self.numbers).map(|(column, numbers)| column.emit(numbers)).collect(),
        }
    }
}

/// One group column's texts, numbered as they come; `None` is the null group.
struct Texts {
    column: usize,
    texts: Vec<Option<Box<str>>>,
    /// Views of at most 12 bytes (their whole text) and their numbers: a table indexed by the view's hash, whose
    /// slot holds the view last seen there, in front of a map of all of them.
    slots: Vec<(u128, u32)>,
    short: HashMap<u128, u32>,
    /// Longer texts and their numbers.
    long: HashMap<Box<str>, u32>,
    null: Option<u32>,
    /// The bytes of the texts, counted twice (in `texts` and as keys of `long` or views of `short`).
    bytes: usize,
    /// The numbers of the last batch's rows.
    numbers: Vec<u32>,
}

/// Slots of the table in front of the map of short views: 2¹⁰.
const SLOT_BITS: u32 = 10;
/// A view no short text has (its length field says 13 bytes with all of them zero): the empty slot.
const NO_VIEW: u128 = 13;

impl Texts {
    fn new(column: usize) -> Texts {
        Texts {
            column,
            texts: Vec::new(),
            slots: vec![(NO_VIEW, 0); 1 << SLOT_BITS],
            short: HashMap::default(),
            long: HashMap::default(),
            null: None,
            bytes: 0,
            numbers: Vec::new(),
        }
    }

    fn size(&self) -> usize {
        self.bytes
            + self.texts.capacity() * 16
            + self.slots.len() * 32
            + (self.short.capacity() + self.long.capacity()) * 48
    }

    fn add(&mut self, text: Option<&str>) -> u32 {
        self.bytes += text.map_or(0, |t| 2 * t.len());
        self.texts.push(text.map(Box::from));
        (self.texts.len() - 1) as u32
    }

    /// Numbers each row of this column of `batch` (in `numbers`).
    fn number(&mut self, batch: &RecordBatch) {
        let array = batch.column(self.column).as_string_view();
        let views = array.views();
        let mut out = std::mem::take(&mut self.numbers);
        out.clear();
        out.reserve(views.len());
        // Long texts of this batch by view: the same buffer and offset are the same text.
        let mut batch_long: HashMap<u128, u32> = HashMap::default();
        for (row, &view) in views.iter().enumerate() {
            let number = if array.is_null(row) {
                match self.null {
                    Some(n) => n,
                    None => {
                        let n = self.add(None);
                        self.null = Some(n);
                        n
                    }
                }
            } else if (view as u32) <= 12 {
                let slot = (((view as u64) ^ ((view >> 64) as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    >> (64 - SLOT_BITS)) as usize;
                match self.slots[slot] {
                    (seen, n) if seen == view => n,
                    _ => {
                        let n = match self.short.get(&view) {
                            Some(&n) => n,
                            None => {
                                let n = self.add(Some(array.value(row)));
                                self.short.insert(view, n);
                                n
                            }
                        };
                        self.slots[slot] = (view, n);
                        n
                    }
                }
            } else if let Some(&n) = batch_long.get(&view) {
                n
            } else {
                let text = array.value(row);
                let n = match self.long.get(text) {
                    Some(&n) => n,
                    None => {
                        let n = self.add(Some(text));
                        self.long.insert(Box::from(text), n);
                        n
                    }
                };
                batch_long.insert(view, n);
                n
            };
            out.push(number);
        }
        self.numbers = out;
    }

    /// The texts of `numbers`, as views.
    fn emit(&self, numbers: &[u32]) -> ArrayRef {
        let mut builder = StringViewBuilder::with_capacity(numbers.len());
        for &n in numbers {
            builder.append_option(self.texts[n as usize].as_deref());
        }
        Arc::new(builder.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Two partitions of batches: short keys (`a`, `c`, `d`, `e`; `g` and `h` of thousands), long ones with nulls
    /// (`b`), numbers with nulls (`n`) and quarters (`f`, whose sums are exact in any order).
    fn table() -> MemTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Utf8View, false),
            Field::new("b", DataType::Utf8View, true),
            Field::new("c", DataType::Utf8View, false),
            Field::new("d", DataType::Utf8View, false),
            Field::new("e", DataType::Utf8View, false),
            Field::new("g", DataType::Utf8View, false),
            Field::new("h", DataType::Utf8View, false),
            Field::new("n", DataType::Int64, true),
            Field::new("f", DataType::Float64, false),
        ]));
        let mut seed = 7u64;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let partitions = (0..2)
            .map(|_| {
                (0..5)
                    .map(|_| {
                        let rows = 1000;
                        let short = |m: u64, next: &mut dyn FnMut(u64) -> u64| {
                            let texts: Vec<String> = (0..rows).map(|_| format!("K{:02}", next(m))).collect();
                            Arc::new(StringViewArray::from_iter_values(texts)) as ArrayRef
                        };
                        let a = short(18, &mut next);
                        let b: StringViewArray = (0..rows)
                            .map(|_| match next(9) {
                                0 => None,
                                k => Some(format!("a long member label number {k}")),
                            })
                            .collect();
                        let (c, d, e) = (short(3, &mut next), short(5, &mut next), short(2, &mut next));
                        let (g, h) = (short(2000, &mut next), short(1500, &mut next));
                        let n: Int64Array = (0..rows).map(|_| (next(10) > 0).then(|| next(100) as i64)).collect();
                        let f: Float64Array = (0..rows).map(|_| next(40) as f64 / 4.0).collect();
                        let columns = vec![a, Arc::new(b) as ArrayRef, c, d, e, g, h, Arc::new(n), Arc::new(f)];
                        RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
                    })
                    .collect()
            })
            .collect();
        MemTable::try_new(schema, partitions).unwrap()
    }

    fn context(rule: bool) -> SessionContext {
        let mut state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features();
        if rule {
            state = state.with_physical_optimizer_rule(Arc::new(TextGroups));
        }
        let state = state.build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table("t", Arc::new(table())).unwrap();
        ctx
    }

    /// The answer as text, and whether the plan grouped by text views.
    async fn answer(ctx: &SessionContext, sql: &str) -> (String, bool) {
        let frame = ctx.sql(sql).await.unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        (pretty_format_batches(&frame.collect().await.unwrap()).unwrap().to_string(), shown.contains("TextGroupsExec"))
    }

    #[tokio::test]
    async fn text_groups_answer_as_datafusions_aggregation_does() {
        let (with, without) = (context(true), context(false));
        let aggregates = "count(*), count(n), sum(n), min(f), max(f), avg(f), sum(f), count(n) FILTER (WHERE f > 5)";
        for (groups, taken) in [
            ("a", true),
            ("b", true),
            ("a, b", true),
            ("b, c, d, e", true),
            // Too many texts for a table of combinations (2¹¹ and 2¹² places): a map of them.
            ("g, h", true),
            ("a, g", true),
            // Five columns are no member keys' combination: DataFusion's own aggregation.
            ("a, b, c, d, e", false),
        ] {
            let sql = format!("SELECT {groups}, {aggregates} FROM t GROUP BY {groups} ORDER BY {groups}");
            let (expected, ours) = answer(&without, &sql).await;
            assert!(!ours);
            let (got, ours) = answer(&with, &sql).await;
            assert_eq!(ours, taken, "{groups}");
            assert_eq!(got, expected, "{groups}");
            assert!(expected.lines().count() > 8, "{groups}: {expected}");
        }
    }
}
