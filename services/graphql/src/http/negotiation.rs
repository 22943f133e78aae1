//! What a GraphQL exchange over HTTP answers with: the response type `Accept` asks for
//! (`application/graphql-response+json` or `application/json`; neither → 406), whether a browser
//! asks for a page, and the body of a request error in the chosen type.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
};
use serde_json::json;

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

/// A header's value, when it is text.
pub(crate) fn header_str(request: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation_follows_the_specification() {
        assert_eq!(negotiate(None), Some(ResponseType::Json));
        assert_eq!(negotiate(Some("*/*")), Some(ResponseType::Json));
        assert_eq!(
            negotiate(Some("application/json")),
            Some(ResponseType::Json)
        );
        assert_eq!(
            negotiate(Some(GRAPHQL_RESPONSE_JSON)),
            Some(ResponseType::GraphqlResponseJson)
        );
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(ResponseType::GraphqlResponseJson)
        );
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(ResponseType::Json)
        );
        assert_eq!(negotiate(Some("text/xml")), None);
        assert_eq!(negotiate(Some("application/json;q=0")), None);
    }

    #[test]
    fn browsers_get_graphiql() {
        assert!(wants_html(Some(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!wants_html(Some("*/*")));
        assert!(!wants_html(Some("application/json, text/html;q=0.5")));
        assert!(!wants_html(None));
    }
}
