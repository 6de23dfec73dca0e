//! Output: the terminal table is drawn here (comfy-table); every file format (CSV, German CSV, JSON, JSON-stat,
//! XLSX, Parquet) is written by the library's output writers.

use anyhow::Result;
use comfy_table::{CellAlignment, Table as Grid, presets::UTF8_FULL_CONDENSED};
use kubus::arrow::array::RecordBatch;
use kubus::output::{Format, Table};
use std::io::Write;

/// An output format: the terminal table, or one of the library's file formats (their names are those of
/// [`Format::name`], so that a new format of the library is a new `--format` without a change here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// A table for the terminal.
    Table,
    /// A file format (CSV, German CSV, JSON, JSON-stat, XLSX, Parquet, …).
    File(Format),
}

impl OutputFormat {
    /// The parser of `--format`: `table` or a format's name, the possible values listed in `--help`.
    pub fn parser() -> impl clap::builder::TypedValueParser<Value = OutputFormat> {
        use clap::builder::{PossibleValue, TypedValueParser as _};
        let table = PossibleValue::new("table").help("A table for the terminal");
        let files = Format::ALL.iter().map(|f| PossibleValue::new(f.name()).help(f.description()));
        clap::builder::PossibleValuesParser::new(std::iter::once(table).chain(files))
            .map(|name| Format::from_name(&name).map_or(OutputFormat::Table, OutputFormat::File))
    }

    /// Whether the format is binary and must go to a file.
    pub fn is_binary(self) -> bool {
        matches!(self, OutputFormat::File(f) if f.is_binary())
    }

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::File(f) => f.name(),
        }
    }
}

/// Draws batches as a terminal table; columns for which `hide` is true are left out.
pub fn table(batches: &[RecordBatch], hide: &dyn Fn(&str) -> bool, out: &mut dyn Write) -> Result<()> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| std::sync::Arc::new(kubus::arrow::datatypes::Schema::empty()));
    grid(&Table::plain("", schema, batches.to_vec()), hide, out)
}

/// Draws a result as a terminal table: suppressed cells show their symbol, decimals are rounded to four places
/// (the file formats keep every digit), numbers are right-aligned.
pub fn grid(result: &Table, hide: &dyn Fn(&str) -> bool, out: &mut dyn Write) -> Result<()> {
    let shown = kubus::output::display_rows(result, Some(4), false)?;
    let keep: Vec<usize> = (0..shown.names.len()).filter(|&i| !hide(&shown.names[i])).collect();
    let mut grid = Grid::new();
    grid.load_preset(UTF8_FULL_CONDENSED);
    grid.set_header(keep.iter().map(|&i| shown.names[i].clone()));
    for row in &shown.rows {
        grid.add_row(keep.iter().map(|&i| row[i].clone().unwrap_or_default()));
    }
    for (column, &i) in keep.iter().enumerate() {
        if shown.types[i].is_numeric()
            && let Some(c) = grid.column_mut(column)
        {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(out, "{grid}")?;
    let rows = shown.rows.len();
    writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
    for note in &result.notes {
        writeln!(out, "{note}")?;
    }
    Ok(())
}

/// Writes `result` in `format`; the terminal table leaves out the columns for which `hide` is true.
pub fn write(format: OutputFormat, result: &Table, hide: &dyn Fn(&str) -> bool, out: &mut dyn Write) -> Result<()> {
    let OutputFormat::File(format) = format else { return grid(result, hide, out) };
    kubus::output::write(result, format, out)?;
    Ok(())
}
