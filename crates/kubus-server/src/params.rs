//! What the endpoints share of their interface: the answers and query parameters they are documented with (the
//! OpenAPI document's types) and the query string as they read it, refusing a parameter not documented.

use crate::ApiError;
use crate::error::ErrorBody;
use utoipa::{IntoParams, ToSchema};

/// Query parameters, in order, each name possibly repeated (`m=persons&m=records`).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// Parses the query string, refusing a name not in `known` (a misspelt parameter must not be ignored).
    pub(crate) fn parse(raw: Option<&str>, known: &[String]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(k)) {
            return Err(ApiError::bad_request(format!("unknown parameter '{k}'; known are {}", known.join(", "))));
        }
        Ok(Params(pairs))
    }

    /// Every value of the names given (a short and a long name of one parameter).
    pub(crate) fn all(&self, names: &[&str]) -> Vec<String> {
        self.0.iter().filter(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.clone()).collect()
    }

    /// The value of a parameter given at most once.
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad_request(format!("parameter '{name}' is given more than once")));
        }
        Ok(first)
    }

    /// A number, if given.
    pub(crate) fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.one(name)?
            .map(|v| v.parse().map_err(|_| ApiError::bad_request(format!("'{v}' is not a number ({name})"))))
            .transpose()
    }

    /// A flag: absent, empty, `true`/`1` or `false`/`0`.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.one(name)? {
            None | Some("false" | "0") => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!("'{v}' is not true or false ({name})"))),
        }
    }
}

/// The answers every endpoint may give besides its own.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documents answers that `ApiError` builds
pub(crate) enum Refusals {
    /// The request cannot be answered as asked: an unknown parameter, cube, level or measure, a cut that cannot be
    /// read.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid identity.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role may not; the rule is named.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing, or nothing in it yet.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Too many requests wait for a query slot: try again after `Retry-After` seconds.
    #[response(status = 503)]
    Busy(ErrorBody),
    /// The request took longer than `[server] timeout_seconds`, or the Ballista cluster gave no answer within
    /// `[engine] timeout_s`.
    #[response(status = 504)]
    Timeout,
}

/// An answer in the format asked for, protected for the caller's role. `kubus-versions` names the warehouse
/// versions read; `kubus-protection` (percent-encoded UTF-8) says how the numbers are protected.
#[derive(utoipa::ToResponse)]
#[response(headers(
    ("kubus-versions" = String, description = "The versions read, `cube=version`"),
    ("kubus-protection" = String, description = "How the numbers are protected (percent-encoded)"),
    ("content-disposition" = String, description = "The file name"),
))]
#[allow(dead_code)] // documents the bodies `kubus::output::write` makes
pub(crate) enum Answer {
    /// JSON (`json`: rows; `json-stat`: a JSON-stat 2.0 dataset).
    Json(#[content("application/json")] serde_json::Value),
    /// CSV (`csv`: comma and dot; `csv-de`: semicolon and decimal comma).
    Csv(#[content("text/csv")] String),
    /// An Excel workbook.
    Xlsx(#[content("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")] File),
    /// A Parquet file.
    Parquet(#[content("application/vnd.apache.parquet")] File),
}

/// The bytes of a file.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents binary bodies
pub(crate) struct File(Vec<u8>);

/// The formats of an answer (`?format=`): the names `Format::from_name` reads, from the formats themselves.
pub(crate) struct FormatName;

impl utoipa::PartialSchema for FormatName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(kubus::output::Format::ALL.iter().map(|f| f.name())))
            .description(Some("The formats of an answer"))
            .into()
    }
}

impl ToSchema for FormatName {}

/// Whether rollups may answer.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // documents the values `options_of` reads
pub(crate) enum RollupsParam {
    /// A rollup where one can answer, else the facts (the default).
    Prefer,
    /// Always the facts.
    Never,
    /// A rollup or an error.
    Only,
}

/// A query in the CLI's terms, as URL parameters (repeat a parameter for several values).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters `Params` reads; the names are the ones accepted
pub(crate) struct QueryParams {
    /// The cube.
    #[param(example = "newcomers")]
    cube: String,
    /// Measures.
    #[param(example = json!(["persons"]))]
    m: Option<Vec<String>>,
    /// Measures (the long name of `m`).
    measure: Option<Vec<String>>,
    /// Drilldowns: `role`, `role.level` or a level name unique in the cube.
    #[param(example = json!(["district.area"]))]
    d: Option<Vec<String>>,
    /// Drilldowns (the long name of `d`).
    drilldown: Option<Vec<String>>,
    /// Cuts in their text form (`month=2024-06`, `age=18..64`, `district!=11`).
    #[param(example = json!(["month=2024-06"]))]
    c: Option<Vec<String>>,
    /// Cuts (the long name of `c`).
    cut: Option<Vec<String>>,
    /// Subtotals along the drilldowns and a grand total.
    totals: Option<bool>,
    /// Order by measures (`-persons`: largest first).
    order: Option<Vec<String>>,
    /// At most this many rows.
    #[param(minimum = 0)]
    limit: Option<u64>,
}

/// Which data answers.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters `Params` reads; the names are the ones accepted
pub(crate) struct VersionParams {
    /// Read this warehouse version instead of the latest.
    #[param(minimum = 0)]
    as_of: Option<u64>,
    /// Whether rollups may answer.
    #[param(inline)]
    rollups: Option<RollupsParam>,
}

/// The format of an answer.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameter `Params` reads
pub(crate) struct FormatParam {
    /// The format; without one, the `Accept` header decides (CSV, XLSX or Parquet), else JSON.
    #[param(inline)]
    format: Option<FormatName>,
}

/// The member search.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters `Params` reads
pub(crate) struct MemberParams {
    /// The level (default: the finest level the caller may see).
    level: Option<String>,
    /// Search in keys, labels and aliases.
    q: Option<String>,
}

/// The month of a live report (default: the latest its first cube answers).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameter `Params` reads
pub(crate) struct OptionalPeriodParam {
    /// The month, e.g. `2024-06`.
    period: Option<String>,
}

/// The level of a map.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameter `Params` reads
pub(crate) struct LevelParam {
    /// The level whose members' areas are drawn.
    level: String,
}

/// Which quarantine.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameter `Params` reads
pub(crate) struct SourceParam {
    /// Only the lines of this source.
    source: Option<String>,
}

/// Which period a report runs for.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameter `Params` reads
pub(crate) struct PeriodParam {
    /// The month, e.g. `2024-06`.
    #[param(example = "2024-06")]
    period: String,
}

/// The names of the parameters documented by `P`: the ones an endpoint accepts.
pub(crate) fn names<P: IntoParams>() -> Vec<String> {
    P::into_params(|| None).into_iter().map(|p| p.name).collect()
}
