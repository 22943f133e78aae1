//! Decoding images within one memory budget for the whole process.
//!
//! A decompression bomb is a small file whose header declares a huge image (a 470 KB PNG of
//! 20 000 × 20 000 RGBA pixels asks for 1.6 GB). Nothing is decoded before its header is read:
//!
//! - [`inspect`] reads the format and the size from the header, refuses an image over the
//!   pixel cap or the side cap ([`MAX_IMAGE_SIDE`]), and estimates the memory its decoding
//!   takes ([`Header::weight`]: the pixels times the format's decoder overhead, the encoded
//!   file twice (the JPEG decoder copies it), and a fixed share for the thumbnail);
//! - [`DecodeBudget`] is a weighted semaphore over the process's budget (in KiB): a decode
//!   runs only once its weight is held, so the decodes at once never take more than the budget
//!   together, whatever the concurrency; an image that alone needs more than the budget is
//!   refused;
//! - [`make_thumbnail`] decodes with the `image` crate's [`image::Limits`] set to the same
//!   numbers (sides, and `max_alloc` = the weight held), so a header that lies is caught by
//!   the decoder, scales to at most [`THUMBNAIL_MAX_SIDE`], then turns the thumbnail the way
//!   the EXIF orientation says (on the small image: no full-size copy).
//!
//! Refusals are [`JobError::Permanent`]: the job is dead-lettered with the reason, not retried.
//!
//! The encoded file is held in memory while it is decoded, so its bytes count too, and they
//! are held before they are read ([`Turn::hold_encoded`]). Holding the file's share and then
//! waiting for the pixels' share could deadlock if every holder waited, so both are taken in
//! one [`Turn`]: one job at a time takes shares, and the jobs holding shares otherwise are
//! decoding, never waiting, so the shares the turn waits for come free.

use std::{io::Cursor, sync::Arc};

use bytes::Bytes;
use image::{ImageDecoder, ImageFormat, Limits, metadata::Orientation};
use tokio::sync::{Mutex, MutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::outcome::JobError;

/// The longer side of a thumbnail, at most.
pub const THUMBNAIL_MAX_SIDE: u32 = 256;
/// Images wider or taller than this are refused, whatever their pixel count.
pub const MAX_IMAGE_SIDE: u32 = 20_000;
/// The share of every decode beyond its pixels: the decoder's fixed buffers, the thumbnail
/// and its PNG.
const FIXED_SHARE: u64 = 2 << 20;

/// What an image's header says, and what decoding it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The format, from the magic bytes.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The decoded pixels' bytes (width × height × bytes per pixel).
    pub decoded_bytes: u64,
    /// The memory decoding it takes, estimated: the pixels times the format's overhead, the
    /// encoded file twice ([`encoded_share`]), and [`FIXED_SHARE`].
    pub weight: u64,
}

/// The pixels' share of a decode per decoded byte, in quarters: a progressive JPEG keeps
/// every coefficient (2 bytes per sample) beside its output; GIF composes a frame into the
/// canvas; WebP converts from its own planes; PNG decodes into the output row by row.
fn overhead_quarters(format: ImageFormat) -> u64 {
    match format {
        ImageFormat::Jpeg => 12,
        ImageFormat::Gif | ImageFormat::WebP => 8,
        _ => 5,
    }
}

/// The caps an image is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageCaps {
    /// The most pixels (width × height).
    pub max_pixels: u64,
    /// The whole budget, in bytes: no image may weigh more.
    pub budget_bytes: u64,
}

/// Reads the header of `encoded` and checks it against `caps`, decoding nothing.
pub fn inspect(encoded: &[u8], caps: ImageCaps) -> Result<Header, JobError> {
    let reader = reader(encoded, caps.budget_bytes)?;
    let format = reader.format().ok_or_else(not_an_image)?;
    let decoder = reader.into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > caps.max_pixels {
        return Err(JobError::Permanent(format!(
            "image too large: {width}×{height} is {pixels} pixels, over the cap of {} \
             (WORKER_MAX_IMAGE_PIXELS)",
            caps.max_pixels
        )));
    }
    let decoded_bytes = decoder.total_bytes();
    let weight = decoded_bytes
        .saturating_mul(overhead_quarters(format))
        .div_ceil(4)
        .saturating_add(encoded_share(encoded.len() as u64))
        .saturating_add(FIXED_SHARE);
    if weight > caps.budget_bytes {
        return Err(JobError::Permanent(format!(
            "image too large to decode: {width}×{height} needs about {} MiB, over the worker's \
             decode budget of {} MiB (WORKER_DECODE_MEMORY_MB)",
            weight.div_ceil(1 << 20),
            caps.budget_bytes >> 20
        )));
    }
    Ok(Header {
        format,
        width,
        height,
        decoded_bytes,
        weight,
    })
}

/// A PNG thumbnail and its size.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// The PNG bytes.
    pub png: Bytes,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

/// Decodes `encoded` (whose header is `header`, from [`inspect`]) and makes its thumbnail: at
/// most [`THUMBNAIL_MAX_SIDE`] on its longer side (smaller images keep their size), turned as
/// its EXIF orientation says, as PNG. Blocking: run it off the async threads.
pub fn make_thumbnail(encoded: &[u8], header: &Header) -> Result<Thumbnail, JobError> {
    let mut decoder = reader(encoded, header.weight)?
        .into_decoder()
        .map_err(refusal)?;
    // The decoder's allocations, the output buffer included, stay within the weight held.
    let mut limits = limits(header.weight);
    limits.reserve(decoder.total_bytes()).map_err(refusal)?;
    decoder.set_limits(limits).map_err(refusal)?;
    // Unreadable EXIF is no reason to refuse the image: it is shown as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = image::DynamicImage::from_decoder(decoder)
        .map_err(|error| JobError::Permanent(format!("decoding the image: {error}")))?;
    let mut image = if image.width() > THUMBNAIL_MAX_SIDE || image.height() > THUMBNAIL_MAX_SIDE {
        image.thumbnail(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE)
    } else {
        image
    };
    image.apply_orientation(orientation);
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|error| JobError::Permanent(format!("encoding the thumbnail: {error}")))?;
    Ok(Thumbnail {
        png: Bytes::from(png.into_inner()),
        width: image.width(),
        height: image.height(),
    })
}

/// The share of an encoded file of `len` bytes: the file, and the copy the JPEG decoder makes.
fn encoded_share(len: u64) -> u64 {
    len.saturating_mul(2)
}

/// A reader of `encoded` with its format guessed, the side caps set, and at most `max_alloc`
/// bytes allocated by the decoder.
fn reader(encoded: &[u8], max_alloc: u64) -> Result<image::ImageReader<Cursor<&[u8]>>, JobError> {
    let mut reader = image::ImageReader::new(Cursor::new(encoded))
        .with_guessed_format()
        .map_err(|error| JobError::Permanent(format!("reading the image: {error}")))?;
    if reader.format().is_none() {
        return Err(not_an_image());
    }
    reader.limits(limits(max_alloc));
    Ok(reader)
}

/// The `image` crate's limits: the side cap, and at most `max_alloc` bytes allocated.
fn limits(max_alloc: u64) -> Limits {
    let mut limits = Limits::no_limits();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(max_alloc);
    limits
}

fn not_an_image() -> JobError {
    JobError::Permanent("not an image (unrecognised format)".to_owned())
}

/// An image the decoder refuses (a limit, or a corrupt header): permanent.
fn refusal(error: image::ImageError) -> JobError {
    match error {
        image::ImageError::Limits(limit) => JobError::Permanent(format!(
            "image too large: {limit} (at most {MAX_IMAGE_SIDE} pixels a side)"
        )),
        other => JobError::Permanent(format!("decoding the image: {other}")),
    }
}

/// The decode budget of the process: cheap to clone, shared by every job.
#[derive(Clone)]
pub struct DecodeBudget {
    /// The shared state.
    inner: Arc<Inner>,
}

struct Inner {
    /// KiB of the budget, as permits.
    permits: Arc<Semaphore>,
    /// One job at a time takes shares (the module documentation says why).
    turn: Mutex<()>,
    /// The caps of an image.
    caps: ImageCaps,
    /// Shows the bytes held (`worker_decode_memory_bytes`).
    gauge: prometheus::IntGauge,
}

impl DecodeBudget {
    /// A budget of `budget_bytes` (rounded down to KiB) for images of at most `max_pixels`;
    /// `gauge` shows the bytes held.
    pub fn new(budget_bytes: u64, max_pixels: u64, gauge: prometheus::IntGauge) -> Self {
        let kib = usize::try_from(budget_bytes >> 10)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(kib)),
                turn: Mutex::new(()),
                caps: ImageCaps {
                    max_pixels,
                    budget_bytes: (kib as u64) << 10,
                },
                gauge,
            }),
        }
    }

    /// The caps every image is checked against.
    pub fn caps(&self) -> ImageCaps {
        self.inner.caps
    }

    /// Bytes of the budget held now.
    pub fn in_use_bytes(&self) -> u64 {
        let free = self.inner.permits.available_permits() as u64;
        self.inner.caps.budget_bytes.saturating_sub(free << 10)
    }

    fn show(&self) {
        self.inner
            .gauge
            .set(i64::try_from(self.in_use_bytes()).unwrap_or(i64::MAX));
    }

    /// Waits for this job's turn to take shares.
    pub async fn turn(&self) -> Turn<'_> {
        Turn {
            budget: self,
            _turn: self.inner.turn.lock().await,
            held: None,
        }
    }

    /// Takes `bytes` (rounded up to KiB) of the budget, waiting until they are free.
    async fn take(&self, bytes: u64) -> Result<OwnedSemaphorePermit, JobError> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        self.inner
            .permits
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| JobError::Transient("the decode budget is closed".to_owned()))
    }
}

/// One job's turn to take its shares of the budget (see the module documentation).
pub struct Turn<'a> {
    budget: &'a DecodeBudget,
    _turn: MutexGuard<'a, ()>,
    /// The shares taken so far.
    held: Option<OwnedSemaphorePermit>,
}

impl Turn<'_> {
    /// Takes the share of an encoded file of `len` bytes, before it is read; a file whose
    /// share is larger than the whole budget is refused.
    pub async fn hold_encoded(&mut self, len: u64) -> Result<(), JobError> {
        if encoded_share(len) > self.budget.inner.caps.budget_bytes {
            return Err(JobError::Permanent(format!(
                "image file too large to decode: {} MiB, over the worker's decode budget of {} \
                 MiB (WORKER_DECODE_MEMORY_MB)",
                len.div_ceil(1 << 20),
                self.budget.inner.caps.budget_bytes >> 20
            )));
        }
        let permit = self.budget.take(encoded_share(len)).await?;
        self.merge(permit);
        Ok(())
    }

    /// Reads the header of `encoded` (held by [`Turn::hold_encoded`]), checks it, and takes the
    /// rest of its weight; the turn ends. The shares are held until the [`Admitted`] is dropped.
    pub async fn admit(mut self, encoded: &[u8]) -> Result<Admitted, JobError> {
        let header = inspect(encoded, self.budget.inner.caps)?;
        let held = self
            .held
            .as_ref()
            .map_or(0, |permit| permit.num_permits() as u64)
            << 10;
        let rest = header.weight.saturating_sub(held);
        let permit = self.budget.take(rest).await?;
        self.merge(permit);
        self.budget.show();
        Ok(Admitted {
            header,
            shares: self.held.take(),
            budget: self.budget.clone(),
        })
    }

    fn merge(&mut self, permit: OwnedSemaphorePermit) {
        match self.held.as_mut() {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
    }
}

/// An image whose decode may run: its header and its shares of the budget.
pub struct Admitted {
    /// The header.
    pub header: Header,
    /// Released when dropped.
    shares: Option<OwnedSemaphorePermit>,
    /// To show the release.
    budget: DecodeBudget,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        drop(self.shares.take());
        self.budget.show();
    }
}

pub mod testing;
#[cfg(test)]
mod tests;
