//! What a GraphQL exchange is answered with, over HTTP and WebSocket alike: the response types
//! and their negotiation from `Accept`, request-error bodies, and the [`Endpoint`] both
//! transports execute against.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
};
use async_graphql::parser::types::ExecutableDocument;
use serde_json::json;

use crate::{Limits, PlatformSchema, schema::state::AppState};

/// `application/graphql-response+json`.
pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
/// `application/json`.
pub const JSON: &str = "application/json";

/// The media type of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// `application/graphql-response+json`: HTTP statuses follow the outcome.
    GraphqlResponseJson,
    /// `application/json`: 200 for every well-formed request.
    Json,
}

impl ResponseType {
    /// The `Content-Type` it answers with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
            Self::Json => JSON,
        }
    }
}

/// One media range of an `Accept` header, with its weight.
fn media_ranges(accept: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    accept.split(',').filter_map(|range| {
        let mut parts = range.split(';');
        let media = parts.next()?.trim().to_ascii_lowercase();
        if media.is_empty() {
            return None;
        }
        let quality = parts
            .filter_map(|parameter| {
                let (name, value) = parameter.split_once('=')?;
                (name.trim().eq_ignore_ascii_case("q")).then(|| value.trim().parse::<f32>().ok())?
            })
            .next()
            .unwrap_or(1.0);
        Some((media, quality))
    })
}

/// The response type `Accept` asks for; `None` when it accepts neither JSON type (→ 406).
pub fn negotiate(accept: Option<&str>) -> Option<ResponseType> {
    let Some(accept) = accept.filter(|accept| !accept.trim().is_empty()) else {
        return Some(ResponseType::Json);
    };
    let mut best: Option<(ResponseType, f32)> = None;
    for (media, quality) in media_ranges(accept) {
        let candidate = match media.as_str() {
            GRAPHQL_RESPONSE_JSON => ResponseType::GraphqlResponseJson,
            JSON | "application/*" | "*/*" => ResponseType::Json,
            _ => continue,
        };
        if quality <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((current, current_quality)) => {
                quality > current_quality
                    || (quality == current_quality
                        && candidate == ResponseType::GraphqlResponseJson
                        && current != candidate)
            }
        };
        if better {
            best = Some((candidate, quality));
        }
    }
    best.map(|(response_type, _)| response_type)
}

/// Whether a browser is asking: `text/html` weighs more than any JSON type.
pub(crate) fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for (media, quality) in media_ranges(accept) {
        match media.as_str() {
            "text/html" => html = html.max(quality),
            GRAPHQL_RESPONSE_JSON | JSON | "application/*" | "*/*" => json = json.max(quality),
            _ => {}
        }
    }
    html > 0.0 && html > json
}

/// A response carrying only request errors: `{"errors":[{"message","extensions":{"code"}}]}`.
pub(crate) fn error_response(
    status: StatusCode,
    response_type: ResponseType,
    code: &str,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(response_type.content_type())
        .json(json!({"errors": [{"message": message.into(), "extensions": {"code": code}}]}))
}

pub(crate) fn header_str(request: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Everything `/graphql` needs.
pub struct Endpoint {
    /// The schema, limits set.
    pub schema: PlatformSchema,
    /// Shared with the resolvers.
    pub state: AppState,
    /// Size limits of requests.
    pub limits: Limits,
    /// `graphql_operations_total{operation, outcome}`.
    pub operations: prometheus::IntCounterVec,
    /// Parsed documents by query text: clients send the same few queries again and again, and
    /// parsing is a large share of a small query's cost.
    pub documents: moka::sync::Cache<String, ExecutableDocument>,
}

/// How many times its query text a parsed document is counted: the tree keeps a position, a
/// name and vectors for every token, an order of magnitude more than the text (an estimate,
/// so `bytes` bounds the memory the cache holds, not just the text it was given).
const PARSED_DOCUMENT_WEIGHT: usize = 10;

/// A cache of parsed documents holding about `bytes` of memory.
pub fn document_cache(bytes: u64) -> moka::sync::Cache<String, ExecutableDocument> {
    moka::sync::Cache::builder()
        .weigher(|query: &String, _| {
            u32::try_from(query.len().saturating_mul(PARSED_DOCUMENT_WEIGHT)).unwrap_or(u32::MAX)
        })
        .max_capacity(bytes)
        .build()
}
