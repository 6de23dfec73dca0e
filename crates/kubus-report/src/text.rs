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
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

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

/// The table's cells as text: status symbols replace suppressed and zero values, `decimals` rounds decimal
/// columns, `decimal_comma` writes them with a comma.
pub fn display_rows(table: &Table, decimals: Option<usize>, decimal_comma: bool) -> Result<DisplayRows> {
    let status = table.status_columns();
    let keep: Vec<usize> = (0..table.schema.fields().len())
        .filter(|&i| table.columns.get(i).is_none_or(|_| !table.is_status(i)))
        .collect();
    let types: Vec<DataType> = keep.iter().map(|&i| table.schema.field(i).data_type().clone()).collect();
    let decimal = |ty: &DataType| {
        matches!(ty, DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..))
    };
    let mut rows = Vec::new();
    for row in cells(&table.batches)? {
        rows.push(
            keep.iter()
                .zip(&types)
                .map(|(&i, ty)| {
                    if let Some(symbol) = status.get(i).copied().flatten().and_then(|s| row[s].clone()) {
                        return Some(symbol);
                    }
                    let text = row[i].clone()?;
                    if !decimal(ty) {
                        return Some(text);
                    }
                    let text = match (decimals, text.parse::<f64>()) {
                        (Some(places), Ok(v)) => format!("{v:.places$}"),
                        _ => text,
                    };
                    Some(if decimal_comma { text.replace('.', ",") } else { text })
                })
                .collect(),
        );
    }
    Ok(DisplayRows { names: keep.iter().map(|&i| table.schema.field(i).name().clone()).collect(), types, rows })
}

/// CSV with a header line of column names; `german` uses a decimal comma in decimal columns and starts with a
/// byte-order mark, so Excel opens it as UTF-8. Suppressed cells show their symbol.
pub(crate) fn csv(table: &Table, delimiter: u8, german: bool, out: &mut dyn Write) -> Result<()> {
    if german {
        out.write_all("\u{feff}".as_bytes())?;
    }
    let shown = display_rows(table, None, german)?;
    let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(out);
    w.write_record(&shown.names)?;
    for row in &shown.rows {
        w.write_record(row.iter().map(|c| c.as_deref().unwrap_or("")))?;
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
