//! Output formats for result batches: a terminal table, CSV and JSON. Strings may arrive as Utf8 or Utf8View;
//! table and CSV cells go through Arrow's display formatter, JSON through Arrow's JSON writer.

use anyhow::Result;
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use kubus::arrow::array::{Array, RecordBatch};
use kubus::arrow::datatypes::DataType;
use kubus::arrow::json::{WriterBuilder, writer::JsonArray};
use kubus::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::io::Write;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for the terminal.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// A result as rows of optional strings plus per-column numeric flags.
struct Grid {
    names: Vec<String>,
    types: Vec<DataType>,
    rows: Vec<Vec<Option<String>>>,
}

fn grid(batches: &[RecordBatch], hide: &dyn Fn(&str) -> bool) -> Result<Grid> {
    let Some(first) = batches.first() else {
        return Ok(Grid { names: Vec::new(), types: Vec::new(), rows: Vec::new() });
    };
    let schema = first.schema();
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| !hide(schema.field(i).name())).collect();
    let names = keep.iter().map(|&i| schema.field(i).name().clone()).collect();
    let types = keep.iter().map(|&i| schema.field(i).data_type().clone()).collect();
    let options = FormatOptions::default().with_display_error(true);
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = keep
            .iter()
            .map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                keep.iter()
                    .zip(&formatters)
                    .map(|(&i, f)| (!batch.column(i).is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(Grid { names, types, rows })
}

/// Writes batches in `format`; columns for which `hide` is true are left out of the table format only.
pub fn write(format: OutputFormat, batches: &[RecordBatch], hide_in_table: &dyn Fn(&str) -> bool, out: &mut dyn Write) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let g = grid(batches, hide_in_table)?;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(g.names.clone());
            for row in &g.rows {
                table.add_row(row.iter().map(|c| c.clone().unwrap_or_default()));
            }
            for (i, ty) in g.types.iter().enumerate() {
                if ty.is_numeric() && let Some(column) = table.column_mut(i) {
                    column.set_cell_alignment(CellAlignment::Right);
                }
            }
            writeln!(out, "{table}")?;
            writeln!(out, "({} row{})", g.rows.len(), if g.rows.len() == 1 { "" } else { "s" })?;
        }
        OutputFormat::Csv => {
            let g = grid(batches, &|_| false)?;
            let mut w = csv::Writer::from_writer(out);
            w.write_record(&g.names)?;
            for row in &g.rows {
                w.write_record(row.iter().map(|c| c.as_deref().unwrap_or("")))?;
            }
            w.flush()?;
        }
        OutputFormat::Json => {
            // Arrow's JSON writer keeps numbers and booleans typed; nulls stay explicit so every row has every key.
            let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut *out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
            writeln!(out)?;
        }
    }
    Ok(())
}
