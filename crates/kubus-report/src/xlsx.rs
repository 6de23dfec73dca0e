//! XLSX: one sheet named after the table, a bold shaded header of human headings, numbers as numbers (integers
//! with thousands separators, decimals with two places), total rows in bold, the header row frozen; the table's
//! notes (how it is protected, what a forecast is) on a sheet `Hinweise` of their own, so that the table's sheet
//! stays a table.

use crate::{Result, Table};
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook, Worksheet};

/// The workbook's bytes.
pub(crate) fn workbook(table: &Table) -> Result<Vec<u8>> {
    let mut workbook = new_workbook()?;
    add_sheet(&mut workbook, table, &table.title)?;
    if !table.notes.is_empty() {
        let sheet = workbook.add_worksheet();
        sheet.set_name("Hinweise")?;
        for (row, note) in table.notes.iter().enumerate() {
            sheet.write_string(row as u32, 0, note)?;
        }
        sheet.set_column_width(0, 120)?;
    }
    Ok(workbook.save_to_buffer()?)
}

/// A workbook whose bytes depend on its content only (a fixed creation time), so that the same data gives the
/// same file.
pub(crate) fn new_workbook() -> Result<Workbook> {
    let mut workbook = Workbook::new();
    let fixed = rust_xlsxwriter::ExcelDateTime::from_ymd(2000, 1, 1)?;
    workbook.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&fixed));
    Ok(workbook)
}

/// Adds one sheet with the table.
pub(crate) fn add_sheet(workbook: &mut Workbook, table: &Table, name: &str) -> Result<()> {
    let sheet = workbook.add_worksheet();
    sheet.set_name(sheet_name(name))?;
    let header =
        Format::new().set_bold().set_background_color(Color::RGB(0xD9E1F2)).set_border_bottom(FormatBorder::Thin);
    // Status columns are not written: a suppressed or zero cell shows its symbol in the measure's column.
    let shown: Vec<usize> = (0..table.columns.len()).filter(|&i| !table.is_status(i)).collect();
    for (col, &i) in shown.iter().enumerate() {
        sheet.write_string_with_format(0, col as u16, &table.columns[i].heading, &header)?;
    }
    let status = table.status_columns();
    let mut row = 1u32;
    for batch in &table.batches {
        let columns = batch.columns().iter().map(prepare).collect::<Result<Vec<_>>>()?;
        let symbols: Vec<Option<ArrayRef>> = status
            .iter()
            .map(|s| s.map(|s| cast(batch.column(s), &DataType::Utf8)).transpose())
            .collect::<Result<_, _>>()?;
        for r in 0..batch.num_rows() {
            let bold = table.is_total(batch, r);
            write_row(sheet, &columns, &shown, &symbols, r, row, bold)?;
            row += 1;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    Ok(())
}

/// A column converted once per batch to the cell type it is written as.
enum Cells {
    Integer(ArrayRef),
    Decimal(ArrayRef),
    Boolean(ArrayRef),
    Text(ArrayRef),
}

fn prepare(array: &ArrayRef) -> Result<Cells> {
    Ok(match array.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Cells::Integer(cast(array, &DataType::Int64)?),
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            Cells::Decimal(cast(array, &DataType::Float64)?)
        }
        DataType::Boolean => Cells::Boolean(array.clone()),
        _ => Cells::Text(cast(array, &DataType::Utf8)?),
    })
}

fn write_row(
    sheet: &mut Worksheet,
    columns: &[Cells],
    shown: &[usize],
    symbols: &[Option<ArrayRef>],
    r: usize,
    row: u32,
    bold: bool,
) -> Result<()> {
    let with = |f: Format| if bold { f.set_bold() } else { f };
    let (text, integer, decimal) = (
        with(Format::new()),
        with(Format::new().set_num_format("#,##0")),
        with(Format::new().set_num_format("#,##0.00")),
    );
    let right = with(Format::new().set_align(rust_xlsxwriter::FormatAlign::Right));
    for (col, &i) in shown.iter().enumerate() {
        let (col, cells) = (col as u16, &columns[i]);
        if let Some(symbol) = symbols[i].as_ref().filter(|s| !s.is_null(r)) {
            sheet.write_string_with_format(row, col, symbol.as_string::<i32>().value(r), &right)?;
            continue;
        }
        let array = match cells {
            Cells::Integer(a) | Cells::Decimal(a) | Cells::Boolean(a) | Cells::Text(a) => a,
        };
        if array.is_null(r) {
            sheet.write_blank(row, col, &text)?;
            continue;
        }
        match cells {
            Cells::Integer(a) => {
                sheet.write_number_with_format(row, col, a.as_primitive::<Int64Type>().value(r) as f64, &integer)?
            }
            Cells::Decimal(a) => {
                sheet.write_number_with_format(row, col, a.as_primitive::<Float64Type>().value(r), &decimal)?
            }
            Cells::Boolean(a) => sheet.write_boolean_with_format(row, col, a.as_boolean().value(r), &text)?,
            Cells::Text(a) => sheet.write_string_with_format(row, col, a.as_string::<i32>().value(r), &text)?,
        };
    }
    Ok(())
}

/// Excel's sheet names: at most 31 characters, none of `[]:*?/\`.
pub(crate) fn sheet_name(title: &str) -> String {
    let clean: String = title.chars().map(|c| if "[]:*?/\\".contains(c) { '-' } else { c }).take(31).collect();
    if clean.trim().is_empty() { "Ergebnis".to_owned() } else { clean }
}
