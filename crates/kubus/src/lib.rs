//! kubus: a data cube engine for city administrations. This crate is the façade other tools embed: open a
//! project (its `kubus.toml` and `cube-schemas/`), ingest office exports into the warehouse, and ask cube
//! queries or read-only SQL; answers are Arrow record batches with labelled columns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kubus::Error> {
//! let project = kubus::Project::open(".")?;
//! let query: kubus::Query = serde_json::from_str(
//!     r#"{"cube": "newcomers", "measures": ["persons"], "drilldowns": ["district"], "cuts": ["month=2024-06"]}"#,
//! ).expect("valid query JSON");
//! let answer = project.query(&query, &kubus::QueryOptions::default()).await?;
//! println!("{} rows at warehouse versions {:?}", answer.result.num_rows(), answer.versions);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod access;
mod catalog;
pub mod cluster;
pub mod forecast;
mod ingest;
mod project;
mod protection;
mod report;
mod rollups;
mod users;

pub use catalog::{CubeInfo, DimensionInfo, FormField, LevelInfo, MeasureInfo, MemberInfo, SourceInfo};
pub use ingest::{FileCounts, FileOutcome, FileReport, IngestOptions, IngestProgress, IngestReport};
pub use kubus_ingest::{Cell, PseudonymKey, RecordReader, Row, STATUS_COLUMN};
pub use kubus_model::{
    DemoIngest, DemoQuery, Diagnostic, Diagnostics, Group, Method, Model, ProjectConfig, PseudonymSettings, Role,
    SchemaFile, SchemaKind, ServerSettings, Topic, load_model,
};
pub use kubus_query::cellkey::{PTable, PTableParams};
pub use kubus_query::disclosure::Protection;
pub use kubus_query::{ColumnKind, Cut, CutOp, Order, Query, QueryResult, ResultColumn, TOTAL_COLUMN, TOTAL_LABEL};
pub use kubus_report::schedule::{CatchUp, Due, Job as ScheduleJob, next_wake};
pub use kubus_warehouse::{Pruned, StoredRollup};
pub use kubus_warehouse::{QuarantineRow, Replaced};
pub use project::{Answer, AnswerRecord, KeyOrigin, Project, QueryOptions, SqlOptions, quarantine_batch, schema_files};
pub use protection::ProtectionRecord;
pub use report::{ReportOptions, ReportRun, ScheduleOptions, ScheduledRun};
pub use rollups::{Engine, RollupStatus, RollupUse, Route};
pub use users::{Identity, TokenRecord, User, Users};

/// Re-export of DataFusion's Arrow, the one Arrow of kubus.
pub use datafusion::arrow;
/// Output formats for results (CSV, German CSV, JSON, JSON-stat, XLSX, Parquet).
pub use kubus_report as output;

use std::path::PathBuf;

/// Errors of the kubus library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The project file cannot be read.
    #[error("cannot read project file {path} (is this a kubus project? it needs a kubus.toml)")]
    ProjectFile {
        /// Path of `kubus.toml`.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A schema directory or file cannot be read.
    #[error("cannot read schema {path}")]
    SchemaFile {
        /// Path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An input file cannot be read.
    #[error("cannot read input file {path}")]
    InputFile {
        /// Path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No pseudonymisation key is configured.
    #[error("no pseudonymisation key: set the environment variable {env} or `key_file` in kubus.toml [pseudonymisation]{}", if *.demo_available { " (the project's demo key is for synthetic sample data only: say so with --demo-key)" } else { "" })]
    NoKey {
        /// The environment variable looked at.
        env: String,
        /// Whether the project has a demo key that could be allowed explicitly.
        demo_available: bool,
    },
    /// `kubus demo` would delete a directory that does not look like a warehouse.
    #[error(
        "refusing to reset {path}: it holds {entry}, which kubus did not write; point `warehouse` in kubus.toml at a directory (or bucket prefix) of its own"
    )]
    NotAWarehouse {
        /// Where the warehouse is.
        path: PathBuf,
        /// The unexpected entry.
        entry: String,
    },
    /// A forecast cannot be made for this question.
    #[error("cannot forecast {measure}: {reason}")]
    Forecast {
        /// The forecast measure.
        measure: String,
        /// Why not.
        reason: String,
    },
    /// A level has no map.
    #[error("{level} has no map (`geometry` of the level in the dimension's schema)")]
    NoMap {
        /// The level, as `dimension.level`.
        level: String,
    },
    /// A level's map file cannot be used (a problem of the project, not of the question).
    #[error("the map of {level}: {reason}")]
    Geometry {
        /// The level, as `dimension.level`.
        level: String,
        /// What is wrong (the file unreadable or not a FeatureCollection, a feature that is no member).
        reason: String,
    },
    /// The role may not do this.
    #[error("refused for role {role}: {rule}")]
    Refused {
        /// The role (or "(none)").
        role: String,
        /// The rule that refused.
        rule: String,
    },
    /// The audit log cannot be written (then nothing is answered).
    #[error("cannot write the audit log {path}")]
    AuditLog {
        /// The log file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cell key method's perturbation table cannot be read.
    #[error("cannot read the perturbation table {path} ([disclosure.cell_key] ptable in kubus.toml)")]
    PTableFile {
        /// Path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The warehouse's record of its protection cannot be read or written.
    #[error("the warehouse's protection record {path}: {reason}")]
    ProtectionRecord {
        /// The record file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The project file would protect the warehouse less than it is recorded to be.
    #[error(
        "refusing to open the warehouse {warehouse} with this project file: it would protect the answers less than the warehouse records ({}); if the change is intended, its owner adopts it with `kubus protection --adopt`",
        .weaker.join("; ")
    )]
    WeakerProtection {
        /// Where the warehouse is.
        warehouse: PathBuf,
        /// Each way the project file is weaker.
        weaker: Vec<String>,
    },
    /// An output would land in the warehouse or on the audit log.
    #[error("refusing to write {path}: {what}; choose a file outside the warehouse")]
    ProtectedPath {
        /// The path as given.
        path: PathBuf,
        /// What it would overwrite.
        what: &'static str,
    },
    /// The users file of `kubus serve` cannot be read or written, or a user change is not possible.
    #[error("users file {path}: {reason}")]
    Users {
        /// The users file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A report period that is not a month of the time dimension.
    #[error("'{period}' is not a report period: write a month like 2024-06")]
    BadPeriod {
        /// The period as given.
        period: String,
    },
    /// A report's schedule is not a cron expression.
    #[error("report {report}: schedule: {reason}")]
    BadSchedule {
        /// The report.
        report: String,
        /// What is wrong.
        reason: String,
    },
    /// Rendering a report failed.
    #[error("cannot render the report")]
    Report(#[source] kubus_report::Error),
    /// A report output cannot be written.
    #[error("cannot write {path}")]
    Output {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `--as-of` on a drill-across cube, whose cubes each have their own versions.
    #[error("cube {cube} combines other cubes, each with its own versions; --as-of works on one cube")]
    AsOfAcross {
        /// The drill-across cube.
        cube: String,
    },
    /// Rollups only, and no rollup answers the query.
    #[error(
        "no rollup answers this query, and rollups-only is set (drop --rollups-only to scan the facts, or declare a rollup):\n{reasons}"
    )]
    NoRollup {
        /// The cube.
        cube: String,
        /// Every rollup and the first rule it fails.
        reasons: String,
    },
    /// Values given at ingest (`--set`) that do not fit the source's fields that read them (`@set`).
    #[error("{0}")]
    Given(String),
    /// The cube has no facts yet.
    #[error("cube {cube} has no facts yet; ingest some first: kubus ingest <source> <file>... (sources for {cube}: {})", .sources.join(", "))]
    EmptyCube {
        /// The cube.
        cube: String,
        /// Sources that feed it.
        sources: Vec<String>,
    },
    /// A schema problem (all of them are listed).
    #[error(transparent)]
    Model(#[from] kubus_model::Error),
    /// An input file could not be ingested.
    #[error(transparent)]
    Ingest(#[from] kubus_ingest::Error),
    /// The warehouse failed (boxed: Delta Lake's errors are large, and every `Result` would carry their size).
    #[error(transparent)]
    Warehouse(Box<kubus_warehouse::Error>),
    /// The query is invalid or failed.
    #[error(transparent)]
    Query(#[from] kubus_query::Error),
    /// An engine kubus cannot use.
    #[error("--engine: {reason}")]
    Engine {
        /// Why.
        reason: String,
    },
    /// A cluster process (`kubus scheduler`, `kubus executor`) could not start or stopped with an error.
    #[error("cannot {what}")]
    Cluster {
        /// What it could not do.
        what: String,
        /// Ballista's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A query sent to the cluster was not answered within `[engine] timeout_s`; its jobs were cancelled.
    #[error(
        "cannot answer on the Ballista cluster at {cluster}: no answer within {seconds} s ([engine] timeout_s); {jobs}"
    )]
    ClusterTimeout {
        /// The scheduler's address.
        cluster: String,
        /// The limit.
        seconds: u64,
        /// What became of the query's jobs on the cluster.
        jobs: String,
    },
}

impl From<kubus_warehouse::Error> for Error {
    fn from(e: kubus_warehouse::Error) -> Self {
        Error::Warehouse(Box::new(e))
    }
}

impl From<kubus_model::BadCut> for Error {
    fn from(e: kubus_model::BadCut) -> Self {
        Error::Query(e.into())
    }
}

impl Error {
    /// Whether a query ran out of the memory it may use ([`Project::with_memory_limit`]).
    pub fn is_out_of_memory(&self) -> bool {
        matches!(
            self,
            Error::Query(kubus_query::Error::DataFusion(e))
                if matches!(e.find_root(), datafusion::error::DataFusionError::ResourcesExhausted(_))
        )
    }

    /// Whether an ingest was refused because its data meets data the table holds (or another file of the same
    /// ingest): the same cells twice, which a later delivery must replace or be told to add to.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::Warehouse(w) if matches!(
                **w,
                kubus_warehouse::Error::OverlappingReplace { .. } | kubus_warehouse::Error::Overlap { .. }
            )
        )
    }

    /// Whether the user can fix this (bad input, schema, query or file) as opposed to an internal failure.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Warehouse(w) => matches!(
                **w,
                kubus_warehouse::Error::NoSuchVersion { .. }
                    | kubus_warehouse::Error::OverlappingReplace { .. }
                    | kubus_warehouse::Error::Overlap { .. }
            ),
            Error::Query(q) => q.is_user_error(),
            // The facts could not be stored or built: kubus's own failure, not the file's.
            Error::Ingest(i) => !matches!(i, kubus_ingest::Error::Arrow(_) | kubus_ingest::Error::Sink { .. }),
            // The project's own files failed (its map, its audit log, its protection record): nothing the question
            // or the input could mend.
            Error::Geometry { .. } | Error::AuditLog { .. } | Error::ProtectionRecord { .. } => false,
            Error::Cluster { .. } | Error::ClusterTimeout { .. } => false,
            _ => true,
        }
    }
}

/// An error with its causes, one line: `error: cause: cause`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors say their cause in their own message (object_store's, hyper's): once is enough.
        let cause = s.to_string();
        if !text.contains(&cause) {
            text += &format!(": {cause}");
        }
        source = s.source();
    }
    text
}

/// Result type of the kubus library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
