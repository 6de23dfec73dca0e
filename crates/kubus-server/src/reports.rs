//! Reports through the server: the list, a run for a period as the caller's role (written into that role's own
//! folder, since a role with a row filter gets other numbers), the runs there, and their files.

use crate::params::{File, OptionalPeriodParam, Params, PeriodParam, Refusals, names};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kubus::Identity;
use serde::Serialize;
use std::path::{Component, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;

/// The folder of the role's report runs: `[server] reports`/<role> (`_default` without a role).
fn folder(state: &AppState, identity: &Identity) -> PathBuf {
    let settings = &state.project.config().server;
    state.project.root().join(&settings.reports).join(identity.role.as_deref().unwrap_or("_default"))
}

/// A report of the project.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReportInfo {
    /// Its name.
    name: String,
    /// Its title.
    title: String,
    /// What it shows.
    description: Option<String>,
    /// When it runs unattended (cron).
    schedule: Option<String>,
}

/// The reports of the project: name, title, description and schedule.
#[utoipa::path(get, path = "/reports", tag = "reports", responses((status = 200, body = Vec<ReportInfo>), Refusals))]
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<ReportInfo>> {
    let reports = state.project.model().reports().map(|r| ReportInfo {
        name: r.name().to_owned(),
        title: r.title().to_owned(),
        description: r.description().map(str::to_owned),
        schedule: r.schedule().map(str::to_owned),
    });
    Json(reports.collect())
}

/// A report run.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunAnswer {
    /// The report.
    report: String,
    /// The month it ran for.
    period: String,
    /// Its title.
    title: String,
    /// Which data it was computed from (cube versions).
    data: String,
    /// Cells suppressed.
    suppressed: usize,
    /// Its files, for `GET /reports/{name}/runs/{period}/{file}`.
    files: Vec<String>,
}

/// Runs the report for a month as the caller's role (suppression, as a fixed publication) into the role's own
/// folder, and answers with its files.
#[utoipa::path(
    post,
    path = "/reports/{name}/runs",
    tag = "reports",
    params(("name" = String, Path, description = "The report"), PeriodParam),
    responses((status = 200, body = RunAnswer), Refusals)
)]
pub(crate) async fn run(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RunAnswer>, ApiError> {
    let params = Params::parse(raw.as_deref(), &names::<PeriodParam>())?;
    let period =
        params.one("period")?.ok_or_else(|| ApiError::bad_request("name the month: ?period=2024-06".into()))?;
    state.project.model().report(&name).map_err(|e| ApiError::not_found(kubus::error_chain(&e)))?;
    let options = kubus::ReportOptions { period: period.to_owned(), role: identity.role.clone(), as_of: Vec::new() };
    let out = folder(&state, &identity);
    let _slot = state.slot().await?;
    let (run, files) = state.project.run_report(&name, &options, &out).await?;
    let files: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(out.join(format!("{name}_{period}"))).ok())
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    Ok(Json(RunAnswer {
        report: name,
        period: period.to_owned(),
        title: run.document.title,
        data: run.document.provenance,
        suppressed: run.suppressed,
        files,
    }))
}

/// A report as a live dashboard: the same run as `POST …/runs` for the month (the caller's role, suppression over
/// all its tables together) without writing files — each part's text, tiles, or table as JSON-stat (a map also as
/// the report files' SVG). Without a period: the latest month its first cube answers.
#[utoipa::path(
    get,
    path = "/reports/{name}/live",
    tag = "reports",
    params(("name" = String, Path, description = "The report"), OptionalPeriodParam),
    responses((status = 200, body = Object, description = "Title, period, provenance, disclosure rule and parts"), Refusals)
)]
pub(crate) async fn live(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &names::<OptionalPeriodParam>())?;
    state.project.model().report(&name).map_err(|e| ApiError::not_found(kubus::error_chain(&e)))?;
    let _slot = state.slot().await?;
    let period = match params.one("period")? {
        Some(period) => period.to_owned(),
        None => state.project.latest_report_period(&name, identity.role.as_deref()).await?.ok_or_else(|| {
            ApiError::not_found(format!("report {name} has no month with data yet; name one with ?period="))
        })?,
    };
    let options = kubus::ReportOptions { period, role: identity.role.clone(), as_of: Vec::new() };
    let run = state.project.build_report(&name, &options).await?;
    let symbol = &state.project.config().disclosure.symbol;
    let live =
        kubus::output::report::live(&run.document, symbol).map_err(|e| ApiError::internal(kubus::error_chain(&e)))?;
    Ok(Json(live).into_response())
}

/// The months the caller's role has run a report for.
#[utoipa::path(
    get,
    path = "/reports/{name}/runs",
    tag = "reports",
    params(("name" = String, Path, description = "The report")),
    responses((status = 200, body = Vec<String>), Refusals)
)]
pub(crate) async fn runs(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    state.project.model().report(&name).map_err(|e| ApiError::not_found(kubus::error_chain(&e)))?;
    let prefix = format!("{name}_");
    let mut periods: Vec<String> = std::fs::read_dir(folder(&state, &identity))
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix(&prefix).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    periods.sort();
    Ok(Json(periods))
}

/// A file of a report run, with its media type.
#[derive(utoipa::ToResponse)]
#[allow(dead_code)] // documents the files `file` serves
pub(crate) enum ReportFile {
    /// The report as a web page.
    Html(#[content("text/html")] String),
    /// The report as Markdown.
    Markdown(#[content("text/markdown")] String),
    /// A table of it as CSV.
    Csv(#[content("text/csv")] String),
    /// A table of it as JSON or JSON-stat.
    Json(#[content("application/json")] serde_json::Value),
    /// A chart.
    Svg(#[content("image/svg+xml")] String),
    /// A chart.
    Png(#[content("image/png")] File),
    /// A workbook of its tables.
    Xlsx(#[content("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")] File),
    /// Any other file of the run.
    Other(#[content("application/octet-stream")] File),
}

/// One file of a run of the caller's role; a path that would leave the run's folder is refused.
#[utoipa::path(
    get,
    path = "/reports/{name}/runs/{period}/{file}",
    tag = "reports",
    params(
        ("name" = String, Path, description = "The report"),
        ("period" = String, Path, description = "The month"),
        ("file" = String, Path, description = "A file of the run as the run listed it, in a subfolder too (`tables/…`)")
    ),
    responses((status = 200, response = ReportFile), Refusals)
)]
pub(crate) async fn file(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path((name, period, file)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let relative = std::path::Path::new(&file);
    let plain = |p: &std::path::Path| p.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain(relative) || !plain(std::path::Path::new(&period)) || !plain(std::path::Path::new(&name)) {
        return Err(ApiError::bad_request(format!("'{file}' is not a file of a report run")));
    }
    let path = folder(&state, &identity).join(format!("{name}_{period}")).join(relative);
    let bytes = std::fs::read(&path)
        .map_err(|_| ApiError::not_found(format!("{name} for {period} has no file {file} (run it first?)")))?;
    let media = match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("xlsx") => kubus::output::Format::Xlsx.media_type(),
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, media)], bytes).into_response())
}
