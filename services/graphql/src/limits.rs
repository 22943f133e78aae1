//! What one operation may cost, and the schema extension that holds every operation to it,
//! over HTTP and WebSocket alike.
//!
//! | limit | when | `extensions.code` |
//! |---|---|---|
//! | introspection switched off (`__schema`, `__type`) | before it runs | `INTROSPECTION_DISABLED` |
//! | aliases ([`Limits::max_aliases`]) | before it runs | `TOO_MANY_ALIASES` |
//! | root fields ([`Limits::max_root_fields`]) | before it runs | `TOO_MANY_ROOT_FIELDS` |
//! | data depth ([`Limits::max_depth`]); introspection nests up to [`MAX_INTROSPECTION_DEPTH`] apart | before it runs | `QUERY_TOO_DEEP` |
//! | complexity ([`Limits::max_complexity`]): a list costs its page size times its items ([`crate::cost`]); introspection apart, up to [`MAX_INTROSPECTION_COMPLEXITY`] | before it runs | `QUERY_TOO_COMPLEX` |
//! | the document's operations, fragments expanded where they are spread, at most [`document::selection_bound`] of [`Limits::walk_bound`] selections | before it is measured | `QUERY_TOO_COMPLEX` |
//! | calls to users-service and products-service ([`Limits::max_upstream_calls`]) | the call over it | `UPSTREAM_CALLS_EXCEEDED` on that field |
//! | response bytes ([`Limits::max_response_bytes`]) | the field over it | `RESPONSE_TOO_LARGE`, the whole answer |
//!
//! Before any of those, a spread of a fragment the document does not define, or a fragment
//! spreading itself, is refused as validation would refuse it (no code), before anything walks
//! the document's expansion ([`document::admit`]).
//!
//! The static limits are read from the document ([`crate::document`]) and from async-graphql's
//! complexity count (the `complexity` of each list field in [`crate::schema`]). The running ones
//! draw on the operation's [`OperationBudget`], which this extension gives each operation with
//! the loaders that spend it; a subscription's budget is refilled for each event.

use std::{
    any::{Any, TypeId},
    sync::{Arc, Mutex},
};

use async_graphql::{
    ErrorExtensionValues, Request, Response, ServerError, ServerResult, ValidationResult, Value,
    Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
        NextPrepareRequest, NextResolve, NextSubscribe, NextValidation, ResolveInfo,
    },
    futures_util::stream::BoxStream,
    parser::types::ExecutableDocument,
};
use futures_util::StreamExt;

use crate::{
    access::UpstreamAuth,
    budget::{OperationBudget, Overdrawn, field_bytes},
    document::{self, Shape},
    schema::{
        caller::{CallerRequestId, CallerTrace},
        errors::codes,
        loaders::{self},
        state::AppState,
    },
};

/// How deep `__schema` and `__type` selections may nest, apart from the data's depth
/// (graphql-js's introspection query nests 15 deep: `__schema`, `types`, `fields`, `args`,
/// `type`, nine `ofType` and the innermost `name`).
pub const MAX_INTROSPECTION_DEPTH: usize = 20;

/// What the `__schema` and `__type` selections of an operation may cost, apart from the data's
/// complexity limit (a field costs 1, `__typename` nothing): graphql-js's
/// `getIntrospectionQuery()` costs 220 (230 with every option on), so any introspection client
/// passes with a margin over twice that, whatever `GRAPHQL_MAX_COMPLEXITY` is, and an
/// introspection bomb (aliased or repeated `__schema`) is still refused.
pub const MAX_INTROSPECTION_COMPLEXITY: usize = 500;

/// What an operation may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Data selection depth (introspection apart).
    pub max_depth: usize,
    /// Complexity of the data: every field costs 1, a list its page size times its items'
    /// cost (introspection apart: [`MAX_INTROSPECTION_COMPLEXITY`]).
    pub max_complexity: usize,
    /// Aliased fields per operation (counted where fragments are spread).
    pub max_aliases: usize,
    /// Fields at the root of an operation.
    pub max_root_fields: usize,
    /// Calls to users-service and products-service per operation (per event of a
    /// subscription).
    pub max_upstream_calls: usize,
    /// Bytes of JSON response per operation (per event of a subscription).
    pub max_response_bytes: usize,
    /// Operations running at once on one WebSocket.
    pub max_subscriptions: usize,
    /// Query document size, in bytes.
    pub max_query_bytes: usize,
    /// Request body size, in bytes (the query plus its variables); WebSocket frames too.
    pub max_body_bytes: usize,
    /// Introspection allowed.
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_complexity: 5000,
            max_aliases: 30,
            max_root_fields: 20,
            max_upstream_calls: 20,
            max_response_bytes: 2 * 1024 * 1024,
            max_subscriptions: 32,
            max_query_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            introspection: true,
        }
    }
}

/// A GraphQL error refusing an operation for `code`'s limit (no path: nothing of it ran, or
/// nothing of it is answered).
pub fn refusal(code: &'static str, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

impl Limits {
    /// The first static limit `shape` breaks, if any.
    pub fn check_shape(&self, shape: &Shape) -> Result<(), ServerError> {
        if shape.introspection && !self.introspection {
            return Err(refusal(
                codes::INTROSPECTION_DISABLED,
                "introspection is disabled on this server",
            ));
        }
        if shape.aliases > self.max_aliases {
            return Err(refusal(
                codes::TOO_MANY_ALIASES,
                format!(
                    "the operation uses {} aliases; the limit is {}",
                    shape.aliases, self.max_aliases
                ),
            ));
        }
        if shape.root_fields > self.max_root_fields {
            return Err(refusal(
                codes::TOO_MANY_ROOT_FIELDS,
                format!(
                    "the operation selects {} root fields; the limit is {}",
                    shape.root_fields, self.max_root_fields
                ),
            ));
        }
        if shape.data_depth > self.max_depth {
            return Err(refusal(
                codes::QUERY_TOO_DEEP,
                format!(
                    "the query nests {} fields deep; the limit is {}",
                    shape.data_depth, self.max_depth
                ),
            ));
        }
        if shape.introspection_depth > MAX_INTROSPECTION_DEPTH {
            return Err(refusal(
                codes::QUERY_TOO_DEEP,
                format!(
                    "the introspection query nests {} fields deep; the limit is {MAX_INTROSPECTION_DEPTH}",
                    shape.introspection_depth
                ),
            ));
        }
        // Once the walk stopped, each count is a lower bound.
        let counted = |cost: usize| (!shape.truncated).then_some(cost);
        if shape.data_fields > self.max_complexity {
            return Err(self.too_complex(counted(shape.data_fields)));
        }
        if shape.introspection_fields > MAX_INTROSPECTION_COMPLEXITY {
            return Err(introspection_too_complex(counted(
                shape.introspection_fields,
            )));
        }
        if shape.truncated {
            return Err(self.too_complex(None));
        }
        Ok(())
    }

    /// The most fields [`document::shape`] needs to walk to answer [`Limits::check_shape`]:
    /// past it, the data or the introspection is over its limit, or the operation would execute
    /// more `__typename`s than both limits together allow fields.
    pub fn walk_bound(&self) -> usize {
        self.max_complexity
            .saturating_add(1)
            .saturating_add(MAX_INTROSPECTION_COMPLEXITY + 1)
    }

    /// Refuses a document whose fragments form a cycle (validation's message and location for
    /// the first cycle it reports) or expand past [`document::selection_bound`]
    /// (`QUERY_TOO_COMPLEX`); linear in the document, so it runs before async-graphql's own
    /// walks of the expansion (its recursion-depth check, validation) and [`document::shape`].
    /// Spreads of undefined fragments are left to validation, which reports every one.
    pub fn check_document(&self, document: &ExecutableDocument) -> Result<(), ServerError> {
        let bound = document::selection_bound(self.walk_bound());
        document::admit(document, bound).map_err(|unfit| match unfit {
            document::Unfit::FragmentCycle { name, pos } => {
                ServerError::new(format!(r#"Cannot spread fragment "{name}""#), Some(pos))
            }
            document::Unfit::TooManySelections(bound) => refusal(
                codes::QUERY_TOO_COMPLEX,
                format!(
                    "the document's operations select more fields, fragment spreads and inline \
                     fragments than the limit of {bound} (each fragment counted where it is \
                     spread)"
                ),
            ),
        })
    }

    /// The complexity of an operation's data: async-graphql's count, less the operation's
    /// introspection fields, which async-graphql counts 1 each (their types declare no cost,
    /// `__typename` it skips), as [`Shape::introspection_fields`] counts them. async-graphql
    /// counts every operation of the document and the shape is the one run, so what is taken
    /// off is never more than the introspection counted.
    pub fn data_complexity(complexity: usize, shape: &Shape) -> usize {
        complexity.saturating_sub(shape.introspection_fields)
    }

    /// `QUERY_TOO_COMPLEX`, with the cost when it was counted to the end (`None`: the count
    /// stopped past the limit).
    fn too_complex(&self, cost: Option<usize>) -> ServerError {
        let cost = match cost {
            Some(cost) => cost.to_string(),
            None => format!("over {}", self.max_complexity),
        };
        refusal(
            codes::QUERY_TOO_COMPLEX,
            format!(
                "the query costs {cost}; the limit is {} (a list costs its `limit` times its \
                 fields: ask for smaller pages or fewer nested lists)",
                self.max_complexity
            ),
        )
    }
}

/// `QUERY_TOO_COMPLEX` for the introspection of an operation, with its cost when it was counted
/// to the end.
fn introspection_too_complex(cost: Option<usize>) -> ServerError {
    let cost = match cost {
        Some(cost) => cost.to_string(),
        None => format!("over {MAX_INTROSPECTION_COMPLEXITY}"),
    };
    refusal(
        codes::QUERY_TOO_COMPLEX,
        format!(
            "the introspection (`__schema`, `__type`) costs {cost} fields; the limit is \
             {MAX_INTROSPECTION_COMPLEXITY}"
        ),
    )
}

/// The schema extension holding every operation to [`Limits`].
pub struct OperationLimits(pub Limits);

impl ExtensionFactory for OperationLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Guard {
            limits: self.0,
            budget: Arc::new(OperationBudget::new(
                self.0.max_upstream_calls,
                self.0.max_response_bytes,
            )),
            operation_name: Mutex::new(None),
            shape: Mutex::new(Shape::default()),
        })
    }
}

/// One operation's guard (async-graphql makes one per request, and one per subscription).
struct Guard {
    limits: Limits,
    budget: Arc<OperationBudget>,
    /// The operation the request names, for measuring that one.
    operation_name: Mutex<Option<String>>,
    /// The shape of the operation, once its document is parsed: validation's complexity is
    /// the data's once its introspection is taken out.
    shape: Mutex<Shape>,
}

/// A value of the request's data, else of the connection's.
fn request_or_session<'a, T: Any>(
    request: &'a Request,
    context: &'a ExtensionContext<'_>,
) -> Option<&'a T> {
    request
        .data
        .get(&TypeId::of::<T>())
        .or_else(|| context.session_data.get(&TypeId::of::<T>()))
        .and_then(|value| value.downcast_ref::<T>())
}

/// The answer to give: `response`, or the refusal of a response that went over its bytes.
fn verdict(budget: &OperationBudget, response: Response) -> Response {
    match budget.response_overdrawn() {
        Some(overdrawn) => Response::from_errors(vec![overdrawn_error(overdrawn)]),
        None => response,
    }
}

/// The GraphQL error of an overdrawn budget.
pub fn overdrawn_error(overdrawn: Overdrawn) -> ServerError {
    let code = match overdrawn {
        Overdrawn::UpstreamCalls(_) => codes::UPSTREAM_CALLS_EXCEEDED,
        Overdrawn::ResponseBytes(_) => codes::RESPONSE_TOO_LARGE,
    };
    refusal(code, overdrawn.to_string())
}

#[async_graphql::async_trait::async_trait]
impl Extension for Guard {
    fn subscribe<'s>(
        &self,
        context: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let budget = self.budget.clone();
        let refuse = move |response: Response| {
            let answer = verdict(&budget, response);
            budget.reset();
            answer
        };
        next.run(context, stream).map(refuse).boxed()
    }

    async fn prepare_request(
        &self,
        context: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = request;
        // Parsed here (kept on the request, so not parsed again) to be refused before
        // async-graphql's recursion-depth check walks every operation's expansion.
        if let Ok(document) = request.parsed_query() {
            self.limits.check_document(document)?;
        }
        if let Ok(mut name) = self.operation_name.lock() {
            name.clone_from(&request.operation_name);
        }
        let request = match context.data_opt::<AppState>() {
            Some(state) => {
                let request_id = request_or_session::<CallerRequestId>(&request, context)
                    .map(|id| id.0.clone())
                    .unwrap_or_default();
                let upstream = request_or_session::<UpstreamAuth>(&request, context)
                    .cloned()
                    .unwrap_or_default();
                let trace = request_or_session::<CallerTrace>(&request, context)
                    .map(|trace| trace.0.clone());
                let loaders = loaders::operation_loaders(
                    &state.users,
                    &state.posts,
                    &request_id,
                    trace,
                    upstream,
                    self.budget.clone(),
                );
                loaders.attach(request).data(self.budget.clone())
            }
            None => request.data(self.budget.clone()),
        };
        next.run(context, request).await
    }

    async fn parse_query(
        &self,
        context: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(context, query, variables).await?;
        let name = self
            .operation_name
            .lock()
            .ok()
            .and_then(|name| name.clone());
        let shape = document::shape(&document, name.as_deref(), self.limits.walk_bound());
        self.limits.check_shape(&shape)?;
        if let Ok(mut measured) = self.shape.lock() {
            *measured = shape;
        }
        Ok(document)
    }

    async fn validation(
        &self,
        context: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(context).await?;
        let shape = self.shape.lock().map(|shape| *shape).unwrap_or_default();
        let complexity = Limits::data_complexity(result.complexity, &shape);
        if complexity > self.limits.max_complexity {
            return Err(vec![self.limits.too_complex(Some(complexity))]);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        context: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(context, operation_name).await;
        verdict(&self.budget, response)
    }

    async fn resolve(
        &self,
        context: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Nothing more is resolved once the answer is too large: it will not be sent.
        if let Some(overdrawn) = self.budget.response_overdrawn() {
            return Err(overdrawn_error(overdrawn));
        }
        let key = info.alias.unwrap_or(info.name);
        let value = next.run(context, info).await?;
        if let Some(value) = &value {
            self.budget
                .add_response_bytes(field_bytes(key, value))
                .map_err(overdrawn_error)?;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_broken_static_limit_is_named() {
        let limits = Limits::default();
        let code = |shape: Shape| {
            limits
                .check_shape(&shape)
                .err()
                .map(|error| error.extensions.expect("extensions").get("code").cloned())
        };
        let fine = Shape {
            root_fields: 1,
            fields: 3,
            data_depth: 2,
            ..Shape::default()
        };
        assert_eq!(code(fine), None);
        let named = |name: &str| Some(Some(async_graphql::Value::from(name)));
        assert_eq!(
            code(Shape {
                aliases: 31,
                ..fine
            }),
            named("TOO_MANY_ALIASES")
        );
        assert_eq!(
            code(Shape {
                root_fields: 21,
                ..fine
            }),
            named("TOO_MANY_ROOT_FIELDS")
        );
        assert_eq!(
            code(Shape {
                data_depth: 11,
                ..fine
            }),
            named("QUERY_TOO_DEEP")
        );
        assert_eq!(
            code(Shape {
                introspection: true,
                introspection_depth: 20,
                ..fine
            }),
            None
        );
        assert_eq!(
            code(Shape {
                introspection: true,
                introspection_depth: 21,
                ..fine
            }),
            named("QUERY_TOO_DEEP")
        );
        assert_eq!(
            code(Shape {
                truncated: true,
                ..fine
            }),
            named("QUERY_TOO_COMPLEX")
        );
        assert_eq!(
            code(Shape {
                data_fields: 5001,
                ..fine
            }),
            named("QUERY_TOO_COMPLEX")
        );
        let with_introspection = |introspection_fields: usize| Shape {
            introspection: true,
            introspection_fields,
            ..fine
        };
        let tight = Limits {
            max_complexity: 50,
            ..limits
        };
        let tight_code = |shape: Shape| {
            tight
                .check_shape(&shape)
                .err()
                .map(|error| error.extensions.expect("extensions").get("code").cloned())
        };
        assert_eq!(tight_code(with_introspection(500)), None);
        assert_eq!(
            tight_code(with_introspection(501)),
            named("QUERY_TOO_COMPLEX")
        );
        assert_eq!(
            tight_code(Shape {
                data_fields: 51,
                ..with_introspection(230)
            }),
            named("QUERY_TOO_COMPLEX")
        );
        assert_eq!(
            Limits::data_complexity(280, &with_introspection(230)),
            50,
            "validation's count less the introspection's"
        );
        let closed = Limits {
            introspection: false,
            ..limits
        };
        let refused = closed
            .check_shape(&Shape {
                introspection: true,
                ..fine
            })
            .expect_err("refused");
        assert_eq!(
            refused.extensions.expect("extensions").get("code").cloned(),
            Some(async_graphql::Value::from("INTROSPECTION_DISABLED"))
        );
    }
}
