//! Format readers: CSV text or a workbook sheet → the header and every data line after it, each with its
//! 1-based line number, empty lines included (so that nothing disappears unaccounted). Lines above the header
//! are titles and are not data.

use crate::{Error, Result, decode};
use calamine::{Data, Reader};
use chrono::NaiveDate;
use kubus_model::{Format, Source};
use std::io::Cursor;

/// One cell as the format delivers it: text from CSV, typed values from workbooks.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text, to be parsed by the field's rules.
    Text(String),
    /// A number cell.
    Number(f64),
    /// A date cell.
    Date(NaiveDate),
}

impl Cell {
    /// The cell as text, as a person would read it.
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.trim().to_owned(),
            Cell::Number(n) => n.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Cell::Text(s) if s.trim().is_empty())
    }
}

/// A data line.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line (CSV) or sheet row.
    pub line: usize,
    /// Cells; empty for an empty line.
    pub cells: Vec<Cell>,
}

impl Row {
    /// Whether every cell is empty.
    pub fn is_empty(&self) -> bool {
        self.cells.iter().all(Cell::is_empty)
    }
}

/// The header and the data lines of one file.
#[derive(Debug)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Row>,
}

/// Reads the file's rows per the source's format; returns the encoding (or format) name and the table.
pub fn read_rows(source: &Source, name: &str, bytes: &[u8]) -> Result<(String, Table)> {
    match source.format() {
        Format::Csv { encoding, delimiter } => {
            let (text, enc) = decode::decode(encoding.as_deref(), name, bytes)?;
            Ok((enc.to_owned(), csv_rows(&text, *delimiter, source.header_line(), name)?))
        }
        Format::Xlsx { sheet } => Ok(("workbook".to_owned(), sheet_rows(bytes, sheet.as_deref(), source.header_line(), name)?)),
    }
}

fn csv_rows(text: &str, delimiter: u8, header_line: usize, name: &str) -> Result<Table> {
    // The csv crate counts a CRLF terminator's LF as part of the next record, which shifts line numbers by
    // one; with plain LF its positions are exact.
    let lf_only;
    let text = if text.contains('\r') {
        lf_only = text.replace("\r\n", "\n");
        lf_only.as_str()
    } else {
        text
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    // The csv crate skips empty lines silently, and its own line counter is not reliable around them; lines
    // are therefore counted here from the records' byte offsets. The gaps between one record's last line and
    // the next record's first line are empty lines, and they must be accounted for.
    let bytes = text.as_bytes();
    let (mut scan_pos, mut scan_line) = (0usize, 1usize);
    let mut next_line = 1usize;
    for record in reader.records() {
        let record = record.map_err(|source| Error::Csv { file: name.to_owned(), source })?;
        let mut start = record.position().map(|p| p.byte() as usize).unwrap_or(scan_pos).max(scan_pos);
        while bytes.get(start) == Some(&b'\n') {
            start += 1;
        }
        let line = scan_line + bytes[scan_pos..start].iter().filter(|&&b| b == b'\n').count();
        (scan_pos, scan_line) = (start, line);
        if header.is_some() {
            rows.extend((next_line..line).map(|l| Row { line: l, cells: Vec::new() }));
        }
        let span = record.iter().map(|f| f.matches('\n').count()).sum::<usize>();
        next_line = line + span + 1;
        if line < header_line {
            continue;
        }
        if header.is_none() {
            if line != header_line {
                break;
            }
            header = Some(record.iter().map(|h| h.trim().to_owned()).collect());
            continue;
        }
        rows.push(Row { line, cells: record.iter().map(|f| Cell::Text(f.to_owned())).collect() });
    }
    let total_lines = text.matches('\n').count() + usize::from(!text.is_empty() && !text.ends_with('\n'));
    let Some(header) = header else {
        return Err(Error::NoHeader { file: name.to_owned(), line: header_line, lines: total_lines });
    };
    rows.extend((next_line..=total_lines).map(|l| Row { line: l, cells: Vec::new() }));
    Ok(Table { header, rows })
}

fn sheet_rows(bytes: &[u8], sheet: Option<&str>, header_line: usize, name: &str) -> Result<Table> {
    let workbook_error = |source| Error::Workbook { file: name.to_owned(), source };
    let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(workbook_error)?;
    let names = workbook.sheet_names();
    let sheet_name = match sheet {
        Some(s) if names.iter().any(|n| n == s) => s.to_owned(),
        Some(s) => return Err(Error::NoSheet { file: name.to_owned(), sheet: s.to_owned(), available: names }),
        None => names.first().cloned().ok_or_else(|| Error::NoSheet { file: name.to_owned(), sheet: "(first)".into(), available: vec![] })?,
    };
    let range = workbook.worksheet_range(&sheet_name).map_err(workbook_error)?;
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let mut header = None;
    let mut rows = Vec::new();
    for (i, cells) in range.rows().enumerate() {
        let line = first_row as usize + i + 1;
        // Columns left of the used range are empty; keep positions aligned with the sheet.
        let cells: Vec<Cell> = std::iter::repeat_n(Cell::Text(String::new()), first_col as usize)
            .chain(cells.iter().map(cell))
            .collect();
        match line.cmp(&header_line) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => header = Some(cells.iter().map(Cell::text).collect::<Vec<_>>()),
            std::cmp::Ordering::Greater => rows.push(Row { line, cells }),
        }
    }
    let lines = first_row as usize + range.height();
    let header = header.ok_or(Error::NoHeader { file: name.to_owned(), line: header_line, lines })?;
    Ok(Table { header, rows })
}

fn cell(data: &Data) -> Cell {
    match data {
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Bool(b) => Cell::Text(b.to_string()),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(d) => Cell::Date(d.date()),
            None => Cell::Text(dt.to_string()),
        },
        Data::Error(e) => Cell::Text(format!("#{e:?}")),
        Data::Empty => Cell::Text(String::new()),
    }
}

/// Checks that the header has no duplicates, that every column the mapping reads is there, and that every
/// other column is dropped on purpose.
pub fn check_header(source: &Source, name: &str, header: &[String]) -> Result<()> {
    for (i, h) in header.iter().enumerate() {
        if !h.is_empty() && header[..i].contains(h) {
            return Err(Error::DuplicateColumn { file: name.to_owned(), column: h.clone() });
        }
    }
    let used: Vec<&str> = source.fields().iter().flat_map(|f| f.input_columns()).collect();
    for column in &used {
        if !header.iter().any(|h| h == column) {
            return Err(Error::MissingColumn {
                file: name.to_owned(),
                column: (*column).to_owned(),
                closest: kubus_model::closest(column, header.iter().map(String::as_str)),
            });
        }
    }
    for h in header {
        if !h.is_empty() && !used.contains(&h.as_str()) && !source.dropped().contains(h) {
            return Err(Error::UnmappedColumn { file: name.to_owned(), column: h.clone(), source_name: source.name().to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lines_and_titles_are_accounted_for() {
        let text = "Title\n\na;b\n1;2\n\n\"x\ny\";3\n;\n4;5\n\n";
        let table = csv_rows(text, b';', 3, "t.csv").unwrap();
        assert_eq!(table.rows.len(), 6);
        assert_eq!(table.header, ["a", "b"]);
        let lines: Vec<(usize, usize)> = table.rows.iter().map(|r| (r.line, r.cells.len())).collect();
        // line 5 empty, 6–7 a quoted two-line record, 8 only a delimiter, 9 data, 10 empty.
        assert_eq!(lines, [(4, 2), (5, 0), (6, 2), (8, 2), (9, 2), (10, 0)]);
        assert!(table.rows[3].is_empty());
    }

    #[test]
    fn crlf_lines_are_counted_like_lf_lines() {
        let table = csv_rows("a;b\r\n1;2\r\n\r\n3;4\r\n", b';', 1, "t.csv").unwrap();
        let lines: Vec<usize> = table.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 4]);
    }

    #[test]
    fn missing_header_is_an_error() {
        let err = csv_rows("a;b\n", b';', 4, "t.csv").unwrap_err();
        assert!(matches!(err, Error::NoHeader { line: 4, lines: 1, .. }), "{err}");
    }
}
