//! Text formats: CSV (plain or German) and JSON. Cells go through Arrow's display formatter, so every Arrow type
//! (including `Utf8View`) prints the same way in every format.

use crate::{Result, Table};
use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::json::{WriterBuilder, writer::JsonArray};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::io::Write;

/// A table as text for people: status columns are folded into their measures (a suppressed cell shows its symbol),
/// decimals optionally rounded and written with a decimal comma.
#[derive(Debug, Clone)]
pub struct DisplayRows {
    /// Column names (without status columns).
    pub names: Vec<String>,
    /// Their Arrow types.
    pub types: Vec<DataType>,
    /// The cells.
    pub rows: Vec<Vec<Option<String>>>,
}

/// How the text formats show a table's columns: status columns are folded into their measures.
struct Shown {
    /// The columns shown, in order.
    keep: Vec<usize>,
    /// Per column of the table, its status column.
    status: Vec<Option<usize>>,
    /// Per column shown, whether it holds decimals.
    decimal: Vec<bool>,
    /// How many places decimals are rounded to (none: as they are).
    decimals: Option<usize>,
    /// Whether decimals are written with a comma.
    decimal_comma: bool,
}

impl Shown {
    fn of(table: &Table, decimals: Option<usize>, decimal_comma: bool) -> Shown {
        let keep: Vec<usize> = (0..table.schema.fields().len())
            .filter(|&i| table.columns.get(i).is_none_or(|_| !table.is_status(i)))
            .collect();
        let decimal = keep
            .iter()
            .map(|&i| {
                matches!(
                    table.schema.field(i).data_type(),
                    DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..)
                )
            })
            .collect();
        Shown { keep, status: table.status_columns(), decimal, decimals, decimal_comma }
    }

    /// The text of shown column `at` in `row` of `batch` (whose columns `formatters` format) into `text`: its
    /// status symbol, else its value, decimals rounded and with a comma as asked. False where the cell has neither.
    fn cell(
        &self,
        batch: &RecordBatch,
        formatters: &[ArrayFormatter],
        row: usize,
        at: usize,
        text: &mut String,
    ) -> Result<bool> {
        use std::fmt::Write as _;
        text.clear();
        let i = self.keep[at];
        // With `with_display_error`, a value that cannot be formatted shows the error as its text.
        let write = |text: &mut String, column: usize| {
            write!(text, "{}", formatters[column].value(row))
                .map_err(|_| arrow::error::ArrowError::ComputeError(format!("cannot format row {row}")))
        };
        if let Some(s) = self.status.get(i).copied().flatten().filter(|&s| !batch.column(s).is_null(row)) {
            write(text, s)?;
            return Ok(true);
        }
        if batch.column(i).is_null(row) {
            return Ok(false);
        }
        write(text, i)?;
        if self.decimal[at] {
            if let (Some(places), Ok(v)) = (self.decimals, text.parse::<f64>()) {
                *text = format!("{v:.places$}");
            }
            if self.decimal_comma && text.contains('.') {
                *text = text.replace('.', ",");
            }
        }
        Ok(true)
    }
}

/// The formatters of a batch's columns.
fn formatters(batch: &RecordBatch) -> Result<Vec<ArrayFormatter<'_>>> {
    let options = FormatOptions::default().with_display_error(true);
    Ok(batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?)
}

/// The table's cells as text: status symbols replace suppressed and zero values, `decimals` rounds decimal
/// columns, `decimal_comma` writes them with a comma.
pub fn display_rows(table: &Table, decimals: Option<usize>, decimal_comma: bool) -> Result<DisplayRows> {
    let shown = Shown::of(table, decimals, decimal_comma);
    let mut rows = Vec::new();
    let mut text = String::new();
    for batch in &table.batches {
        let formatters = formatters(batch)?;
        for row in 0..batch.num_rows() {
            let cells = (0..shown.keep.len())
                .map(|at| Ok(shown.cell(batch, &formatters, row, at, &mut text)?.then(|| text.clone())));
            rows.push(cells.collect::<Result<_>>()?);
        }
    }
    Ok(DisplayRows {
        names: shown.keep.iter().map(|&i| table.schema.field(i).name().clone()).collect(),
        types: shown.keep.iter().map(|&i| table.schema.field(i).data_type().clone()).collect(),
        rows,
    })
}

/// CSV with a header line of column names; `german` uses a decimal comma in decimal columns and starts with a
/// byte-order mark, so Excel opens it as UTF-8. Suppressed cells show their symbol. Written cell by cell, without
/// holding the cells' text.
pub(crate) fn csv(table: &Table, delimiter: u8, german: bool, out: &mut dyn Write) -> Result<()> {
    if german {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let shown = Shown::of(table, None, german);
    let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(out);
    w.write_record(shown.keep.iter().map(|&i| table.schema.field(i).name()))?;
    let mut text = String::new();
    for batch in &table.batches {
        let formatters = formatters(batch)?;
        for row in 0..batch.num_rows() {
            for at in 0..shown.keep.len() {
                let some = shown.cell(batch, &formatters, row, at, &mut text)?;
                w.write_field(if some { text.as_str() } else { "" })?;
            }
            w.write_record(None::<&[u8]>)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// A JSON array of objects; numbers and booleans stay typed, nulls stay explicit so every row has every key.
pub(crate) fn json(table: &Table, out: &mut dyn Write) -> Result<()> {
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut *out);
    writer.write_batches(&table.batches.iter().collect::<Vec<_>>())?;
    writer.finish()?;
    writeln!(out)?;
    Ok(())
}
