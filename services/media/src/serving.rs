//! How an item's bytes reach a browser: only raster images are shown in place; anything else
//! (PDF, text, and HTML, SVG or XML however the allow-list is set) is a download the browser
//! saves, in a sandbox with nothing allowed to run or load should it render it anyway.
//!
//! [`Disposition::of`] is the one rule. The service's own downloads (the fs store's signed
//! URLs, and on S3 every item that is not a raster image) answer with [`download_headers`];
//! presigned S3 URLs, which cannot carry a `Content-Security-Policy`, are only issued for raster
//! images ([`crate::presentation`]).

use actix_web::http::header::{self, HeaderName};

/// The types shown in place: raster images every browser decodes as pictures and never as
/// documents. Compared without parameters, ignoring case.
pub const INLINE_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
];
/// The policy of an image shown in place: a sandbox (an image document then runs nothing, and
/// still shows the picture, which `default-src 'none'` would stop in some browsers).
pub const INLINE_POLICY: &str = "sandbox";
/// The policy of a download: a sandbox in which nothing loads.
pub const ATTACHMENT_POLICY: &str = "sandbox; default-src 'none'";

/// Whether a download is shown in place or saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Shown in place (raster images).
    Inline,
    /// Saved as a file.
    Attachment,
}

impl Disposition {
    /// How files of `content_type` are served: inline for [`INLINE_TYPES`], otherwise as an
    /// attachment.
    pub fn of(content_type: &str) -> Self {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if INLINE_TYPES
            .iter()
            .any(|inline| inline.eq_ignore_ascii_case(essence))
        {
            Self::Inline
        } else {
            Self::Attachment
        }
    }

    /// `inline` or `attachment`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Attachment => "attachment",
        }
    }

    /// Its `Content-Security-Policy`.
    pub fn policy(self) -> &'static str {
        match self {
            Self::Inline => INLINE_POLICY,
            Self::Attachment => ATTACHMENT_POLICY,
        }
    }
}

/// `<inline|attachment>; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC
/// 6266): the fallback replaces quotes, backslashes, controls and non-ASCII with `_`.
pub fn content_disposition(disposition: Disposition, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!(
        "{}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}",
        disposition.as_str()
    )
}

/// The headers of every download the service answers (whole or ranged) of a file of
/// `content_type` called `file_name`: its type, its disposition, its sandbox, and `nosniff`.
pub fn download_headers(content_type: &str, file_name: &str) -> [(HeaderName, String); 4] {
    let disposition = Disposition::of(content_type);
    [
        (header::CONTENT_TYPE, content_type.to_owned()),
        (
            header::CONTENT_DISPOSITION,
            content_disposition(disposition, file_name),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            disposition.policy().to_owned(),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_raster_images_are_shown_in_place() {
        for inline in ["image/png", "IMAGE/JPEG", "image/webp; q=1", "image/gif"] {
            assert_eq!(Disposition::of(inline), Disposition::Inline, "{inline}");
        }
        for saved in [
            "text/html",
            "image/svg+xml",
            "text/xml",
            "application/pdf",
            "text/plain",
            "application/xhtml+xml",
            "image/tiff",
            "",
        ] {
            assert_eq!(Disposition::of(saved), Disposition::Attachment, "{saved}");
        }
    }

    #[test]
    fn dispositions_are_safe_and_keep_the_name() {
        assert_eq!(
            content_disposition(Disposition::Inline, "cat.png"),
            "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        assert_eq!(
            content_disposition(Disposition::Attachment, "a \"b\"\\é.txt"),
            "attachment; filename=\"a _b___.txt\"; filename*=UTF-8''a%20%22b%22%5C%C3%A9.txt"
        );
    }
}
