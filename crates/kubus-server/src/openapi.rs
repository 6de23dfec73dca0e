//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`. It is generated from the handlers'
//! annotations and the types they answer with; the routes are registered from the same annotated handlers
//! (utoipa-axum), and the query parameters each endpoint accepts are read from the documented ones, so the
//! document cannot promise what the server does not do. CI runs schemathesis against the running server with it.

use crate::error::ErrorBody;
use crate::params::{Answer, File};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kubus",
        description = "Slice-and-dice numbers of the city's offices by district, age, language level, provider and \
                       month. The caller's identity (a token as bearer or as the password of HTTP Basic, or single \
                       sign-on through the city's reverse proxy) decides its role: which cubes and levels it may \
                       ask, over which rows, and how the numbers are protected."
    ),
    servers((url = "/api/v1")),
    paths(crate::reports::file),
    components(schemas(File, ErrorBody), responses(Answer, crate::reports::ReportFile)),
    modifiers(&Credentials),
    security(("token" = []), ("basic" = [])),
    tags(
        (name = "catalogue", description = "What the caller may ask"),
        (name = "query", description = "Answers, protected for the caller's role"),
        (name = "ingest", description = "Uploads and their quarantine"),
        (name = "reports", description = "Reports run as the caller's role"),
    )
)]
pub(crate) struct ApiDoc;

/// The two ways a token is sent.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}
