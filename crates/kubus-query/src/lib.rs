//! Cube query → DataFusion plan → Arrow result. Resolves names and members against the model (`plan`, pure),
//! then builds and runs a DataFusion logical plan over a cube's facts (`exec`, with member tables and cut filters from
//! `members`), answering batches described in `result`. Takes table providers, not the
//! warehouse; knows nothing of ingest or of output formats.

mod aggregates;
pub mod bitmap;
pub mod cellkey;
pub mod disclosure;
mod exec;
mod groups;
mod members;
mod plan;
mod published;
mod query;
mod result;
pub mod rollup;
pub mod wire;

pub use exec::{Facts, Prepared, cube_view, execute, explain, prepare, run, run_sql};
pub use groups::TextGroups;
pub use members::member_batch;
pub use plan::{CubePlan, LevelRef, PlannedMeasure, ResolvedCut, plan, resolve_cut, resolve_target};
pub use query::{Cut, CutOp, Order, Query};
pub use result::{ColumnKind, QueryResult, ResultColumn, TOTAL_COLUMN, TOTAL_LABEL};

/// Errors of the query crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name or member of the query is not in the model.
    #[error(transparent)]
    Model(#[from] kubus_model::Error),
    /// A cut's text does not parse.
    #[error("cannot read cut '{text}': write level=value, level=a,b, level!=value, level=from..to or level<value")]
    BadCut { text: String },
    /// A comparison cut on a dimension without member order.
    #[error("cannot use '{cut}': dimension {dimension} has no member order; use = or !=")]
    Unordered { cut: String, dimension: String },
    /// A forecast asked of the planner: it is made from the published answer, after the plan has run.
    #[error("measure {measure} is a forecast, made from the published answer: ask it in a cube query (kubus query)")]
    Forecast { measure: String },
    /// A time comparison without a period to compare.
    #[error("measure {measure} compares periods: drill down by {role} or cut it to a period")]
    NoPeriod { measure: String, role: String },
    /// A sum over the members of a dimension whose members overlap.
    #[error(
        "measure {measure} would add up the members of {role}, which overlap ({dimension} is not additive): cut \
         {role} to one {level} ({role}=…) or drill down by {role}.{level}"
    )]
    NotAdditive { measure: String, role: String, dimension: String, level: String },
    /// An order's text does not parse.
    #[error("cannot read order '{text}': write a measure name, or -measure for descending")]
    BadOrder { text: String },
    /// Order by a measure the query does not compute.
    #[error("cannot order by '{measure}': it is not among the query's measures ({})", .valid.join(", "))]
    BadOrderMeasure { measure: String, valid: Vec<String> },
    /// No measure requested.
    #[error("no measure given for cube {cube}; choose from: {}", .valid.join(", "))]
    NoMeasure { cube: String, valid: Vec<String> },
    /// The same role drilled twice.
    #[error("dimension {role} is drilled down twice; drill it at one level")]
    DuplicateDrilldown { role: String },
    /// The same measure asked twice.
    #[error("measure {measure} is asked twice; ask for it once")]
    DuplicateMeasure { measure: String },
    /// A level finer than the facts record.
    #[error("cube {cube} records {role} by {recorded}; level {level} is finer than that")]
    TooFine { cube: String, role: String, level: String, recorded: String },
    /// A level of another hierarchy that the recorded level does not roll up into.
    #[error("cube {cube} records {role} by {recorded}, which does not roll up into level {level}")]
    NotAbove { cube: String, role: String, level: String, recorded: String },
    /// A range whose end comes before its start.
    #[error("the range in '{cut}' is empty: its end comes before its start")]
    EmptyRange { cut: String },
    /// The SQL text was refused or is invalid.
    #[error("SQL refused")]
    Sql {
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// Planning or execution failed inside DataFusion.
    #[error("query execution failed")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A perturbation table that cannot be used.
    #[error("perturbation table {origin}, line {line}: {message}")]
    PTable { origin: String, line: usize, message: String },
    /// Building member tables failed (an internal bug).
    #[error("building member tables failed")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

impl Error {
    /// Whether the error is the user's to fix (as opposed to an internal failure).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::DataFusion(_) | Error::Arrow(_))
    }
}

impl From<kubus_model::BadCut> for Error {
    fn from(e: kubus_model::BadCut) -> Self {
        Error::BadCut { text: e.text }
    }
}

/// Result type of the query crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
