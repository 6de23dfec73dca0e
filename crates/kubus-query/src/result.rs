//! What a query answers: Arrow batches and the meaning of each column (keys, labels, measures, totals, the
//! disclosure status and the hidden counts disclosure control needs).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

/// Label of total rows.
pub const TOTAL_LABEL: &str = "Insgesamt";
/// Boolean column marking total and subtotal rows (present when totals were requested).
pub const TOTAL_COLUMN: &str = "_total";

/// What a result column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Member keys of a drilled level.
    Key,
    /// Member labels of a drilled level.
    Label,
    /// A measure's values.
    Measure,
    /// The total marker.
    Total,
    /// The disclosure status of a measure's cells (the symbol of a suppressed or zero cell, else empty).
    Status,
    /// A count a measure is computed from, kept for disclosure control and dropped by it.
    Hidden,
    /// The marker of forecast rows (see `kubus::forecast`): their symbol, else empty.
    Forecast,
}

/// A column of a query result.
#[derive(Debug, Clone)]
pub struct ResultColumn {
    /// Column name in the batches.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
    /// Human heading (level or measure label).
    pub heading: String,
    /// For key and label columns: the dimension of the drilled level.
    pub dimension: Option<String>,
    /// For status columns: the measure whose cells they describe.
    pub measure: Option<String>,
}

/// A query's answer: Arrow batches plus the meaning of each column.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The Arrow schema of the rows (also when there are none).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Column descriptions, in batch order.
    pub columns: Vec<ResultColumn>,
}

impl QueryResult {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}
