//! The S3 backend (cargo feature `s3`): one `aws_sdk_s3::Client` on a bucket, created at start
//! or at the first readiness check that reaches S3. SDK errors are sorted by [`classify`] into
//! [`StoreError`]s that carry them as an `anyhow` source.

use std::{
    io,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context;
use aws_sdk_s3::{
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation, retry::RetryConfig, timeout::TimeoutConfig,
    },
    error::SdkError,
    presigning::PresigningConfig,
    primitives::ByteStream,
};
use bytes::Bytes;
use futures_util::stream;
use slog::Logger;

use crate::{ByteRange, ObjectRead, Presign, StoreArgs, StoreError};

/// A bucket of an S3-compatible server.
pub(crate) struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    region: String,
    create_bucket: bool,
    /// Set once the bucket is known to exist.
    bucket_ready: AtomicBool,
    logger: Logger,
}

impl S3Store {
    /// Builds the client `args` describe and prepares the bucket. An unreachable S3 does not
    /// fail the start: it is logged, and the bucket is created once S3 answers a check.
    pub(crate) async fn connect(args: &StoreArgs, logger: &Logger) -> anyhow::Result<Self> {
        let store = Self::new(args, logger.clone()).await?;
        match store.ensure_bucket().await {
            Ok(()) => slog::info!(logger, "object store ready"; "store" => "s3",
                "bucket" => &store.bucket),
            Err(StoreError::Unavailable(error)) => slog::warn!(logger,
                "S3 is unreachable: uploads fail with 503 until it answers";
                "bucket" => &store.bucket, "error" => format!("{error:#}")),
            Err(other) => {
                return Err(anyhow::Error::new(other).context("preparing the S3 bucket"));
            }
        }
        Ok(store)
    }

    async fn new(args: &StoreArgs, logger: Logger) -> anyhow::Result<Self> {
        let bucket = args
            .s3_bucket
            .clone()
            .filter(|bucket| !bucket.is_empty())
            .context("S3_BUCKET is required with MEDIA_STORE=s3")?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .read_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(300))
            .build();
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(args.s3_region.clone()))
            .force_path_style(args.s3_force_path_style)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            // Plain signed payloads: S3-compatible servers do not all take the aws-chunked
            // checksum trailers the SDK would otherwise add.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = args.s3_endpoint.as_ref().filter(|e| !e.is_empty()) {
            builder = builder.endpoint_url(endpoint);
        }
        match (&args.aws_access_key_id, &args.aws_secret_access_key) {
            (Some(access), Some(secret)) => {
                builder = builder.credentials_provider(Credentials::new(
                    access,
                    secret,
                    None,
                    None,
                    "environment",
                ));
            }
            (None, None) => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(args.s3_region.clone()))
                    .load()
                    .await;
                let provider = shared.credentials_provider().context(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                )?;
                builder = builder.credentials_provider(provider);
            }
            _ => anyhow::bail!("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"),
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket,
            region: args.s3_region.clone(),
            create_bucket: args.s3_create_bucket,
            bucket_ready: AtomicBool::new(false),
            logger,
        })
    }

    /// One `PutObject`: the path of every write to S3.
    async fn put_object(
        &self,
        key: &str,
        content_type: &str,
        length: i64,
        body: ByteStream,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .body(body)
            .send()
            .await
            .map_err(|error| match classify(error, key) {
                // A 404 to a put: the bucket is missing, the store unusable.
                StoreError::NotFound(_) => StoreError::Unavailable(anyhow::anyhow!(
                    "the bucket {} does not exist",
                    self.bucket
                )),
                other => other,
            })?;
        Ok(())
    }

    /// Writes bytes held in memory (S3 puts are atomic already: no staging file).
    pub(crate) async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let length = i64::try_from(body.len()).unwrap_or(i64::MAX);
        self.put_object(key, content_type, length, ByteStream::from(body))
            .await
    }

    /// Writes the `length` bytes of a staged file, streamed from disk.
    pub(crate) async fn put_file(
        &self,
        key: &str,
        content_type: &str,
        path: &Path,
        length: u64,
    ) -> Result<(), StoreError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|error| StoreError::Other(error.into()))?;
        let length = i64::try_from(length).unwrap_or(i64::MAX);
        self.put_object(key, content_type, length, body).await
    }

    /// The whole object.
    pub(crate) async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| classify(error, key))?;
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|error| StoreError::Unavailable(error.into()))?;
        Ok(bytes.into_bytes())
    }

    /// Whether the object exists (a `HeadObject`).
    pub(crate) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => match classify(error, key) {
                StoreError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Removes the object (S3 answers success for a missing one).
    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| classify(error, key))?;
        Ok(())
    }

    /// A presigned `GetObject` URL.
    pub(crate) async fn presigned_get(
        &self,
        key: &str,
        presign: &Presign,
    ) -> Result<String, StoreError> {
        let config = PresigningConfig::builder()
            .start_time(presign.start)
            .expires_in(presign.ttl)
            .build()
            .map_err(|error| StoreError::Other(error.into()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_disposition(presign.content_disposition.clone())
            .presigned(config)
            .await
            .map_err(|error| StoreError::Other(error.into()))?;
        Ok(request.uri().to_owned())
    }

    /// Checks the bucket exists, creating it when allowed; remembered once true.
    pub(crate) async fn ensure_bucket(&self) -> Result<(), StoreError> {
        let head = self.client.head_bucket().bucket(&self.bucket).send().await;
        match head.map_err(|error| classify(error, &self.bucket)) {
            Ok(_) => {
                self.bucket_ready.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(StoreError::NotFound(_)) if self.create_bucket => {
                let mut request = self.client.create_bucket().bucket(&self.bucket);
                if self.region != "us-east-1" {
                    request = request.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(self.region.as_str().into())
                            .build(),
                    );
                }
                match request.send().await {
                    Ok(_) => {
                        slog::info!(self.logger, "created the S3 bucket"; "bucket" => &self.bucket);
                    }
                    Err(error) => {
                        let code = error
                            .as_service_error()
                            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                            .unwrap_or_default()
                            .to_owned();
                        // Another instance created it meanwhile.
                        if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
                            return Err(classify(error, &self.bucket));
                        }
                    }
                }
                self.bucket_ready.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(StoreError::NotFound(_)) => Err(StoreError::Other(anyhow::anyhow!(
                "the bucket {} does not exist (and S3_CREATE_BUCKET is false)",
                self.bucket
            ))),
            Err(other) => {
                self.bucket_ready.store(false, Ordering::Relaxed);
                Err(other)
            }
        }
    }

    /// A streamed read of the object, or of `range` of it (a `HeadObject` first gives the size
    /// the range is resolved against).
    pub(crate) async fn read(
        &self,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<ObjectRead, StoreError> {
        let (size, resolved) = match range {
            None => (None, None),
            Some(range) => {
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|error| classify(error, key))?;
                let size = u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0);
                let resolved = range
                    .resolve(size)
                    .ok_or(StoreError::RangeNotSatisfiable { size })?;
                (Some(size), Some(resolved))
            }
        };
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(resolved.map(|(first, last)| format!("bytes={first}-{last}")))
            .send()
            .await
            .map_err(|error| classify(error, key))?;
        let size = size
            .unwrap_or_else(|| u64::try_from(output.content_length().unwrap_or(0)).unwrap_or(0));
        let body = stream::unfold(output.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(io::Error::other), body))
        });
        Ok(ObjectRead {
            size,
            range: resolved,
            body: Box::pin(body),
        })
    }
}

/// Turns an SDK error into a [`StoreError`]: no connection or a timeout or a 5xx → unavailable,
/// 404 → not found.
fn classify<E, R>(error: SdkError<E, R>, key: &str) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static + HasStatus,
{
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(anyhow::Error::new(error).context("S3 did not answer"))
        }
        SdkError::ServiceError(service) if service.raw().status() == 404 => {
            StoreError::NotFound(key.to_owned())
        }
        SdkError::ServiceError(service) if service.raw().status() >= 500 => {
            StoreError::Unavailable(anyhow::Error::new(error).context("S3 failed"))
        }
        _ => StoreError::Other(anyhow::Error::new(error).context("S3 refused the request")),
    }
}

/// The HTTP status of a raw SDK response.
trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}
