//! How one GraphQL request over HTTP runs against the [`Endpoint`]: its document parsed once
//! per distinct query text (kept in a cache), a mutation over GET refused with 405, a
//! subscription sent to WebSocket, the caller's data attached, the outcome counted, and the
//! answer's status by its response type (a request that could not be executed is a 400 with
//! `application/graphql-response+json`, a 200 with `application/json`).

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};
use async_graphql::{
    ServerError,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use serde_json::json;
use server::{RequestId, RequestTrace};

use super::negotiation::{ResponseType, error_response};
use crate::{
    Limits, PlatformSchema,
    access::Authenticated,
    schema::{caller::request_data, state::AppState},
};

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
    /// parsing is a large share of a small query's cost (docs/benchmarks.md, graphql-service).
    /// A document depends on its text alone, so an entry is never stale.
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
pub(crate) struct Run<'a> {
    /// It came as a GET (queries only).
    pub(crate) over_get: bool,
    /// What the response is.
    pub(crate) response_type: ResponseType,
    /// Its id.
    pub(crate) request_id: &'a RequestId,
    /// Its trace context.
    pub(crate) trace: &'a RequestTrace,
    /// Who sent it.
    pub(crate) caller: Authenticated,
}

/// Runs `graphql_request` as `run` says, and answers it.
pub(crate) async fn execute(
    mut graphql_request: async_graphql::Request,
    run: Run<'_>,
    endpoint: &Endpoint,
) -> HttpResponse {
    let Run {
        over_get,
        response_type,
        request_id,
        trace,
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
    let graphql_request =
        request_data(request_id.as_str(), &trace.0, caller).attach(graphql_request);
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
