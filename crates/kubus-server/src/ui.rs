//! The browser tool: the explorer's page and its script and style, compiled into the binary, so nothing is fetched
//! from elsewhere and no request leaves the intranet. They hold no data and need no identity; everything they show
//! comes from the API as the user who logged in, under the same role and disclosure control as any other client.
//! Every answer here carries a Content-Security-Policy of `default-src 'self'`: no inline script, no other origin.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// A file of the browser tool: its name under `/assets/`, media type and contents.
struct Asset {
    name: &'static str,
    media: &'static str,
    body: &'static str,
}

const PAGE: &str = include_str!("../ui/index.html");

const ASSETS: &[Asset] = &[
    Asset { name: "explorer.js", media: "text/javascript; charset=utf-8", body: include_str!("../ui/explorer.js") },
    Asset { name: "explorer.css", media: "text/css; charset=utf-8", body: include_str!("../ui/explorer.css") },
    // d3 7.9.2 (ISC licence, ui/vendor/d3.LICENSE) as npm publishes it; CI compares the copy with the package.
    Asset { name: "d3.min.js", media: "text/javascript; charset=utf-8", body: include_str!("../ui/vendor/d3.min.js") },
];

/// What the browser may do with the tool's pages: only this server's own script, style, images and requests; no
/// framing by another site; no referrer to elsewhere.
const POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; \
                      form-action 'self'; frame-ancestors 'none'";

/// The routes of the browser tool: the explorer at `/`, its files under `/assets/`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page("text/html; charset=utf-8", PAGE) }))
        .route("/assets/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => page(a.media, a.body),
        None => crate::ApiError::not_found(format!("no asset {name}")).into_response(),
    }
}

/// A file of the tool with its media type and the headers every page gets. The files change with the binary only:
/// `no-cache` lets the browser keep them but ask again, so a new kubus is never answered by an old script.
fn page(media: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
