//! Office exports (CSV, XLSX, XLS, ODS) → normalised Arrow batches of a cube's facts, plus every rejected line
//! with its reason and every skipped line with the reason for skipping it. Decodes text (declared or detected encoding), maps columns and values to members, derives ages,
//! pseudonymises identity fields and drops identifying columns. Knows the model, not the warehouse or queries:
//! it takes bytes and returns batches; reading files and committing them happen elsewhere.

mod blocks;
mod convert;
mod decode;
mod error;
#[cfg(test)]
mod fuzz;
mod header;
mod lines;
mod outcome;
mod pdf;
mod pseudonym;
mod readers;
mod rows;

pub use convert::{STATUS_COLUMN, fact_schema};
pub use error::{Error, Result};
pub use outcome::{BATCH_ROWS, Category, FileFacts, Progress, Rejection, Skip, Skipped, TotalLines};
pub use pseudonym::PseudonymKey;
pub use readers::{Readers, RecordReader};
pub use rows::{Cell, Row};

use datafusion::arrow::record_batch::RecordBatch;
use kubus_model::{Model, Source};
use lines::{Lines, Rules, data_lines, finish, header_lines};
use std::collections::BTreeMap;

/// What reading a file of a source takes besides the file.
#[derive(Clone, Copy)]
pub struct Reading<'r> {
    /// The model the source belongs to.
    pub model: &'r Model,
    /// The source whose export the file is.
    pub source: &'r Source,
    /// The key identity fields are pseudonymised with.
    pub key: &'r PseudonymKey,
    /// The readers of custom formats (see [`RecordReader`]).
    pub readers: &'r Readers,
}

/// Reads one export from its bytes and keeps its facts in [`FileFacts::batches`]. `name` labels the file in
/// rejections and errors.
pub fn read_file(reading: Reading<'_>, name: &str, bytes: &[u8]) -> Result<FileFacts> {
    let mut batches = Vec::new();
    let mut facts = read_file_to(reading, name, Box::new(bytes), &mut |_| {}, &mut |b| {
        batches.push(b);
        Ok(())
    })?;
    facts.batches = batches;
    Ok(facts)
}

/// Reads one export from `input`, handing its facts to `sink` in batches of about [`BATCH_ROWS`] and reporting
/// progress every 65 536 lines. CSV streams through in bounded memory — a large file in an encoding where a line
/// break is always one byte is converted in blocks on every core ([`blocks`]); a workbook, a PDF and a custom
/// format are read whole. A sink error stops the file.
pub fn read_file_to<'a>(
    reading: Reading<'_>,
    name: &str,
    input: Box<dyn std::io::Read + 'a>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    let source = reading.source;
    let rules = Rules::new(source);
    let encoding = match source.format() {
        kubus_model::Format::Csv { encoding, .. } => encoding,
        kubus_model::Format::Pdf { record_column } => {
            return read_pdf(reading, name, &rules, input, record_column.as_deref(), progress, sink);
        }
        kubus_model::Format::Custom { reader, options } => {
            let records = reading.readers.records(reader, name, &read_all(name, input)?, options)?;
            let rows = rows::Rows::records(reader.clone(), records);
            return sequential(reading, name, &rules, rows, progress, sink);
        }
        kubus_model::Format::Xlsx { .. } => {
            return sequential(reading, name, &rules, rows::Rows::open(source, name, input)?, progress, sink);
        }
    };
    // A text file's last line ends with a line break; one that does not may have been cut short (a copy broken
    // off, a truncated download), even where its fields still fit the header: the file is read, and that noted.
    let last = std::rc::Rc::new(std::cell::Cell::new(None));
    let mut input: Box<dyn std::io::Read + 'a> = Box::new(LastByte { inner: input, last: last.clone() });
    let head = rows::CsvHead::read(encoding.as_deref(), name, &mut input)?;
    // A byte order mark decides the encoding over the declaration: a byte that is not in it is then no reason
    // to declare another encoding, which would change nothing.
    let bom = head.bom.then_some(head.encoding.name());
    let told = |e: Error| match (bom, e) {
        (Some(bom), Error::Encoding { file, problem, .. }) => {
            Error::ByteOrderMark { file, bom: bom.to_owned(), problem }
        }
        (_, e) => e,
    };
    let declared = encoding.as_deref().and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()));
    let overridden = declared.filter(|d| head.bom && *d != head.encoding).map(|d| {
        format!(
            "{name}: the file begins with a {} byte order mark, which decides its encoding: it was read as {0}, not as the declared {}",
            head.encoding.name(),
            d.name()
        )
    });
    let mut facts = read_csv_body(reading, name, &rules, head, input, progress, sink).map_err(told)?;
    facts.warnings.extend(overridden);
    if last.get().is_some_and(|b| b != b'\n') {
        facts.warnings.push(format!(
            "{name}: the last line ({}) has no line break: check that the file is complete, not cut short",
            facts.lines
        ));
    }
    Ok(facts)
}

/// All the bytes of `input`.
fn read_all(name: &str, mut input: Box<dyn std::io::Read + '_>) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|source| Error::Read { file: name.to_owned(), source })?;
    Ok(bytes)
}

/// A reader that remembers the last byte it read.
struct LastByte<R> {
    inner: R,
    last: std::rc::Rc<std::cell::Cell<Option<u8>>>,
}

impl<R: std::io::Read> std::io::Read for LastByte<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last.set(Some(buf[n - 1]));
        }
        Ok(n)
    }
}

/// Reads a CSV export's records after its head (see [`read_file_to`]).
fn read_csv_body<'a>(
    reading: Reading<'_>,
    name: &str,
    rules: &Rules,
    head: rows::CsvHead,
    mut input: Box<dyn std::io::Read + 'a>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    use std::io::Read as _;
    let Reading { model, source, key, .. } = reading;
    let kubus_model::Format::Csv { delimiter, .. } = source.format() else {
        unreachable!("called for CSV sources only")
    };
    let workers = blocks::workers();
    if !head.complete && workers > 1 && rows::byte_wise(head.encoding) {
        let csv = blocks::Csv {
            model,
            source,
            name,
            rules,
            key,
            encoding: head.encoding,
            delimiter: *delimiter,
            block_bytes: blocks::BLOCK_BYTES,
        };
        if let Some(facts) = csv.read(&head.bytes, &mut input, workers, progress, sink)? {
            return Ok(facts);
        }
    }
    let rows =
        rows::Rows::csv(Box::new(std::io::Cursor::new(head.bytes).chain(input)), head.encoding, *delimiter, name, 1);
    sequential(reading, name, rules, rows, progress, sink)
}

/// Reads the table of a PDF (see [`pdf`]): the lines around it are accounted for by the reader, its rows by the
/// source's rules as a sheet's are. A rejected line's reason tells its page and its line on the page.
fn read_pdf<'a>(
    reading: Reading<'_>,
    name: &str,
    rules: &Rules,
    input: Box<dyn std::io::Read + 'a>,
    record_column: Option<&str>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    let Reading { model, source, key, .. } = reading;
    let bytes = read_all(name, input)?;
    let mut columns: Vec<String> = source
        .fields()
        .iter()
        .flat_map(|f| f.inputs())
        .flat_map(|i| i.leaves())
        .filter_map(|i| match i {
            kubus_model::Input::Column(c) => Some(header::header_key(c)),
            _ => None,
        })
        .chain(record_column.map(header::header_key))
        .collect();
    columns.sort();
    columns.dedup();
    let mut known: Vec<String> = source.dropped().iter().map(|d| header::header_key(d)).collect();
    known.extend(columns.iter().cloned());
    let skipped = |row: &rows::Row| !rules.is_data(row, &mut Lines::default());
    let mut table = pdf::Table::read(name, &bytes, &columns, &known, record_column, &skipped)?;
    let mut lines = Lines::default();
    lines.tally.lines += table.skipped.lines();
    lines.tally.skipped.absorb(&table.skipped);
    let mut header = header::Header::new(source, name, std::mem::take(&mut table.header))?;
    let mut converter = convert::Converter::new(model, source, name, &mut header, &BTreeMap::new(), key)?;
    let mut rows = rows::Rows::records("PDF".into(), std::mem::take(&mut table.rows));
    let mut facts = 0;
    data_lines(rules, &mut rows, &mut lines, &mut converter, &mut facts, progress, sink)?;
    let mut facts = finish(name, converter, lines, facts, rows.encoding, sink)?;
    for r in &mut facts.rejected {
        let (page, line) = table.place(r.line);
        r.reason = format!("page {page}, line {line}: {}", r.reason);
    }
    Ok(facts)
}

/// Reads a file's rows one after the other: titles, header, then every data line.
fn sequential(
    reading: Reading<'_>,
    name: &str,
    rules: &Rules,
    mut rows: rows::Rows<'_>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    let Reading { model, source, key, .. } = reading;
    let mut lines = Lines::default();
    let Some((titles, header_rows)) = header_lines(source, &mut rows, &mut lines.tally)? else {
        let line = *source.layout().header_lines().last().expect("validated: at least one header line");
        return Err(Error::NoHeader { file: name.to_owned(), line, lines: lines.tally.lines });
    };
    let mut header = header::Header::new(source, name, header::assemble(&header_rows, &rows.merges))?;
    let mut converter = convert::Converter::new(model, source, name, &mut header, &titles, key)?;
    let mut facts = 0;
    data_lines(rules, &mut rows, &mut lines, &mut converter, &mut facts, progress, sink)?;
    finish(name, converter, lines, facts, rows.encoding, sink)
}
