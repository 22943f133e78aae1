//! GraphQL over HTTP (the GraphQL-over-HTTP specification), GraphiQL, and subscriptions over
//! WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`), all on `/graphql`.
//!
//! - `POST` with `Content-Type: application/json` runs any operation; other content types → 415.
//! - `GET ?query=…&variables=…&operationName=…` runs queries; a mutation over GET → 405 with
//!   `Allow: POST`.
//! - The response is `application/graphql-response+json` or `application/json`, as `Accept`
//!   asks (plain JSON when it is absent or `*/*`); nothing acceptable → 406. With
//!   `application/graphql-response+json`, a request that could not be executed (parse or
//!   validation errors, limits) is a 400; with `application/json` it is a 200, as the
//!   specification says for legacy clients. A request that is not well-formed (bad JSON, no
//!   `query`) is a 400 either way.
//! - `GET` from a browser (`Accept: text/html`, no `query`) gets GraphiQL.
//! - Every request's caller is its `Authorization: Bearer` token's ([`crate::access`]): none is
//!   anonymous; one that does not verify is refused with 401, the JSON error body and
//!   `WWW-Authenticate` before anything runs.
//! - A WebSocket upgrade is [`crate::websocket`]'s.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{Method, StatusCode, header},
    web,
};
use async_graphql::{
    ServerError,
    parser::types::{DocumentOperations, OperationType},
};
use futures_util::StreamExt;
use serde_json::json;
use shared::request::RequestId;

use crate::{
    Limits,
    access::{self, Authenticated},
    schema::{caller::request_data, errors::codes},
};

pub use crate::exchange::{
    Endpoint, GRAPHQL_RESPONSE_JSON, JSON, ResponseType, document_cache, negotiate,
};
use crate::exchange::{error_response, header_str, wants_html};

/// Routes `/graphql` (every method; the handler answers 405 for the ones it does not take).
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/graphql", web::route().to(graphql));
}

async fn graphql(
    request: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<Endpoint>,
    request_id: RequestId,
) -> HttpResponse {
    let verifier = shared::identity::verifier(&request);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    let caller = match access::from_header(verifier.as_deref(), authorization).await {
        Ok(caller) => caller,
        Err(refused) => return refused.error_response(),
    };
    let accept = header_str(&request, header::ACCEPT);
    match *request.method() {
        Method::GET if is_websocket_upgrade(&request) => {
            crate::websocket::subscribe(&request, payload, &endpoint, &request_id, caller)
        }
        Method::GET => {
            let query_string = request.query_string();
            let has_query = web::Query::<std::collections::HashMap<String, String>>::from_query(
                query_string,
            )
            .is_ok_and(|parameters| parameters.contains_key("query"));
            if !has_query && wants_html(accept) {
                return graphiql();
            }
            let Some(response_type) = negotiate(accept) else {
                return not_acceptable();
            };
            if query_string.len() > endpoint.limits.max_query_bytes {
                return query_too_large(response_type, query_string.len(), &endpoint.limits);
            }
            if !has_query {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    response_type,
                    "BAD_REQUEST",
                    "a GET request needs a `query` parameter",
                );
            }
            match parse_query_string(query_string) {
                Ok(graphql_request) => {
                    let run = Run {
                        over_get: true,
                        response_type,
                        request_id: &request_id,
                        caller,
                    };
                    execute(graphql_request, run, &endpoint).await
                }
                Err(error) => error_response(
                    StatusCode::BAD_REQUEST,
                    response_type,
                    "BAD_REQUEST",
                    format!("malformed GraphQL GET request: {error}"),
                ),
            }
        }
        Method::POST => {
            let Some(response_type) = negotiate(accept) else {
                return not_acceptable();
            };
            if !is_json_content(header_str(&request, header::CONTENT_TYPE)) {
                return error_response(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    response_type,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "POST /graphql takes Content-Type: application/json",
                );
            }
            let body = match read_body(payload, endpoint.limits.max_body_bytes).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => {
                    return error_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        response_type,
                        "PAYLOAD_TOO_LARGE",
                        format!(
                            "the request body is over {} bytes",
                            endpoint.limits.max_body_bytes
                        ),
                    );
                }
                Err(BodyError::Broken(reason)) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        response_type,
                        "BAD_REQUEST",
                        format!("the request body could not be read: {reason}"),
                    );
                }
            };
            match parse_post_body(&body) {
                Ok(graphql_request) => {
                    if graphql_request.query.len() > endpoint.limits.max_query_bytes {
                        return query_too_large(
                            response_type,
                            graphql_request.query.len(),
                            &endpoint.limits,
                        );
                    }
                    let run = Run {
                        over_get: false,
                        response_type,
                        request_id: &request_id,
                        caller,
                    };
                    execute(graphql_request, run, &endpoint).await
                }
                Err(message) => {
                    error_response(StatusCode::BAD_REQUEST, response_type, "BAD_REQUEST", message)
                }
            }
        }
        _ => HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, POST"))
            .content_type(JSON)
            .json(json!({"errors": [{
                "message": format!("{} is not supported on /graphql: use GET or POST", request.method()),
                "extensions": {"code": "METHOD_NOT_ALLOWED"}
            }]})),
    }
}

fn not_acceptable() -> HttpResponse {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        ResponseType::Json,
        "NOT_ACCEPTABLE",
        format!("Accept must allow {GRAPHQL_RESPONSE_JSON} or {JSON}"),
    )
}

fn query_too_large(response_type: ResponseType, size: usize, limits: &Limits) -> HttpResponse {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        response_type,
        codes::QUERY_TOO_LARGE,
        format!(
            "the query document is {size} bytes; the limit is {}",
            limits.max_query_bytes
        ),
    )
}

fn is_json_content(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(JSON))
}

fn is_websocket_upgrade(request: &HttpRequest) -> bool {
    header_str(request, header::UPGRADE)
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

enum BodyError {
    TooLarge,
    Broken(String),
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, BodyError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| BodyError::Broken(error.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The parameters of a GET request, by the GraphQL-over-HTTP names (`operationName`, where
/// async-graphql's own parser reads `operation_name`).
#[derive(serde::Deserialize)]
struct GetParameters {
    query: String,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<String>,
    #[serde(default)]
    extensions: Option<String>,
}

/// A GET request's query string: `query`, optional `operationName`, and `variables` and
/// `extensions` as JSON objects.
fn parse_query_string(query_string: &str) -> Result<async_graphql::Request, String> {
    let parameters = web::Query::<GetParameters>::from_query(query_string)
        .map_err(|error| error.to_string())?
        .into_inner();
    let object = |name: &str, text: Option<String>| -> Result<serde_json::Value, String> {
        match text {
            None => Ok(json!({})),
            Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(value @ (serde_json::Value::Object(_) | serde_json::Value::Null)) => Ok(value),
                Ok(_) => Err(format!("`{name}` must be a JSON object")),
                Err(error) => Err(format!("`{name}` is not valid JSON: {error}")),
            },
        }
    };
    let variables = object("variables", parameters.variables)?;
    let extensions = object("extensions", parameters.extensions)?;
    let mut request = async_graphql::Request::new(parameters.query)
        .variables(async_graphql::Variables::from_json(variables));
    request.operation_name = parameters.operation_name;
    request.extensions = serde_json::from_value(extensions).unwrap_or_default();
    Ok(request)
}

/// A POST body: a JSON object with a string `query`, optional `operationName`, `variables`
/// (an object) and `extensions`.
fn parse_post_body(body: &[u8]) -> Result<async_graphql::Request, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| format!("the body is not valid JSON: {error}"))?;
    let object = value
        .as_object()
        .ok_or("the body must be a JSON object with a \"query\"")?;
    match object.get("query") {
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return Err("\"query\" must be a string".to_owned()),
        None => return Err("the body has no \"query\"".to_owned()),
    }
    if let Some(variables) = object.get("variables")
        && !(variables.is_object() || variables.is_null())
    {
        return Err("\"variables\" must be an object".to_owned());
    }
    if let Some(name) = object.get("operationName")
        && !(name.is_string() || name.is_null())
    {
        return Err("\"operationName\" must be a string".to_owned());
    }
    serde_json::from_value(value).map_err(|error| format!("malformed GraphQL request: {error}"))
}

/// The operation a request would run, when its document parses and names one.
fn operation_type(request: &mut async_graphql::Request) -> Option<OperationType> {
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    match &document.operations {
        DocumentOperations::Single(operation) => Some(operation.node.ty),
        DocumentOperations::Multiple(operations) => match operation_name {
            Some(name) => operations
                .iter()
                .find(|(operation, _)| operation.as_str() == name)
                .map(|(_, operation)| operation.node.ty),
            None if operations.len() == 1 => operations.values().next().map(|op| op.node.ty),
            None => None,
        },
    }
}

fn operation_label(operation: Option<OperationType>) -> &'static str {
    match operation {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// A parse or validation error: the request was not executed (no `path`, no data).
fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response
            .errors
            .iter()
            .all(|error: &ServerError| error.path.is_empty())
}

/// How one request over HTTP runs.
struct Run<'a> {
    /// It came as a GET (queries only).
    over_get: bool,
    /// What the response is.
    response_type: ResponseType,
    /// Its id.
    request_id: &'a RequestId,
    /// Who sent it.
    caller: Authenticated,
}

async fn execute(
    mut graphql_request: async_graphql::Request,
    run: Run<'_>,
    endpoint: &Endpoint,
) -> HttpResponse {
    let Run {
        over_get,
        response_type,
        request_id,
        caller,
    } = run;
    match endpoint.documents.get(&graphql_request.query) {
        Some(document) => graphql_request.set_parsed_query(document),
        None => {
            if let Ok(document) = graphql_request.parsed_query() {
                let document = document.clone();
                endpoint
                    .documents
                    .insert(graphql_request.query.clone(), document);
            }
        }
    }
    let operation = operation_type(&mut graphql_request);
    if over_get && operation.is_some_and(|ty| ty != OperationType::Query) {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .content_type(response_type.content_type())
            .json(json!({"errors": [{
                "message": format!("{} operations must be sent with POST", operation_label(operation)),
                "extensions": {"code": "METHOD_NOT_ALLOWED"}
            }]}));
    }
    if operation == Some(OperationType::Subscription) {
        return error_response(
            StatusCode::BAD_REQUEST,
            response_type,
            "BAD_REQUEST",
            "subscriptions run over WebSocket on this path (graphql-transport-ws)",
        );
    }
    let graphql_request = request_data(request_id.as_str(), caller).attach(graphql_request);
    let response = endpoint.schema.execute(graphql_request).await;
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    endpoint
        .operations
        .with_label_values(&[operation_label(operation), outcome])
        .inc();
    if is_request_error(&response) {
        // Not executed: the body has no `data` entry at all (GraphQL over HTTP).
        let status = match response_type {
            ResponseType::GraphqlResponseJson => StatusCode::BAD_REQUEST,
            ResponseType::Json => StatusCode::OK,
        };
        return HttpResponse::build(status)
            .content_type(response_type.content_type())
            .json(json!({"errors": response.errors}));
    }
    HttpResponse::build(StatusCode::OK)
        .content_type(response_type.content_type())
        .json(&response)
}

fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(crate::graphiql::page())
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

    #[test]
    fn get_parameters_use_the_specification_names() {
        let request = parse_query_string(
            "query=query%20A%20%7B%20a%20%7D&operationName=A&variables=%7B%22x%22%3A1%7D",
        )
        .expect("a request");
        assert_eq!(request.query, "query A { a }");
        assert_eq!(request.operation_name.as_deref(), Some("A"));
        assert_eq!(
            request.variables.into_value().into_json().ok(),
            Some(serde_json::json!({"x": 1}))
        );
        assert!(parse_query_string("query=%7Ba%7D&variables=%5B%5D").is_err());
        assert!(parse_query_string("query=%7Ba%7D&variables=nope").is_err());
        assert!(parse_query_string("operationName=A").is_err());
    }

    #[test]
    fn post_bodies_are_checked() {
        assert!(parse_post_body(br#"{"query":"{ users { id } }"}"#).is_ok());
        assert!(parse_post_body(br#"{"query":"{ a }","variables":null}"#).is_ok());
        assert!(parse_post_body(b"{").is_err());
        assert!(parse_post_body(b"[]").is_err());
        assert!(parse_post_body(br#"{"query":1}"#).is_err());
        assert!(parse_post_body(br#"{"variables":{}}"#).is_err());
        assert!(parse_post_body(br#"{"query":"{a}","variables":[]}"#).is_err());
    }
}
