//! The handlers of `/api/media…` beside the upload: list, read (with fresh download URLs),
//! delete, and the fs store's signed downloads (whole or by HTTP range).
//!
//! Who sees what (README, "Access"): a list shows the caller's own items (admins: all;
//! anonymous callers: the public ones); an item is read by its owner, an admin, or anyone when
//! it is public, and an item the caller may not read answers 404 like a missing one, so private
//! items do not reveal that they exist. Delete needs a signed-in caller (401) who owns the item
//! or is an admin (403 for someone else's public item, 404 for a private one). A signed download
//! URL is a capability: it is only issued with a read, and whoever holds it may download until
//! it expires. Downloads, whole or ranged, carry [`crate::serving`]'s headers: raster images
//! inline, anything else as an attachment, both in a `Content-Security-Policy` sandbox. Every
//! handler takes the [`Caller`], so a token that does not verify is a 401 on every route.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use auth::Principal;
use runtime::{ErrorBody, error_json};
use serde::Deserialize;
use server::{ApiError, Caller, ListPage, ListQuery, ListRequest, SignedIn, links, list_response};
use store::{ByteRange, StoreError};
use utoipa::IntoParams;

use crate::{
    domain::{Media, MediaError, MediaRow, unix_now},
    presentation::{THUMBNAIL_TYPE, present, thumbnail_file_name},
    repository::ListScope,
    serving::download_headers,
    signing::Purpose,
    state::MediaState,
};

/// The scope of the list's cursors (`encode_cursor("media", seq)`): a cursor of another list
/// is refused.
pub const CURSOR_SCOPE: &str = "media";
/// The list's path, the base of its `Link` header (the list takes no filter parameters: the
/// caller decides what it shows).
const LIST_PATH: &str = "/api/media";

/// The query string of the list: a page by cursor (`after`, `before`) or by `offset`, and
/// whether to count every item.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MediaListQuery {
    /// Items per page (0–1000, default 100).
    #[param(minimum = 0, maximum = 1000)]
    pub limit: Option<u32>,
    /// The page after this cursor (from a `Link: rel="next"` header).
    pub after: Option<String>,
    /// The page before this cursor (from a `Link: rel="prev"` header).
    pub before: Option<String>,
    /// Items to skip (0–10000, default 0): for short lists; deeper pages are reached with
    /// `after`.
    #[param(minimum = 0, maximum = 10000)]
    pub offset: Option<u32>,
    /// `exact`: count every item of the list into `X-Total-Count` (its cost grows with the
    /// list).
    #[param(example = "exact")]
    pub count: Option<String>,
    /// Not supported here (media ids are UUIDs, read one by one): refused with a 400 rather
    /// than ignored.
    #[param(ignore)]
    pub ids: Option<String>,
}

impl MediaListQuery {
    /// The page asked for and whether to count exactly, by shared's rules
    /// ([`ListQuery::into_request`]); 400 for `ids` and for anything those rules refuse.
    pub fn into_page(self) -> Result<(ListPage, bool), ApiError> {
        if self.ids.is_some() {
            return Err(no_ids());
        }
        let query = ListQuery {
            limit: self.limit,
            after: self.after,
            before: self.before,
            offset: self.offset,
            ids: None,
            count: self.count,
        };
        match query.into_request(CURSOR_SCOPE)? {
            ListRequest::Page { page, exact_count } => Ok((page, exact_count)),
            ListRequest::Ids(_) => Err(no_ids()),
        }
    }
}

/// The 400 for `?ids=`: media ids are UUIDs, and the list has no batch by them.
fn no_ids() -> ApiError {
    ApiError::BadRequest(
        "ids: the media list has no batch by ids (read an item with /api/media/{id})".to_owned(),
    )
}

/// The query of a signed download URL.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// Unix time (seconds) after which the URL is refused.
    pub expires: Option<String>,
    /// Hex HMAC-SHA256 of the purpose, the id and `expires`.
    pub sig: Option<String>,
}

/// Lists media, oldest first, a page at a time (by cursor: `Link` leads to the pages beside
/// it): the caller's own items (admins: every item; anonymous callers: the public ones).
#[utoipa::path(get, path = "/api/media", tag = "media", params(MediaListQuery),
    security((), ("bearer_auth" = [])),
    responses(
        (status = 200, description = "Media, oldest first", body = Vec<Media>,
            headers(
                ("Link" = String, description = "RFC 8288 links to the next, previous and first pages (by cursor)"),
                ("X-Total-Count" = i64, description = "Items in all pages, with count=exact"),
                ("X-Total-Count-Estimate" = i64, description = "The database's estimate of every item (PostgreSQL, admins' list), without count=exact"))),
        (status = 400, description = "Bad query string: limit over 1000, offset over 10000, \
            a cursor not of this list, after/before/offset combined, a count other than exact, ids",
            body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid (reads need none)",
            body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
    ))]
pub async fn list_media(
    caller: Caller,
    state: web::Data<MediaState>,
    query: web::Query<MediaListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (page, exact_count) = query.into_inner().into_page()?;
    list(&state, caller.0.as_ref(), &page, exact_count)
        .await
        .map_err(|error| state.fail(error))
}

/// The items a list shows `viewer`.
pub fn list_scope(viewer: Option<&Principal>) -> ListScope {
    match viewer {
        None => ListScope::Public,
        Some(principal) if principal.admin => ListScope::All,
        Some(principal) => ListScope::OwnedBy(principal.user_id),
    }
}

async fn list(
    state: &MediaState,
    viewer: Option<&Principal>,
    page: &ListPage,
    exact_count: bool,
) -> Result<HttpResponse, MediaError> {
    let scope = list_scope(viewer);
    let rows = state.repository.list(scope, page).await?;
    let window = page.window(rows, |row| row.seq);
    let total = state.repository.total(scope, exact_count).await?;
    let link = links(LIST_PATH, CURSOR_SCOPE, page.limit, &window);
    let mut items = Vec::with_capacity(window.items.len());
    for row in window.items {
        items.push(present(state, row, false).await?);
    }
    Ok(list_response(&items, Some(&link), total))
}

/// One media item, with fresh download URLs: for its owner, admins, and anyone when it is
/// public.
#[utoipa::path(get, path = "/api/media/{id}", tag = "media",
    params(("id" = String, Path, description = "Media id (UUID)")),
    security((), ("bearer_auth" = [])),
    responses(
        (status = 200, description = "The item", body = Media),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid (reads need none)",
            body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 404, description = "No such item, or a private one of someone else", body = ErrorBody),
    ))]
pub async fn get_media(
    caller: Caller,
    state: web::Data<MediaState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let read = async {
        let row = find_readable(&state, &id, caller.0.as_ref()).await?;
        present(&state, row, true).await
    };
    match read.await {
        Ok(media) => Ok(HttpResponse::Ok().json(media)),
        Err(error) => Err(state.fail(error)),
    }
}

/// Deletes an item (its owner or an admin): its objects (file and thumbnail), then its row.
#[utoipa::path(delete, path = "/api/media/{id}", tag = "media",
    params(("id" = String, Path, description = "Media id (UUID)")),
    security(("bearer_auth" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 403, description = "A public item of someone else", body = ErrorBody),
        (status = 404, description = "No such item, or a private one of someone else", body = ErrorBody),
        (status = 503, description = "The object store is unreachable", body = ErrorBody),
    ))]
pub async fn delete_media(
    SignedIn(principal): SignedIn,
    state: web::Data<MediaState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    delete(&state, &principal, &id)
        .await
        .map_err(|error| state.fail(error))
}

async fn delete(
    state: &MediaState,
    principal: &Principal,
    id: &str,
) -> Result<HttpResponse, MediaError> {
    let row = find_readable(state, id, Some(principal)).await?;
    if !row.manageable_by(principal) {
        return Err(MediaError::Forbidden(
            "only the owner or an admin may delete this item",
        ));
    }
    // Objects first: if the store fails, the row still leads to them and a retry finishes.
    state.store.delete(&row.object_key).await?;
    if let Some(thumbnail_key) = &row.thumbnail_key {
        state.store.delete(thumbnail_key).await?;
    }
    if !state.repository.delete(&row.id).await? {
        return Err(MediaError::NotFound(row.id));
    }
    slog::info!(state.logger, "media deleted"; "media_id" => &row.id);
    Ok(HttpResponse::NoContent().finish())
}

/// Downloads the file through a signed URL (the fs store's `url`); supports `Range`.
#[utoipa::path(get, path = "/api/media/{id}/content", tag = "media",
    params(("id" = String, Path, description = "Media id (UUID)"), SignedQuery,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023")),
    responses(
        (status = 200, description = "The file, with its detected type", content(
            (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/gif"),
            (Vec<u8> = "image/webp"), (Vec<u8> = "application/pdf"), (Vec<u8> = "text/plain"))),
        (status = 206, description = "The requested range", content(
            (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/gif"),
            (Vec<u8> = "image/webp"), (Vec<u8> = "application/pdf"), (Vec<u8> = "text/plain"))),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid (the signature is what \
            grants access; no token is needed)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 403, description = "Expired, tampered with or unsigned", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 416, description = "Range beyond the end", body = ErrorBody),
    ))]
pub async fn download_content(
    _caller: Caller,
    state: web::Data<MediaState>,
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<SignedQuery>,
) -> Result<HttpResponse, ApiError> {
    download(&state, &request, &id, &query, Purpose::Content)
        .await
        .map_err(|error| state.fail(error))
}

/// Downloads the thumbnail through a signed URL (the fs store's `thumbnail_url`).
#[utoipa::path(get, path = "/api/media/{id}/thumbnail", tag = "media",
    params(("id" = String, Path, description = "Media id (UUID)"), SignedQuery,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023")),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/png", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "image/png", body = Vec<u8>),
        (status = 400, description = "The id is not a UUID", body = ErrorBody),
        (status = 401, description = "A token was sent and is invalid (the signature is what \
            grants access; no token is needed)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 403, description = "Expired, tampered with or unsigned", body = ErrorBody),
        (status = 404, description = "No such item or no thumbnail yet", body = ErrorBody),
        (status = 416, description = "Range beyond the end", body = ErrorBody),
    ))]
pub async fn download_thumbnail(
    _caller: Caller,
    state: web::Data<MediaState>,
    request: HttpRequest,
    id: web::Path<String>,
    query: web::Query<SignedQuery>,
) -> Result<HttpResponse, ApiError> {
    download(&state, &request, &id, &query, Purpose::Thumbnail)
        .await
        .map_err(|error| state.fail(error))
}

async fn download(
    state: &MediaState,
    request: &HttpRequest,
    id: &str,
    query: &SignedQuery,
    purpose: Purpose,
) -> Result<HttpResponse, MediaError> {
    let id = parse_id(id)?;
    let expires = query
        .expires
        .as_deref()
        .and_then(|value| value.parse::<i64>().ok())
        .ok_or(MediaError::Forbidden("the URL is not signed"))?;
    let signature = query
        .sig
        .as_deref()
        .ok_or(MediaError::Forbidden("the URL is not signed"))?;
    if !state.signer.verify(purpose, &id, expires, signature) {
        return Err(MediaError::Forbidden("the URL's signature is not valid"));
    }
    if unix_now() > expires {
        return Err(MediaError::Forbidden("the URL has expired"));
    }
    let row = state
        .repository
        .find(&id)
        .await?
        .ok_or_else(|| MediaError::NotFound(id.clone()))?;
    let (key, content_type, file_name) = match purpose {
        Purpose::Content => (
            row.object_key.clone(),
            row.content_type.clone(),
            row.name.clone(),
        ),
        Purpose::Thumbnail => (
            row.thumbnail_key
                .clone()
                .ok_or_else(|| MediaError::NotFound(format!("{id} thumbnail")))?,
            THUMBNAIL_TYPE.to_owned(),
            thumbnail_file_name(&row.name),
        ),
    };
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(ByteRange::parse_header);
    let read = match state.store.read(&key, range).await {
        Ok(read) => read,
        Err(StoreError::RangeNotSatisfiable { size }) => {
            return Ok(HttpResponse::build(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .content_type("application/json")
                .body(error_json(
                    416,
                    format!("the range is beyond the end of the {size}-byte file"),
                )));
        }
        Err(StoreError::NotFound(_)) => {
            return Err(MediaError::NotFound(format!("{id} {}", purpose.as_str())));
        }
        Err(other) => return Err(other.into()),
    };
    let length = read.content_length();
    let mut response = match read.range {
        Some((first, last)) => {
            let mut builder = HttpResponse::PartialContent();
            builder.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{}", read.size),
            ));
            builder
        }
        None => HttpResponse::Ok(),
    };
    for pair in download_headers(&content_type, &file_name) {
        response.insert_header(pair);
    }
    Ok(response
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .no_chunking(length)
        .streaming(read.body))
}

/// The row `id` when `viewer` may read it; a row they may not read is not found either.
async fn find_readable(
    state: &MediaState,
    id: &str,
    viewer: Option<&Principal>,
) -> Result<MediaRow, MediaError> {
    let id = parse_id(id)?;
    match state.repository.find(&id).await? {
        Some(row) if row.readable_by(viewer) => Ok(row),
        _ => Err(MediaError::NotFound(id)),
    }
}

/// The canonical (lower-case, hyphenated) form of a UUID id.
fn parse_id(id: &str) -> Result<String, MediaError> {
    uuid::Uuid::parse_str(id)
        .map(|uuid| uuid.to_string())
        .map_err(|_| MediaError::InvalidId(id.chars().take(64).collect()))
}
