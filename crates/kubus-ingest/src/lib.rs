//! Office exports (CSV, XLSX, XLS, ODS) → normalised Arrow batches of a cube's facts, plus every rejected line
//! with its reason and every skipped line with the reason for skipping it. Decodes text (declared or detected encoding), maps columns and values to members, derives ages,
//! pseudonymises identity fields and drops identifying columns. Knows the model, not the warehouse or queries:
//! it takes bytes and returns batches; reading files and committing them happen elsewhere.

mod blocks;
mod convert;
mod decode;
#[cfg(test)]
mod fuzz;
mod header;
mod pdf;
mod pseudonym;
mod rows;

pub use convert::{STATUS_COLUMN, fact_schema};
pub use pseudonym::PseudonymKey;

use datafusion::arrow::record_batch::RecordBatch;
use kubus_model::{Model, Source};
use regex::Regex;
use std::collections::BTreeMap;

/// Errors that stop a whole file (a bad row never does: it is rejected and reported).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not fit the declared encoding.
    #[error(
        "{file}: the source declares encoding {declared}, but the file {problem}; set `encoding = \"{suggested}\"` (or \"auto\") in the source's [format]"
    )]
    Encoding { file: String, declared: String, problem: String, suggested: String },
    /// The file's byte order mark tells an encoding the file does not keep to.
    #[error(
        "{file}: the file begins with a {bom} byte order mark, which decides its encoding whatever the source declares, \
         but it {problem}: it is damaged or mislabelled; ask for a new export, or remove the byte order mark (its \
         first bytes) if the rest is in the declared encoding"
    )]
    ByteOrderMark { file: String, bom: String, problem: String },
    /// The text contains U+FFFD: its characters were already destroyed before kubus saw it.
    #[error(
        "{file}:{line}: the file contains replacement characters (U+FFFD): its characters were destroyed before export; ask the office for a new export"
    )]
    DestroyedCharacters { file: String, line: usize },
    /// The header line was not found.
    #[error("{file}: no header at line {line} (the file has {lines} lines); check `header_line` in the source")]
    NoHeader { file: String, line: usize, lines: usize },
    /// A column that the mapping reads is not in the header.
    #[error("{file}: column '{column}' is missing from the header{}", kubus_model::closest_suffix(.closest))]
    MissingColumn { file: String, column: String, closest: Vec<String> },
    /// A header column is neither mapped nor dropped; it could carry identifying data, so kubus refuses to guess.
    #[error(
        "{file}: column '{column}' is neither mapped nor dropped; add it to `drop` in source {source_name} or map it"
    )]
    UnmappedColumn { file: String, column: String, source_name: String },
    /// The unpivot pattern matches no column of the header.
    #[error("{file}: the unpivot pattern '{pattern}' matches none of the columns: {}", .columns.join(" | "))]
    NoWideColumns { file: String, pattern: String, columns: Vec<String> },
    /// An input of the mapping cannot be found in this file.
    #[error("{file}: input {input}: {problem}")]
    BadInput { file: String, input: String, problem: String },
    /// The same column name appears twice in the header.
    #[error("{file}: column '{column}' appears twice in the header")]
    DuplicateColumn { file: String, column: String },
    /// The input could not be read.
    #[error("{file}: cannot read")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The CSV could not be parsed at all.
    #[error("{file}: cannot read CSV")]
    Csv {
        file: String,
        #[source]
        source: csv::Error,
    },
    /// The workbook could not be opened or read.
    #[error("{file}: cannot read workbook")]
    Workbook {
        file: String,
        #[source]
        source: calamine::Error,
    },
    /// The workbook reader failed on the file's contents.
    #[error(
        "{file}: the workbook is damaged and cannot be read; save it again from the spreadsheet program or ask for a new export"
    )]
    DamagedWorkbook { file: String },
    /// The PDF cannot be read: not a PDF, cut short, encrypted, or damaged inside.
    #[error("{file}: the PDF cannot be read: {problem}; ask for the original file")]
    DamagedPdf { file: String, problem: String },
    /// A page of the PDF shows something but has no text: a scan, which kubus does not read by guessing.
    #[error(
        "{file}: the PDF has a page without a text layer (a scanned image); nothing was read. Ask for the notice as \
         the PDF the office's software writes, or have it recognised (OCR) and checked before ingesting"
    )]
    PdfWithoutText { file: String },
    /// No line of the PDF holds the columns the mapping reads.
    #[error("{file}: no line of the PDF is a header with the columns {}; check the source's fields", .columns.join(", "))]
    NoPdfTable { file: String, columns: Vec<String> },
    /// The sheet named by the source does not exist.
    #[error("{file}: no sheet '{sheet}'; sheets: {}", .available.join(", "))]
    NoSheet { file: String, sheet: String, available: Vec<String> },
    /// The source's cube or a dimension could not be found (an internal inconsistency of the model).
    #[error(transparent)]
    Model(#[from] kubus_model::Error),
    /// The facts could not be handed on (e.g. the spill file could not be written).
    #[error("{file}: cannot store the facts")]
    Sink {
        file: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Building Arrow arrays failed (an internal bug).
    #[error("building facts failed")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

/// Result type of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A line that did not become a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The input file's name.
    pub file: String,
    /// 1-based line (CSV) or row (sheet).
    pub line: usize,
    /// The input column at fault (empty for whole-line problems).
    pub column: String,
    /// The offending value.
    pub value: String,
    /// What kind of problem it is.
    pub problem: Category,
    /// The full explanation.
    pub reason: String,
}

/// The kind of problem that rejects a line, by the short name the quarantine and the ingest report give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// A field the mapping needs is empty.
    MissingValue,
    /// Not a date in the source's formats, or outside the time dimension.
    InvalidDate,
    /// Not a number in the source's format.
    InvalidNumber,
    /// No member of the dimension has this key, label or alias.
    UnknownMember,
    /// A value the mapping does not expect (a constant column with another value).
    UnexpectedValue,
    /// More or fewer fields than the header.
    WrongFieldCount,
    /// No age in years (negative, too large, or a birth date after the reference day).
    InvalidAge,
    /// A total line whose parts do not add up to it (within the source's tolerance).
    TotalMismatch,
    /// A balance line that its rule does not give.
    BalanceMismatch,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 9] = [
        Category::MissingValue,
        Category::InvalidDate,
        Category::InvalidNumber,
        Category::UnknownMember,
        Category::UnexpectedValue,
        Category::WrongFieldCount,
        Category::InvalidAge,
        Category::TotalMismatch,
        Category::BalanceMismatch,
    ];

    /// Its name in the quarantine and the ingest report.
    pub fn name(self) -> &'static str {
        match self {
            Category::MissingValue => "missing value",
            Category::InvalidDate => "invalid date",
            Category::InvalidNumber => "invalid number",
            Category::UnknownMember => "unknown member",
            Category::UnexpectedValue => "unexpected value",
            Category::WrongFieldCount => "wrong field count",
            Category::InvalidAge => "invalid age",
            Category::TotalMismatch => "total mismatch",
            Category::BalanceMismatch => "balance mismatch",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why lines were skipped: titles, header lines, checked totals, footers, empty lines, and the source's own
/// skip rules.
pub mod skip {
    /// Lines above the header.
    pub const TITLE: &str = "title";
    /// The header lines (and lines between them).
    pub const HEADER: &str = "header";
    /// A line of column numbers below the header.
    pub const COLUMN_NUMBERS: &str = "column numbers";
    /// Total lines whose totals matched the detail facts.
    pub const TOTAL: &str = "total (checked)";
    /// Balance lines that matched their terms.
    pub const BALANCE: &str = "balance (checked)";
    /// The footer: notes, footnotes, copyright.
    pub const FOOTER: &str = "footer";
    /// Lines without any value.
    pub const EMPTY: &str = "empty line";
}

/// A file's total lines (lines of totals only, checked against the sums of their detail facts, and balance lines,
/// checked against their terms) by how they matched: exactly, only within the source's `total_tolerance`, or not
/// at all (rejected: `total mismatch`, `balance mismatch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TotalLines {
    /// Every total exactly the sum.
    pub exact: usize,
    /// Within the tolerance, not exactly.
    pub within: usize,
    /// Not within the tolerance.
    pub mismatched: usize,
}

impl TotalLines {
    /// All of them.
    pub fn checked(&self) -> usize {
        self.exact + self.within + self.mismatched
    }

    /// Adds another file's.
    pub fn add(&mut self, other: TotalLines) {
        self.exact += other.exact;
        self.within += other.within;
        self.mismatched += other.mismatched;
    }
}

/// The outcome of reading one file. Every physical line of the file is counted exactly once:
/// `lines = accepted_lines + rejected_lines + Σ skipped`.
#[derive(Debug)]
pub struct FileFacts {
    /// The file's name as given.
    pub file: String,
    /// The encoding the text was decoded with (CSV), or the workbook format.
    pub encoding: String,
    /// Physical lines (CSV) or sheet rows in the file.
    pub lines: usize,
    /// Lines that became facts.
    pub accepted_lines: usize,
    /// Lines that were rejected (a quoted line break makes one rejection cover several lines).
    pub rejected_lines: usize,
    /// Lines skipped on purpose, by reason, in the order the reasons first occurred.
    pub skipped: Vec<(String, usize)>,
    /// Number of accepted facts; a wide line gives one fact per unpivoted cell.
    pub facts: usize,
    /// The accepted facts (schema: [`fact_schema`]) when read by [`read_file`]; [`read_file_to`] hands them to
    /// its sink instead and leaves this empty.
    pub batches: Vec<RecordBatch>,
    /// The rejected lines.
    pub rejected: Vec<Rejection>,
    /// Totals compared with the sums of the detail facts.
    pub totals_compared: usize,
    /// The file's total lines by how they matched.
    pub total_lines: TotalLines,
    /// Checks that failed without rejecting a line, and totals that could not be checked.
    pub warnings: Vec<String>,
}

impl FileFacts {
    /// Lines skipped for any reason.
    pub fn skipped_lines(&self) -> usize {
        self.skipped.iter().map(|(_, n)| n).sum()
    }
}

#[derive(Default)]
struct Tally {
    lines: usize,
    accepted: usize,
    rejected: usize,
    skipped: Vec<(String, usize)>,
}

impl Tally {
    fn skip(&mut self, reason: &str, lines: usize) {
        match self.skipped.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += lines,
            None => self.skipped.push((reason.to_owned(), lines)),
        }
    }

    /// Adds the tally of the lines that follow.
    fn absorb(&mut self, later: Tally) {
        self.lines += later.lines;
        self.accepted += later.accepted;
        self.rejected += later.rejected;
        for (reason, n) in later.skipped {
            self.skip(&reason, n);
        }
    }
}

/// The source's rules for the lines below the header: the line of column numbers, the footer, skip rules.
struct Rules<'s> {
    column_numbers: Option<usize>,
    footer: Option<Regex>,
    /// Pattern, whether any cell may match (else the first non-empty one), reason.
    skips: Vec<(Regex, bool, &'s str)>,
}

/// The data lines read so far: their tally, the rejected ones, and whether the footer has begun.
#[derive(Default)]
struct Lines {
    tally: Tally,
    rejected: Vec<Rejection>,
    in_footer: bool,
}

impl<'s> Rules<'s> {
    fn new(source: &'s Source) -> Rules<'s> {
        let layout = source.layout();
        Rules {
            column_numbers: layout.column_numbers_line(),
            footer: layout.footer().map(|f| Regex::new(f).expect("validated by the model")),
            skips: layout
                .skips()
                .iter()
                .map(|s| (Regex::new(&s.pattern).expect("validated by the model"), s.any_cell, s.reason.as_str()))
                .collect(),
        }
    }

    /// Accounts for one line below the header: skipped (with its reason), a total, facts, or rejected.
    fn line(&self, row: &rows::Row, lines: &mut Lines, converter: &mut convert::Converter<'_>) {
        if self.is_data(row, lines) {
            lines.count(row, converter.push(row));
        }
    }

    /// Counts one line below the header and skips it (with its reason), unless it is a data line to convert.
    fn is_data(&self, row: &rows::Row, lines: &mut Lines) -> bool {
        let tally = &mut lines.tally;
        tally.lines += row.span;
        let first = if self.footer.is_some() || !self.skips.is_empty() { row.first_text() } else { String::new() };
        if Some(row.line) == self.column_numbers {
            tally.skip(skip::COLUMN_NUMBERS, row.span);
        } else if lines.in_footer || self.footer.as_ref().is_some_and(|f| !first.is_empty() && f.is_match(&first)) {
            lines.in_footer = true;
            tally.skip(skip::FOOTER, row.span);
        } else if row.is_empty() {
            tally.skip(skip::EMPTY, row.span);
        } else if let Some((_, _, reason)) = self.skips.iter().find(|(re, any, _)| {
            if *any { row.cells.iter().any(|c| re.is_match(&c.text())) } else { re.is_match(&first) }
        }) {
            tally.skip(reason, row.span);
        } else {
            return true;
        }
        false
    }
}

impl Lines {
    /// Accounts for what became of a data line.
    fn count(&mut self, row: &rows::Row, outcome: convert::Outcome) {
        match outcome {
            convert::Outcome::Facts => self.tally.accepted += row.span,
            convert::Outcome::Total => {}
            convert::Outcome::Rejected(r) => {
                self.tally.rejected += row.span;
                self.rejected.push(r);
            }
        }
    }
}

/// Reads the lines above and of the header. `None` when the rows end before the header's last line (in a
/// stretch of the file: the header lies beyond it).
#[allow(clippy::type_complexity)]
fn header_lines(
    source: &Source,
    rows: &mut rows::Rows<'_>,
    tally: &mut Tally,
) -> Result<Option<(BTreeMap<usize, Vec<rows::Cell>>, Vec<(usize, Vec<rows::Cell>)>)>> {
    let header_lines = source.layout().header_lines();
    let (first_header, last_header) =
        (header_lines[0], *header_lines.last().expect("validated: at least one header line"));
    let mut titles: BTreeMap<usize, Vec<rows::Cell>> = BTreeMap::new();
    let mut header_rows: Vec<(usize, Vec<rows::Cell>)> = Vec::new();
    for row in rows.by_ref() {
        let row = row?;
        tally.lines += row.span;
        if row.line < first_header {
            titles.insert(row.line, row.cells);
            tally.skip(skip::TITLE, row.span);
        } else {
            if header_lines.contains(&row.line) {
                header_rows.push((row.line, row.cells));
            }
            tally.skip(skip::HEADER, row.span);
            if row.line >= last_header {
                break;
            }
        }
    }
    Ok((header_rows.last().map(|(l, _)| *l) == Some(last_header)).then_some((titles, header_rows)))
}

/// How far the reading of one file has come.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Lines read so far.
    pub lines: usize,
    /// Bytes of text read so far (CSV; 0 for workbooks).
    pub bytes: u64,
}

/// Facts are handed on in batches of this many rows, so that a file's facts never need to be in memory at once.
pub const BATCH_ROWS: usize = 65_536;

/// Reads one export of `source` from its bytes and keeps its facts in [`FileFacts::batches`]. `name` labels the
/// file in rejections and errors.
pub fn read_file(model: &Model, source: &Source, name: &str, bytes: &[u8], key: &PseudonymKey) -> Result<FileFacts> {
    let mut batches = Vec::new();
    let mut facts = read_file_to(model, source, name, Box::new(bytes), key, &mut |_| {}, &mut |b| {
        batches.push(b);
        Ok(())
    })?;
    facts.batches = batches;
    Ok(facts)
}

/// Reads one export of `source` from `input`, handing its facts to `sink` in batches of at most [`BATCH_ROWS`]
/// and reporting progress every 65 536 lines. CSV streams through in bounded memory — a large file in an
/// encoding where a line break is always one byte is converted in blocks on every core ([`blocks`]); a workbook
/// is read whole. A sink error stops the file.
pub fn read_file_to<'a>(
    model: &Model,
    source: &Source,
    name: &str,
    input: Box<dyn std::io::Read + 'a>,
    key: &PseudonymKey,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    let rules = Rules::new(source);
    if let kubus_model::Format::Pdf { record_column } = source.format() {
        return read_pdf(model, source, name, &rules, input, record_column.as_deref(), key, progress, sink);
    }
    let kubus_model::Format::Csv { encoding, .. } = source.format() else {
        return sequential(model, source, name, &rules, rows::Rows::open(source, name, input)?, key, progress, sink);
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
    let mut facts = read_csv_body(model, source, name, &rules, head, input, key, progress, sink).map_err(told)?;
    facts.warnings.extend(overridden);
    if last.get().is_some_and(|b| b != b'\n') {
        facts.warnings.push(format!(
            "{name}: the last line ({}) has no line break: check that the file is complete, not cut short",
            facts.lines
        ));
    }
    Ok(facts)
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
#[allow(clippy::too_many_arguments)]
fn read_csv_body<'a>(
    model: &Model,
    source: &Source,
    name: &str,
    rules: &Rules<'_>,
    head: rows::CsvHead,
    mut input: Box<dyn std::io::Read + 'a>,
    key: &PseudonymKey,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    use std::io::Read as _;
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
    sequential(model, source, name, rules, rows, key, progress, sink)
}

/// Reads the table of a PDF (see [`pdf`]): the lines around it are accounted for by the reader, its rows by the
/// source's rules as a sheet's are. A rejected line's reason tells its page and its line on the page.
#[allow(clippy::too_many_arguments)]
fn read_pdf<'a>(
    model: &Model,
    source: &Source,
    name: &str,
    rules: &Rules<'_>,
    mut input: Box<dyn std::io::Read + 'a>,
    record_column: Option<&str>,
    key: &PseudonymKey,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|source| Error::Read { file: name.to_owned(), source })?;
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
    for (reason, n) in &table.skipped {
        lines.tally.lines += n;
        lines.tally.skip(reason, *n);
    }
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
#[allow(clippy::too_many_arguments)]
fn sequential(
    model: &Model,
    source: &Source,
    name: &str,
    rules: &Rules<'_>,
    mut rows: rows::Rows<'_>,
    key: &PseudonymKey,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
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

/// Reads the rest of the rows as lines below the header, handing on facts in batches of [`BATCH_ROWS`].
fn data_lines(
    rules: &Rules<'_>,
    rows: &mut rows::Rows<'_>,
    lines: &mut Lines,
    converter: &mut convert::Converter<'_>,
    facts: &mut usize,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    while let Some(row) = rows.next() {
        let row = row?;
        rules.line(&row, lines, converter);
        if lines.tally.lines % 65_536 < row.span {
            progress(Progress { lines: lines.tally.lines, bytes: rows::Rows::position(rows) });
        }
        if let Some(batch) = converter.full_batch(BATCH_ROWS)? {
            *facts += batch.num_rows();
            sink(batch)?;
        }
        rows.recycle(row);
    }
    Ok(())
}

/// Checks the totals, hands on the last facts and accounts for the file.
fn finish(
    name: &str,
    converter: convert::Converter<'_>,
    mut lines: Lines,
    mut facts: usize,
    encoding: String,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<FileFacts> {
    let (last, checked) = converter.finish()?;
    if last.num_rows() > 0 {
        facts += last.num_rows();
        sink(last)?;
    }
    for (_, span) in &checked.matched {
        lines.tally.skip(skip::TOTAL, *span);
    }
    for (_, span) in &checked.balanced {
        lines.tally.skip(skip::BALANCE, *span);
    }
    let total_lines = TotalLines {
        exact: checked.matched.len() + checked.balanced.len() - checked.within,
        within: checked.within,
        mismatched: checked.mismatched.len(),
    };
    for (r, span) in checked.mismatched {
        lines.tally.rejected += span;
        lines.rejected.push(r);
    }
    lines.rejected.sort_by_key(|r| r.line);
    Ok(FileFacts {
        file: name.to_owned(),
        encoding,
        lines: lines.tally.lines,
        accepted_lines: lines.tally.accepted,
        rejected_lines: lines.tally.rejected,
        skipped: lines.tally.skipped,
        facts,
        batches: Vec::new(),
        rejected: lines.rejected,
        totals_compared: checked.compared,
        total_lines,
        warnings: checked.warnings,
    })
}
