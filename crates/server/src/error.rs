//! The one error type handlers return, and the JSON body every error response carries:
//! `{"error":{"code":"not_found","message":"user 42 not found"}}` (docs/contracts.md, "HTTP errors").
//!
//! actix's own extractor failures (JSON body, path, query) are mapped here too, through the
//! configs that [`crate::service`] installs, so no plain-text error reaches a client.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{StatusCode, header},
};
use runtime::{ErrorBody, ErrorDetail, FieldError, code_for_status};

/// Everything a handler can fail with, each mapped to one status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, a bad query string or path parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials where they are required (`invalid_token: false`), or a presented
    /// token that is not valid (`true`); answered with `WWW-Authenticate: Bearer`.
    #[error("{message}")]
    Unauthorized {
        /// What is wrong.
        message: String,
        /// A token was presented and refused.
        invalid_token: bool,
    },
    /// 403: signed in but not allowed; an expired or tampered signed URL.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: e.g. an email already used.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429, with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// What was too much.
        message: String,
        /// How long to wait before trying again.
        retry_after: std::time::Duration,
    },
    /// 422, with the fields at fault.
    #[error("{message}")]
    Validation {
        /// Summary.
        message: String,
        /// One entry per failing field.
        details: Vec<FieldError>,
    },
    /// 503: a dependency the request needs is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the cause goes to the log (with its chain), the client gets an opaque message.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 422 for the given field failures.
    pub fn validation(details: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
        Self::Validation {
            message: format!("invalid fields: {}", fields.join(", ")),
            details,
        }
    }

    /// The code of docs/contracts.md for this error.
    pub fn code(&self) -> &'static str {
        code_for(self.status_code())
    }

    /// The JSON body for this error; internal errors say nothing of their cause.
    pub fn body(&self) -> ErrorBody {
        let status = self.status_code();
        let message = match self {
            Self::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        };
        let details = match self {
            Self::Validation { details, .. } => Some(details.clone()),
            _ => None,
        };
        ErrorBody {
            error: ErrorDetail {
                code: code_for(status),
                message,
                details,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized { invalid_token, .. } => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    auth::www_authenticate(*invalid_token),
                ));
            }
            Self::TooManyRequests { retry_after, .. } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0);
                response.insert_header((header::RETRY_AFTER, format!("{seconds:.0}")));
            }
            _ => {}
        }
        response.json(self.body())
    }
}

/// The code of docs/contracts.md for a status.
pub fn code_for(status: StatusCode) -> &'static str {
    code_for_status(status.as_u16())
}

/// The JSON error body for a bare status (used where a response was produced without a body,
/// e.g. actix's own 405 or 404).
pub fn body_for_status(status: StatusCode) -> ErrorBody {
    let message = if status.is_server_error() {
        "internal server error".to_owned()
    } else {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    };
    ErrorBody {
        error: ErrorDetail {
            code: code_for(status),
            message,
            details: None,
        },
    }
}

/// Maps a JSON body extractor failure: syntax → 400, wrong shape → 422, too large → 413,
/// not JSON → 415.
pub fn json_error(error: JsonPayloadError, _request: &HttpRequest) -> actix_web::Error {
    let api_error = match &error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("request body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "the request body must be JSON (Content-Type: application/json)".into(),
        ),
        JsonPayloadError::Deserialize(inner) if inner.is_data() => ApiError::Validation {
            message: format!("invalid request body: {inner}"),
            details: vec![FieldError::new("body", inner.to_string())],
        },
        JsonPayloadError::Deserialize(inner) => {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        }
        other => ApiError::BadRequest(format!("could not read the request body: {other}")),
    };
    api_error.into()
}

/// Maps a path extractor failure (e.g. `/api/users/abc`) to 400.
pub fn path_error(error: PathError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path parameter: {error}")).into()
}

/// Maps a query string extractor failure to 400.
pub fn query_error(error: QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {error}")).into()
}

/// Whether a response already carries a JSON body.
pub fn is_json(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            // `application/json` and the structured `+json` types (problem+json,
            // graphql-response+json).
            let media = value.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/json")
                || (media.starts_with("application/") && media.ends_with("+json"))
        })
}
