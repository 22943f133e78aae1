//! What the handlers share ([`MediaState`]: the table, the store, the queue, the signer, the
//! flags) and the upload counters ([`UploadMetrics`]).

use std::{sync::Arc, time::Duration};

use queue::JobQueue;
use slog::Logger;
use store::ObjectStore;

use crate::{
    config::MediaArgs, domain::MediaError, repository::MediaRepository, signing::UrlSigner,
};

/// What the handlers share.
#[derive(Clone)]
pub struct MediaState {
    /// The `media` table.
    pub repository: MediaRepository,
    /// Where the bytes are.
    pub store: ObjectStore,
    /// Where thumbnail jobs go.
    pub queue: JobQueue,
    /// Signs the fs store's download URLs.
    pub signer: Arc<UrlSigner>,
    /// The media flags.
    pub settings: Arc<MediaArgs>,
    /// The service's logger.
    pub logger: Logger,
    /// Upload counters.
    pub metrics: UploadMetrics,
}

/// `media_uploads_total{outcome}` and `media_upload_bytes_total`, in the service's registry.
#[derive(Clone)]
pub struct UploadMetrics {
    /// Uploads by outcome: `stored`, `too_large`, `over_quota`, `unsupported`, `bad_request`,
    /// `unavailable`, `error`.
    pub uploads: prometheus::IntCounterVec,
    /// Bytes of the stored uploads.
    pub bytes: prometheus::IntCounter,
}

impl UploadMetrics {
    /// The counters, registered in `registry`.
    pub fn register(registry: &prometheus::Registry) -> anyhow::Result<Self> {
        let uploads = prometheus::IntCounterVec::new(
            prometheus::Opts::new("media_uploads_total", "Uploads by outcome"),
            &["outcome"],
        )?;
        let bytes =
            prometheus::IntCounter::new("media_upload_bytes_total", "Bytes of the uploads stored")?;
        registry.register(Box::new(uploads.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        // Every outcome at 0 from the start, so `rate()` and the dashboards see the first one.
        for outcome in [
            "stored",
            "too_large",
            "over_quota",
            "unsupported",
            "bad_request",
            "unavailable",
            "error",
        ] {
            uploads.with_label_values(&[outcome]);
        }
        Ok(Self { uploads, bytes })
    }

    /// Counts one upload's outcome.
    pub fn observe(&self, outcome: Result<u64, &MediaError>) {
        use MediaError as E;
        let label = match outcome {
            Ok(size) => {
                self.bytes.inc_by(size);
                "stored"
            }
            Err(E::TooLarge(_)) => "too_large",
            Err(E::OverQuota(_)) => "over_quota",
            Err(E::Unsupported(_)) => "unsupported",
            Err(
                E::NoFile
                | E::NoFileName
                | E::Empty
                | E::Multipart(_)
                | E::BadQuery(_)
                | E::InvalidId(_),
            ) => "bad_request",
            Err(E::Store(store::StoreError::Unavailable(_))) => "unavailable",
            Err(_) => "error",
        };
        self.uploads.with_label_values(&[label]).inc();
    }
}

impl MediaState {
    /// How long a download URL stays valid.
    pub fn url_ttl(&self) -> Duration {
        Duration::from_secs(self.settings.url_ttl_secs)
    }

    /// The API error for `error`, after logging the cause of a store outage (clients only
    /// learn that the store is unavailable).
    pub fn fail(&self, error: MediaError) -> server::ApiError {
        if let MediaError::Store(store::StoreError::Unavailable(cause)) = &error {
            slog::warn!(self.logger, "object store unavailable"; "store" => self.store.kind(),
                "error" => format!("{cause:#}"));
        }
        error.into()
    }
}
