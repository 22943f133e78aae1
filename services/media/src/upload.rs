//! `POST /api/upload` and `POST /api/media` (the same handler): a multipart form whose field
//! `file` is streamed into a staged object while its size and type are checked.
//!
//! An upload needs a signed-in caller, who owns the item; `?visibility=public` lets anyone read
//! it (default `private`). Both are settled before a byte of the body is read: an anonymous
//! upload is a 401 and a bad visibility a 400 whatever the body.
//!
//! Nothing partial survives a failure: the staged object is a temporary file removed when it
//! is dropped (by an error return, or when the client goes away and actix drops the handler),
//! and the last steps (publish the object, insert the row, enqueue the thumbnail job) run in a
//! task of their own, so a disconnect cannot stop them half-way; a failed insert removes the
//! published object again.
//!
//! The uploader's quota ([`crate::quota`]) is reserved before the body is read (one file, and
//! the declared length when there is one) and grown as the bytes arrive, before each chunk is
//! written: past the quota the upload stops with a 413 and its reservation is released; the
//! row that records a stored file takes the reservation's place in one transaction.

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use futures_util::StreamExt;
use runtime::{ErrorBody, TraceContext};
use serde::Deserialize;
use server::{ApiError, RequestId, RequestTrace, SignedIn};
use store::StagedObject;
use utoipa::IntoParams;

use crate::{
    domain::{
        ContentSniffer, MediaError, THUMBNAIL_TYPES, UploadForm, UploadResponse, Visibility,
        key_name, sanitize_file_name,
    },
    presentation::present,
    quota::{Quota, Reservation},
    repository::NewMedia,
    state::MediaState,
};

/// Room for the multipart framing (boundaries, part headers, other small fields) beyond the
/// file itself, before a declared `Content-Length` is refused outright.
pub const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// The message of a successful upload.
pub const UPLOADED: &str = "File uploaded successfully";

/// The query of an upload.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// `private` (the default: the uploader and admins) or `public` (anyone may read it).
    #[param(inline, value_type = Option<Visibility>)]
    pub visibility: Option<String>,
}

/// Who owns an upload and who may read it, settled before its body is read.
#[derive(Debug, Clone, Copy)]
struct Ownership {
    owner_id: i64,
    visibility: Visibility,
}

/// A file received whole and accepted, not yet published.
struct Received {
    staged: StagedObject,
    name: String,
    content_type: &'static str,
}

/// The visibility a query string asks for: `private` when it names none.
fn requested_visibility(query: &str) -> Result<Visibility, MediaError> {
    let query = web::Query::<UploadQuery>::from_query(query)
        .map_err(|error| MediaError::BadQuery(error.to_string()))?;
    match query.visibility.as_deref() {
        None => Ok(Visibility::Private),
        Some(name) => Visibility::parse(name).ok_or_else(|| {
            MediaError::BadQuery(format!(
                "visibility must be \"private\" or \"public\", not {:?}",
                name.chars().take(32).collect::<String>()
            ))
        }),
    }
}

/// Uploads a file (multipart field `file`), owned by the caller; `?visibility=public` lets
/// anyone read it.
#[utoipa::path(post, path = "/api/upload", tag = "media",
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    params(UploadQuery),
    security(("bearer_auth" = [])),
    responses(
        (status = 201, description = "Stored", body = UploadResponse,
            headers(("Location" = String, description = "The item's URL"))),
        (status = 400, description = "No file field, a malformed form, or a visibility that is \
            neither private nor public", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 413, description = "Over MEDIA_MAX_BYTES, or past the caller's quota \
            (MEDIA_QUOTA_BYTES, MEDIA_QUOTA_FILES)", body = ErrorBody),
        (status = 415, description = "Type not allowed (decided from the bytes)", body = ErrorBody),
        (status = 503, description = "The object store is unreachable", body = ErrorBody),
    ))]
pub async fn upload(
    SignedIn(owner): SignedIn,
    state: web::Data<MediaState>,
    request: HttpRequest,
    payload: web::Payload,
    request_id: RequestId,
    trace: RequestTrace,
) -> Result<HttpResponse, ApiError> {
    upload_media(SignedIn(owner), state, request, payload, request_id, trace).await
}

/// The same as `POST /api/upload`.
#[utoipa::path(post, path = "/api/media", tag = "media",
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    params(UploadQuery),
    security(("bearer_auth" = [])),
    responses(
        (status = 201, description = "Stored", body = UploadResponse,
            headers(("Location" = String, description = "The item's URL"))),
        (status = 400, description = "No file field, a malformed form, or a visibility that is \
            neither private nor public", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 413, description = "Over MEDIA_MAX_BYTES, or past the caller's quota \
            (MEDIA_QUOTA_BYTES, MEDIA_QUOTA_FILES)", body = ErrorBody),
        (status = 415, description = "Type not allowed (decided from the bytes)", body = ErrorBody),
        (status = 503, description = "The object store is unreachable", body = ErrorBody),
    ))]
pub async fn upload_media(
    SignedIn(owner): SignedIn,
    state: web::Data<MediaState>,
    request: HttpRequest,
    payload: web::Payload,
    request_id: RequestId,
    RequestTrace(trace): RequestTrace,
) -> Result<HttpResponse, ApiError> {
    // Refused before the body is read: nothing is staged, counted or stored.
    let visibility = requested_visibility(request.query_string()).map_err(ApiError::from)?;
    let ownership = Ownership {
        owner_id: owner.user_id,
        visibility,
    };
    let outcome = store_upload(
        state.clone(),
        &request,
        payload,
        (request_id, trace),
        ownership,
    )
    .await;
    state
        .metrics
        .observe(outcome.as_ref().map(|(_, size)| *size));
    outcome
        .map(|(response, _)| response)
        .map_err(|error| state.fail(error))
}

/// Stores the upload; `(request_id, trace)` name the request, and its thumbnail job continues
/// the trace.
async fn store_upload(
    state: web::Data<MediaState>,
    request: &HttpRequest,
    payload: web::Payload,
    (request_id, trace): (RequestId, TraceContext),
    ownership: Ownership,
) -> Result<(HttpResponse, u64), MediaError> {
    let max = state.settings.max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(MediaError::TooLarge(max));
    }
    // The quota is settled before the body is read as far as the request tells: one more file,
    // and room for the declared length, or at least for what the file must hold of it (the
    // length less the framing allowance).
    let initial = declared.map_or((1, 1), |length| {
        (length, length.saturating_sub(MULTIPART_OVERHEAD))
    });
    let mut reservation = Reservation::open(
        state.repository.database(),
        Quota::of(&state.settings),
        &state.logger,
        ownership.owner_id,
        initial,
        max,
    )
    .await?;
    let multipart = Multipart::new(request.headers(), payload);
    let received = match receive(&state, multipart, &mut reservation).await {
        Ok(received) => received,
        Err(error) => {
            reservation.release().await;
            return Err(error);
        }
    };
    // `trace` is the request's span: the thumbnail job continues its trace.
    // From here on the work must finish or be undone whatever the client does.
    let task = tokio::spawn(publish(
        state.into_inner(),
        received,
        ownership,
        reservation,
        (request_id, trace),
    ));
    let media = task
        .await
        .map_err(|error| anyhow::Error::new(error).context("the upload task"))??;
    let size = u64::try_from(media.size).unwrap_or_default();
    let response = HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/media/{}", media.id)))
        .json(UploadResponse {
            message: UPLOADED.to_owned(),
            file: media,
        });
    Ok((response, size))
}

/// Reads the whole form: the `file` field into a staged object, other fields discarded (all of
/// it within the size budget).
async fn receive(
    state: &MediaState,
    mut multipart: Multipart,
    reservation: &mut Reservation,
) -> Result<Received, MediaError> {
    let max = state.settings.max_bytes;
    // Other fields may not smuggle more than the framing allowance past the limit.
    let mut other_bytes: u64 = 0;
    let mut received: Option<Received> = None;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(multipart_error)?;
        if field.name() == Some("file") {
            if received.is_some() {
                return Err(MediaError::Multipart("only one file per upload".into()));
            }
            let name = field
                .content_disposition()
                .and_then(|disposition| {
                    disposition
                        .get_filename_ext()
                        .map(|ext| String::from_utf8_lossy(&ext.value).into_owned())
                        .or_else(|| disposition.get_filename().map(str::to_owned))
                })
                .ok_or(MediaError::NoFileName)?;
            received = Some(receive_file(state, &mut field, &name, reservation).await?);
        } else {
            while let Some(chunk) = field.next().await {
                other_bytes += chunk.map_err(multipart_error)?.len() as u64;
                if other_bytes > MULTIPART_OVERHEAD {
                    return Err(MediaError::TooLarge(max));
                }
            }
        }
    }
    received.ok_or(MediaError::NoFile)
}

/// Streams one file field into a staged object, enforcing the limit, the allow-list and the
/// quota as the bytes arrive: a chunk is written only once the reservation covers it. Each chunk
/// goes to the staged object as it arrives and is not kept (the sniffer keeps at most its first
/// `SNIFF_BYTES`), so an upload's memory does not grow with its size (docs/benchmarks.md,
/// "media-service": peak RSS during 5 MiB uploads).
async fn receive_file(
    state: &MediaState,
    field: &mut Field,
    raw_name: &str,
    reservation: &mut Reservation,
) -> Result<Received, MediaError> {
    let settings = &state.settings;
    let mut staged = state.store.stage().await?;
    let mut sniffer = ContentSniffer::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        size += chunk.len() as u64;
        if size > settings.max_bytes {
            return Err(MediaError::TooLarge(settings.max_bytes));
        }
        if let Some(found) = sniffer.feed(&chunk)
            && !settings.allows(found)
        {
            return Err(unsupported(found));
        }
        reservation.cover(size).await?;
        staged.write(&chunk).await?;
    }
    if size == 0 {
        return Err(MediaError::Empty);
    }
    let content_type = sniffer.finish().ok_or_else(|| {
        MediaError::Unsupported(
            "the file's type was not recognised (neither a known format nor UTF-8 text)".into(),
        )
    })?;
    if !settings.allows(content_type) {
        return Err(unsupported(content_type));
    }
    Ok(Received {
        staged,
        name: sanitize_file_name(raw_name),
        content_type,
    })
}

fn unsupported(found: &str) -> MediaError {
    MediaError::Unsupported(format!("files of type {found} are not accepted"))
}

fn multipart_error(error: MultipartError) -> MediaError {
    match error {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => MediaError::NoFile,
        other => MediaError::Multipart(other.to_string()),
    }
}

/// Publishes the object, records it (the row takes the reservation's place), and asks for a
/// thumbnail (a job continuing the request's trace); undoes the publication and releases the
/// reservation when the row cannot be written.
async fn publish(
    state: std::sync::Arc<MediaState>,
    received: Received,
    ownership: Ownership,
    reservation: Reservation,
    (request_id, trace): (RequestId, TraceContext),
) -> Result<crate::domain::Media, MediaError> {
    let Received {
        staged,
        name,
        content_type,
    } = received;
    let size = i64::try_from(staged.len()).unwrap_or(i64::MAX);
    let id = uuid::Uuid::new_v4().to_string();
    let object_key = format!("{id}/{}", key_name(&name));
    let wants_thumbnail = THUMBNAIL_TYPES.contains(&content_type);
    let thumbnail_key = wants_thumbnail.then(|| format!("{id}/thumbnail.png"));
    if let Err(error) = staged.commit(&object_key, content_type).await {
        reservation.release().await;
        return Err(error.into());
    }
    let new = NewMedia {
        id: id.clone(),
        name,
        content_type: content_type.to_owned(),
        size,
        object_key: object_key.clone(),
        thumbnail_key: thumbnail_key.clone(),
        owner_id: ownership.owner_id,
        visibility: ownership.visibility,
    };
    let mut row = match state.repository.insert(&new, reservation.id()).await {
        Ok(row) => {
            reservation.settle();
            row
        }
        Err(error) => {
            reservation.release().await;
            if let Err(cleanup) = state.store.delete(&object_key).await {
                slog::error!(state.logger, "could not remove an object after a failed insert";
                    "key" => &object_key, "error" => format!("{cleanup:#}"));
            }
            return Err(error.into());
        }
    };
    if let Some(thumbnail_key) = thumbnail_key {
        let payload = serde_json::json!({
            "media_id": id,
            "key": object_key,
            "thumbnail_key": thumbnail_key,
        });
        let job = queue::Envelope::new("thumbnail", payload, Some(request_id.as_str()))
            .with_traceparent(Some(trace.traceparent().to_string()));
        match state.queue.publish(&job).await {
            Ok(()) => slog::info!(state.logger, "thumbnail job enqueued";
                "media_id" => &id, "job_id" => job.id.to_string(),
                "request_id" => request_id.as_str(), trace.clone()),
            Err(error) => {
                // The upload stands; it just will not get a thumbnail.
                slog::error!(state.logger, "could not enqueue the thumbnail job";
                    "media_id" => &id, "request_id" => request_id.as_str(),
                    "error" => error.to_string(), trace.clone());
                match state.repository.clear_thumbnail(&id).await {
                    Ok(()) => row.thumbnail_key = None,
                    Err(cleanup) => slog::warn!(state.logger, "could not clear the thumbnail key";
                        "media_id" => &id, "error" => cleanup.to_string()),
                }
            }
        }
    }
    slog::info!(state.logger, "media stored"; "media_id" => &id, "type" => content_type,
        "owner_id" => ownership.owner_id, "visibility" => ownership.visibility.as_str(),
        "size" => size, "store" => state.store.kind(), "request_id" => request_id.as_str(),
        trace);
    present(&state, row, false).await
}
