//! How a media item is shown to a client: its JSON with download URLs made for each answer,
//! and the download names. A download URL is a presigned S3 URL only for a raster image on the S3 store
//! (S3 cannot send the sandbox policy of [`crate::serving`]); everything else gets the service's
//! own signed URL, whose answers carry it.

use std::time::SystemTime;

use store::Presign;

use crate::{
    domain::{Media, MediaError, MediaRow, seconds, unix_now},
    serving::{Disposition, content_disposition},
    signing::Purpose,
    state::MediaState,
};

/// A media item as clients see it, with download URLs made for this answer. With
/// `check_thumbnail`, a thumbnail the row does not know about yet is looked for in the store
/// (and recorded).
pub async fn present(
    state: &MediaState,
    row: MediaRow,
    check_thumbnail: bool,
) -> Result<Media, MediaError> {
    let url = download_url(state, &row, Purpose::Content, &row.object_key).await?;
    let mut thumbnail_url = None;
    if let Some(thumbnail_key) = &row.thumbnail_key {
        let mut ready = row.thumbnail_ready_at.is_some();
        if !ready && check_thumbnail {
            match state.store.exists(thumbnail_key).await {
                Ok(true) => {
                    state.repository.mark_thumbnail_ready(&row.id).await?;
                    ready = true;
                }
                Ok(false) => {}
                Err(error) => slog::warn!(state.logger, "could not look for a thumbnail";
                    "media_id" => &row.id, "error" => error.to_string()),
            }
        }
        if ready {
            thumbnail_url =
                Some(download_url(state, &row, Purpose::Thumbnail, thumbnail_key).await?);
        }
    }
    let visibility = row.visibility();
    Ok(Media {
        id: row.id,
        name: row.name,
        content_type: row.content_type,
        size: row.size,
        url,
        thumbnail_url,
        owner_id: row.owner_id,
        visibility,
        created_at: row.created_at,
    })
}

/// A presigned S3 URL for a raster image on S3; otherwise the service's own signed URL.
async fn download_url(
    state: &MediaState,
    row: &MediaRow,
    purpose: Purpose,
    key: &str,
) -> Result<String, MediaError> {
    let ttl = state.url_ttl();
    let (file_name, content_type) = match purpose {
        Purpose::Content => (row.name.clone(), row.content_type.as_str()),
        Purpose::Thumbnail => (thumbnail_file_name(&row.name), THUMBNAIL_TYPE),
    };
    if Disposition::of(content_type) == Disposition::Inline {
        let presign = Presign {
            start: SystemTime::now(),
            ttl,
            content_disposition: Some(content_disposition(Disposition::Inline, &file_name)),
        };
        if let Some(url) = state.store.presigned_get(key, &presign).await? {
            return Ok(url);
        }
    }
    Ok(signed_path(
        state,
        purpose,
        &row.id,
        unix_now() + seconds(ttl),
    ))
}

/// `<MEDIA_PUBLIC_URL>/api/media/<id>/<purpose>?expires=…&sig=…`.
pub fn signed_path(state: &MediaState, purpose: Purpose, id: &str, expires: i64) -> String {
    let prefix = state
        .settings
        .public_url
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let sig = state.signer.sign(purpose, id, expires);
    format!(
        "{prefix}/api/media/{id}/{}?expires={expires}&sig={sig}",
        purpose.as_str()
    )
}

/// The type of every thumbnail (the worker writes PNG).
pub const THUMBNAIL_TYPE: &str = "image/png";

/// The download name of an item's thumbnail.
pub fn thumbnail_file_name(name: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    format!("{stem}-thumbnail.png")
}
