//! Office exports (CSV, XLSX) → normalised Arrow batches of a cube's facts, plus every rejected line with its
//! reason. Decodes text (declared or detected encoding), maps columns and values to members, derives ages,
//! pseudonymises identity fields and drops identifying columns. Knows the model, not the warehouse or queries:
//! it takes bytes and returns batches; reading files and committing them happen elsewhere.

mod convert;
mod decode;
mod pseudonym;
mod rows;

pub use convert::fact_schema;
pub use pseudonym::PseudonymKey;

use datafusion::arrow::record_batch::RecordBatch;
use kubus_model::{Model, Source};

/// Errors that stop a whole file (a bad row never does: it is rejected and reported).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not fit the declared encoding.
    #[error("{file}: the source declares encoding {declared}, but the file {problem}; set `encoding = \"{suggested}\"` (or \"auto\") in the source's [format]")]
    Encoding { file: String, declared: String, problem: String, suggested: String },
    /// The text contains U+FFFD: its characters were already destroyed before kubus saw it.
    #[error("{file}:{line}: the file contains replacement characters (U+FFFD): its characters were destroyed before export; ask the office for a new export")]
    DestroyedCharacters { file: String, line: usize },
    /// The header line was not found.
    #[error("{file}: no header at line {line} (the file has {lines} lines); check `header_line` in the source")]
    NoHeader { file: String, line: usize, lines: usize },
    /// A column that the mapping reads is not in the header.
    #[error("{file}: column '{column}' is missing from the header{}", kubus_model::closest_suffix(.closest))]
    MissingColumn { file: String, column: String, closest: Vec<String> },
    /// A header column is neither mapped nor dropped; it could carry identifying data, so kubus refuses to guess.
    #[error("{file}: column '{column}' is neither mapped nor dropped; add it to `drop` in source {source_name} or map it")]
    UnmappedColumn { file: String, column: String, source_name: String },
    /// The same column name appears twice in the header.
    #[error("{file}: column '{column}' appears twice in the header")]
    DuplicateColumn { file: String, column: String },
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
    /// The sheet named by the source does not exist.
    #[error("{file}: no sheet '{sheet}'; sheets: {}", .available.join(", "))]
    NoSheet { file: String, sheet: String, available: Vec<String> },
    /// The source's cube or a dimension could not be found (an internal inconsistency of the model).
    #[error(transparent)]
    Model(#[from] kubus_model::Error),
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
    /// Short category: `empty line`, `total line`, `missing value`, `invalid date`, `invalid number`,
    /// `unknown member`, `wrong field count`, `invalid age`.
    pub problem: &'static str,
    /// The full explanation.
    pub reason: String,
}

/// The outcome of reading one file.
#[derive(Debug)]
pub struct FileFacts {
    /// The file's name as given.
    pub file: String,
    /// The encoding the text was decoded with (CSV), or the format.
    pub encoding: String,
    /// Data lines after the header (accepted + rejected).
    pub read: usize,
    /// The accepted facts (schema: [`fact_schema`]).
    pub facts: RecordBatch,
    /// The rejected lines.
    pub rejected: Vec<Rejection>,
}

impl FileFacts {
    /// Number of accepted facts.
    pub fn accepted(&self) -> usize {
        self.facts.num_rows()
    }
}

/// Reads one export of `source` from its bytes. `name` labels the file in rejections and errors.
pub fn read_file(model: &Model, source: &Source, name: &str, bytes: &[u8], key: &PseudonymKey) -> Result<FileFacts> {
    let (encoding, table) = rows::read_rows(source, name, bytes)?;
    rows::check_header(source, name, &table.header)?;
    let mut converter = convert::Converter::new(model, source, name, &table.header, key)?;
    let mut rejected = Vec::new();
    let read = table.rows.len();
    for row in table.rows {
        if let Err(r) = converter.push(&row) {
            rejected.push(r);
        }
    }
    Ok(FileFacts { file: name.to_owned(), encoding, read, facts: converter.finish()?, rejected })
}
