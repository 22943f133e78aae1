//! The caps, the budget, the decoder's limits and the EXIF orientation.

use futures_util::FutureExt;
use image::ImageEncoder;

use super::{testing::bomb, *};

const MIB: u64 = 1 << 20;

fn caps() -> ImageCaps {
    ImageCaps {
        max_pixels: 24_000_000,
        budget_bytes: 128 * MIB,
    }
}

fn budget(bytes: u64, max_pixels: u64) -> DecodeBudget {
    let gauge = prometheus::IntGauge::new("test_decode_memory_bytes", "test").expect("a gauge");
    DecodeBudget::new(bytes, max_pixels, gauge)
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .expect("encoding a PNG");
    out.into_inner()
}

/// A JPEG of `width` × `height` whose EXIF says to turn it by `orientation` (1–8).
fn jpeg_with_orientation(width: u32, height: u32, orientation: u8) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            image::Rgb([250, 0, 0])
        } else {
            image::Rgb([0, 0, 250])
        }
    });
    // TIFF, little-endian, one IFD with one entry: Orientation (0x0112), SHORT, 1 value.
    let mut exif = b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00".to_vec();
    exif.extend_from_slice(&[orientation, 0, 0, 0, 0, 0, 0, 0]);
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut out);
    encoder.set_exif_metadata(exif).expect("EXIF accepted");
    encoder
        .write_image(
            image.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )
        .expect("encoding a JPEG");
    out
}

fn thumbnail(encoded: &[u8]) -> Result<Thumbnail, JobError> {
    make_thumbnail(encoded, &inspect(encoded, caps())?)
}

#[test]
fn a_large_image_is_scaled_to_256_on_its_longer_side() {
    let thumbnail = thumbnail(&png(1000, 500)).expect("a thumbnail");
    assert_eq!((thumbnail.width, thumbnail.height), (256, 128));
    let decoded = image::load_from_memory(&thumbnail.png).expect("a PNG");
    assert_eq!((decoded.width(), decoded.height()), (256, 128));
}

#[test]
fn a_small_image_keeps_its_size() {
    let thumbnail = thumbnail(&png(40, 30)).expect("a thumbnail");
    assert_eq!((thumbnail.width, thumbnail.height), (40, 30));
}

#[test]
fn text_and_truncated_images_are_permanent_failures() {
    assert!(matches!(
        thumbnail(b"hello, not an image"),
        Err(JobError::Permanent(_))
    ));
    let mut truncated = png(300, 300);
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(thumbnail(&truncated), Err(JobError::Permanent(_))));
}

#[test]
fn a_bomb_is_refused_from_its_header_naming_the_pixel_cap() {
    let bomb = bomb(20_000, 20_000);
    assert!(bomb.len() < 400, "{} bytes", bomb.len());
    let Err(JobError::Permanent(reason)) = inspect(&bomb, caps()) else {
        panic!("a 20 000 × 20 000 image passed");
    };
    assert!(
        reason.contains("20000×20000") && reason.contains("WORKER_MAX_IMAGE_PIXELS"),
        "{reason}"
    );
}

#[test]
fn an_image_under_the_pixel_cap_that_needs_more_than_the_budget_is_refused() {
    let caps = ImageCaps {
        max_pixels: u64::MAX,
        budget_bytes: 8 * MIB,
    };
    // 2000 × 2000 RGBA: 16 MB of pixels.
    let Err(JobError::Permanent(reason)) = inspect(&bomb(2000, 2000), caps) else {
        panic!("an image over the budget passed");
    };
    assert!(reason.contains("WORKER_DECODE_MEMORY_MB"), "{reason}");
}

#[test]
fn the_weight_covers_the_pixels_the_file_and_the_decoders_overhead() {
    let encoded = png(1000, 500);
    let header = inspect(&encoded, caps()).expect("a header");
    assert_eq!((header.width, header.height), (1000, 500));
    assert_eq!(header.decoded_bytes, 1000 * 500 * 3);
    assert!(header.weight >= header.decoded_bytes + 2 * encoded.len() as u64 + FIXED_SHARE);
    let jpeg = jpeg_with_orientation(1000, 500, 1);
    let header = inspect(&jpeg, caps()).expect("a header");
    assert!(header.weight >= 3 * header.decoded_bytes, "{header:?}");
}

#[test]
fn the_decoder_allocates_no_more_than_the_weight_held() {
    let encoded = png(800, 600);
    let mut header = inspect(&encoded, caps()).expect("a header");
    // A header that lies about what the decode takes: the decoder's limit stops it.
    header.weight = 100 * 1024;
    let Err(JobError::Permanent(reason)) = make_thumbnail(&encoded, &header) else {
        panic!("decoded past its share");
    };
    assert!(reason.contains("too large"), "{reason}");
}

#[test]
fn thumbnails_follow_the_exif_orientation() {
    // 6: turn 90° clockwise. The stored image is wide, red left, blue right; upright it is
    // tall, red on top.
    let thumbnail = thumbnail(&jpeg_with_orientation(400, 200, 6)).expect("a thumbnail");
    assert_eq!((thumbnail.width, thumbnail.height), (128, 256));
    let decoded = image::load_from_memory(&thumbnail.png)
        .expect("a PNG")
        .to_rgb8();
    let top = decoded.get_pixel(64, 10);
    let bottom = decoded.get_pixel(64, 245);
    assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");
    // 1: as stored.
    let upright = thumbnail_of_orientation(1);
    assert_eq!((upright.width, upright.height), (256, 128));
}

fn thumbnail_of_orientation(orientation: u8) -> Thumbnail {
    thumbnail(&jpeg_with_orientation(400, 200, orientation)).expect("a thumbnail")
}

#[tokio::test]
async fn decodes_wait_for_their_share_and_never_hold_more_than_the_budget() {
    // 1000 × 1000 RGB PNGs: about 5.9 MB each (3 MB of pixels, their overhead, the fixed
    // share), so two fit in 13 MiB, not three.
    let budget = budget(13 * MIB, 24_000_000);
    let encoded = png(1000, 1000);
    let weight = inspect(&encoded, budget.caps()).expect("a header").weight;
    assert!(2 * weight <= 13 * MIB && 3 * weight > 13 * MIB, "{weight}");
    let admit = |budget: DecodeBudget, encoded: Vec<u8>| async move {
        let mut turn = budget.turn().await;
        turn.hold_encoded(encoded.len() as u64).await?;
        turn.admit(&encoded).await
    };
    let first = admit(budget.clone(), encoded.clone())
        .await
        .expect("admitted");
    let second = admit(budget.clone(), encoded.clone())
        .await
        .expect("admitted");
    assert!(budget.in_use_bytes() <= 13 * MIB);
    let mut third = Box::pin(admit(budget.clone(), encoded.clone()));
    assert!(
        (&mut third).now_or_never().is_none(),
        "a third decode started with two holding the budget"
    );
    // The turn is held by the waiting one: nobody else takes shares meanwhile.
    assert!(budget.turn().now_or_never().is_none());
    drop(first);
    let third = third.await.expect("admitted once a share came free");
    assert!(budget.in_use_bytes() <= 13 * MIB);
    drop((second, third));
    assert_eq!(budget.in_use_bytes(), 0);
}

#[tokio::test]
async fn a_file_larger_than_the_budget_is_refused_before_it_is_read() {
    let budget = budget(8 * MIB, 24_000_000);
    let mut turn = budget.turn().await;
    assert!(matches!(
        turn.hold_encoded(5 * MIB).await,
        Err(JobError::Permanent(reason)) if reason.contains("WORKER_DECODE_MEMORY_MB")
    ));
}
