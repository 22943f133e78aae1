//! The jobs API on the worker's port (the gateway routes `/api/jobs` here), admins only
//! (docs/contracts.md, "Jobs API"):
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/jobs/stats` | the queue's figures ([`crate::stats`]) |
//! | `GET /api/jobs/dead` | dead letters, a keyset page (`?limit&after&before&offset&count&kind`; `limit` ≤ 100), payload and error cut to 4 KiB |
//! | `GET /api/jobs/dead/{id}` | one dead letter, whole |
//! | `POST /api/jobs/dead/{id}/replay` | the job back to the queue at attempt 1; its row deleted |
//! | `DELETE /api/jobs/dead/{id}` | the row deleted (204) |
//! | `POST /api/jobs/dead/replay` | `{"ids": […]}` (≤ 1000) or `{"all": true, "kind"?, "through"?}` (≤ 1000 rows a call, `remaining` left) |
//! | `POST /api/jobs/dead/delete` | the same, deleting |

use actix_web::{HttpResponse, web};
use queue::{DeadLetterRow, DeadLetters, PageRequest, PageStart, QueueError, storable};
use runtime::FieldError;
use serde::{Deserialize, Serialize};
use server::{Admin, ApiError, ListQuery, ListRequest, Seek, Total, links, list_response};

use crate::stats::QueueStats;

/// The dead letters' list scope (its cursors carry it).
const SCOPE: &str = "dead";
/// The most ids one bulk request names.
pub const MAX_BULK_IDS: usize = 1000;
/// The longest `kind` filter.
const MAX_KIND_CHARS: usize = 64;
/// The largest page of dead letters (each carries a payload of up to [`MAX_LISTED_BYTES`]).
pub const MAX_DEAD_LIMIT: u32 = 100;
/// The most bytes of a payload's JSON text, and of an error, a listed dead letter carries.
pub const MAX_LISTED_BYTES: usize = 4096;
/// The most rows one "all" bulk call replays or deletes (the client calls again while some
/// remain).
pub const MAX_BULK_ROWS: usize = 1000;

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
        .route("/api/jobs/dead/{id}", web::get().to(get_one))
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

/// A dead letter as the list shows it: its payload's JSON text and its error cut to
/// [`MAX_LISTED_BYTES`] (`GET /api/jobs/dead/{id}` has them whole).
#[derive(Debug, Serialize)]
struct ListedDeadLetter {
    /// The row, its payload and error replaced as below.
    #[serde(flatten)]
    row: DeadLetterRow,
    /// Whether `payload` is the first [`MAX_LISTED_BYTES`] of its JSON text (a string)
    /// rather than the payload.
    payload_truncated: bool,
    /// Whether `last_error` is cut.
    last_error_truncated: bool,
}

impl From<DeadLetterRow> for ListedDeadLetter {
    fn from(mut row: DeadLetterRow) -> Self {
        let mut payload_truncated = false;
        if let Some(payload) = &row.payload {
            let text = payload.to_string();
            if text.len() > MAX_LISTED_BYTES {
                row.payload = Some(serde_json::Value::String(storable(&text, MAX_LISTED_BYTES)));
                payload_truncated = true;
            }
        }
        let mut last_error_truncated = false;
        if let Some(error) = &row.last_error
            && error.len() > MAX_LISTED_BYTES
        {
            row.last_error = Some(storable(error, MAX_LISTED_BYTES));
            last_error_truncated = true;
        }
        Self {
            row,
            payload_truncated,
            last_error_truncated,
        }
    }
}

/// The queue crate's page of a list page (one row more than the page, which tells whether
/// another follows).
fn page_request<'a>(kind: Option<&'a str>, page: &server::ListPage) -> PageRequest<'a> {
    PageRequest {
        kind,
        start: match page.seek {
            Seek::Start => PageStart::First,
            Seek::Offset(offset) => PageStart::Offset(offset),
            Seek::After(after) => PageStart::After(after),
            Seek::Before(before) => PageStart::Before(before),
            Seek::End => PageStart::Last,
        },
        limit: page.limit + 1,
    }
}

async fn list(
    _admin: Admin,
    api: web::Data<JobsApi>,
    query: web::Query<ListQuery>,
    filter: web::Query<KindFilter>,
) -> Result<HttpResponse, ApiError> {
    let kind = checked_kind(filter.into_inner().kind)?;
    let query = query.into_inner();
    if query.limit.is_some_and(|limit| limit > MAX_DEAD_LIMIT) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 0 and {MAX_DEAD_LIMIT}"
        )));
    }
    let (page, exact_count) = match query.into_request(SCOPE)? {
        ListRequest::Page { page, exact_count } => (page, exact_count),
        ListRequest::Ids(_) => {
            return Err(ApiError::BadRequest(
                "ids: dead letters are listed by page (after, before, offset)".to_owned(),
            ));
        }
    };
    let rows = api
        .dead
        .list(page_request(kind.as_deref(), &page))
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
    let items: Vec<ListedDeadLetter> = window.items.into_iter().map(Into::into).collect();
    Ok(list_response(&items, Some(&link), total))
}

async fn get_one(
    _admin: Admin,
    api: web::Data<JobsApi>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match api.dead.get(id).await.map_err(unavailable)? {
        Some(row) => Ok(HttpResponse::Ok().json(row)),
        None => Err(not_found(id)),
    }
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
    /// With `all`: only rows with ids up to this one (the `through` of the first call's
    /// answer, so that repeated calls cover the rows there were at the first).
    #[serde(default)]
    through: Option<i64>,
}

/// What a bulk request names.
enum Selection {
    /// These rows (deduplicated, ascending).
    Ids(Vec<i64>),
    /// Every row, of this kind or all, with ids up to this one when given.
    All(Option<String>, Option<i64>),
}

impl Bulk {
    /// 422 naming the field at fault unless exactly one of `ids` (1–1000 of them) and
    /// `all: true` is given, and `kind` (not empty) and `through` only with `all`.
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
            (Some(_), false) if self.through.is_some() => {
                Err(invalid("through", "through bounds all: true only"))
            }
            (Some(mut ids), false) => {
                if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                    return Err(invalid("ids", &format!("between 1 and {MAX_BULK_IDS} ids")));
                }
                ids.sort_unstable();
                ids.dedup();
                Ok(Selection::Ids(ids))
            }
            // An empty kind would select every kind.
            (None, true) if self.kind.as_deref() == Some("") => {
                Err(invalid("kind", "a job kind's name, not empty"))
            }
            (None, true) => Ok(Selection::All(checked_kind(self.kind)?, self.through)),
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
        Selection::All(kind, through) => {
            let progress = match action {
                BulkAction::Replay => {
                    api.dead
                        .replay_all(kind.as_deref(), through, MAX_BULK_ROWS)
                        .await
                }
                BulkAction::Delete => {
                    api.dead
                        .delete_all(kind.as_deref(), through, MAX_BULK_ROWS)
                        .await
                }
            }
            .map_err(unavailable)?;
            serde_json::json!({
                action.field(): progress.done,
                "remaining": progress.remaining,
                "through": progress.through,
            })
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
