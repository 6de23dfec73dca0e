//! The errors that stop a whole file; a line with a problem never does (it is rejected: see [`crate::outcome`]).

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
    /// The source's custom format names a reader that is not registered.
    #[error(
        "{file}: the source's format is read by the reader '{reader}', which this program does not have ({});          a custom reader is registered by the program that embeds kubus (`Project::with_reader`)",
        if .known.is_empty() { "it has none".to_owned() } else { format!("it has {}", .known.join(", ")) }
    )]
    NoReader { file: String, reader: String, known: Vec<String> },
    /// A custom reader could not read the file.
    #[error("{file}: the reader '{reader}' cannot read it: {problem}")]
    ReaderFailed { file: String, reader: String, problem: String },
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
