//! The line rules and tallies every reader of a file shares: which line is a title, the header, a line of column
//! numbers, the footer, empty or skipped by a rule of the source, and which is data to convert; how each line was
//! accounted for; and the end of a file, where totals are checked and the accounting is handed back.

use crate::convert::{Converter, Outcome};
use crate::error::Result;
use crate::outcome::{BATCH_ROWS, FileFacts, Progress, Rejection, Skip, Skipped, TotalLines};
use crate::rows::{Cell, Row, Rows, SPARE_ROWS};
use datafusion::arrow::record_batch::RecordBatch;
use kubus_model::Source;
use regex::Regex;
use std::collections::BTreeMap;

/// How the lines read so far were accounted for.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) lines: usize,
    pub(crate) accepted: usize,
    pub(crate) rejected: usize,
    pub(crate) skipped: Skipped,
}

impl Tally {
    fn skip(&mut self, reason: &Skip, lines: usize) {
        self.skipped.add(reason, lines);
    }

    /// Adds the tally of the lines that follow.
    pub(crate) fn absorb(&mut self, later: Tally) {
        self.lines += later.lines;
        self.accepted += later.accepted;
        self.rejected += later.rejected;
        self.skipped.absorb(&later.skipped);
    }
}

/// The source's rules for the lines below the header: the line of column numbers, the footer, skip rules.
pub(crate) struct Rules {
    column_numbers: Option<usize>,
    footer: Option<Regex>,
    /// Pattern, whether any cell may match (else the first non-empty one), reason.
    skips: Vec<(Regex, bool, Skip)>,
}

/// The data lines read so far: their tally, the rejected ones, and whether the footer has begun.
#[derive(Default)]
pub(crate) struct Lines {
    pub(crate) tally: Tally,
    pub(crate) rejected: Vec<Rejection>,
    pub(crate) in_footer: bool,
}

impl Rules {
    pub(crate) fn new(source: &Source) -> Rules {
        let layout = source.layout();
        Rules {
            column_numbers: layout.column_numbers_line(),
            footer: layout.footer().map(|f| Regex::new(f).expect("validated by the model")),
            skips: layout
                .skips()
                .iter()
                .map(|s| {
                    (Regex::new(&s.pattern).expect("validated by the model"), s.any_cell, Skip::Rule(s.reason.clone()))
                })
                .collect(),
        }
    }

    /// Counts one line below the header and skips it (with its reason), unless it is a data line to convert.
    pub(crate) fn is_data(&self, row: &Row, lines: &mut Lines) -> bool {
        let tally = &mut lines.tally;
        tally.lines += row.span;
        let first = if self.footer.is_some() || !self.skips.is_empty() { row.first_text() } else { String::new() };
        if Some(row.line) == self.column_numbers {
            tally.skip(&Skip::ColumnNumbers, row.span);
        } else if lines.in_footer || self.footer.as_ref().is_some_and(|f| !first.is_empty() && f.is_match(&first)) {
            lines.in_footer = true;
            tally.skip(&Skip::Footer, row.span);
        } else if row.is_empty() {
            tally.skip(&Skip::Empty, row.span);
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
    pub(crate) fn count(&mut self, row: &Row, outcome: Outcome) {
        match outcome {
            Outcome::Facts => self.tally.accepted += row.span,
            Outcome::Total => {}
            Outcome::Rejected(r) => {
                self.tally.rejected += row.span;
                self.rejected.push(r);
            }
        }
    }
}

/// Reads the lines above and of the header. `None` when the rows end before the header's last line (in a
/// stretch of the file: the header lies beyond it).
#[allow(clippy::type_complexity)]
pub(crate) fn header_lines(
    source: &Source,
    rows: &mut Rows<'_>,
    tally: &mut Tally,
) -> Result<Option<(BTreeMap<usize, Vec<Cell>>, Vec<(usize, Vec<Cell>)>)>> {
    let header_lines = source.layout().header_lines();
    let (first_header, last_header) =
        (header_lines[0], *header_lines.last().expect("validated: at least one header line"));
    let mut titles: BTreeMap<usize, Vec<Cell>> = BTreeMap::new();
    let mut header_rows: Vec<(usize, Vec<Cell>)> = Vec::new();
    for row in rows.by_ref() {
        let row = row?;
        tally.lines += row.span;
        if row.line < first_header {
            titles.insert(row.line, row.cells);
            tally.skip(&Skip::Title, row.span);
        } else {
            if header_lines.contains(&row.line) {
                header_rows.push((row.line, row.cells));
            }
            tally.skip(&Skip::Header, row.span);
            if row.line >= last_header {
                break;
            }
        }
    }
    Ok((header_rows.last().map(|(l, _)| *l) == Some(last_header)).then_some((titles, header_rows)))
}

/// Reads the rest of the rows as lines below the header, handing on facts in batches of about [`BATCH_ROWS`].
pub(crate) fn data_lines(
    rules: &Rules,
    rows: &mut Rows<'_>,
    lines: &mut Lines,
    converter: &mut Converter<'_>,
    facts: &mut usize,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut chunk = Chunk::default();
    while let Some(row) = rows.next() {
        let row = row?;
        let span = row.span;
        chunk.take(row, rules, rows, lines, converter);
        if lines.tally.lines % 65_536 < span {
            progress(Progress { lines: lines.tally.lines, bytes: Rows::position(rows) });
        }
        if let Some(batch) = converter.full_batch(BATCH_ROWS)? {
            *facts += batch.num_rows();
            sink(batch)?;
        }
    }
    chunk.convert(rows, lines, converter);
    Ok(())
}

/// Data lines gathered to be converted a chunk at a time ([`Converter::push_chunk`]: field by field, a line that
/// is not plain facts through the line converter in its turn).
#[derive(Default)]
pub(crate) struct Chunk(Vec<Row>);

impl Chunk {
    /// Accounts for `row` as a line below the header (see [`Rules::is_data`]) and keeps it if it is data; a full
    /// chunk is converted. A row that is no data goes back to the reader.
    pub(crate) fn take(
        &mut self,
        row: Row,
        rules: &Rules,
        rows: &mut Rows<'_>,
        lines: &mut Lines,
        converter: &mut Converter<'_>,
    ) {
        if !rules.is_data(&row, lines) {
            rows.recycle(row);
            return;
        }
        self.0.push(row);
        if self.0.len() == SPARE_ROWS {
            self.convert(rows, lines, converter);
        }
    }

    /// Converts the lines gathered, accounts for each, and hands their rows back to the reader.
    pub(crate) fn convert(&mut self, rows: &mut Rows<'_>, lines: &mut Lines, converter: &mut Converter<'_>) {
        converter.push_chunk(&self.0, |row, outcome| lines.count(row, outcome));
        for row in self.0.drain(..) {
            rows.recycle(row);
        }
    }
}

/// Checks the totals, hands on the last facts and accounts for the file.
pub(crate) fn finish(
    name: &str,
    converter: Converter<'_>,
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
        lines.tally.skip(&Skip::Total, *span);
    }
    for (_, span) in &checked.balanced {
        lines.tally.skip(&Skip::Balance, *span);
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
