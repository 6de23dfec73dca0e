//! A large CSV file on every core: the first block (titles, header and the first data lines) is read here; the
//! bytes after it are cut into blocks of whole lines, each decoded, parsed and converted on a worker thread with
//! a converter of its own; the results are taken in file order: tallies, rejections and the total checks'
//! sums added up, facts handed on. A block whose last record ran into its end (the cut lay inside a quoted
//! field), a block read as data while the footer had already begun, and a block that failed are read again,
//! with the rest of the file, one line after the other — so a file reads exactly as it would line by line.

use crate::convert::{Converter, Totals};
use crate::decode::line_breaks;
use crate::error::Result;
use crate::header::{Header, assemble};
use crate::lines::{Chunk, Lines, Rules, data_lines, finish, header_lines};
use crate::outcome::{FileFacts, Progress};
use crate::pseudonym::PseudonymKey;
use crate::rows::Rows;
use datafusion::arrow::record_batch::RecordBatch;
use encoding_rs::Encoding;
use kubus_model::{Model, Source};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes per block: some 50,000 lines of a typical export.
pub(crate) const BLOCK_BYTES: usize = 4 << 20;

/// Worker threads: one per core, at most four.
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

/// The end of the last line of `bytes` (which start where a record starts) after which the quotes are
/// balanced: there, outside any quoted field, a record ends. `None` without such a line.
fn cut(bytes: &[u8]) -> Option<usize> {
    let mut quotes = memchr::memchr_iter(b'"', bytes).count();
    let mut end = bytes.len();
    for newline in memchr::memrchr_iter(b'\n', bytes) {
        quotes -= memchr::memchr_iter(b'"', &bytes[newline + 1..end]).count();
        end = newline + 1;
        if quotes.is_multiple_of(2) {
            return Some(end);
        }
    }
    None
}

/// Whole lines of the file, and where they are.
struct Block {
    bytes: Vec<u8>,
    first_line: usize,
    /// Offset of the block's end in the file (after any BOM).
    end: u64,
}

/// A block as a worker converted it.
struct Converted {
    block: Block,
    lines: Lines,
    batch: Option<RecordBatch>,
    totals: Totals,
    /// Its last record ended with its last line, and no error stopped it.
    sound: bool,
}

/// The file's bytes after the first block, cut into blocks.
struct Blocks<'r> {
    input: &'r mut dyn Read,
    size: usize,
    carry: Vec<u8>,
    first_line: usize,
    offset: u64,
    eof: bool,
}

impl Blocks<'_> {
    fn next(&mut self) -> std::io::Result<Option<Block>> {
        let mut bytes = std::mem::take(&mut self.carry);
        let mut want = self.size;
        loop {
            if !self.eof && bytes.len() < want {
                let before = bytes.len();
                (&mut *self.input).take((want - before) as u64).read_to_end(&mut bytes)?;
                self.eof = bytes.len() < want;
            }
            if bytes.is_empty() {
                return Ok(None);
            }
            if self.eof {
                break;
            }
            match cut(&bytes) {
                Some(at) => {
                    self.carry = bytes[at..].to_vec();
                    bytes.truncate(at);
                    break;
                }
                // A quoted field longer than the block: read on.
                None => want *= 2,
            }
        }
        let block = Block { first_line: self.first_line, end: self.offset + bytes.len() as u64, bytes };
        self.first_line += line_breaks(&block.bytes);
        self.offset = block.end;
        Ok(Some(block))
    }
}

/// One CSV file to read in blocks.
pub(crate) struct Csv<'c> {
    pub(crate) model: &'c Model,
    pub(crate) source: &'c Source,
    pub(crate) name: &'c str,
    pub(crate) rules: &'c Rules,
    pub(crate) key: &'c PseudonymKey,
    pub(crate) encoding: &'static Encoding,
    pub(crate) delimiter: u8,
    /// Bytes per block ([`BLOCK_BYTES`]; smaller in tests).
    pub(crate) block_bytes: usize,
}

impl Csv<'_> {
    /// Reads the file whose first bytes (after any BOM) are `head`, followed by `input`, with `workers`
    /// threads. `None` — nothing handed on, nothing more read — when the header does not end within the first
    /// block or that block cannot be cut where a record ends: then the file is read line by line.
    pub(crate) fn read(
        &self,
        head: &[u8],
        input: &mut dyn Read,
        workers: usize,
        progress: &mut dyn FnMut(Progress),
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<Option<FileFacts>> {
        let Some(first) = cut(head) else { return Ok(None) };
        let mut rows = Rows::csv(Box::new(&head[..first]), self.encoding, self.delimiter, self.name, 1);
        let mut lines = Lines::default();
        let Some((titles, header_rows)) = header_lines(self.source, &mut rows, &mut lines.tally)? else {
            return Ok(None);
        };
        let mut header = Header::new(self.source, self.name, assemble(&header_rows, &[]))?;
        let mut copies = vec![header.clone(); workers];
        let mut converter = Converter::new(self.model, self.source, self.name, &mut header, &titles, self.key)?;
        let mut chunk = Chunk::default();
        while let Some(row) = rows.next() {
            chunk.take(row?, self.rules, &mut rows, &mut lines, &mut converter);
        }
        chunk.convert(&mut rows, &mut lines, &mut converter);
        if !rows.ended_cleanly() {
            return Ok(None);
        }
        let encoding = rows.encoding.clone();
        drop(rows);
        let mut facts = 0;
        if let Some(batch) = converter.take_batch()? {
            facts += batch.num_rows();
            sink(batch)?;
        }
        let converters = copies
            .iter_mut()
            .map(|h| Converter::new(self.model, self.source, self.name, h, &titles, self.key))
            .collect::<Result<Vec<_>>>()?;
        let first_line = line_breaks(&head[..first]) + 1;
        let mut blocks = Blocks {
            input,
            size: self.block_bytes,
            carry: head[first..].to_vec(),
            first_line,
            offset: first as u64,
            eof: false,
        };
        let (jobs, queue) = sync_channel::<(Block, SyncSender<Converted>)>(workers);
        let queue = Mutex::new(queue);
        std::thread::scope(|scope| -> Result<()> {
            // Moved in, so that the workers end however this closure returns.
            let jobs = jobs;
            for mut converter in converters {
                let queue = &queue;
                scope.spawn(move || {
                    loop {
                        let Ok((block, reply)) = queue.lock().expect("a worker never panics holding the queue").recv()
                        else {
                            break;
                        };
                        // A closed reply means the file stopped early; the next job (or none) follows.
                        let _ = reply.send(self.convert(block, &mut converter));
                    }
                });
            }
            let mut in_flight: VecDeque<Receiver<Converted>> = VecDeque::new();
            loop {
                while in_flight.len() < 2 * workers {
                    let Some(block) = blocks
                        .next()
                        .map_err(|e| crate::error::Error::Read { file: self.name.to_owned(), source: e })?
                    else {
                        break;
                    };
                    let (reply, answer) = sync_channel(1);
                    jobs.send((block, reply)).expect("workers take jobs until the sender is dropped");
                    in_flight.push_back(answer);
                }
                let Some(answer) = in_flight.pop_front() else { return Ok(()) };
                let done = answer.recv().expect("a worker answers every job");
                if !done.sound || lines.in_footer {
                    // From this block on, line by line: its bytes, those of the blocks in flight, and the rest.
                    drop(jobs);
                    let mut rest = done.block.bytes;
                    for answer in in_flight {
                        rest.extend(answer.recv().expect("a worker answers every job").block.bytes);
                    }
                    rest.append(&mut blocks.carry);
                    let mut rows = Rows::csv(
                        Box::new(std::io::Cursor::new(rest).chain(&mut *blocks.input)),
                        self.encoding,
                        self.delimiter,
                        self.name,
                        done.block.first_line,
                    );
                    return data_lines(self.rules, &mut rows, &mut lines, &mut converter, &mut facts, progress, sink);
                }
                lines.tally.absorb(done.lines.tally);
                lines.rejected.extend(done.lines.rejected);
                lines.in_footer = done.lines.in_footer;
                converter.absorb(done.totals);
                if let Some(batch) = done.batch {
                    facts += batch.num_rows();
                    sink(batch)?;
                }
                progress(Progress { lines: lines.tally.lines, bytes: done.block.end });
            }
        })?;
        finish(self.name, converter, lines, facts, encoding, sink).map(Some)
    }

    /// Converts one block on a worker, as data lines from its first line on.
    fn convert(&self, block: Block, converter: &mut Converter<'_>) -> Converted {
        let mut lines = Lines::default();
        let mut rows = Rows::csv_in_memory(&block.bytes, self.encoding, self.delimiter, self.name, block.first_line)
            .unwrap_or_else(|| {
                Rows::csv(Box::new(&block.bytes[..]), self.encoding, self.delimiter, self.name, block.first_line)
            });
        let mut sound = true;
        let mut chunk = Chunk::default();
        while let Some(row) = rows.next() {
            let Ok(row) = row else {
                sound = false;
                break;
            };
            chunk.take(row, self.rules, &mut rows, &mut lines, converter);
        }
        chunk.convert(&mut rows, &mut lines, converter);
        sound &= rows.ended_cleanly();
        drop(rows);
        let batch = converter.take_batch().unwrap_or_else(|_| {
            sound = false;
            None
        });
        Converted { block, lines, batch, totals: converter.take_totals(), sound }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::fuzz::{model, repo};

    /// The facts (as one batch) and the accounting of a read, or its error.
    type Read = std::result::Result<(FileFacts, Option<RecordBatch>), String>;

    fn collect(read: impl FnOnce(&mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<FileFacts>) -> Read {
        let mut batches = Vec::new();
        let facts = read(&mut |b| {
            batches.push(b);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        let all = batches.first().map(|b| datafusion::arrow::compute::concat_batches(&b.schema(), &batches).unwrap());
        Ok((facts, all))
    }

    /// The reference: the rows one after the other, every data line through the line converter
    /// ([`Converter::push`]) on its own rather than in chunks.
    fn line_by_line(
        model: &Model,
        source: &Source,
        rules: &Rules,
        mut rows: Rows<'_>,
        key: &PseudonymKey,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<FileFacts> {
        let mut lines = Lines::default();
        let Some((titles, header_rows)) = header_lines(source, &mut rows, &mut lines.tally)? else {
            return Err(Error::NoHeader { file: "f.csv".to_owned(), line: 1, lines: lines.tally.lines });
        };
        let mut header = Header::new(source, "f.csv", assemble(&header_rows, &rows.merges))?;
        let mut converter = Converter::new(model, source, "f.csv", &mut header, &titles, key)?;
        for row in rows.by_ref() {
            let row = row?;
            if rules.is_data(&row, &mut lines) {
                lines.count(&row, converter.push(&row));
            }
        }
        let encoding = rows.encoding.clone();
        finish("f.csv", converter, lines, 0, encoding, sink)
    }

    /// Reads `bytes` line by line and in blocks (`head` bytes first, then blocks of `block` bytes), and
    /// returns both; `None` for the blocks when they were not used.
    fn both(source: &str, bytes: &[u8], head: usize, block: usize) -> (Read, Option<Read>) {
        both_in(&model(), source, bytes, head, block)
    }

    fn both_in(model: &Model, source: &str, bytes: &[u8], head: usize, block: usize) -> (Read, Option<Read>) {
        let source = model.source(source).unwrap();
        let kubus_model::Format::Csv { encoding, delimiter } = source.format() else { panic!("a CSV source") };
        let encoding = Encoding::for_label(encoding.as_deref().unwrap().as_bytes()).unwrap();
        let key = PseudonymKey::new(b"blocks".to_vec());
        let rules = Rules::new(source);
        let lines = collect(|sink| {
            let rows = Rows::csv(Box::new(bytes), encoding, *delimiter, "f.csv", 1);
            line_by_line(model, source, &rules, rows, &key, sink)
        });
        let csv = Csv {
            model,
            source,
            name: "f.csv",
            rules: &rules,
            key: &key,
            encoding,
            delimiter: *delimiter,
            block_bytes: block,
        };
        let mut used = true;
        let blocks = collect(|sink| {
            let read = csv.read(&bytes[..head], &mut &bytes[head..], 3, &mut |_| {}, sink)?;
            used = read.is_some();
            Ok(read.unwrap_or_else(|| FileFacts {
                file: String::new(),
                encoding: String::new(),
                lines: 0,
                accepted_lines: 0,
                rejected_lines: 0,
                skipped: crate::outcome::Skipped::default(),
                facts: 0,
                batches: Vec::new(),
                rejected: Vec::new(),
                totals_compared: 0,
                total_lines: Default::default(),
                warnings: Vec::new(),
            }))
        });
        (lines, used.then_some(blocks))
    }

    fn assert_same(lines: &Read, blocks: &Read) {
        match (lines, blocks) {
            (Ok((a, fa)), Ok((b, fb))) => {
                let account = |f: &FileFacts| {
                    (
                        f.lines,
                        f.accepted_lines,
                        f.rejected_lines,
                        f.skipped.clone(),
                        f.facts,
                        f.totals_compared,
                        f.total_lines,
                        f.warnings.clone(),
                        f.encoding.clone(),
                    )
                };
                assert_eq!(account(a), account(b));
                assert_eq!(a.rejected, b.rejected);
                assert_eq!(fa, fb, "the same facts in the same order");
            }
            (a, b) => assert_eq!(a.as_ref().map(|_| ()), b.as_ref().map(|_| ())),
        }
    }

    fn genesis() -> Vec<u8> {
        std::fs::read(repo().join("sample-data/realdata/destatis_genesis_12411-0012_bundeslaender_altersjahre.csv"))
            .unwrap()
    }

    /// The data lines of the GENESIS export (from its seventh line to its footer), each passed through `edit`
    /// with its number among them.
    fn edited(edit: impl Fn(usize, &[u8]) -> Vec<u8>) -> Vec<u8> {
        let bytes = genesis();
        let text: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
        let footer = text.iter().position(|l| l.starts_with(b"____")).unwrap();
        let mut out = Vec::new();
        for (i, line) in text.iter().enumerate() {
            out.extend(if (6..footer).contains(&i) { edit(i - 6, line) } else { line.to_vec() });
        }
        out
    }

    #[test]
    fn blocks_read_a_real_export_as_line_by_line_does() {
        let (lines, blocks) = both("genesis_12411_0012", &genesis(), 20_000, 16_384);
        let (facts, _) = lines.as_ref().unwrap();
        assert!(
            facts.totals_compared > 500 && facts.rejected.is_empty(),
            "the totals are checked across blocks: {facts:?}"
        );
        assert_same(&lines, &blocks.expect("read in blocks"));
    }

    #[test]
    fn quoted_line_breaks_across_cuts_are_read_again_line_by_line() {
        // Every 37th line carries an age over three lines (rejected, its date's total then mismatches); with
        // blocks of 4 KiB some of them straddle a cut; every 101st has a quote inside an unquoted cell, which
        // makes the quotes look balanced where they are not.
        let bytes = edited(|i, line| {
            let text = String::from_utf8_lossy(line).into_owned();
            let cells: Vec<&str> = text.splitn(3, ';').collect();
            match i {
                _ if i % 101 == 50 => format!("{};a\"b;\"x\ny\";{}", cells[0], cells[2]).into_bytes(),
                _ if i % 37 == 0 => format!("{};\"{}\nmehr\nnoch\";{}", cells[0], cells[1], cells[2]).into_bytes(),
                _ => line.to_vec(),
            }
        });
        let (lines, blocks) = both("genesis_12411_0012", &bytes, 2_000, 4_096);
        let (facts, _) = lines.as_ref().unwrap();
        assert!(facts.rejected.iter().any(|r| r.reason.contains("mehr")), "{:?}", &facts.rejected[..3]);
        assert_same(&lines, &blocks.expect("read in blocks"));
    }

    #[test]
    fn crlf_lines_blank_lines_and_odd_cells_read_as_line_by_line() {
        // Windows line ends, an empty line every 53rd, a line of blanks every 59th, a quoted cell with a doubled
        // quote every 61st.
        let bytes = edited(|i, line| {
            let text = String::from_utf8_lossy(line).trim_end().to_owned();
            let line = match i {
                _ if i % 53 == 0 => String::new(),
                _ if i % 59 == 0 => "   ".to_owned(),
                _ if i % 61 == 0 => text.replacen(';', ";\"a\"\"b\";", 1),
                _ => text,
            };
            format!("{line}\r\n").into_bytes()
        });
        let (lines, blocks) = both("genesis_12411_0012", &bytes, 3_000, 5_000);
        let (facts, _) = lines.as_ref().unwrap();
        assert!(facts.skipped.iter().any(|(r, _)| *r == crate::outcome::Skip::Empty), "{:?}", facts.skipped);
        assert_same(&lines, &blocks.expect("read in blocks"));
    }

    #[test]
    fn lines_converted_a_chunk_at_a_time_are_those_converted_one_by_one() {
        // The foreigners' authority's months under one header, with a problem, a value that is not plain facts,
        // or something harmless on every few lines: the chunks (of up to a block's lines, some full) must give
        // the facts, rejections and counts that line by line gives.
        let dir = repo().join("sample-data/auslaenderbehoerde");
        let mut months: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        months.sort();
        let mut bytes = Vec::new();
        let mut n = 0;
        for (m, month) in months.iter().enumerate() {
            for (l, line) in std::fs::read(month).unwrap().split_inclusive(|&b| b == b'\n').enumerate() {
                if l == 0 && m > 0 || line.starts_with(b"Summe") && m + 1 < months.len() {
                    continue;
                }
                n += 1;
                let text = line.strip_suffix(b"\n").unwrap_or(line);
                let mut cells: Vec<Vec<u8>> =
                    text.strip_suffix(b"\r").unwrap_or(text).split(|&b| b == b';').map(<[u8]>::to_vec).collect();
                if l > 0 && cells.len() == 15 {
                    match n % 41 {
                        7 => cells[8] = b"Atlantis".to_vec(),
                        11 => cells[13].clear(),
                        13 => cells[13] = b"x".to_vec(),
                        17 => cells.push(b"mehr".to_vec()),
                        19 => cells.push(Vec::new()),
                        23 => cells[3] = b"01.01.2030".to_vec(),
                        29 => cells[8].clear(),
                        31 => cells[10] = [b"  ", &cells[10][..], b" "].concat(),
                        37 => cells[14] = b"31.02.2024".to_vec(),
                        _ => {}
                    }
                }
                bytes.extend(cells.join(&b';'));
                bytes.extend(b"\r\n");
            }
        }
        for block in [8_192, 262_144] {
            let (lines, blocks) = both("abh_newcomers", &bytes, 4_000, block);
            let (facts, _) = lines.as_ref().unwrap();
            let problems: std::collections::BTreeSet<crate::outcome::Category> =
                facts.rejected.iter().map(|r| r.problem).collect();
            assert!(problems.len() >= 5 && facts.facts > 10_000, "{problems:?}, {} facts", facts.facts);
            assert_same(&lines, &blocks.expect("read in blocks"));
        }
    }

    #[test]
    fn text_and_numbers_converted_a_chunk_at_a_time_are_those_converted_one_by_one() {
        // A cube of a text, a whole number and a decimal by month and sex, and lines with blanks around them,
        // missing values, numbers that are not whole, separators, empty cells and unknown members.
        let mut files = crate::fuzz::schema_files();
        let cube = "name = 'plain_columns'\nlabel = 'Test'\n[[dimensions]]\nname = 'month'\ndimension = 'time'\n[[dimensions]]\nname = 'sex'\n\
            [[columns]]\nname = 'note'\ntype = 'string'\n[[columns]]\nname = 'count'\ntype = 'integer'\n[[columns]]\nname = 'hours'\ntype = 'decimal'\n\
            [[measures]]\nname = 'records'\nlabel = 'records'\naggregate = 'count'\n";
        let source = "name = 'plain_columns'\ncube = 'plain_columns'\n[format]\ntype = 'csv'\nencoding = 'utf-8'\ndelimiter = ';'\n\
            decimal_separator = ','\nthousands_separator = '.'\ndate_formats = ['%d.%m.%Y']\n[fields.month]\ndate = 'Stichtag'\n\
            [fields.sex]\nmember = 'Geschlecht'\n[fields.note]\ntext = 'Notiz'\n[fields.count]\nnumber = 'Anzahl'\nmissing = ['-', '.']\n\
            [fields.hours]\nnumber = 'Stunden'\n";
        for (text, kind) in [(cube, kubus_model::SchemaKind::Cube), (source, kubus_model::SchemaKind::Source)] {
            files.push(kubus_model::SchemaFile { origin: "test".to_owned(), text: text.to_owned(), kind });
        }
        let model = kubus_model::load_model(&files).unwrap();
        let mut bytes = b"Stichtag;Geschlecht;Notiz;Anzahl;Stunden\n".to_vec();
        for i in 0..5_000 {
            let sex = ["m", "w", " d ", "weiblich"][i % 4];
            let note = ["", "  Kurs \u{e4}  ", "a b"].get(i % 37).copied().unwrap_or("Kurs");
            let count = ["-", "1,5", "1.234", ".", "  7 ", "", "-3"].get(i % 31).copied().unwrap_or("12");
            let hours = ["1.234,5", "x", "", "inf", " 2 ", "-0,5"].get(i % 29).copied().unwrap_or("7,25");
            let sex = if i % 41 == 9 { "q" } else { sex };
            bytes.extend(
                format!("{:02}.{:02}.2024;{sex};{note};{count};{hours}\n", 1 + i % 28, 1 + i % 12).into_bytes(),
            );
        }
        for block in [4_096, 65_536] {
            let (lines, blocks) = both_in(&model, "plain_columns", &bytes, 1_000, block);
            let (facts, batch) = lines.as_ref().unwrap();
            let problems: std::collections::BTreeSet<crate::outcome::Category> =
                facts.rejected.iter().map(|r| r.problem).collect();
            assert!(problems.len() >= 3 && facts.facts > 3_500, "{problems:?}, {} facts", facts.facts);
            let status = batch.as_ref().unwrap().column_by_name(crate::convert::STATUS_COLUMN).unwrap().null_count();
            assert!(status < facts.facts, "some facts have a missing value");
            assert_same(&lines, &blocks.expect("read in blocks"));
        }
    }

    #[test]
    fn a_footer_that_begins_early_makes_the_rest_footer() {
        let bytes = edited(|i, line| if i == 2_000 { b"__________\n".to_vec() } else { line.to_vec() });
        let (lines, blocks) = both("genesis_12411_0012", &bytes, 20_000, 8_192);
        let (facts, _) = lines.as_ref().unwrap();
        assert!(
            facts.skipped.iter().any(|(r, n)| *r == crate::outcome::Skip::Footer && n > 3_000),
            "{:?}",
            facts.skipped
        );
        assert_same(&lines, &blocks.expect("read in blocks"));
    }

    #[test]
    fn a_bad_byte_in_a_late_block_is_reported_with_its_line() {
        let mut bytes =
            std::fs::read(repo().join("sample-data/realdata/koeln_bevoelkerung_stadtteile_2005-2012.csv")).unwrap();
        let line = 20_000;
        let at = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line - 2).unwrap().0 + 5;
        bytes[at] = 0xff;
        let (lines, blocks) = both("koeln_bevoelkerung", &bytes, 50_000, 65_536);
        let error = lines.as_ref().unwrap_err();
        assert!(error.contains(&format!("line {line}")), "{error}");
        assert_eq!(blocks.expect("read in blocks").unwrap_err(), *error);
    }

    #[test]
    fn a_header_beyond_the_first_block_leaves_the_file_to_line_by_line() {
        let (_, blocks) = both("genesis_12411_0012", &genesis(), 200, 4_096);
        assert!(blocks.is_none());
    }

    #[test]
    fn cuts_fall_after_a_line_with_balanced_quotes() {
        assert_eq!(cut(b"a;b\nc;d\ne"), Some(8));
        assert_eq!(cut(b"a;\"b\nc\";d\ne;\"f\n"), Some(10));
        assert_eq!(cut(b"a;\"b\nc"), None);
        assert_eq!(cut(b"no line break"), None);
    }
}
