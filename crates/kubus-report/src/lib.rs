//! Result tables → files: CSV (plain, or German: `;`, decimal comma, BOM), JSON, JSON-stat 2.0, XLSX and
//! Parquet. Takes Arrow batches plus the meaning of each column (dimension key, label, measure, total marker);
//! knows nothing of DataFusion, the warehouse or how the result was computed. Report definitions and the
//! scheduler join this crate later.

mod display;
mod json_stat;
pub mod map;
pub mod report;
pub mod schedule;
mod text;
mod xlsx;

pub use text::{DisplayRows, display_rows};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::io::Write;

/// Errors of the report crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing to the output failed.
    #[error("cannot write the output")]
    Io(#[from] std::io::Error),
    /// Formatting or converting Arrow data failed.
    #[error("cannot format the result")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing CSV failed (other than on the output, which is [`Error::Io`]).
    #[error("cannot write CSV")]
    Csv(csv::Error),
    /// Writing Parquet failed.
    #[error("cannot write Parquet")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Writing XLSX failed.
    #[error("cannot write XLSX")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// A report template does not parse or render.
    #[error("report template")]
    Template(#[from] minijinja::Error),
    /// JSON-stat needs a cube query's result: dimension keys, labels and measures.
    #[error("JSON-stat needs a cube query's result (dimensions and measures), not {what}")]
    NotACube {
        /// What was handed in instead.
        what: String,
    },
}

impl From<csv::Error> for Error {
    /// The output's own failures stay I/O errors, so that a caller can tell a closed pipe.
    fn from(e: csv::Error) -> Self {
        if e.is_io_error() {
            if let csv::ErrorKind::Io(io) = e.into_kind() {
                return Error::Io(io);
            }
            unreachable!("an I/O error's kind is Io");
        }
        Error::Csv(e)
    }
}

/// The label of total rows and columns.
pub const TOTAL_LABEL: &str = "Insgesamt";

/// Result type of the report crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An output format for result tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values, UTF-8, `.` as decimal point.
    Csv,
    /// CSV as German spreadsheets expect it: `;`, decimal comma, UTF-8 with BOM.
    CsvGerman,
    /// A JSON array of objects, one per row.
    Json,
    /// A JSON-stat 2.0 dataset (cube query results only).
    JsonStat,
    /// An Excel workbook: styled header, number formats, totals in bold.
    Xlsx,
    /// Apache Parquet with the result's Arrow schema.
    Parquet,
}

impl Format {
    /// Every format, in the order they are offered.
    pub const ALL: [Format; 6] =
        [Format::Csv, Format::CsvGerman, Format::Json, Format::JsonStat, Format::Xlsx, Format::Parquet];

    /// The format's name, as `--format` and `?format=` take it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::CsvGerman => "csv-de",
            Format::Json => "json",
            Format::JsonStat => "json-stat",
            Format::Xlsx => "xlsx",
            Format::Parquet => "parquet",
        }
    }

    /// What the format is, in a line (`kubus query --help` lists it).
    pub fn description(self) -> &'static str {
        match self {
            Format::Csv => "Comma-separated values with a header line",
            Format::CsvGerman => "CSV for German spreadsheets: `;`, decimal comma, UTF-8 with BOM",
            Format::Json => "A JSON array of objects",
            Format::JsonStat => "A JSON-stat 2.0 dataset (cube queries only)",
            Format::Xlsx => "An Excel workbook (needs --out)",
            Format::Parquet => "Apache Parquet (needs --out)",
        }
    }

    /// The format of a name (see [`Format::name`]).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The media type an HTTP answer in this format carries.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::CsvGerman => "text/csv; charset=utf-8; header=present",
            Format::Json => "application/json",
            Format::JsonStat => "application/json",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// Whether the format is binary: a file, never text for a terminal.
    pub fn is_binary(self) -> bool {
        matches!(self, Format::Xlsx | Format::Parquet)
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv | Format::CsvGerman => "csv",
            Format::Json => "json",
            Format::JsonStat => "stat.json",
            Format::Xlsx => "xlsx",
            Format::Parquet => "parquet",
        }
    }
}

/// What a statistical dimension stands for, for JSON-stat's `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatRole {
    /// Time.
    Time,
    /// Geography.
    Geo,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Member keys of a drilled level; null on total rows.
    Key {
        /// JSON-stat role, if any.
        role: Option<StatRole>,
    },
    /// Member labels of the key column before it.
    Label,
    /// A measure's values.
    Measure,
    /// The boolean marker of total rows.
    Total,
    /// The disclosure status of a measure's cells: the symbol shown instead of a suppressed or zero value.
    Status {
        /// The measure column it describes.
        measure: String,
    },
    /// The marker of forecast rows: their symbol (`P`), else empty. In JSON-stat, the status of the row's values.
    Forecast,
    /// Anything else (SQL results, quarantine listings).
    Other,
}

/// A column of a result table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name in the batches.
    pub name: String,
    /// Human heading.
    pub heading: String,
    /// What it holds.
    pub kind: ColumnKind,
}

/// A result to write: batches plus the meaning of each column.
#[derive(Debug, Clone)]
pub struct Table {
    /// A title (cube label, report name); used as sheet name and dataset label.
    pub title: String,
    /// The Arrow schema of the rows (also when there are none).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// One entry per schema column, in order.
    pub columns: Vec<Column>,
    /// Notes for the reader (data version, disclosure rule), where a format has room for them.
    pub notes: Vec<String>,
}

impl Table {
    /// A table whose columns have no cube meaning (SQL results, listings): headings are the column names.
    pub fn plain(title: impl Into<String>, schema: SchemaRef, batches: Vec<RecordBatch>) -> Table {
        let columns = schema
            .fields()
            .iter()
            .map(|f| Column { name: f.name().clone(), heading: f.name().clone(), kind: ColumnKind::Other })
            .collect();
        Table { title: title.into(), schema, batches, columns, notes: Vec::new() }
    }

    /// For each column, the index of its status column, if it has one.
    pub fn status_columns(&self) -> Vec<Option<usize>> {
        self.columns
            .iter()
            .map(|c| {
                self.columns
                    .iter()
                    .position(|s| matches!(&s.kind, ColumnKind::Status { measure } if *measure == c.name))
            })
            .collect()
    }

    /// Whether a column is a status column (shown through its measure in the text formats and XLSX).
    pub fn is_status(&self, column: usize) -> bool {
        matches!(self.columns[column].kind, ColumnKind::Status { .. })
    }

    /// Whether row `row` of `batch` is a total or subtotal.
    fn is_total(&self, batch: &RecordBatch, row: usize) -> bool {
        use arrow::array::{Array, BooleanArray};
        let Some(i) = self.columns.iter().position(|c| c.kind == ColumnKind::Total) else { return false };
        batch.column(i).as_any().downcast_ref::<BooleanArray>().is_some_and(|a| !a.is_null(row) && a.value(row))
    }
}

/// Writes `table` in `format` to `out`.
pub fn write(table: &Table, format: Format, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Csv => text::csv(table, b',', false, out),
        Format::CsvGerman => text::csv(table, b';', true, out),
        Format::Json => text::json(table, out),
        Format::JsonStat => {
            let value = json_stat::dataset(table)?;
            serde_json::to_writer_pretty(&mut *out, &value).map_err(std::io::Error::from)?;
            writeln!(out)?;
            Ok(())
        }
        Format::Xlsx => {
            out.write_all(&xlsx::workbook(table)?)?;
            Ok(())
        }
        Format::Parquet => {
            // The writer wants `Send`; the bytes go through a buffer (results are small).
            let mut buffer = Vec::new();
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, table.schema.clone(), None)?;
            for batch in &table.batches {
                writer.write(batch)?;
            }
            writer.close()?;
            out.write_all(&buffer)?;
            Ok(())
        }
    }
}
