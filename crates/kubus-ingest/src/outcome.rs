//! What reading a file gives besides its facts: every line accounted for — rejected (with the kind of problem),
//! skipped (with the reason), a checked total — and how far the reading has come.

use datafusion::arrow::record_batch::RecordBatch;

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

/// Why lines were skipped: titles, header lines, checked totals, footers, empty lines, a PDF's pages around the
/// table, and the source's own skip rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Lines above the header.
    Title,
    /// The header lines (and lines between them).
    Header,
    /// A line of column numbers below the header.
    ColumnNumbers,
    /// Total lines whose totals matched the detail facts.
    Total,
    /// Balance lines that matched their terms.
    Balance,
    /// The footer: notes, footnotes, copyright.
    Footer,
    /// Lines without any value.
    Empty,
    /// The lines of a PDF's pages before the one with the table's header.
    PageWithoutTable,
    /// The lines above the table's header repeated on a PDF's later page (a letterhead).
    PageHeader,
    /// The table's header repeated on a PDF's later page.
    RepeatedHeader,
    /// A skip rule of the source, by the reason it gives.
    Rule(String),
}

impl Skip {
    /// Every reason but a source's own rules.
    pub const FIXED: [Skip; 10] = [
        Skip::Title,
        Skip::Header,
        Skip::ColumnNumbers,
        Skip::Total,
        Skip::Balance,
        Skip::Footer,
        Skip::Empty,
        Skip::PageWithoutTable,
        Skip::PageHeader,
        Skip::RepeatedHeader,
    ];

    /// Its name in the ingest report.
    pub fn name(&self) -> &str {
        match self {
            Skip::Title => "title",
            Skip::Header => "header",
            Skip::ColumnNumbers => "column numbers",
            Skip::Total => "total (checked)",
            Skip::Balance => "balance (checked)",
            Skip::Footer => "footer",
            Skip::Empty => "empty line",
            Skip::PageWithoutTable => "page without the table",
            Skip::PageHeader => "page header",
            Skip::RepeatedHeader => "header (repeated)",
            Skip::Rule(reason) => reason,
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Lines skipped on purpose, by reason, in the order the reasons first occurred.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped(Vec<(Skip, usize)>);

impl Skipped {
    /// Adds `lines` skipped for `reason`.
    pub fn add(&mut self, reason: &Skip, lines: usize) {
        if lines == 0 {
            return;
        }
        match self.0.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += lines,
            None => self.0.push((reason.clone(), lines)),
        }
    }

    /// Adds the lines `other` skipped (another file's, or the lines after).
    pub fn absorb(&mut self, other: &Skipped) {
        for (reason, n) in &other.0 {
            self.add(reason, *n);
        }
    }

    /// The lines skipped for any reason.
    pub fn lines(&self) -> usize {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// Each reason with its lines.
    pub fn iter(&self) -> impl Iterator<Item = (&Skip, usize)> {
        self.0.iter().map(|(r, n)| (r, *n))
    }
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
    pub skipped: Skipped,
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
        self.skipped.lines()
    }
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
