//! The jobs API on the worker's port (the gateway routes `/api/jobs` here), admins only
//! (docs/contracts.md, "Jobs API"):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/jobs/stats` | the queue's figures ([`crate::stats`]) |
//! | `GET /api/jobs/dead` | dead letters, a keyset page (`?limit&after&before&offset&count&kind`) |
//! | `POST /api/jobs/dead/{id}/replay` | the job back to the queue at attempt 1; its row deleted |
//! | `DELETE /api/jobs/dead/{id}` | the row deleted (204) |
//! | `POST /api/jobs/dead/replay` | `{"ids": […]}` (≤ 1000) or `{"all": true, "kind"?}` |
//! | `POST /api/jobs/dead/delete` | the same, deleting |

use actix_web::{HttpResponse, web};
use queue::{DeadLetters, PageClause, QueueError};
use runtime::FieldError;
use serde::Deserialize;
use server::{Admin, ApiError, ListQuery, ListRequest, Total, links, list_response};

use crate::stats::QueueStats;

/// The dead letters' list scope (its cursors carry it).
const SCOPE: &str = "dead";
/// The most ids one bulk request names.
pub const MAX_BULK_IDS: usize = 1000;
/// The longest `kind` filter.
const MAX_KIND_CHARS: usize = 64;

/// What the handlers share.
#[derive(Clone)]
pub struct JobsApi {
    /// The dead letters.
    pub dead: DeadLetters,
    /// The figures.
    pub stats: QueueStats,
}

/// Mounts the routes (the bulk ones before `{id}`, which would take `replay` and `delete`).
pub fn configure(config: &mut web::ServiceConfig, api: JobsApi) {
    config
        .app_data(web::Data::new(api))
        .route("/api/jobs/stats", web::get().to(stats))
        .route("/api/jobs/dead", web::get().to(list))
        .route("/api/jobs/dead/replay", web::post().to(replay_bulk))
        .route("/api/jobs/dead/delete", web::post().to(delete_bulk))
        .route("/api/jobs/dead/{id}/replay", web::post().to(replay_one))
        .route("/api/jobs/dead/{id}", web::delete().to(delete_one));
}

/// The queue (or its database) failed: 503.
fn unavailable(error: QueueError) -> ApiError {
    ApiError::Unavailable(format!("the job queue: {error}"))
}

/// A `kind` filter: a job kind's name (letters, digits, `_`, `-`, `.`; at most
/// [`MAX_KIND_CHARS`]), else 400; empty is none. (So it goes into a `Link` URL as it is.)
fn checked_kind(kind: Option<String>) -> Result<Option<String>, ApiError> {
    match kind {
        Some(kind) if kind.is_empty() => Ok(None),
        Some(kind)
            if kind.len() > MAX_KIND_CHARS
                || !kind
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"_-.".contains(&byte)) =>
        {
            Err(ApiError::BadRequest(format!(
                "kind: a job kind's name (letters, digits, '_', '-', '.'; at most \
                 {MAX_KIND_CHARS})"
            )))
        }
        other => Ok(other),
    }
}

async fn stats(_admin: Admin, api: web::Data<JobsApi>) -> Result<HttpResponse, ApiError> {
    let figures = api.stats.figures().await.map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "queues": [figures] })))
}

/// The list's own filter, beside [`ListQuery`]'s paging.
#[derive(Debug, Deserialize)]
struct KindFilter {
    /// Only dead letters of this job kind.
    kind: Option<String>,
}

async fn list(
    _admin: Admin,
    api: web::Data<JobsApi>,
    query: web::Query<ListQuery>,
    filter: web::Query<KindFilter>,
) -> Result<HttpResponse, ApiError> {
    let kind = checked_kind(filter.into_inner().kind)?;
    let (page, exact_count) = match query.into_inner().into_request(SCOPE)? {
        ListRequest::Page { page, exact_count } => (page, exact_count),
        ListRequest::Ids(_) => {
            return Err(ApiError::BadRequest(
                "ids: dead letters are listed by page (after, before, offset)".to_owned(),
            ));
        }
    };
    let sql = page.sql("seq", DeadLetters::first_placeholder(kind.as_deref()));
    let rows = api
        .dead
        .list(
            kind.as_deref(),
            PageClause {
                condition: sql.condition.as_deref(),
                tail: &sql.tail,
                binds: &sql.binds,
            },
        )
        .await
        .map_err(unavailable)?;
    let window = page.window(rows, |row| row.id);
    let total = if exact_count {
        let count = api.dead.count(kind.as_deref()).await.map_err(unavailable)?;
        Total::Exact(i64::try_from(count).unwrap_or(i64::MAX))
    } else {
        Total::Unknown
    };
    let base = match &kind {
        Some(kind) => format!("/api/jobs/dead?kind={kind}"),
        None => "/api/jobs/dead".to_owned(),
    };
    let link = links(&base, SCOPE, page.limit, &window);
    Ok(list_response(&window.items, Some(&link), total))
}

async fn replay_one(
    _admin: Admin,
    api: web::Data<JobsApi>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let replayed = api.dead.replay(&[id]).await.map_err(unavailable)?;
    if replayed.is_empty() {
        return Err(not_found(id));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "replayed": 1 })))
}

async fn delete_one(
    _admin: Admin,
    api: web::Data<JobsApi>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let deleted = api.dead.delete(&[id]).await.map_err(unavailable)?;
    if deleted.is_empty() {
        return Err(not_found(id));
    }
    Ok(HttpResponse::NoContent().finish())
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("dead letter {id} not found"))
}

/// A bulk request: these ids, or all (of one kind).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bulk {
    /// The rows, at most [`MAX_BULK_IDS`].
    #[serde(default)]
    ids: Option<Vec<i64>>,
    /// Every row.
    #[serde(default)]
    all: bool,
    /// With `all`: only rows of this kind.
    #[serde(default)]
    kind: Option<String>,
}

/// What a bulk request names.
enum Selection {
    /// These rows (deduplicated, ascending).
    Ids(Vec<i64>),
    /// Every row, of this kind or all.
    All(Option<String>),
}

impl Bulk {
    /// 422 naming the field at fault unless exactly one of `ids` (1–1000 of them) and
    /// `all: true` is given, and `kind` only with `all`.
    fn selection(self) -> Result<Selection, ApiError> {
        let invalid = |field: &str, message: &str| {
            ApiError::validation(vec![FieldError::new(field, message.to_owned())])
        };
        match (self.ids, self.all) {
            (Some(_), true) => Err(invalid("ids", "give ids or all, not both")),
            (None, false) => Err(invalid("ids", "give ids, or all: true")),
            (Some(_), false) if self.kind.is_some() => {
                Err(invalid("kind", "kind filters all: true only"))
            }
            (Some(mut ids), false) => {
                if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                    return Err(invalid("ids", &format!("between 1 and {MAX_BULK_IDS} ids")));
                }
                ids.sort_unstable();
                ids.dedup();
                Ok(Selection::Ids(ids))
            }
            (None, true) => Ok(Selection::All(checked_kind(self.kind)?)),
        }
    }
}

/// The ids asked for that were not there.
fn missing(asked: &[i64], done: &[i64]) -> Vec<i64> {
    asked
        .iter()
        .filter(|id| done.binary_search(id).is_err())
        .copied()
        .collect()
}

/// What a bulk request does to the dead letters it selects.
#[derive(Clone, Copy)]
enum BulkAction {
    /// Publish them again and remove them.
    Replay,
    /// Remove them.
    Delete,
}

impl BulkAction {
    /// The answer's count field.
    fn field(self) -> &'static str {
        match self {
            Self::Replay => "replayed",
            Self::Delete => "deleted",
        }
    }
}

/// Replays or deletes the selected dead letters; answers the count, and for ids the ones that
/// were not there.
async fn bulk(api: &JobsApi, body: Bulk, action: BulkAction) -> Result<HttpResponse, ApiError> {
    let answer = match body.selection()? {
        Selection::Ids(ids) => {
            let done = match action {
                BulkAction::Replay => api.dead.replay(&ids).await,
                BulkAction::Delete => api.dead.delete(&ids).await,
            }
            .map_err(unavailable)?;
            serde_json::json!({ action.field(): done.len(), "missing": missing(&ids, &done) })
        }
        Selection::All(kind) => {
            let done = match action {
                BulkAction::Replay => api.dead.replay_all(kind.as_deref()).await,
                BulkAction::Delete => api.dead.delete_all(kind.as_deref()).await,
            }
            .map_err(unavailable)?;
            serde_json::json!({ action.field(): done })
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}

async fn replay_bulk(
    _admin: Admin,
    api: web::Data<JobsApi>,
    body: web::Json<Bulk>,
) -> Result<HttpResponse, ApiError> {
    bulk(&api, body.into_inner(), BulkAction::Replay).await
}

async fn delete_bulk(
    _admin: Admin,
    api: web::Data<JobsApi>,
    body: web::Json<Bulk>,
) -> Result<HttpResponse, ApiError> {
    bulk(&api, body.into_inner(), BulkAction::Delete).await
}
