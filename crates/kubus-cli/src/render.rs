//! Output: the terminal table is drawn here (comfy-table); every file format (CSV, German CSV, JSON, JSON-stat,
//! XLSX, Parquet) is written by the library's output writers.

use anyhow::Result;
use comfy_table::{CellAlignment, Table as Grid, presets::UTF8_FULL_CONDENSED};
use kubus::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use kubus::arrow::compute::cast;
use kubus::arrow::datatypes::{DataType, Float64Type};
use kubus::arrow::util::display::{ArrayFormatter, FormatOptions};
use kubus::output::{Format, Table};
use std::io::Write;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for the terminal.
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// CSV for German spreadsheets: `;`, decimal comma, UTF-8 with BOM.
    CsvDe,
    /// A JSON array of objects.
    Json,
    /// A JSON-stat 2.0 dataset (cube queries only).
    JsonStat,
    /// An Excel workbook (needs --out).
    Xlsx,
    /// Apache Parquet (needs --out).
    Parquet,
}

impl OutputFormat {
    /// Whether the format is binary and must go to a file.
    pub fn is_binary(self) -> bool {
        matches!(self, OutputFormat::Xlsx | OutputFormat::Parquet)
    }
}

/// Draws batches as a terminal table; columns for which `hide` is true are left out.
pub fn table(batches: &[RecordBatch], hide: &dyn Fn(&str) -> bool, out: &mut dyn Write) -> Result<()> {
    let mut grid = Grid::new();
    grid.load_preset(UTF8_FULL_CONDENSED);
    let mut rows = 0;
    if let Some(first) = batches.first() {
        let schema = first.schema();
        let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| !hide(schema.field(i).name())).collect();
        grid.set_header(keep.iter().map(|&i| schema.field(i).name().clone()));
        let options = FormatOptions::default().with_display_error(true);
        for batch in batches {
            let formatters =
                keep.iter().map(|&i| ArrayFormatter::try_new(batch.column(i).as_ref(), &options)).collect::<Result<Vec<_>, _>>()?;
            // Decimals are rounded to four places for reading; the file formats keep every digit.
            let decimals: Vec<Option<ArrayRef>> = keep
                .iter()
                .map(|&i| batch.column(i).data_type().is_floating().then(|| cast(batch.column(i), &DataType::Float64)).transpose())
                .collect::<Result<_, _>>()?;
            for row in 0..batch.num_rows() {
                grid.add_row(keep.iter().zip(&formatters).zip(&decimals).map(|((&i, f), decimal)| match decimal {
                    _ if batch.column(i).is_null(row) => String::new(),
                    Some(d) => format!("{:.4}", d.as_primitive::<Float64Type>().value(row)),
                    None => f.value(row).to_string(),
                }));
                rows += 1;
            }
        }
        for (column, &i) in keep.iter().enumerate() {
            if schema.field(i).data_type().is_numeric() && let Some(c) = grid.column_mut(column) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    writeln!(out, "{grid}")?;
    writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
    Ok(())
}

/// Writes `result` in `format`; the terminal table leaves out the columns for which `hide` is true.
pub fn write(format: OutputFormat, result: &Table, hide: &dyn Fn(&str) -> bool, out: &mut dyn Write) -> Result<()> {
    let format = match format {
        OutputFormat::Table => return table(&result.batches, hide, out),
        OutputFormat::Csv => Format::Csv,
        OutputFormat::CsvDe => Format::CsvGerman,
        OutputFormat::Json => Format::Json,
        OutputFormat::JsonStat => Format::JsonStat,
        OutputFormat::Xlsx => Format::Xlsx,
        OutputFormat::Parquet => Format::Parquet,
    };
    kubus::output::write(result, format, out)?;
    Ok(())
}
