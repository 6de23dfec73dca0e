//! Errors as HTTP answers: a status and a JSON body `{"error": …, "rule": …, "role": …}` that says what went wrong
//! and, for a refusal, which rule refused.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in a sentence.
    pub message: String,
    /// For a refusal: the rule that refused.
    pub rule: Option<String>,
    /// For a refusal: the role that was refused.
    pub role: Option<String>,
    /// Seconds after which to try again (503).
    retry_after: Option<u64>,
    /// For a refused ingest: the line accounting of the files it read.
    files: Option<Vec<crate::report::FileAnswer>>,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError { status, message, rule: None, role: None, retry_after: None, files: None }
    }

    /// Any status.
    pub fn with_status(status: StatusCode, message: String) -> ApiError {
        ApiError::new(status, message)
    }

    /// 400: the request cannot be answered as asked.
    pub fn bad_request(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no valid identity.
    pub fn unauthorized(message: String) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: String) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: String) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 413: an upload over the limit.
    pub fn too_large(message: String) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 500: the server failed.
    pub fn internal(message: String) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The error with the line accounting of the files an ingest read before it was refused: nothing was
    /// committed, but what the files hold is said as it would have been.
    pub(crate) fn with_files(self, files: Vec<crate::report::FileAnswer>) -> ApiError {
        ApiError { files: (!files.is_empty()).then_some(files), ..self }
    }

    /// 503: too many requests wait for a query slot.
    pub fn busy(queue: usize) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the server is busy ({queue} requests wait already); try again in a moment"),
            )
        }
    }
}

impl From<kubus::Error> for ApiError {
    fn from(e: kubus::Error) -> ApiError {
        let message = kubus::error_chain(&e);
        match e {
            kubus::Error::Refused { role, rule } => {
                ApiError { rule: Some(rule), role: Some(role), ..ApiError::new(StatusCode::FORBIDDEN, message) }
            }
            kubus::Error::EmptyCube { .. } | kubus::Error::NoMap { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, message)
            }
            e if e.is_conflict() => ApiError::new(StatusCode::CONFLICT, message),
            // The cluster this server sends large questions to failed or did not answer in time: the server itself
            // is well, and so is the question.
            kubus::Error::Cluster { .. } => ApiError::new(StatusCode::BAD_GATEWAY, message),
            kubus::Error::ClusterTimeout { .. } => ApiError::new(StatusCode::GATEWAY_TIMEOUT, message),
            e if e.is_out_of_memory() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the query needs more memory than one query may use ([server] query_memory_mb); ask for fewer \
                     or coarser drilldowns, or a narrower cut: {message}"
                ),
            ),
            e if e.is_user_error() => ApiError::bad_request(message),
            _ => ApiError::internal(message),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// The HTTP status.
    pub status: u16,
    /// For a refusal: the rule that refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a refusal: the role that was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// For a refused ingest: each file read, with its line accounting (nothing was committed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<crate::report::FileAnswer>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            status: self.status.as_u16(),
            rule: self.rule,
            role: self.role,
            files: self.files,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            // Excel's and Power BI's web connectors ask for a user name and password on this challenge.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"kubus\", Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
