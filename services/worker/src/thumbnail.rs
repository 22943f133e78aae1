//! The `thumbnail` job: media-service's payload `{"media_id", "key"}` (a `thumbnail_key` in it
//! is ignored). The keys are media-service's layout: the upload at `<media_id>/<name>`, its
//! thumbnail at `<media_id>/thumbnail.png`. The worker writes only there: the thumbnail's key
//! is derived from the media id, never read from the message, and `key` must lie under the same
//! id ([`MediaKeys::of`]).
//!
//! The media item is gone once its upload is: media-service deletes the objects before the
//! row. So the upload's presence stands for the row's:
//!
//! 1. the upload is read (missing: the item was deleted; the job is done, with nothing to do:
//!    [`Outcome::Skipped`], never retried) and decoded within the process's decode budget
//!    ([`crate::decode`]);
//! 2. before the write, the upload must still be there (deleted meanwhile: skipped);
//! 3. the write is recorded as pending in the worker's database, the thumbnail written, and
//!    the upload checked once more: if it went in between, media-service's delete ran before
//!    the thumbnail existed and missed it, so the worker deletes it. The pending record goes
//!    once this check is done; a worker that died in between leaves it, and
//!    [`crate::orphans`] finishes the check later.

use futures_util::StreamExt;
use queue::Envelope;
use serde::Deserialize;
use store::{ObjectStore, StoreError, validate_key};

use crate::{
    context::JobContext,
    decode::{self, Thumbnail},
    outcome::{JobError, Outcome, database_error},
    repository::Recorded,
};

/// The longest read of an upload (the decode budget's turn is held meanwhile).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why a thumbnail job had nothing to do.
pub const MEDIA_GONE: &str = "the media item was deleted";

/// `thumbnail`'s payload (CONTRACTS between crates).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ThumbnailPayload {
    /// The media item (a UUID).
    pub media_id: String,
    /// The uploaded image's key in the store (`<media_id>/<name>`).
    pub key: String,
}

/// The objects of one media item the job touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaKeys {
    /// The media id.
    pub media_id: uuid::Uuid,
    /// The upload.
    pub original: String,
    /// Its thumbnail.
    pub thumbnail: String,
}

impl MediaKeys {
    /// The keys of a payload: `key` must be `<media_id>/<name>` (one name, not the
    /// thumbnail's), or the job is malformed.
    pub fn of(payload: &ThumbnailPayload) -> Result<Self, JobError> {
        let media_id = uuid::Uuid::parse_str(&payload.media_id).map_err(|_| {
            JobError::Malformed(format!("media_id {:?} is not a UUID", payload.media_id))
        })?;
        let thumbnail = thumbnail_key(media_id);
        let name = payload
            .key
            .strip_prefix(&format!("{}/", media_id.hyphenated()))
            .filter(|name| !name.is_empty() && !name.contains('/'));
        if name.is_none()
            || payload.key.eq_ignore_ascii_case(&thumbnail)
            || validate_key(&payload.key).is_err()
        {
            return Err(JobError::Malformed(format!(
                "key {:?} is not an upload of media {media_id}",
                payload.key
            )));
        }
        Ok(Self {
            media_id,
            original: payload.key.clone(),
            thumbnail,
        })
    }
}

/// Where the thumbnail of a media item goes (media-service's layout).
pub fn thumbnail_key(media_id: uuid::Uuid) -> String {
    format!("{}/thumbnail.png", media_id.hyphenated())
}

/// Runs a thumbnail job (the module documentation's steps).
pub async fn run(
    context: &JobContext,
    envelope: &Envelope,
    payload: ThumbnailPayload,
) -> Result<Outcome, JobError> {
    let keys = MediaKeys::of(&payload)?;
    let Some(thumbnail) = decode_within_budget(context, &keys).await? else {
        return Ok(Outcome::Skipped(MEDIA_GONE));
    };
    let (width, height) = (thumbnail.width, thumbnail.height);
    if let Outcome::Skipped(reason) = write(context, &keys, thumbnail).await? {
        slog::info!(context.logger, "thumbnail not written"; "job_id" => %envelope.id,
            "media_id" => %keys.media_id, "reason" => reason,
            "request_id" => envelope.request_id.as_deref());
        return Ok(Outcome::Skipped(reason));
    }
    let recorded = context
        .repository
        .record_done(envelope)
        .await
        .map_err(database_error)?;
    slog::info!(context.logger, "thumbnail written"; "job_id" => %envelope.id,
        "media_id" => %keys.media_id, "thumbnail_key" => &keys.thumbnail,
        "width" => width, "height" => height,
        "request_id" => envelope.request_id.as_deref());
    Ok(match recorded {
        Recorded::Now => Outcome::Done,
        Recorded::AlreadyDone => Outcome::Duplicate,
    })
}

/// Reads the upload and makes its thumbnail, holding its share of the decode budget
/// throughout; `None` when the upload is gone.
async fn decode_within_budget(
    context: &JobContext,
    keys: &MediaKeys,
) -> Result<Option<Thumbnail>, JobError> {
    // Opened in the turn, so no response waits open for it.
    let mut turn = context.budget.turn().await;
    let read = match context.store.read(&keys.original, None).await {
        Ok(read) => read,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(store_error(&keys.original, error)),
    };
    turn.hold_encoded(read.size).await?;
    let expected = read.size;
    let mut body = read.body;
    // The turn is held while the file is read: a stalled read must not hold up every job.
    let encoded = tokio::time::timeout(READ_TIMEOUT, async {
        let mut encoded = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| {
                JobError::Transient(format!("reading {}: {error}", keys.original))
            })?;
            if (encoded.len() + chunk.len()) as u64 > expected {
                return Err(JobError::Transient(format!(
                    "{} changed while it was read",
                    keys.original
                )));
            }
            encoded.extend_from_slice(&chunk);
        }
        Ok(encoded)
    })
    .await
    .map_err(|_| {
        JobError::Transient(format!(
            "reading {} took over {} s",
            keys.original,
            READ_TIMEOUT.as_secs()
        ))
    })??;
    let admitted = turn.admit(&encoded).await?;
    let thumbnail = tokio::task::spawn_blocking(move || {
        let thumbnail = decode::make_thumbnail(&encoded, &admitted.header);
        // The shares go back once the pixels and the file are freed.
        drop(encoded);
        drop(admitted);
        thumbnail
    })
    .await
    .map_err(|error| {
        // A decoder that panics on this file will panic on it again.
        if error.is_panic() {
            JobError::Permanent("decoding the image: the decoder panicked".to_owned())
        } else {
            JobError::Transient(format!("thumbnail task: {error}"))
        }
    })??;
    Ok(Some(thumbnail))
}

/// Writes the thumbnail if the media item still exists, and takes it back if the item was
/// deleted while it was written. [`Outcome::Done`] when it stands.
pub async fn write(
    context: &JobContext,
    keys: &MediaKeys,
    thumbnail: Thumbnail,
) -> Result<Outcome, JobError> {
    if !media_exists(&context.store, &keys.original).await? {
        return Ok(Outcome::Skipped(MEDIA_GONE));
    }
    let pending = context
        .repository
        .begin_thumbnail_write(&keys.thumbnail, &keys.original)
        .await
        .map_err(database_error)?;
    context
        .store
        .put(&keys.thumbnail, thumbnail.png, "image/png")
        .await
        .map_err(|error| store_error(&keys.thumbnail, error))?;
    let outcome = settle_write(&context.store, &keys.original, &keys.thumbnail).await?;
    context
        .repository
        .end_thumbnail_write(&pending)
        .await
        .map_err(database_error)?;
    Ok(outcome)
}

/// After the thumbnail at `thumbnail` was written: deletes it when its media item (whose
/// upload is `original`) is gone.
pub async fn settle_write(
    store: &ObjectStore,
    original: &str,
    thumbnail: &str,
) -> Result<Outcome, JobError> {
    if media_exists(store, original).await? {
        return Ok(Outcome::Done);
    }
    store
        .delete(thumbnail)
        .await
        .map_err(|error| store_error(thumbnail, error))?;
    Ok(Outcome::Skipped(MEDIA_GONE))
}

/// Whether the media item whose upload is `original` still exists: its upload does.
async fn media_exists(store: &ObjectStore, original: &str) -> Result<bool, JobError> {
    store
        .exists(original)
        .await
        .map_err(|error| store_error(original, error))
}

/// A store failure: an invalid key is permanent; anything else (the store down) may pass.
fn store_error(key: &str, error: StoreError) -> JobError {
    match error {
        StoreError::InvalidKey(_) => JobError::Permanent(error.to_string()),
        _ => JobError::Transient(format!("{key}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(media_id: &str, key: &str) -> ThumbnailPayload {
        ThumbnailPayload {
            media_id: media_id.to_owned(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn the_thumbnail_key_comes_from_the_media_id_and_the_upload_must_lie_under_it() {
        let id = uuid::Uuid::new_v4();
        let keys = MediaKeys::of(&payload(&id.to_string(), &format!("{id}/cat.png")))
            .expect("an upload of the item");
        assert_eq!(keys.thumbnail, format!("{id}/thumbnail.png"));
        let other = uuid::Uuid::new_v4();
        for key in [
            format!("{other}/cat.png"),
            format!("{id}/thumbnail.png"),
            format!("{id}/THUMBNAIL.PNG"),
            format!("{id}/a/b.png"),
            format!("{id}/"),
            format!("{id}/../x.png"),
            "cat.png".to_owned(),
        ] {
            assert!(
                matches!(
                    MediaKeys::of(&payload(&id.to_string(), &key)),
                    Err(JobError::Malformed(_))
                ),
                "{key}"
            );
        }
        assert!(matches!(
            MediaKeys::of(&payload("../etc", "../etc/passwd")),
            Err(JobError::Malformed(_))
        ));
    }

    #[test]
    fn a_thumbnail_key_in_the_message_is_ignored() {
        let id = uuid::Uuid::new_v4();
        let payload: ThumbnailPayload = serde_json::from_value(serde_json::json!({
            "media_id": id.to_string(),
            "key": format!("{id}/cat.png"),
            "thumbnail_key": "someone-else/thumbnail.png",
        }))
        .expect("a payload");
        assert_eq!(
            MediaKeys::of(&payload).expect("keys").thumbnail,
            format!("{id}/thumbnail.png")
        );
    }
}
