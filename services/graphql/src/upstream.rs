//! users-service and products-service, over HTTP: the data this service does not own.
//!
//! Every call has connect and request timeouts, passes the request's `X-Request-Id`, its trace
//! context (`traceparent` naming a span of the call's own, whose parent is the request's
//! server span; `tracestate`) and its caller's `Authorization` on ([`Relay`]), records that
//! client span when spans are exported, and counts in
//! `graphql_upstream_requests_total{upstream, outcome}`. Nothing here is cached: what
//! users-service shows depends on the caller's token (an email address), so each answer serves
//! the one operation it was fetched for. Every call draws on its operation's
//! [`OperationBudget`] first, so one operation makes at most so many. Failures become an
//! [`UpstreamError`], which the schema turns into a GraphQL error with an `extensions.code`:
//! what failed is logged here (with the URL and the answer), the client hears only which
//! service.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use prometheus::IntCounterVec;
use reqwest::{Client, Method, Response, StatusCode};
use runtime::{
    AttributeValue, SpanKind, SpanRecord, TRACEPARENT, TRACESTATE, TraceContext, Tracer,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use server::Page;

use crate::budget::{OperationBudget, Overdrawn};

/// A user, as users-service returns it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserRecord {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its email address: users-service leaves it out unless the caller whose token was relayed
    /// is this user or an admin.
    #[serde(default)]
    pub email: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// What a call passes on from the operation it serves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relay<'a> {
    /// `X-Request-Id`.
    pub request_id: &'a str,
    /// The request's trace context (its server span): each call is a child span of it.
    pub trace: Option<&'a TraceContext>,
    /// The caller's `Authorization` value (`Bearer <token>`), if any.
    pub authorization: Option<&'a str>,
    /// The operation's budget, which each call draws on (`None`: unbounded).
    pub budget: Option<&'a OperationBudget>,
}

impl Relay<'_> {
    /// The request with the relayed fields; `call`: the call's own span, its `traceparent`.
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        call: Option<&TraceContext>,
    ) -> reqwest::RequestBuilder {
        let mut request = request.header(server::REQUEST_ID_HEADER.as_str(), self.request_id);
        if let Some(call) = call {
            request = request.header(TRACEPARENT, call.traceparent().as_str());
            if let Some(state) = call.tracestate.as_deref() {
                request = request.header(TRACESTATE, state);
            }
        }
        match self.authorization {
            Some(authorization) => request.header(reqwest::header::AUTHORIZATION, authorization),
            None => request,
        }
    }
}

/// A product, as products-service returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductRecord {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its price (exact to the cent in products-service's JSON).
    pub price: f64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// Why a call to another service did not give what was asked. What clients see of it is its
/// `Display`: which service, never a URL or what the service answered (that is logged).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection, or the service answered 5xx or something unreadable.
    #[error("{service}-service is unavailable")]
    Unavailable {
        /// `users` or `products`.
        service: &'static str,
        /// What happened (logged, not shown).
        reason: String,
    },
    /// No answer within the request timeout.
    #[error("{service}-service did not answer in time")]
    Timeout {
        /// `users` or `products`.
        service: &'static str,
    },
    /// The operation has made all the calls it may.
    #[error("{0}")]
    Overdrawn(Overdrawn),
    /// The service refused what was sent (4xx other than 404): its contract error code and
    /// message (written for the client: the client's input was refused), never the raw body.
    #[error("{message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The docs/contracts.md error code (`conflict`, `validation_failed`, …).
        code: String,
        /// The service's message.
        message: String,
        /// Per-field failures, for validation errors.
        details: Value,
    },
}

/// Timeouts for calls to other services.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For a whole exchange.
    pub request: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(10),
        }
    }
}

/// One other service's base URL and the shared HTTP client.
#[derive(Clone)]
pub struct Upstream {
    /// `users` or `products` (metrics, errors).
    service: &'static str,
    /// e.g. `http://127.0.0.1:3001`, without a trailing slash.
    base_url: String,
    /// Pooled connections, timeouts set.
    client: Client,
    /// `graphql_upstream_requests_total{upstream, outcome}`.
    calls: IntCounterVec,
    /// Where failures are told in full.
    logger: slog::Logger,
    /// Where the calls' client spans go (nowhere unless spans are exported).
    tracer: Tracer,
}

impl Upstream {
    /// A client for `service` at `base_url`.
    pub fn new(
        service: &'static str,
        base_url: &str,
        timeouts: UpstreamTimeouts,
        calls: IntCounterVec,
        logger: slog::Logger,
    ) -> anyhow::Result<Self> {
        let client = Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_idle_timeout(Duration::from_secs(4))
            .build()?;
        Ok(Self {
            service,
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
            calls,
            logger,
            tracer: Tracer::for_service(crate::NAME),
        })
    }

    /// The call's client span, when spans are exported: `METHOD service`, from `started` to
    /// now, with the status the service answered (none: no answer).
    fn record_call(
        &self,
        method: &str,
        path: &str,
        relay: Relay<'_>,
        call: Option<&TraceContext>,
        started: Instant,
        status: Option<u16>,
    ) {
        let Some(call) = call.filter(|call| self.tracer.records(call)) else {
            return;
        };
        let end = SystemTime::now();
        let mut attributes = vec![
            (
                "http.request.method",
                AttributeValue::Text(method.to_owned()),
            ),
            (
                "url.full",
                AttributeValue::Text(format!("{}{path}", self.base_url)),
            ),
            (
                "peer.service",
                AttributeValue::Text(self.service.to_owned()),
            ),
        ];
        if let Some(status) = status {
            attributes.push((
                "http.response.status_code",
                AttributeValue::Int(status.into()),
            ));
        }
        self.tracer.record(SpanRecord {
            name: format!("{method} {}", self.service),
            kind: SpanKind::Client,
            context: call,
            parent: relay.trace.map(|trace| trace.span_id),
            start: end.checked_sub(started.elapsed()).unwrap_or(end),
            end,
            attributes,
            error: status.is_none_or(|status| status >= 500),
        });
    }

    /// Takes one call from the operation's budget.
    fn draw(&self, relay: Relay<'_>) -> Result<(), UpstreamError> {
        match relay.budget {
            Some(budget) => budget
                .take_upstream_call()
                .map_err(UpstreamError::Overdrawn),
            None => Ok(()),
        }
    }

    /// `error`, logged in full (what happened, on which call) when the service failed.
    fn logged(&self, path: &str, relay: Relay<'_>, error: UpstreamError) -> UpstreamError {
        match &error {
            UpstreamError::Unavailable { reason, .. } => {
                slog::error!(self.logger, "upstream call failed";
                    "service" => self.service, "url" => format!("{}{path}", self.base_url),
                    "request_id" => relay.request_id, "error" => reason,
                    "trace_id" => relay.trace.map(|trace| trace.trace_id));
            }
            UpstreamError::Timeout { .. } => {
                slog::error!(self.logger, "upstream call timed out";
                    "service" => self.service, "url" => format!("{}{path}", self.base_url),
                    "request_id" => relay.request_id,
                    "trace_id" => relay.trace.map(|trace| trace.trace_id));
            }
            UpstreamError::Overdrawn(_) | UpstreamError::Rejected { .. } => {}
        }
        error
    }

    /// `GET path` → the decoded body; `None` on 404.
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        relay: Relay<'_>,
    ) -> Result<Option<T>, UpstreamError> {
        self.draw(relay)?;
        let sent = self.send(Method::GET, path, relay, |request| request).await;
        let answer = async {
            let response = self.answered(sent)?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            self.decode(response).await.map(Some)
        };
        answer
            .await
            .map_err(|error| self.logged(path, relay, error))
    }

    /// `POST path` with a JSON body → the decoded body.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        relay: Relay<'_>,
    ) -> Result<T, UpstreamError> {
        self.draw(relay)?;
        let sent = self
            .send(Method::POST, path, relay, |request| request.json(body))
            .await;
        let answer = async {
            let response = self.answered(sent)?;
            self.decode(response).await
        };
        answer
            .await
            .map_err(|error| self.logged(path, relay, error))
    }

    /// Sends `method path` (with what `body` adds) under a span of the call's own, the child
    /// of the request's, and records the call (metric, span).
    async fn send(
        &self,
        method: Method,
        path: &str,
        relay: Relay<'_>,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> reqwest::Result<Response> {
        let call = relay.trace.map(TraceContext::child);
        let started = Instant::now();
        let request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base_url));
        let sent = body(relay.apply(request, call.as_ref())).send().await;
        let status = sent
            .as_ref()
            .ok()
            .map(|response| response.status().as_u16());
        self.record_call(method.as_str(), path, relay, call.as_ref(), started, status);
        sent
    }

    fn answered(&self, sent: reqwest::Result<Response>) -> Result<Response, UpstreamError> {
        match sent {
            Ok(response) => Ok(response),
            Err(error) => {
                let timed_out = error.is_timeout();
                self.calls
                    .with_label_values(&[self.service, if timed_out { "timeout" } else { "error" }])
                    .inc();
                Err(if timed_out {
                    UpstreamError::Timeout {
                        service: self.service,
                    }
                } else {
                    UpstreamError::Unavailable {
                        service: self.service,
                        reason: error_chain(&error),
                    }
                })
            }
        }
    }

    async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T, UpstreamError> {
        let status = response.status();
        let outcome = if status.is_success() {
            "ok"
        } else if status.is_client_error() {
            "rejected"
        } else {
            "error"
        };
        self.calls.with_label_values(&[self.service, outcome]).inc();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.failed(&error))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|error| UpstreamError::Unavailable {
                service: self.service,
                reason: format!("unreadable answer: {error}"),
            });
        }
        let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let field = |name: &str| error["error"][name].as_str().unwrap_or_default().to_owned();
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Err(UpstreamError::Rejected {
                status: status.as_u16(),
                code: field("code"),
                message: field("message"),
                details: error["error"]["details"].clone(),
            })
        } else {
            Err(UpstreamError::Unavailable {
                service: self.service,
                reason: format!(
                    "answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(512)])
                ),
            })
        }
    }

    fn failed(&self, error: &reqwest::Error) -> UpstreamError {
        if error.is_timeout() {
            UpstreamError::Timeout {
                service: self.service,
            }
        } else {
            UpstreamError::Unavailable {
                service: self.service,
                reason: error_chain(error),
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn ids_query(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// users-service (`USERS_URL`).
#[derive(Clone)]
pub struct UsersClient(pub Upstream);

impl UsersClient {
    /// One page of users.
    pub async fn list(
        &self,
        page: Page,
        relay: Relay<'_>,
    ) -> Result<Vec<UserRecord>, UpstreamError> {
        let path = format!("/api/users?limit={}&offset={}", page.limit, page.offset);
        Ok(self.0.get(&path, relay).await?.unwrap_or_default())
    }

    /// The users with these ids that exist, in one call (users-service's `?ids=` batch).
    pub async fn by_ids(
        &self,
        ids: &[i64],
        relay: Relay<'_>,
    ) -> Result<HashMap<i64, UserRecord>, UpstreamError> {
        let mut found = HashMap::with_capacity(ids.len());
        // users-service takes at most 1000 ids per call.
        for chunk in ids.chunks(server::MAX_LIMIT as usize) {
            let path = format!("/api/users?ids={}", ids_query(chunk));
            let users: Vec<UserRecord> = self.0.get(&path, relay).await?.unwrap_or_default();
            found.extend(users.into_iter().map(|user| (user.id, user)));
        }
        Ok(found)
    }

    /// Creates a user (`POST /api/users`).
    pub async fn create(
        &self,
        name: &str,
        email: &str,
        relay: Relay<'_>,
    ) -> Result<UserRecord, UpstreamError> {
        let body = serde_json::json!({"name": name, "email": email});
        self.0.post("/api/users", &body, relay).await
    }
}

/// products-service (`PRODUCTS_URL`).
#[derive(Clone)]
pub struct ProductsClient(pub Upstream);

impl ProductsClient {
    /// One page of products.
    pub async fn list(
        &self,
        page: Page,
        relay: Relay<'_>,
    ) -> Result<Vec<ProductRecord>, UpstreamError> {
        let path = format!("/api/products?limit={}&offset={}", page.limit, page.offset);
        Ok(self.0.get(&path, relay).await?.unwrap_or_default())
    }

    /// The product with this id, if any.
    pub async fn find(
        &self,
        id: i64,
        relay: Relay<'_>,
    ) -> Result<Option<ProductRecord>, UpstreamError> {
        self.0.get(&format!("/api/products/{id}"), relay).await
    }
}
