//! The routes under `/api/v1` and the health checks. Every handler asks the library as the caller's identity; the
//! library decides what that role may see.

use crate::error::ErrorBody;
use crate::params::{
    Answer, FormatParam, LevelParam, MemberParams, Params, QueryParams, Refusals, SourceParam, VersionParams, names,
};
use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension, Multipart, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kubus::output::Format;
use kubus::{Identity, Query, QueryOptions, RollupUse};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

/// Room for the multipart framing around an upload's files: boundaries and part headers.
const FRAMING: u64 = 64 << 10;

/// The service's routes, with their limits. The routes under `/api/v1` come from their annotated handlers, which
/// also make the OpenAPI document served at `/api/v1/openapi.json` (without identity: it holds no data).
pub(crate) fn router(state: Arc<AppState>, settings: &kubus::ServerSettings) -> Router {
    let upload_limit = usize::try_from(settings.max_upload_bytes.saturating_add(FRAMING)).unwrap_or(usize::MAX);
    let (api, document) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(session_open, session_close))
        .routes(routes!(cubes))
        .routes(routes!(cube))
        .routes(routes!(members))
        .routes(routes!(geometry))
        .routes(routes!(query_get, query_post))
        .routes(routes!(explain_get, explain_post))
        .routes(routes!(quarantine))
        .routes(routes!(crate::reports::list))
        .routes(routes!(crate::reports::runs, crate::reports::run))
        .routes(routes!(crate::reports::live))
        // A run's files lie in subfolders too: a wildcard, which OpenAPI has no form for (documented in `ApiDoc`).
        .route("/reports/{name}/runs/{period}/{*file}", get(crate::reports::file))
        .routes(routes!(upload).layer(DefaultBodyLimit::max(upload_limit)))
        .routes(routes!(sources))
        .routes(routes!(form))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::authenticate))
        .split_for_parts();
    let document = Arc::new(document);
    let api = api
        .route("/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
        .layer(axum::middleware::map_response(json_errors));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .nest("/api/v1", api)
        .merge(crate::ui::router())
        .fallback(|| async { ApiError::not_found("no such endpoint; the API is under /api/v1".into()) })
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(settings.timeout_seconds),
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("the server failed on this request (a bug); it is logged".into()).into_response()
        }))
        .with_state(state)
}

/// Axum's own refusals (a path, query or body it cannot read) answer plain text; like every error of the API they
/// become JSON.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let text = response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"text/plain"));
    if !text || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 << 10).await.unwrap_or_default();
    ApiError::with_status(status, String::from_utf8_lossy(&body).into_owned()).into_response()
}

/// Ready when the warehouse and the users file can be read.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let probe = state.clone();
    let warehouse = tokio::task::spawn_blocking(move || probe.project.warehouse_reachable()).await.unwrap_or(false);
    match (warehouse, state.users.get(&state.project)) {
        (true, Ok(_)) => "ready\n".into_response(),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "the warehouse cannot be reached\n").into_response(),
        (_, Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", e.message)).into_response(),
    }
}

/// Who the caller is, as the server sees it.
#[derive(Serialize, ToSchema)]
struct Me {
    /// The user (none: anonymous, where the server allows it).
    user: Option<String>,
    /// The user's groups.
    groups: Vec<String>,
    /// The role the groups act as (none: the most restrictive default).
    role: Option<String>,
    /// What the role is for.
    role_description: Option<String>,
    /// Whether the role may use SQL (over the PostgreSQL wire protocol).
    sql: bool,
    /// Whether the role may read the quarantine.
    quarantine: bool,
    /// The symbol shown for a suppressed cell.
    suppressed_symbol: String,
    /// The symbol shown for a cell with nothing in it.
    zero_symbol: String,
}

/// Who the caller is, as the server sees it.
#[utoipa::path(get, path = "/me", tag = "catalogue", responses((status = 200, body = Me), Refusals))]
async fn me(State(state): State<Arc<AppState>>, Extension(identity): Extension<Identity>) -> Json<Me> {
    let role = identity.role.as_deref().and_then(|r| state.project.config().role(r).ok());
    Json(Me {
        role_description: role.and_then(|r| r.description.clone()),
        sql: role.is_some_and(|r| r.sql),
        quarantine: state.project.may_read_quarantine(identity.role.as_deref()),
        suppressed_symbol: state.project.config().disclosure.symbol.clone(),
        zero_symbol: state.project.config().disclosure.zero_symbol.clone(),
        user: identity.user,
        groups: identity.groups,
        role: identity.role,
    })
}

/// Opens a session for the browser tool with the token of this request (`Authorization`): its id comes back in an
/// HttpOnly cookie, which the browser sends with every request to the server from any of its tabs, for ten hours
/// or until the session is closed or the token removed.
#[utoipa::path(
    post,
    path = "/session",
    tag = "catalogue",
    responses(
        (status = 204, description = "The session is open; `Set-Cookie` holds it"),
        Refusals
    )
)]
async fn session_open(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (Some((_, token)), Some(user)) = (crate::auth::bearer(&headers)?, identity.user) else {
        return Err(ApiError::bad_request(
            "a session is opened with a user's token in the Authorization header (the single sign-on in front of \
             the server names its users on every request)"
                .into(),
        ));
    };
    let id = state.sessions.open(&user, &token)?;
    let secure = if crate::auth::over_https(&state, &headers, peer.ip()) { "; Secure" } else { "" };
    let cookie = format!(
        "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        crate::auth::SESSION_COOKIE,
        crate::auth::SESSION_LIFETIME.as_secs()
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Closes the session of this request's cookie (logging out of the browser tool in all its tabs).
#[utoipa::path(
    delete,
    path = "/session",
    tag = "catalogue",
    responses((status = 204, description = "The session is closed; `Set-Cookie` removes it"), Refusals)
)]
async fn session_close(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(id) = crate::auth::session_id(&headers) {
        state.sessions.close(id);
    }
    let cookie = format!("{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", crate::auth::SESSION_COOKIE);
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII"))]).into_response()
}

/// The cubes the caller may ask: dimensions down to its finest levels, measures with labels.
#[utoipa::path(get, path = "/cubes", tag = "catalogue", responses((status = 200, body = Vec<kubus::CubeInfo>), Refusals))]
async fn cubes(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
) -> Result<Json<Vec<kubus::CubeInfo>>, ApiError> {
    Ok(Json(state.project.catalog(identity.role.as_deref())?))
}

/// One cube as the caller may ask it.
#[utoipa::path(
    get,
    path = "/cubes/{cube}",
    tag = "catalogue",
    params(("cube" = String, Path, description = "The cube")),
    responses((status = 200, body = kubus::CubeInfo), Refusals)
)]
async fn cube(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(name): Path<String>,
) -> Result<Json<kubus::CubeInfo>, ApiError> {
    let catalog = state.project.catalog(identity.role.as_deref())?;
    if let Some(found) = catalog.into_iter().find(|c| c.name == name) {
        return Ok(Json(found));
    }
    if let Err(e) = state.project.model().cube(&name) {
        return Err(ApiError::not_found(kubus::error_chain(&e)));
    }
    Err(kubus::Error::Refused {
        role: identity.role.unwrap_or_else(|| "(none)".into()),
        rule: format!("it may not read cube {name}"),
    }
    .into())
}

/// The members of a level the caller may see, with a search in keys, labels and aliases.
#[utoipa::path(
    get,
    path = "/cubes/{cube}/dimensions/{dimension}/members",
    tag = "catalogue",
    params(
        ("cube" = String, Path, description = "The cube"),
        ("dimension" = String, Path, description = "The dimension's role name in the cube"),
        MemberParams
    ),
    responses((status = 200, body = Vec<kubus::MemberInfo>), Refusals)
)]
async fn members(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path((cube, dimension)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<kubus::MemberInfo>>, ApiError> {
    let params = Params::parse(raw.as_deref(), &names::<MemberParams>())?;
    let role = identity.role.as_deref();
    let level = match params.one("level")? {
        Some(level) => level.to_owned(),
        None => {
            let catalog = state.project.catalog(role)?;
            let levels = catalog
                .iter()
                .find(|c| c.name == cube)
                .and_then(|c| c.dimensions.iter().find(|d| d.name == dimension))
                .map(|d| d.levels.clone())
                .unwrap_or_default();
            match levels.last() {
                Some(l) => l.name.clone(),
                None => return Err(ApiError::bad_request(format!("name a level of {dimension} with ?level="))),
            }
        }
    };
    Ok(Json(state.project.search_members(role, &cube, &dimension, &level, params.one("q")?)?))
}

/// The map of a level: its members' areas as GeoJSON (WGS84 longitude/latitude), each feature with the member's
/// `key` and `label`, only the members the caller may see.
#[utoipa::path(
    get,
    path = "/cubes/{cube}/dimensions/{dimension}/geometry",
    tag = "catalogue",
    params(
        ("cube" = String, Path, description = "The cube"),
        ("dimension" = String, Path, description = "The dimension's role name in the cube"),
        LevelParam
    ),
    responses(
        (status = 200, body = Object, content_type = "application/geo+json", description = "A FeatureCollection"),
        Refusals
    )
)]
async fn geometry(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path((cube, dimension)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &names::<LevelParam>())?;
    let Some(level) = params.one("level")? else {
        return Err(ApiError::bad_request(format!("name the level of {dimension} to draw with ?level=")));
    };
    let features = state.project.geometry(identity.role.as_deref(), &cube, &dimension, level)?;
    let mut response = Json(features).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
    Ok(response)
}

/// A query in the CLI's syntax: `?cube=newcomers&m=persons&d=district&c=month=2024-06`.
fn query_of(params: &Params) -> Result<Query, ApiError> {
    let cube = params.one("cube")?.ok_or_else(|| ApiError::bad_request("name a cube: ?cube=…".into()))?.to_owned();
    let cuts = params.all(&["c", "cut"]).iter().map(|c| c.parse()).collect::<Result<Vec<_>, _>>();
    let order = params.all(&["order"]).iter().map(|o| o.parse()).collect::<Result<Vec<_>, _>>();
    Ok(Query {
        cube,
        measures: params.all(&["m", "measure"]),
        drilldowns: params.all(&["d", "drilldown"]),
        cuts: cuts.map_err(kubus::Error::from)?,
        totals: params.flag("totals")?,
        order: order.map_err(kubus::Error::from)?,
        limit: params.number("limit")?,
    })
}

/// How the caller asks: its role, the version and whether rollups may answer.
fn options_of(params: &Params, identity: &Identity) -> Result<QueryOptions, ApiError> {
    let rollups = match params.one("rollups")? {
        None | Some("prefer") => RollupUse::Prefer,
        Some("never") => RollupUse::Never,
        Some("only") => RollupUse::Only,
        Some(other) => return Err(ApiError::bad_request(format!("rollups={other}: use prefer, never or only"))),
    };
    Ok(QueryOptions { as_of: params.number("as_of")?, role: identity.role.clone(), rollups, ..Default::default() })
}

/// The answer's format: `?format=`, else the `Accept` header, else JSON.
fn format_of(params: &Params, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(name) = params.one("format")? {
        return Format::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            ApiError::bad_request(format!("unknown format '{name}'; formats are {}", names.join(", ")))
        });
    }
    let accept = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).unwrap_or_default();
    let wanted = [
        ("text/csv", Format::Csv),
        (Format::Xlsx.media_type(), Format::Xlsx),
        (Format::Parquet.media_type(), Format::Parquet),
    ];
    Ok(wanted.into_iter().find(|(media, _)| accept.contains(media)).map_or(Format::Json, |(_, f)| f))
}

/// A query in the CLI's terms as URL parameters, answered in the format asked for and protected for the caller's
/// role: a URL one can bookmark, paste into Excel or put into a report.
#[utoipa::path(
    get,
    path = "/query",
    tag = "query",
    params(QueryParams, VersionParams, FormatParam),
    responses((status = 200, response = Answer), (status = 422, body = ErrorBody, description = "Over the memory of one query"), (status = 502, body = ErrorBody, description = "The Ballista cluster (`[engine] cluster`) failed to answer: a lost executor, a failed job"), Refusals)
)]
async fn query_get(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let known = [names::<QueryParams>(), names::<VersionParams>(), names::<FormatParam>()].concat();
    let params = Params::parse(raw.as_deref(), &known)?;
    answer(&state, &identity, query_of(&params)?, &params, &headers).await
}

/// A query in the library's JSON (what `kubus query --json` takes), answered as `GET /query` answers.
#[utoipa::path(
    post,
    path = "/query",
    tag = "query",
    params(VersionParams, FormatParam),
    request_body = Query,
    responses((status = 200, response = Answer), (status = 422, body = ErrorBody, description = "Over the memory of one query"), (status = 502, body = ErrorBody, description = "The Ballista cluster (`[engine] cluster`) failed to answer: a lost executor, a failed job"), Refusals)
)]
async fn query_post(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &[names::<VersionParams>(), names::<FormatParam>()].concat())?;
    answer(&state, &identity, query_body(&body)?, &params, &headers).await
}

/// A query in the library's JSON (what `kubus query --json` takes).
fn query_body(body: &[u8]) -> Result<Query, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("cannot read the query JSON: {e}")))
}

/// Answers a query as the caller in the format asked for, with the protection notes and versions as headers; the
/// same again at the same versions from the kept answers (see `answers`).
async fn answer(
    state: &AppState,
    identity: &Identity,
    query: Query,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = format_of(params, headers)?;
    let options = options_of(params, identity)?;
    // A question the model cannot place goes on to be refused by the query, and recorded there.
    let versions = state.answers.as_ref().and_then(|_| state.project.latest_versions(&query).ok());
    // The same question asked by many at once (a dashboard after the month's commit) is computed once: the others
    // wait for its answer.
    let guard = match (&state.answers, &versions) {
        (Some(answers), Some(v)) => {
            match answers.get_value_or_guard_async(&crate::answers::key(&query, &options, format, v)).await {
                Ok(kept) => {
                    state.project.audit_repeated(&query, &options, &kept.record)?;
                    return Ok(kept.response());
                }
                Err(guard) => Some(guard),
            }
        }
        _ => None,
    };
    let _slot = state.slot().await?;
    let answer = state.project.query(&query, &options).await?;
    let mut table = state.project.result_table(&query.cube, &answer.result)?;
    table.notes = answer.notes.clone();
    let mut body = Vec::new();
    kubus::output::write(&table, format, &mut body).map_err(|e| ApiError::bad_request(kubus::error_chain(&e)))?;
    let read: Vec<String> = answer.versions.iter().map(|(c, v)| format!("{c}={v}")).collect();
    let disposition = if matches!(format, Format::Xlsx | Format::Parquet) { "attachment" } else { "inline" };
    let file = format!("{}.{}", query.cube, format.extension());
    // The notes say how the numbers are protected (German, so percent-encoded as UTF-8).
    let notes: String = url::form_urlencoded::byte_serialize(answer.notes.join("\n").as_bytes()).collect();
    let kept = Arc::new(crate::answers::Kept {
        body: body.into(),
        format,
        disposition: header_value(&format!("{disposition}; filename=\"{file}\"")),
        versions: header_value(&read.join(", ")),
        protection: header_value(&notes),
        record: answer.record(),
    });
    // Kept only when no commit came in between: then the answer read the versions of its key. Otherwise (or on an
    // error above) the guard goes, and whoever waited computes.
    if let Some(guard) = guard
        && state.project.latest_versions(&query).ok() == versions
    {
        let _ = guard.insert(kept.clone());
    }
    Ok(kept.response())
}

/// A header value from text that is visible ASCII by construction.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// How a query would be answered (which rollup or the facts, which plan), without its numbers.
#[utoipa::path(
    get,
    path = "/explain",
    tag = "query",
    params(QueryParams, VersionParams),
    responses((status = 200, body = String, description = "The plan, in words"), Refusals)
)]
async fn explain_get(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    RawQuery(raw): RawQuery,
) -> Result<String, ApiError> {
    let params = Params::parse(raw.as_deref(), &[names::<QueryParams>(), names::<VersionParams>()].concat())?;
    explain(&state, &identity, query_of(&params)?, &params).await
}

/// How a query in the library's JSON would be answered.
#[utoipa::path(
    post,
    path = "/explain",
    tag = "query",
    params(VersionParams),
    request_body = Query,
    responses((status = 200, body = String, description = "The plan, in words"), Refusals)
)]
async fn explain_post(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<String, ApiError> {
    let params = Params::parse(raw.as_deref(), &names::<VersionParams>())?;
    explain(&state, &identity, query_body(&body)?, &params).await
}

async fn explain(state: &AppState, identity: &Identity, query: Query, params: &Params) -> Result<String, ApiError> {
    let options = options_of(params, identity)?;
    let _slot = state.slot().await?;
    Ok(state.project.explain(&query, &options).await?)
}

/// The quarantine's rejected lines with their raw values, for a role that may read them (data stewards).
#[utoipa::path(
    get,
    path = "/quarantine",
    tag = "ingest",
    params(SourceParam, FormatParam),
    responses((status = 200, response = Answer), Refusals)
)]
async fn quarantine(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &[names::<SourceParam>(), names::<FormatParam>()].concat())?;
    let format = format_of(&params, &headers)?;
    if format == Format::JsonStat {
        return Err(ApiError::bad_request("the quarantine is a list of lines, not a cube: no json-stat".into()));
    }
    let rows = state.project.quarantine(params.one("source")?, identity.role.as_deref())?;
    let batch = kubus::quarantine_batch(&rows)?;
    let table = kubus::output::Table::plain("Quarantäne", batch.schema(), vec![batch]);
    let mut body = Vec::new();
    kubus::output::write(&table, format, &mut body).map_err(|e| ApiError::internal(kubus::error_chain(&e)))?;
    Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
}

/// A file name as uploaded, reduced to a plain name: no folders, nothing hidden, nothing a shell or log would read
/// as something else.
fn upload_name(given: &str) -> Result<String, ApiError> {
    let name = given.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if name.is_empty() || name.starts_with('.') || name.chars().any(char::is_control) || name.len() > 255 {
        return Err(ApiError::bad_request(format!("'{given}' cannot name an uploaded file")));
    }
    Ok(name.to_owned())
}

/// A folder of its own for one upload, removed when dropped (after the ingest, or when the upload fails).
struct UploadDir(std::path::PathBuf);

impl Drop for UploadDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Files for a source: streamed to disk, ingested in one commit under the cube's lock, answered with the CLI's line
/// accounting (every line of every file accepted, rejected or skipped with a reason).
#[utoipa::path(
    post,
    path = "/sources/{source}/files",
    tag = "ingest",
    params(("source" = String, Path, description = "The source, as in `kubus.toml`")),
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses(
        (status = 200, body = crate::report::IngestAnswer),
        (status = 409, body = ErrorBody, description = "Its data meets data the table holds; nothing was ingested, each file read is accounted for"),
        (status = 413, body = ErrorBody, description = "Larger than `[server] max_upload_mb`; nothing was ingested"),
        Refusals
    )
)]
async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(source): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Json<crate::report::IngestAnswer>, ApiError> {
    use tokio::io::AsyncWriteExt as _;
    state.project.check_upload(&identity, &source)?;
    let limit = state.project.config().server.max_upload_bytes;
    let too_large = || {
        ApiError::too_large(format!(
            "the upload is larger than [server] max_upload_mb allows ({} MB); nothing was ingested",
            limit >> 20
        ))
    };
    // A body that says it is too large is refused before a byte of it is read; one that does not say is counted.
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit.saturating_add(FRAMING)) {
        return Err(too_large());
    }
    let dir = delivery_dir(&state)?;
    let io = |e: std::io::Error| ApiError::internal(format!("cannot store the upload: {e}"));
    let (mut files, mut total) = (Vec::new(), 0u64);
    let mut set = std::collections::BTreeMap::new();
    let multipart_error = |e: axum::extract::multipart::MultipartError| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => ApiError::bad_request(format!("cannot read the upload: {}", e.body_text())),
    };
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.file_name().is_none() && field.name() == Some("set") {
            let text = field.text().await.map_err(multipart_error)?;
            total += text.len() as u64;
            let Some((name, value)) = text.split_once('=') else {
                return Err(ApiError::bad_request(format!("a part `set` is FIELD=VALUE, not '{text}'")));
            };
            if set.insert(name.trim().to_owned(), value.trim().to_owned()).is_some() {
                return Err(ApiError::bad_request(format!("{} is set twice", name.trim())));
            }
            continue;
        }
        let Some(given) = field.file_name().map(str::to_owned) else {
            return Err(ApiError::bad_request(format!(
                "part '{}' is not a file: send files as multipart parts with a file name (and values as parts `set`)",
                field.name().unwrap_or_default()
            )));
        };
        let name = upload_name(&given)?;
        let path = dir.0.join(&name);
        if path.exists() {
            return Err(ApiError::bad_request(format!("two files are named {name}")));
        }
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            total += chunk.len() as u64;
            if total > limit {
                return Err(too_large());
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        files.push(path);
    }
    if files.is_empty() {
        return Err(ApiError::bad_request("the upload holds no files".into()));
    }
    ingest_delivery(&state, &identity, source, dir, files, set).await
}

/// Ingests the files of one delivery (an upload, a form's line) in one commit, as the CLI would, and answers with
/// the line accounting; the delivery's folder goes afterwards.
async fn ingest_delivery(
    state: &AppState,
    identity: &Identity,
    source: String,
    dir: UploadDir,
    files: Vec<std::path::PathBuf>,
    given: std::collections::BTreeMap<String, String>,
) -> Result<Json<crate::report::IngestAnswer>, ApiError> {
    let _slot = state.slot().await?;
    let options =
        kubus::IngestOptions { demo_key: state.demo_key, role: identity.role.clone(), given, ..Default::default() };
    // Reading and converting the files is blocking work: on a thread of its own, not on the server's.
    // The files read so far, to account for their lines also when the ingest is refused at its commit.
    let project = state.project.clone();
    let (outcome, read) = tokio::task::spawn_blocking(move || {
        let mut read = Vec::new();
        let outcome =
            tokio::runtime::Handle::current().block_on(project.ingest_with(&source, &files, options, &mut |p| {
                if let kubus::IngestProgress::Done(file) = p {
                    read.push(crate::report::FileAnswer::new(file, false));
                }
            }));
        (outcome, read)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the ingest stopped: {e}")))?;
    let report = outcome.map_err(|e| ApiError::from(e).with_files(read))?;
    drop(dir);
    Ok(Json(crate::report::IngestAnswer::new(&report, state.project.may_read_quarantine(identity.role.as_deref()))))
}

/// A new folder of its own for one delivery.
fn delivery_dir(state: &AppState) -> Result<UploadDir, ApiError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| ApiError::internal(format!("no random numbers: {e}")))?;
    let dir = UploadDir(state.uploads.join(hex::encode(id)));
    std::fs::create_dir_all(&dir.0).map_err(|e| ApiError::internal(format!("cannot store the delivery: {e}")))?;
    Ok(dir)
}

/// The sources the caller may deliver to: files to upload, or a form to fill in (with its fields).
#[utoipa::path(get, path = "/sources", tag = "ingest", responses((status = 200, body = Vec<kubus::SourceInfo>), Refusals))]
async fn sources(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
) -> Json<Vec<kubus::SourceInfo>> {
    Json(state.project.deliverable_sources(&identity))
}

/// One line typed into a form source: the values by input name (as `GET /sources` lists the fields), written as a
/// one-line file and ingested like an upload: the same checks field by field, the same commit, the same audit.
#[utoipa::path(
    post,
    path = "/sources/{source}/form",
    tag = "ingest",
    params(("source" = String, Path, description = "A source with `[format] type = \"form\"`")),
    request_body(content = Object, description = "Each field's value as text, by its input name"),
    responses(
        (status = 200, body = crate::report::IngestAnswer),
        (status = 409, body = ErrorBody, description = "The line's cell is in the table already; nothing was ingested"),
        Refusals
    )
)]
async fn form(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    Path(source): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<crate::report::IngestAnswer>, ApiError> {
    state.project.check_upload(&identity, &source)?;
    let values: std::collections::BTreeMap<String, String> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the form's values are a JSON object of texts by input name: {e}"))
    })?;
    let info = state.project.deliverable_sources(&identity).into_iter().find(|s| s.name == source);
    let Some(info) = info.filter(|s| s.form) else {
        return Err(ApiError::bad_request(format!(
            "{source} is not a form: upload its files to /sources/{source}/files"
        )));
    };
    if let Some(unknown) = values.keys().find(|k| !info.fields.iter().any(|f| &f.input == *k)) {
        return Err(ApiError::bad_request(format!(
            "{source} has no field '{unknown}'; its fields: {}",
            info.fields.iter().map(|f| f.input.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let mut line = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| ApiError::internal(format!("cannot write the form's line: {e}"));
    line.write_record(info.fields.iter().map(|f| f.input.as_str())).map_err(failed)?;
    line.write_record(info.fields.iter().map(|f| values.get(&f.input).map_or("", String::as_str))).map_err(failed)?;
    let bytes = line.into_inner().map_err(|e| ApiError::internal(format!("cannot write the form's line: {e}")))?;
    let dir = delivery_dir(&state)?;
    let user = identity.user.as_deref().unwrap_or("anonymous").replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let path = dir.0.join(format!("form_{source}_{user}_{}.csv", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
    std::fs::write(&path, bytes).map_err(|e| ApiError::internal(format!("cannot store the form's line: {e}")))?;
    ingest_delivery(&state, &identity, source, dir, vec![path], Default::default()).await
}

/// An upload: one or more files, each a part named `file` with its file name, and for a source whose mapping
/// reads values the files do not hold (`GET /sources` lists them as `given`) one part `set` = `FIELD=VALUE` each.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart body `upload` reads
struct UploadForm {
    /// The files.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// Values the files do not hold, `FIELD=VALUE` (`year=2023`).
    set: Option<Vec<String>>,
}
