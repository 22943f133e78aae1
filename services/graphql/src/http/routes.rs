//! The routes of `/graphql`, one per transport: a WebSocket upgrade (subscriptions), `GET`
//! (queries, or GraphiQL for a browser), `POST` (any operation), and 405 for every other
//! method. Each one first names its caller from the `Authorization: Bearer` token
//! ([`crate::access`]): none is anonymous; one that does not verify is refused with 401, the
//! JSON error body and `WWW-Authenticate`, before anything else is looked at.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError, guard,
    http::{StatusCode, header},
    web,
};
use serde_json::json;
use server::{RequestId, RequestTrace};

use super::{
    execution::{Endpoint, Run, execute},
    negotiation::{
        GRAPHQL_RESPONSE_JSON, JSON, ResponseType, error_response, header_str, negotiate,
        wants_html,
    },
    request::{BodyError, is_json_content, parse_post_body, parse_query_string, read_body},
    websocket,
};
use crate::{Limits, access::Authenticated, schema::errors::codes};

/// Routes `/graphql`: the WebSocket upgrade, `GET`, `POST`, and 405 for the other methods.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/graphql")
            .route(
                web::get()
                    .guard(guard::fn_guard(|context| {
                        is_websocket_upgrade(context.head().headers())
                    }))
                    .to(subscribe),
            )
            .route(web::get().to(get))
            .route(web::post().to(post))
            .default_service(web::to(other_method)),
    );
}

/// The caller of `request`, or the 401 that refuses it.
async fn authenticate(request: &HttpRequest) -> Result<Authenticated, HttpResponse> {
    let verifier = server::verifier(request);
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    crate::access::from_header(verifier.as_deref(), authorization)
        .await
        .map_err(|refused| refused.error_response())
}

fn is_websocket_upgrade(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// A WebSocket upgrade: subscriptions ([`super::websocket`]), for the handshake's caller.
async fn subscribe(
    request: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<Endpoint>,
    request_id: RequestId,
    trace: RequestTrace,
) -> HttpResponse {
    match authenticate(&request).await {
        Ok(caller) => {
            websocket::subscribe(&request, payload, &endpoint, &request_id, &trace, caller)
        }
        Err(refused) => refused,
    }
}

/// `GET ?query=…&variables=…&operationName=…`: a query; GraphiQL for a browser asking for no
/// query.
async fn get(
    request: HttpRequest,
    endpoint: web::Data<Endpoint>,
    request_id: RequestId,
    trace: RequestTrace,
) -> HttpResponse {
    let caller = match authenticate(&request).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let accept = header_str(&request, header::ACCEPT);
    let query_string = request.query_string();
    let has_query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(query_string)
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
                trace: &trace,
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

/// `POST` with `Content-Type: application/json`: any operation but a subscription.
async fn post(
    request: HttpRequest,
    payload: web::Payload,
    endpoint: web::Data<Endpoint>,
    request_id: RequestId,
    trace: RequestTrace,
) -> HttpResponse {
    let caller = match authenticate(&request).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let Some(response_type) = negotiate(header_str(&request, header::ACCEPT)) else {
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
                trace: &trace,
                caller,
            };
            execute(graphql_request, run, &endpoint).await
        }
        Err(message) => error_response(
            StatusCode::BAD_REQUEST,
            response_type,
            "BAD_REQUEST",
            message,
        ),
    }
}

/// Any other method: 405 with `Allow: GET, POST`.
async fn other_method(request: HttpRequest) -> HttpResponse {
    if let Err(refused) = authenticate(&request).await {
        return refused;
    }
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET, POST"))
        .content_type(JSON)
        .json(json!({"errors": [{
            "message": format!("{} is not supported on /graphql: use GET or POST", request.method()),
            "extensions": {"code": "METHOD_NOT_ALLOWED"}
        }]}))
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

fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(crate::graphiql::page())
}
