//! What a media item is, who may see and change it, how client file names are made safe, how
//! content types are decided from the bytes, what can go wrong, and the clock that signed URLs
//! and quota leases expire by.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::Principal;
use serde::{Deserialize, Serialize};
use server::ApiError;
use store::StoreError;
use utoipa::ToSchema;

/// The longest stored file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest name part of an object key, in bytes: S3 servers that keep objects as files
/// derive longer names from the key (s3s-fs: base64 of bucket and key in one file name, which
/// must fit the file system's 255 bytes; 64 leaves room for any bucket name).
pub const MAX_KEY_NAME_BYTES: usize = 64;
/// How many leading bytes are examined to recognise a binary format.
pub const SNIFF_BYTES: usize = 8192;
/// The type of text files (infer does not detect text: it is valid UTF-8 without NULs).
pub const TEXT_PLAIN: &str = "text/plain";
/// The types the worker makes thumbnails of.
pub const THUMBNAIL_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// A duration in whole seconds, as the expiry arithmetic takes it (capped far from overflow).
pub fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Seconds since the Unix epoch: the clock of signed URLs' `expires` and of quota leases.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, seconds)
}

/// Who may read a media item besides its owner and admins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Its owner and admins only.
    #[default]
    Private,
    /// Anyone, signed in or not (deleting it stays the owner's and admins').
    Public,
}

impl Visibility {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
        }
    }

    /// The visibility named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "private" => Some(Self::Private),
            "public" => Some(Self::Public),
            _ => None,
        }
    }
}

/// A media item as the API returns it (docs/contracts.md, "Resources").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Media {
    /// Assigned by the service.
    #[schema(example = "0b6e3c52-7d1c-4f7e-9a38-55d8f1f0f2a1")]
    pub id: String,
    /// The client's file name, sanitised.
    #[schema(example = "cat.png")]
    pub name: String,
    /// Content type, decided from the bytes.
    #[serde(rename = "type")]
    #[schema(example = "image/png")]
    pub content_type: String,
    /// Size in bytes.
    #[schema(example = 1234)]
    pub size: i64,
    /// A download URL valid `MEDIA_URL_TTL_SECS` (signed by the service, or presigned by S3).
    pub url: String,
    /// A download URL of the thumbnail, once the worker made it (images only).
    pub thumbnail_url: Option<String>,
    /// The id of the user who uploaded it; `null` for an item owned by nobody (only admins read
    /// or delete those).
    #[schema(example = 2)]
    pub owner_id: Option<i64>,
    /// `private` (owner and admins) or `public` (anyone may read it).
    pub visibility: Visibility,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// The body of a successful upload: a message and the stored item (with its id).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadResponse {
    /// `File uploaded successfully`.
    pub message: String,
    /// The stored file.
    pub file: Media,
}

/// The multipart form of an upload (for the OpenAPI document; the visibility is the query's).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// The file (any other field is ignored).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// A row of the `media` table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MediaRow {
    /// The list key: rows are listed and paged in `seq` order (upload order).
    pub seq: i64,
    /// Public id (a UUID).
    pub id: String,
    /// Sanitised file name.
    pub name: String,
    /// Detected content type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// The object's key in the store.
    pub object_key: String,
    /// The thumbnail's key (images).
    pub thumbnail_key: Option<String>,
    /// When the thumbnail was first seen in the store.
    pub thumbnail_ready_at: Option<String>,
    /// The uploader's user id; `None`: owned by nobody.
    pub owner_id: Option<i64>,
    /// `private` or `public` (the table's CHECK allows nothing else).
    pub visibility: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl MediaRow {
    /// Its visibility; anything the database does not know as `public` counts as private.
    pub fn visibility(&self) -> Visibility {
        Visibility::parse(&self.visibility).unwrap_or_default()
    }

    /// Whether `viewer` (`None`: anonymous) may see it, fetch its download URLs, and learn that
    /// it exists: anyone when it is public, otherwise its owner and admins.
    pub fn readable_by(&self, viewer: Option<&Principal>) -> bool {
        self.visibility() == Visibility::Public
            || viewer.is_some_and(|principal| self.manageable_by(principal))
    }

    /// Whether `principal` may delete it: its owner or an admin (an item owned by nobody: admins
    /// only).
    pub fn manageable_by(&self, principal: &Principal) -> bool {
        self.owner_id
            .map_or(principal.admin, |owner| principal.may_act_for(owner))
    }
}

/// The client's file name made safe to store and show: the last path component (so
/// `../../etc/passwd` is `passwd` and `C:\x\cat.png` is `cat.png`), without control or
/// bidirectional-override characters, without leading dots or surrounding spaces, at most
/// [`MAX_NAME_BYTES`] bytes (keeping a short extension), `file` when nothing is left.
pub fn sanitize_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim_start();
    if trimmed.is_empty() {
        return "file".to_owned();
    }
    truncate_name(trimmed, MAX_NAME_BYTES)
}

/// The name part of an object key: the sanitised name cut to [`MAX_KEY_NAME_BYTES`] (keeping
/// its extension), unless it would be the thumbnail's (`thumbnail.png` lives beside the
/// original under the same id).
pub fn key_name(sanitised: &str) -> String {
    if sanitised.eq_ignore_ascii_case("thumbnail.png") {
        format!("original-{sanitised}")
    } else {
        truncate_name(sanitised, MAX_KEY_NAME_BYTES)
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `name` cut to at most `max` bytes on a character boundary, keeping an extension of up to 16
/// bytes.
fn truncate_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| !ext.is_empty() && ext.len() <= 16);
    let budget = extension.map_or(max, |ext| max - ext.len() - 1);
    let mut end = budget.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let stem = name[..end].trim_end();
    match extension {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

/// Whether the service can recognise `content_type` from a file's bytes.
pub fn is_detectable(content_type: &str) -> bool {
    content_type.eq_ignore_ascii_case(TEXT_PLAIN) || infer::is_mime_supported(content_type)
}

/// Decides an upload's content type from its bytes while they stream by: a binary format from
/// its first [`SNIFF_BYTES`] (magic numbers, the infer crate), otherwise plain text when the whole
/// file is valid UTF-8 without NUL bytes.
#[derive(Debug, Default)]
pub struct ContentSniffer {
    /// The first bytes, until a format is decided.
    head: Vec<u8>,
    /// The binary format found, once decided.
    binary: Option<&'static str>,
    /// Whether the head was examined (it is only once).
    examined: bool,
    /// Still possibly text.
    text: bool,
    /// A UTF-8 sequence cut at the end of the previous chunk.
    carry: Vec<u8>,
    /// Bytes seen.
    seen: u64,
}

impl ContentSniffer {
    /// A sniffer that has seen nothing.
    pub fn new() -> Self {
        Self {
            text: true,
            ..Self::default()
        }
    }

    /// Examines the next chunk. Returns the binary format as soon as it is recognised.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<&'static str> {
        self.seen += chunk.len() as u64;
        if !self.examined {
            let wanted = SNIFF_BYTES - self.head.len();
            self.head
                .extend_from_slice(&chunk[..wanted.min(chunk.len())]);
            if self.head.len() >= SNIFF_BYTES {
                self.examine();
            }
        }
        if self.binary.is_none() && self.text {
            self.check_text(chunk);
        }
        self.binary
    }

    /// The content type once every byte was seen: the binary format, or `text/plain`, or
    /// `None` when the bytes are neither (or there were none).
    pub fn finish(mut self) -> Option<&'static str> {
        if !self.examined {
            self.examine();
        }
        if self.binary.is_some() {
            return self.binary;
        }
        (self.text && self.carry.is_empty() && self.seen > 0).then_some(TEXT_PLAIN)
    }

    fn examine(&mut self) {
        self.examined = true;
        self.binary = infer::get(&self.head).map(|kind| kind.mime_type());
        self.head = Vec::new();
    }

    fn check_text(&mut self, chunk: &[u8]) {
        if chunk.contains(&0) {
            self.text = false;
            return;
        }
        let joined;
        let bytes = if self.carry.is_empty() {
            chunk
        } else {
            joined = [self.carry.as_slice(), chunk].concat();
            &joined
        };
        match std::str::from_utf8(bytes) {
            Ok(_) => self.carry.clear(),
            // Cut in the middle of a character: keep its first bytes for the next chunk.
            Err(error) if error.error_len().is_none() => {
                self.carry = bytes[error.valid_up_to()..].to_vec();
            }
            Err(_) => self.text = false,
        }
    }
}

/// Everything a media handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No `file` field (or not a multipart form at all).
    #[error("no file: send a multipart/form-data body with a field named \"file\"")]
    NoFile,
    /// The `file` field is a plain form value, not a file.
    #[error("the \"file\" field has no file name: it must be a file")]
    NoFileName,
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// The multipart body is malformed or was cut short.
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    /// Over `MEDIA_MAX_BYTES`.
    #[error("the file is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// Past the uploader's quota (`MEDIA_QUOTA_BYTES`, `MEDIA_QUOTA_FILES`); says which.
    #[error("{0}")]
    OverQuota(String),
    /// A type outside the allow-list, or not recognised.
    #[error("{0}")]
    Unsupported(String),
    /// A bad query string.
    #[error("{0}")]
    BadQuery(String),
    /// Not a media id.
    #[error("invalid media id {0:?}: expected a UUID")]
    InvalidId(String),
    /// No such media item, or one the caller may not see (the same answer, so that private
    /// items do not reveal that they exist).
    #[error("media {0} not found")]
    NotFound(String),
    /// A download URL that is expired, tampered with or unsigned; a delete of a public item by
    /// someone other than its owner or an admin.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The object store failed.
    #[error("object store")]
    Store(#[from] StoreError),
    /// The database failed.
    #[error("media database")]
    Database(#[from] sqlx::Error),
    /// Anything else.
    #[error("internal")]
    Internal(#[from] anyhow::Error),
}

impl From<MediaError> for ApiError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::NoFile
            | MediaError::NoFileName
            | MediaError::Empty
            | MediaError::Multipart(_)
            | MediaError::BadQuery(_)
            | MediaError::InvalidId(_) => ApiError::BadRequest(error.to_string()),
            MediaError::TooLarge(_) | MediaError::OverQuota(_) => {
                ApiError::PayloadTooLarge(error.to_string())
            }
            MediaError::Unsupported(_) => ApiError::UnsupportedMediaType(error.to_string()),
            MediaError::NotFound(_) => ApiError::NotFound(error.to_string()),
            MediaError::Forbidden(_) => ApiError::Forbidden(error.to_string()),
            MediaError::Store(StoreError::Unavailable(_)) => {
                // The cause goes to the log (MediaState::fail), not to clients.
                ApiError::Unavailable("the object store is unavailable".into())
            }
            MediaError::Store(StoreError::NotFound(key)) => {
                ApiError::NotFound(format!("the object {key} is missing from the store"))
            }
            MediaError::Store(cause) => {
                ApiError::Internal(anyhow::Error::new(cause).context("object store"))
            }
            MediaError::Database(cause) => {
                ApiError::Internal(anyhow::Error::new(cause).context("media database"))
            }
            MediaError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_made_safe() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(sanitize_file_name("ev\0il\n.png"), "evil.png");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name("dir/"), "file");
        assert_eq!(sanitize_file_name("  .hidden "), "hidden");
        assert_eq!(sanitize_file_name("a\u{202e}gnp.exe"), "agnp.exe");
        let long = format!("{}.png", "é".repeat(600));
        let cut = sanitize_file_name(&long);
        assert!(
            cut.len() <= MAX_NAME_BYTES && cut.ends_with(".png"),
            "{cut}"
        );
        assert_eq!(sanitize_file_name(&"x".repeat(1000)).len(), MAX_NAME_BYTES);
        assert_eq!(key_name("thumbnail.png"), "original-thumbnail.png");
        assert_eq!(key_name("cat.png"), "cat.png");
        let key = key_name(&format!("{}.jpeg", "k".repeat(300)));
        assert_eq!(key.len(), MAX_KEY_NAME_BYTES);
        assert!(key.ends_with(".jpeg"));
    }

    fn row(owner_id: Option<i64>, visibility: Visibility) -> MediaRow {
        MediaRow {
            seq: 1,
            id: "id".into(),
            name: "a.txt".into(),
            content_type: TEXT_PLAIN.into(),
            size: 1,
            object_key: "id/a.txt".into(),
            thumbnail_key: None,
            thumbnail_ready_at: None,
            owner_id,
            visibility: visibility.as_str().into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn principal(user_id: i64, admin: bool) -> Principal {
        Principal {
            user_id,
            name: None,
            admin,
            expires_at: u64::MAX,
        }
    }

    #[test]
    fn owners_and_admins_act_on_items_and_anyone_reads_public_ones() {
        let (a, b, admin) = (principal(2, false), principal(3, false), principal(1, true));
        let private = row(Some(2), Visibility::Private);
        let public = row(Some(2), Visibility::Public);
        let nobodys = row(None, Visibility::Private);
        let readers = |item: &MediaRow| {
            [None, Some(&a), Some(&b), Some(&admin)].map(|viewer| item.readable_by(viewer))
        };
        assert_eq!(readers(&private), [false, true, false, true]);
        assert_eq!(readers(&public), [true; 4]);
        assert_eq!(readers(&nobodys), [false, false, false, true]);
        let managers = |item: &MediaRow| [&a, &b, &admin].map(|who| item.manageable_by(who));
        assert_eq!(managers(&private), [true, false, true]);
        assert_eq!(managers(&public), [true, false, true]);
        assert_eq!(managers(&nobodys), [false, false, true]);
        // A value the table cannot hold counts as private.
        let mut odd = public.clone();
        odd.visibility = "PUBLIC".into();
        assert_eq!(readers(&odd), [false, true, false, true]);
        assert_eq!(Visibility::parse("public"), Some(Visibility::Public));
        assert_eq!(Visibility::parse("Public"), None);
    }

    fn sniff(chunks: &[&[u8]]) -> Option<&'static str> {
        let mut sniffer = ContentSniffer::new();
        for chunk in chunks {
            sniffer.feed(chunk);
        }
        sniffer.finish()
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(&[b"\x89PNG\r\n\x1a\n", &[0; 100]]), Some("image/png"));
        assert_eq!(sniff(&[b"%PDF-1.7\n"]), Some("application/pdf"));
        assert_eq!(sniff(&[b"hello ", "wörld".as_bytes()]), Some(TEXT_PLAIN));
        // A character cut between chunks is still text; a cut at the very end is not.
        let ö = "ö".as_bytes();
        assert_eq!(sniff(&[b"a", &ö[..1], &ö[1..], b"b"]), Some(TEXT_PLAIN));
        assert_eq!(sniff(&[b"a", &ö[..1]]), None);
        assert_eq!(sniff(&[b"text with a \0 NUL"]), None);
        assert_eq!(sniff(&[b"\xff\xfe not utf-8"]), None);
        assert_eq!(sniff(&[]), None);
        let big_text = "line of text\n".repeat(2000);
        assert_eq!(sniff(&[big_text.as_bytes()]), Some(TEXT_PLAIN));
        let mut sniffer = ContentSniffer::new();
        let mut zip = b"PK\x03\x04".to_vec();
        zip.resize(SNIFF_BYTES, 0);
        assert_eq!(sniffer.feed(&zip), Some("application/zip"));
    }
}
