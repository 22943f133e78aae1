//! The JSON body every error response of the platform carries (docs/contracts.md, "HTTP
//! errors"): `{"error":{"code":"not_found","message":"user 42 not found"}}`, and the code of
//! each status.

use serde::Serialize;
use utoipa::ToSchema;

/// One field that failed validation.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name in the request body.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A failure of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The `error` object of an error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code (`not_found`, `validation_failed`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field failures, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The JSON error body for `status` with `message`, serialized (for servers that are not
/// actix-web, like the gateway).
pub fn error_json(status: u16, message: impl Into<String>) -> Vec<u8> {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code_for_status(status),
            message: message.into(),
            details: None,
        },
    };
    serde_json::to_vec(&body).expect("error bodies serialize")
}

/// The code of docs/contracts.md for a status number.
pub fn code_for_status(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        429 => "rate_limited",
        502 => "upstream_unavailable",
        503 => "unavailable",
        504 => "upstream_timeout",
        500..=599 => "internal",
        _ => "bad_request",
    }
}
