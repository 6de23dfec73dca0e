//! Format readers: CSV text or a workbook sheet (xlsx, xls, ods) → every record with its 1-based line number and
//! the physical lines it covers, empty lines included, so that nothing disappears unaccounted. Readers know
//! nothing of headers, titles or fields; the layout decides what each line is.

use crate::decode::{self, line_breaks};
use crate::error::{Error, Result};
use calamine::{Data, Reader};
use chrono::NaiveDate;
use encoding_rs::{Encoding, UTF_8};
use kubus_model::{Format, Source};
use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{Cursor, Read};
use std::rc::Rc;

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
        self.trimmed().into_owned()
    }

    /// The cell as text, as a person would read it, borrowed where it already is text.
    pub fn trimmed(&self) -> Cow<'_, str> {
        match self {
            Cell::Text(s) => Cow::Borrowed(s.trim()),
            Cell::Number(n) => Cow::Owned(n.to_string()),
            Cell::Date(d) => Cow::Owned(d.format("%Y-%m-%d").to_string()),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Cell::Text(s) if s.trim().is_empty())
    }
}

/// One record of the file: a CSV record (which may span several physical lines when a quoted field holds line
/// breaks) or a sheet row.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based first line (CSV) or sheet row.
    pub line: usize,
    /// Physical lines it covers (1 except for quoted line breaks).
    pub span: usize,
    /// Cells; empty for an empty line.
    pub cells: Vec<Cell>,
}

impl Row {
    /// Whether every cell is empty.
    pub fn is_empty(&self) -> bool {
        self.cells.iter().all(Cell::is_empty)
    }

    /// The text of the first non-empty cell.
    pub fn first_text(&self) -> String {
        self.cells.iter().map(Cell::text).find(|t| !t.is_empty()).unwrap_or_default()
    }
}

/// A merged cell range of a sheet (1-based, inclusive).
#[derive(Debug, Clone, Copy)]
pub struct Merge {
    pub first_line: usize,
    pub last_line: usize,
    pub first_column: usize,
    pub last_column: usize,
}

/// Whether the bytes `\n`, `\r`, `"` and an ASCII delimiter are always those characters in the encoding, never
/// part of another one (UTF-8 and the single-byte encodings): then CSV can be cut at line breaks and parsed before
/// it is decoded.
pub fn byte_wise(encoding: &'static Encoding) -> bool {
    encoding == UTF_8 || encoding.is_single_byte()
}

/// The start of a CSV file: its first bytes (at most [`decode::SNIFF_BYTES`], any BOM removed), whether they are
/// the whole file, and the encoding they decide.
pub struct CsvHead {
    /// The first bytes.
    pub bytes: Vec<u8>,
    /// They are all the file has.
    pub complete: bool,
    /// The encoding of the file.
    pub encoding: &'static Encoding,
    /// It was told by a byte order mark, whatever the source declares.
    pub bom: bool,
}

impl CsvHead {
    /// Reads the head of `input`, whose source declares `declared` (or nothing).
    pub fn read(declared: Option<&str>, name: &str, input: &mut dyn Read) -> Result<CsvHead> {
        let mut bytes = Vec::new();
        input
            .take(decode::SNIFF_BYTES as u64)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Read { file: name.to_owned(), source })?;
        let complete = bytes.len() < decode::SNIFF_BYTES;
        let (encoding, bom) = decode::sniff(declared, name, &bytes, complete)?;
        bytes.drain(..bom);
        Ok(CsvHead { bytes, complete, encoding, bom: bom > 0 })
    }
}

/// The records of one file, pulled one at a time: how the bytes were read, the merged cells (workbooks), then
/// every record from the first line to the last. Every physical line is covered by exactly one row (empty lines
/// become rows without cells). CSV is decoded and parsed as it streams in; a workbook is read whole.
pub struct Rows<'a> {
    /// The encoding (CSV) or workbook format.
    pub encoding: String,
    /// Merged cell ranges of the sheet.
    pub merges: Vec<Merge>,
    inner: Inner<'a>,
}

enum Inner<'a> {
    Csv(Box<CsvRecords<'a>>),
    Sheet(std::vec::IntoIter<Row>),
}

/// How many handed-back rows a reader keeps for their buffers: a chunk's worth (see `Converter::push_chunk`).
pub const SPARE_ROWS: usize = 1024;

impl<'a> Rows<'a> {
    /// Opens the file's records per the source's format.
    pub fn open(source: &Source, name: &str, mut input: Box<dyn Read + 'a>) -> Result<Rows<'a>> {
        let read_error = |source| Error::Read { file: name.to_owned(), source };
        match source.format() {
            Format::Csv { encoding, delimiter } => {
                let head = CsvHead::read(encoding.as_deref(), name, &mut input)?;
                Ok(Rows::csv(Box::new(Cursor::new(head.bytes).chain(input)), head.encoding, *delimiter, name, 1))
            }
            Format::Pdf { .. } | Format::Custom { .. } => {
                unreachable!("a PDF and a custom format are read whole by their readers")
            }
            Format::Xlsx { sheet } => {
                let mut bytes = Vec::new();
                input.read_to_end(&mut bytes).map_err(read_error)?;
                // calamine panics on some damaged workbooks (e.g. a shared-string index out of range, found by
                // the fuzz test); a damaged file must be an error for that file, never a crash of the ingest.
                std::panic::catch_unwind(|| sheet_rows(&bytes, sheet.as_deref(), name))
                    .unwrap_or_else(|_| Err(Error::DamagedWorkbook { file: name.to_owned() }))
            }
        }
    }

    /// Rows that a reader has already made (a PDF's table), handed out in order; `format` names it.
    pub fn records(format: String, rows: Vec<Row>) -> Rows<'a> {
        Rows { encoding: format, merges: Vec::new(), inner: Inner::Sheet(rows.into_iter()) }
    }

    /// The records of CSV bytes (after any BOM) in a known encoding whose first line is line `first_line` of
    /// the file: a whole file, or a stretch of it that starts where a record starts. In UTF-8 or a single-byte
    /// encoding, where the delimiter, quotes and line breaks are single bytes of their own, the bytes are parsed
    /// as they are and each field is decoded on its own (most are ASCII and need nothing); other encodings are
    /// decoded first.
    pub fn csv(
        bytes: Box<dyn Read + 'a>,
        encoding: &'static Encoding,
        delimiter: u8,
        name: &str,
        first_line: usize,
    ) -> Rows<'a> {
        Rows::csv_reading(bytes, encoding, delimiter, name, first_line, READ_AHEAD)
    }

    /// [`Rows::csv`], reading at least `read_ahead` bytes at a time.
    fn csv_reading(
        bytes: Box<dyn Read + 'a>,
        encoding: &'static Encoding,
        delimiter: u8,
        name: &str,
        first_line: usize,
        read_ahead: usize,
    ) -> Rows<'a> {
        let failure = Rc::new(RefCell::new(None));
        let (input, parsed): (Box<dyn Read + 'a>, _) = if byte_wise(encoding) {
            (bytes, encoding)
        } else {
            let decoded = decode::DecodeReader::new(bytes, encoding, name, failure.clone()).starting_at(first_line);
            (Box::new(decoded), UTF_8)
        };
        let buffer = Buffer::Stream { input, bytes: Vec::new(), eof: false, dropped: 0, read_ahead };
        let mut records = CsvRecords::new(name, parsed, delimiter, buffer, None, first_line);
        records.failure = failure;
        Rows { encoding: encoding.name().to_owned(), merges: Vec::new(), inner: Inner::Csv(Box::new(records)) }
    }

    /// The records of CSV bytes in memory, as [`Rows::csv`] gives them, read faster: the bytes are decoded (or
    /// checked, in UTF-8) as a whole, once, where they are sound, and their fields are slices of that text.
    /// `None` — use [`Rows::csv`] — unless the encoding is UTF-8 or single-byte.
    pub fn csv_in_memory(
        bytes: &'a [u8],
        encoding: &'static Encoding,
        delimiter: u8,
        name: &str,
        first_line: usize,
    ) -> Option<Rows<'a>> {
        if !byte_wise(encoding) {
            return None;
        }
        // Text without a byte the encoding lacks and without a replacement character is read as the UTF-8 it
        // decodes to: in these encodings the delimiter, quotes and line breaks stay the same single bytes, so the
        // lines and fields are the same. Otherwise each record is checked, and each field decoded, on its own, so
        // that a fault is placed on its line.
        let text = if encoding == UTF_8 {
            std::str::from_utf8(bytes).ok().filter(|t| !t.contains('\u{FFFD}')).map(Cow::Borrowed)
        } else {
            // Without replacement, a single-byte encoding makes no replacement character.
            encoding.decode_without_bom_handling_and_without_replacement(bytes)
        };
        let parsed = if text.is_some() { UTF_8 } else { encoding };
        let records = CsvRecords::new(name, parsed, delimiter, Buffer::Whole(bytes), text, first_line);
        Some(Rows { encoding: encoding.name().to_owned(), merges: Vec::new(), inner: Inner::Csv(Box::new(records)) })
    }

    /// Whether the last CSV record ended with its line, rather than inside a quoted field that the input cut
    /// off (its last field then ends with a line break). Once the rows are exhausted, a stretch that ended
    /// cleanly was cut where a record ends. Workbooks always end cleanly.
    pub fn ended_cleanly(&self) -> bool {
        match &self.inner {
            Inner::Csv(c) => !c.open_at_end,
            Inner::Sheet(_) => true,
        }
    }

    /// Hands a row back once it is done with, so that a later CSV record reuses its cells' buffers instead of
    /// allocating a string per cell (up to [`SPARE_ROWS`] rows are kept).
    pub fn recycle(&mut self, row: Row) {
        let spare = match &mut self.inner {
            Inner::Csv(c) => &mut c.spare,
            Inner::Sheet(_) => return,
        };
        if spare.len() < SPARE_ROWS {
            spare.push(row.cells);
        }
    }

    /// Bytes of decoded text read so far (CSV); 0 for workbooks, which are read whole.
    pub fn position(&self) -> u64 {
        match &self.inner {
            Inner::Csv(c) => c.position(),
            Inner::Sheet(_) => 0,
        }
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        match &mut self.inner {
            Inner::Csv(c) => c.next(),
            Inner::Sheet(rows) => rows.next().map(Ok),
        }
    }
}

/// Bytes a CSV stream is read by at least.
const READ_AHEAD: usize = 1 << 16;

/// The bytes a CSV reader parses: all of them in memory, or a stream read into a buffer as the records need.
enum Buffer<'b> {
    Whole(&'b [u8]),
    Stream {
        input: Box<dyn Read + 'b>,
        bytes: Vec<u8>,
        /// The input has no more.
        eof: bool,
        /// Bytes dropped from the front of `bytes` (handed out before).
        dropped: u64,
        /// Bytes read at least at a time ([`READ_AHEAD`]).
        read_ahead: usize,
    },
}

/// What reading at the current position gave.
enum Step {
    Row(Row),
    /// The record may go on beyond the bytes read so far.
    More,
    End,
}

/// The CSV record reader, for a stream and for bytes in memory alike: line by line, each line's end found with
/// memchr (`\n`, `\r\n` or a lone `\r`); a line without quotes is split at its delimiters, a line with quotes
/// goes through csv-core, which reads its record over as many lines as its quoted fields hold. An empty line
/// (which a CSV parser skips) is a row without cells. Each record's fields are checked and decoded as text of the
/// encoding, so that a fault is placed on its line.
struct CsvRecords<'b> {
    name: String,
    /// The encoding of the bytes parsed (UTF-8 where they were decoded before, see [`Rows::csv`]).
    encoding: &'static Encoding,
    delimiter: u8,
    buffer: Buffer<'b>,
    /// Bytes in memory as sound text (see [`Rows::csv_in_memory`]), read instead of them.
    text: Option<Cow<'b, str>>,
    /// Where the next line starts in the buffer.
    pos: usize,
    /// Its number.
    line: usize,
    /// The CSV parser for lines with quotes.
    core: csv_core::Reader,
    output: Vec<u8>,
    ends: Vec<usize>,
    /// The fields of the line being read, as ranges of it (or of `output`).
    ranges: Vec<std::ops::Range<usize>>,
    /// Cells of rows handed back ([`Rows::recycle`]), refilled by later records.
    spare: Vec<Vec<Cell>>,
    /// The last record's last field ends with a line break (see [`Rows::ended_cleanly`]).
    open_at_end: bool,
    /// The typed error of a decoding stream that failed (see [`decode::DecodeReader`]).
    failure: Rc<RefCell<Option<Error>>>,
    done: bool,
}

impl<'b> CsvRecords<'b> {
    fn new(
        name: &str,
        encoding: &'static Encoding,
        delimiter: u8,
        buffer: Buffer<'b>,
        text: Option<Cow<'b, str>>,
        first_line: usize,
    ) -> CsvRecords<'b> {
        CsvRecords {
            name: name.to_owned(),
            encoding,
            delimiter,
            buffer,
            text,
            pos: 0,
            line: first_line,
            core: parser(delimiter),
            output: vec![0; 1 << 12],
            ends: vec![0; 64],
            ranges: Vec::new(),
            spare: Vec::new(),
            open_at_end: false,
            failure: Rc::new(RefCell::new(None)),
            done: false,
        }
    }

    /// Bytes of text handed out so far.
    fn position(&self) -> u64 {
        match &self.buffer {
            Buffer::Whole(_) => self.pos as u64,
            Buffer::Stream { dropped, .. } => dropped + self.pos as u64,
        }
    }

    fn next(&mut self) -> Option<Result<Row>> {
        while !self.done {
            match self.step() {
                Ok(Step::Row(row)) => return Some(Ok(row)),
                Ok(Step::More) => {
                    if let Err(e) = self.refill() {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                Ok(Step::End) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }

    /// Reads more of the stream, keeping the bytes from the current line on: at least [`READ_AHEAD`] bytes, and
    /// twice what is kept where a record is longer than that.
    fn refill(&mut self) -> Result<()> {
        let Buffer::Stream { input, bytes, eof, dropped, read_ahead } = &mut self.buffer else {
            unreachable!("bytes in memory are all there is")
        };
        bytes.drain(..self.pos);
        *dropped += self.pos as u64;
        self.pos = 0;
        let want = (2 * bytes.len()).max(*read_ahead);
        input.take((want - bytes.len()) as u64).read_to_end(bytes).map_err(|source| {
            self.failure.borrow_mut().take().unwrap_or_else(|| Error::Read { file: self.name.clone(), source })
        })?;
        *eof = bytes.len() < want;
        Ok(())
    }

    /// The record at the current position, if the bytes read so far hold all of it.
    fn step(&mut self) -> Result<Step> {
        let (all, eof): (&[u8], bool) = match (&self.text, &self.buffer) {
            (Some(text), _) => (text.as_bytes(), true),
            (None, Buffer::Whole(bytes)) => (bytes, true),
            (None, Buffer::Stream { bytes, eof, .. }) => (bytes, *eof),
        };
        let rest = &all[self.pos..];
        if rest.is_empty() {
            return Ok(if eof { Step::End } else { Step::More });
        }
        let line = self.line;
        // The line's text and the length of its line break.
        let (text, newline) = match memchr::memchr2(b'\n', b'\r', rest) {
            None if !eof => return Ok(Step::More),
            None => (rest, 0),
            Some(at) if rest[at] == b'\n' => (&rest[..at], 1),
            // A carriage return at the end of what was read: a line feed may follow it.
            Some(at) if at + 1 == rest.len() && !eof => return Ok(Step::More),
            Some(at) => (&rest[..at], if rest.get(at + 1) == Some(&b'\n') { 2 } else { 1 }),
        };
        let mut cells = self.spare.pop().unwrap_or_default();
        self.ranges.clear();
        let mut whole = None;
        let (in_output, span, read, written) = if text.is_empty() {
            // An empty line: the CSV parser skips it, the rows show it.
            self.pos += newline;
            self.line += 1;
            self.open_at_end = false;
            cells.clear();
            return Ok(Step::Row(Row { line, span: 1, cells }));
        } else if memchr::memchr(b'"', text).is_none() {
            // No quotes: the fields lie between the delimiters.
            whole = self.text.as_deref().map(|t| &t[self.pos..self.pos + text.len()]);
            let mut start = 0;
            for d in memchr::memchr_iter(self.delimiter, text) {
                self.ranges.push(start..d);
                start = d + 1;
            }
            self.ranges.push(start..text.len());
            (false, 1, text.len() + newline, text.len())
        } else {
            // Quotes: the CSV parser reads the record, which may go on over several lines.
            let (mut read, mut written, mut ended) = (0, 0, 0);
            loop {
                let (result, nin, nout, nend) =
                    self.core.read_record(&rest[read..], &mut self.output[written..], &mut self.ends[ended..]);
                (read, written, ended) = (read + nin, written + nout, ended + nend);
                match result {
                    csv_core::ReadRecordResult::OutputFull => self.output.resize(self.output.len() * 2, 0),
                    csv_core::ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                    // Past what was read: the record is read again once more is there.
                    csv_core::ReadRecordResult::InputEmpty if !eof => {
                        self.core = parser(self.delimiter);
                        self.spare.push(cells);
                        return Ok(Step::More);
                    }
                    csv_core::ReadRecordResult::InputEmpty => {}
                    csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
                }
            }
            // The parser stops after a carriage return that ends a record; its line feed belongs to it.
            if read > 0 && rest[read - 1] == b'\r' {
                match rest.get(read) {
                    Some(b'\n') => read += 1,
                    None if !eof => {
                        self.core = parser(self.delimiter);
                        self.spare.push(cells);
                        return Ok(Step::More);
                    }
                    _ => {}
                }
            }
            let mut start = 0;
            for &e in &self.ends[..ended] {
                self.ranges.push(start..e);
                start = e;
            }
            // The lines of a record are those its fields hold, plus one.
            (true, line_breaks(&self.output[..written]) + 1, read, written)
        };
        self.pos += read;
        self.line += span;
        let last = self.ranges.last().cloned().unwrap_or_default();
        self.open_at_end = in_output && span > 1 && matches!(self.output[last].last(), Some(b'\n' | b'\r'));
        let bytes: &[u8] = if in_output { &self.output[..written] } else { text };
        if let Err((lines_in, fault)) = fill_cells(self.encoding, bytes, whole, self.ranges.iter().cloned(), &mut cells)
        {
            return Err(fault.error(&self.name, self.encoding, line + lines_in));
        }
        Ok(Step::Row(Row { line, span, cells }))
    }
}

/// A csv-core parser with `delimiter` that takes a byte order mark for text: the one at the start of a file is
/// gone before (see [`CsvHead`]), and one at the start of a line is no file's start.
fn parser(delimiter: u8) -> csv_core::Reader {
    let mut core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    // The parser strips a byte order mark only before it has read anything (an empty line leaves it where it was).
    let _ = core.read_record(b"\n", &mut [0; 1], &mut [0; 1]);
    core
}

/// Why a field's bytes are not text in its encoding, and where.
enum Fault {
    /// A byte (at this offset) that the encoding does not have.
    Invalid(usize),
    /// A replacement character (at this offset): the text was destroyed before export.
    Destroyed(usize),
}

impl Fault {
    fn at(&self) -> usize {
        match self {
            Fault::Invalid(at) | Fault::Destroyed(at) => *at,
        }
    }

    fn error(&self, file: &str, encoding: &'static Encoding, line: usize) -> Error {
        match self {
            Fault::Invalid(_) => decode::invalid_byte(file, encoding, line),
            Fault::Destroyed(_) => Error::DestroyedCharacters { file: file.to_owned(), line },
        }
    }
}

/// Fills `cells` with the text of a record's fields (`fields`: their ranges in `bytes`). The whole record is
/// checked at once — UTF-8 without replacement characters, or ASCII in a single-byte encoding — unless the caller
/// knows it as sound text (`whole`), and its fields are slices of it; otherwise each field is decoded on its own.
/// A fault comes with the line breaks of the record before it, which place it on its line.
fn fill_cells(
    encoding: &'static Encoding,
    bytes: &[u8],
    whole: Option<&str>,
    fields: impl ExactSizeIterator<Item = std::ops::Range<usize>> + Clone,
    cells: &mut Vec<Cell>,
) -> std::result::Result<(), (usize, Fault)> {
    cells.truncate(fields.len());
    let whole = whole.or_else(|| {
        (bytes.is_ascii() || (encoding == UTF_8 && memchr::memmem::find(bytes, "\u{FFFD}".as_bytes()).is_none()))
            .then(|| std::str::from_utf8(bytes).ok())
            .flatten()
    });
    for (i, range) in fields.clone().enumerate() {
        if i == cells.len() {
            cells.push(Cell::Text(String::new()));
        }
        if !matches!(cells[i], Cell::Text(_)) {
            cells[i] = Cell::Text(String::new());
        }
        let Cell::Text(text) = &mut cells[i] else { unreachable!("made text above") };
        // A field boundary inside a character (quotes can split one) is no slice of the record.
        if let Some(slice) = whole.and_then(|w| w.get(range.clone())) {
            text.clear();
            text.push_str(slice);
        } else {
            decode_field(encoding, &bytes[range.clone()], text).map_err(|fault| {
                let before: usize = fields.clone().take(i).map(|r| line_breaks(&bytes[r])).sum();
                (before + line_breaks(&bytes[range.start..range.start + fault.at()]), fault)
            })?;
        }
    }
    Ok(())
}

/// Decodes one field into `text`: ASCII and UTF-8 as they are (checked), else from the encoding (UTF-8 or a
/// single-byte encoding: [`Rows::csv`]).
fn decode_field(encoding: &'static Encoding, field: &[u8], text: &mut String) -> std::result::Result<(), Fault> {
    text.clear();
    if field.is_ascii() || encoding == UTF_8 {
        let valid = std::str::from_utf8(field).map_err(|e| Fault::Invalid(e.valid_up_to()))?;
        if !field.is_ascii()
            && let Some(at) = memchr::memmem::find(field, "\u{FFFD}".as_bytes())
        {
            return Err(Fault::Destroyed(at));
        }
        text.push_str(valid);
        return Ok(());
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    text.reserve(decoder.max_utf8_buffer_length_without_replacement(field.len()).unwrap_or(field.len() * 3));
    match decoder.decode_to_string_without_replacement(field, text, true) {
        (encoding_rs::DecoderResult::InputEmpty, _) => {}
        (encoding_rs::DecoderResult::Malformed(bad, after), read) => {
            return Err(Fault::Invalid(read - bad as usize - after as usize));
        }
        (encoding_rs::DecoderResult::OutputFull, _) => unreachable!("reserved for the whole field"),
    }
    // A single-byte encoding has no replacement character, and without replacement none is made.
    Ok(())
}

fn sheet_rows(bytes: &[u8], sheet: Option<&str>, name: &str) -> Result<Rows<'static>> {
    let workbook_error = |source| Error::Workbook { file: name.to_owned(), source };
    let mut workbook = calamine::open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(workbook_error)?;
    let names = workbook.sheet_names();
    let sheet_name = match sheet {
        Some(s) if names.iter().any(|n| n == s) => s.to_owned(),
        Some(s) => return Err(Error::NoSheet { file: name.to_owned(), sheet: s.to_owned(), available: names }),
        None => names.first().cloned().ok_or_else(|| Error::NoSheet {
            file: name.to_owned(),
            sheet: "(first)".into(),
            available: vec![],
        })?,
    };
    let (format, merges) = match &mut workbook {
        calamine::Sheets::Xlsx(x) => {
            x.load_merged_regions().map_err(|e| workbook_error(e.into()))?;
            let merges = x.merged_regions_by_sheet(&sheet_name).iter().map(|(_, _, d)| merge(d)).collect();
            ("xlsx", merges)
        }
        calamine::Sheets::Xls(x) => {
            ("xls", x.worksheet_merge_cells(&sheet_name).unwrap_or_default().iter().map(merge).collect())
        }
        calamine::Sheets::Xlsb(_) => ("xlsb", Vec::new()),
        calamine::Sheets::Ods(_) => ("ods", Vec::new()),
    };
    let range = workbook.worksheet_range(&sheet_name).map_err(workbook_error)?;
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    // Rows above the used range are empty lines of the sheet.
    let mut rows: Vec<Row> = (1..=first_row as usize).map(|line| Row { line, span: 1, cells: Vec::new() }).collect();
    for (i, cells) in range.rows().enumerate() {
        let line = first_row as usize + i + 1;
        // Columns left of the used range are empty; keep positions aligned with the sheet.
        let cells: Vec<Cell> =
            std::iter::repeat_n(Cell::Text(String::new()), first_col as usize).chain(cells.iter().map(cell)).collect();
        rows.push(Row { line, span: 1, cells });
    }
    Ok(Rows { encoding: format.to_owned(), merges, inner: Inner::Sheet(rows.into_iter()) })
}

fn merge(d: &calamine::Dimensions) -> Merge {
    Merge {
        first_line: d.start.0 as usize + 1,
        last_line: d.end.0 as usize + 1,
        first_column: d.start.1 as usize + 1,
        last_column: d.end.1 as usize + 1,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Row> {
        Rows::csv(Box::new(text.as_bytes()), UTF_8, b';', "t.csv", 1).collect::<Result<Vec<_>>>().unwrap()
    }

    #[test]
    fn every_line_is_covered_once() {
        let text = "Title\n\na;b\n1;2\n\n\"x\ny\";3\n;\n4;5\n\n";
        let lines: Vec<(usize, usize, usize)> = rows(text).iter().map(|r| (r.line, r.span, r.cells.len())).collect();
        // line 2 empty, 6–7 a quoted two-line record, 8 only a delimiter, 10 empty.
        assert_eq!(
            lines,
            [(1, 1, 1), (2, 1, 0), (3, 1, 2), (4, 1, 2), (5, 1, 0), (6, 2, 2), (8, 1, 2), (9, 1, 2), (10, 1, 0)]
        );
        assert_eq!(lines.iter().map(|l| l.1).sum::<usize>(), 10);
    }

    #[test]
    fn crlf_lines_are_counted_like_lf_lines() {
        let lines: Vec<usize> = rows("a;b\r\n1;2\r\n\r\n3;4\r\n").iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 3, 4]);
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        // An old Mac export: every line ends with a carriage return alone, also inside a quoted field.
        let lines: Vec<(usize, usize, usize)> =
            rows("a;b\r1;2\r\r\"x\ry\";3\r4;5").iter().map(|r| (r.line, r.span, r.cells.len())).collect();
        assert_eq!(lines, [(1, 1, 2), (2, 1, 2), (3, 1, 0), (4, 2, 2), (6, 1, 2)]);
        assert_eq!(line_breaks(b"a\rb\r\nc\n\r"), 4);
    }

    /// The rows of `bytes` in `encoding` (parsed as bytes, each field decoded), or the error.
    fn read(bytes: &[u8], encoding: &'static Encoding) -> Result<Vec<Row>> {
        Rows::csv(Box::new(bytes), encoding, b';', "t.csv", 1).collect()
    }

    #[test]
    fn fields_are_decoded_one_by_one() {
        let rows =
            read(b"Stadtteil;Zahl\nGr\xfcbent\xe4lchen;3\n\"K\xf6ln\nS\xfcd\";4\n", encoding_rs::WINDOWS_1252).unwrap();
        let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells.iter().map(Cell::text).collect()).collect();
        assert_eq!(cells, [vec!["Stadtteil", "Zahl"], vec!["Grübentälchen", "3"], vec!["Köln\nSüd", "4"]]);
    }

    #[test]
    fn bad_bytes_and_destroyed_characters_name_their_line() {
        // A byte windows-1253 does not have, on the second line of a quoted field that starts on line 2.
        let error = read(b"a;b\n\"x\ny\xaa\";1\n", encoding_rs::WINDOWS_1253).unwrap_err();
        assert!(error.to_string().contains("line 3"), "{error}");
        let error = read(b"a;b\n1;\xc3\n", UTF_8).unwrap_err();
        assert!(error.to_string().contains("line 2") && error.to_string().contains("windows-1252"), "{error}");
        // A character split by a quote and a delimiter: the record's bytes are valid together, the field not.
        let error = read(b"a;b\n\"x\xc3\";\xa4y\n", UTF_8).unwrap_err();
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = read("a;b\n1;2\n\"x\nGr\u{FFFD}n\";3\n".as_bytes(), UTF_8).unwrap_err();
        assert!(matches!(error, Error::DestroyedCharacters { line: 4, .. }), "{error}");
    }

    #[test]
    fn a_decoded_file_places_a_bad_character_on_its_line_however_its_lines_end() {
        let utf16 = |text: &str, bad: bool| -> Vec<u8> {
            let mut units: Vec<u16> = text.encode_utf16().collect();
            if bad {
                // A high surrogate without its low one: no character in UTF-16.
                units.extend([0xD800, u16::from(b'9')]);
            }
            units.into_iter().flat_map(u16::to_le_bytes).collect()
        };
        // Lone carriage returns (an old Mac export), the bad character on line 3.
        let error = read(&utf16("a;b\r1;2\r3;", true), encoding_rs::UTF_16LE).unwrap_err();
        assert!(error.to_string().contains("line 3"), "{error}");
        // A \r\n whose two halves the decoder hands out in two pieces (its input is read 64 KiB at a time) is one
        // line break, not two.
        let text = format!("{}\r\n1;2\n3;", "x".repeat(32_767));
        let error = read(&utf16(&text, true), encoding_rs::UTF_16LE).unwrap_err();
        assert!(error.to_string().contains("line 3"), "{error}");
    }

    #[test]
    fn rows_in_memory_are_the_rows_of_the_stream() {
        let texts: &[&[u8]] = &[
            b"a;b\n1;2\n",
            b"a;b\r\n1;2\r\n\r\n3;4",
            b"Title\n\na;b\n1;2\n\n\"x\ny\";3\n;\n4;5\n\n",
            b"a;\"b\"\"c\";d\n\"e\";f\r\ng;h\n",
            b"1;a\"b;\"x\ny\";2\n3;4\n",
            b"1;\"open\nstill open\n",
            b"1;\"q\"tail;2\n \n\t;\n",
            b"\"a\r\nb\";c\r\nd;e\r\n",
            b"a;b\r1;\"2\r3\"\r\r4;5\r",
            // Not ASCII: decoded as a whole where every byte is a character (Windows-1252, UTF-8 here), else
            // record by record (in ISO-8859-7, 0xD2 is no character; \xE4\xFC is no UTF-8).
            b"K\xe4se;\"S\xfc\xdf\ne\";\xe4\n1;2\n",
            "K\u{e4}se;\"S\u{fc}\u{df}\ne\";\u{e4}\nx;y\n".as_bytes(),
            b"a;b\n\xe4;\xd2\n1;2\n",
            "a;b\n\u{FFFD};1\n".as_bytes(),
        ];
        type Read = std::result::Result<Vec<(usize, usize, Vec<String>)>, String>;
        let collect = |rows: &mut Rows<'_>| -> Read {
            rows.map(|r| {
                r.map(|r| (r.line, r.span, r.cells.iter().map(Cell::text).collect())).map_err(|e| e.to_string())
            })
            .collect()
        };
        for text in texts {
            for encoding in [UTF_8, encoding_rs::WINDOWS_1252, encoding_rs::ISO_8859_7] {
                let mut stream = Rows::csv(Box::new(&text[..]), encoding, b';', "t.csv", 1);
                let streamed = collect(&mut stream);
                let mut rows = Rows::csv_in_memory(text, encoding, b';', "t.csv", 1).unwrap();
                assert_eq!(collect(&mut rows), streamed, "{encoding:?}: {:?}", String::from_utf8_lossy(text));
                assert_eq!(
                    rows.ended_cleanly(),
                    stream.ended_cleanly(),
                    "{encoding:?}: {:?}",
                    String::from_utf8_lossy(text)
                );
            }
        }
        assert_eq!(
            collect(&mut Rows::csv_in_memory(b"K\xe4se;\xfc\n", encoding_rs::WINDOWS_1252, b';', "t.csv", 1).unwrap()),
            Ok(vec![(1, 1, vec!["K\u{e4}se".to_owned(), "\u{fc}".to_owned()])])
        );
        assert!(
            collect(&mut Rows::csv_in_memory(b"a\n\xd2\n", encoding_rs::ISO_8859_7, b';', "t.csv", 1).unwrap())
                .unwrap_err()
                .contains("line 2")
        );
    }

    /// A reader that hands out at most a few bytes at a time.
    struct Dribble<'a>(&'a [u8]);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_stream_read_in_pieces_gives_the_rows_in_memory() {
        // Some 600 KB of lines with quotes, line breaks of every kind inside and outside them, and fields longer
        // than the stream's first reads: records and line breaks fall across every boundary of its buffer.
        let mut x: u64 = 7;
        let mut text = Vec::new();
        for line in 0..40_000 {
            for _ in 0..5 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let piece: &[u8] = match x >> 60 {
                    0 => b"\"q\r\nq\"",
                    1 => b"\"r\rr\"\"\"",
                    2 => b"\xc3\xa4",
                    3 => b"",
                    _ => b"field",
                };
                text.extend_from_slice(piece);
                text.push(b';');
            }
            if line % 9_000 == 4_500 {
                text.extend(std::iter::repeat_n(b'z', 200_000));
            }
            text.extend_from_slice([&b"\n"[..], b"\r\n", b"\r"][line % 3]);
        }
        let read = |rows: Rows<'_>| -> Vec<(usize, usize, Vec<String>)> {
            rows.map(|r| r.map(|r| (r.line, r.span, r.cells.iter().map(Cell::text).collect())).unwrap()).collect()
        };
        let in_memory = read(Rows::csv_in_memory(&text, UTF_8, b';', "t.csv", 1).unwrap());
        assert_eq!(in_memory.len(), 40_000);
        assert_eq!(in_memory.iter().map(|r| r.1).sum::<usize>(), line_breaks(&text));
        let streamed = read(Rows::csv(Box::new(Dribble(&text)), UTF_8, b';', "t.csv", 1));
        assert!(streamed == in_memory, "the stream and the bytes in memory give other rows");
        // Reading a few bytes at a time, the buffer ends at every kind of place: inside a line break, a quoted
        // field, a character.
        let some = &text[..text.iter().position(|&b| b == b'z').unwrap()];
        let some = &some[..some.iter().rposition(|&b| b == b'\n').unwrap() + 1];
        let expected = read(Rows::csv_in_memory(some, UTF_8, b';', "t.csv", 1).unwrap());
        for read_ahead in 1..12 {
            let rows = Rows::csv_reading(Box::new(Dribble(some)), UTF_8, b';', "t.csv", 1, read_ahead);
            assert!(read(rows) == expected, "reading {read_ahead} bytes ahead gives other rows");
        }
    }

    #[test]
    fn a_last_line_without_newline_counts() {
        let lines: Vec<usize> = rows("a;b\n1;2").iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2]);
    }
}
