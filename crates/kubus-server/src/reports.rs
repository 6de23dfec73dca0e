//! Reports through the server: the list, a run for a period as the caller's role (written into that role's own
//! folder, since a role with a row filter gets other numbers), the runs there, and their files.

use crate::api::Params;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use kubus::Identity;
use std::path::{Component, PathBuf};
use std::sync::Arc;

/// The folder of the role's report runs: `[server] reports`/<role> (`_default` without a role).
fn folder(state: &AppState, identity: &Identity) -> PathBuf {
    let settings = &state.project.config().server;
    state.project.root().join(&settings.reports).join(identity.role.as_deref().unwrap_or("_default"))
}

/// The reports of the project: name, title, description and schedule.
pub(crate) async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<serde_json::Value>> {
    Json(
        state
            .project
            .model()
            .reports()
            .map(|r| {
                serde_json::json!({
                    "name": r.name(),
                    "title": r.title(),
                    "description": r.description(),
                    "schedule": r.schedule(),
                })
            })
            .collect(),
    )
}

/// `POST /reports/{name}/runs?period=2024-06`: runs the report as the caller's role (suppression, as a fixed
/// publication) and answers with its files.
pub(crate) async fn run(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["period"])?;
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
    Ok(Json(serde_json::json!({
        "report": name,
        "period": period,
        "title": run.document.title,
        "data": run.document.provenance,
        "suppressed": run.suppressed,
        "files": files,
    })))
}

/// The periods the caller's role has run a report for.
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

/// One file of a run of the caller's role; a path that would leave the run's folder is refused.
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
