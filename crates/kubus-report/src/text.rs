//! Text formats: CSV (plain or German) and JSON. Cells go through Arrow's display formatter, so every Arrow type
//! (including `Utf8View`) prints the same way in every format.

use crate::{Result, Table};
use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::json::{WriterBuilder, writer::JsonArray};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::io::Write;

/// Every cell of `batches` as optional text, row by row.
pub(crate) fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let options = FormatOptions::default().with_display_error(true);
    let mut rows = Vec::new();
    for batch in batches {
        let formatters =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch.columns().iter().zip(&formatters).map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string())).collect(),
            );
        }
    }
    Ok(rows)
}

/// CSV with a header line of column names; `german` uses a decimal comma in decimal columns and starts with a
/// byte-order mark, so Excel opens it as UTF-8.
pub(crate) fn csv(table: &Table, delimiter: u8, german: bool, out: &mut dyn Write) -> Result<()> {
    if german {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let decimal: Vec<bool> =
        table.schema.fields().iter().map(|f| matches!(f.data_type(), DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..))).collect();
    let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(out);
    w.write_record(table.schema.fields().iter().map(|f| f.name()))?;
    for row in cells(&table.batches)? {
        w.write_record(row.iter().zip(&decimal).map(|(cell, &is_decimal)| match cell {
            None => String::new(),
            Some(text) if german && is_decimal => text.replace('.', ","),
            Some(text) => text.clone(),
        }))?;
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
