//! The ECR adapter of [`ManifestSource`]: BatchGetImage for one image, by
//! digest when the event names one, in the account the event came from.
//! "Not found" answers are permanent (the image was deleted since); anything
//! else that fails (throttling, 5xx, network, missing permission) is
//! retryable, so the SQS record goes back to the queue and, if it keeps
//! failing, to the dead-letter queue where it can be redriven once fixed.

use async_trait::async_trait;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::ImageIdentifier;

use crate::error::IngestError;
use crate::manifest::{
    EcrReference, ManifestLocation, ManifestSource, RawManifest, ACCEPTED_MEDIA_TYPES,
};

/// ECR error codes that mean the image or repository is not there (or the
/// request can never be valid): retrying cannot help.
const PERMANENT_CODES: [&str; 3] = [
    "RepositoryNotFoundException",
    "ImageNotFoundException",
    "InvalidParameterException",
];

/// BatchGetImage failure codes (per image) that are permanent.
const PERMANENT_FAILURES: [&str; 6] = [
    "ImageNotFound",
    "ImageTagDoesNotMatchDigest",
    "InvalidImageDigest",
    "InvalidImageTag",
    "MissingDigestAndTag",
    "ImageReferencedByManifestList",
];

/// Reads manifests from ECR.
#[derive(Clone, Debug)]
pub struct EcrSource {
    /// Made on first use: an invocation with no ECR event (most, where the
    /// registry is Distribution) does not pay for it at cold start.
    client: std::sync::OnceLock<aws_sdk_ecr::Client>,
    config: aws_config::SdkConfig,
}

impl EcrSource {
    /// An ECR client from a loaded SDK configuration (region, credentials,
    /// `AWS_ENDPOINT_URL`), made when the first ECR event needs it.
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            config: config.clone(),
        }
    }

    fn client(&self) -> &aws_sdk_ecr::Client {
        self.client
            .get_or_init(|| aws_sdk_ecr::Client::new(&self.config))
    }
}

fn classify<E, R>(e: SdkError<E, R>, what: &str) -> IngestError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let why = format!("{what}: {code}: {}", se.err().message().unwrap_or(""));
            if PERMANENT_CODES.contains(&code) {
                IngestError::ManifestUnusable(why)
            } else {
                IngestError::ManifestFetch(why)
            }
        }
        SdkError::ConstructionFailure(_) => {
            IngestError::ManifestUnusable(format!("{what}: {}", DisplayErrorContext(&e)))
        }
        _ => IngestError::ManifestFetch(format!("{what}: {}", DisplayErrorContext(&e))),
    }
}

#[async_trait]
impl ManifestSource for EcrSource {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError> {
        let ManifestLocation::Ecr {
            registry_id,
            repository,
            reference,
        } = location
        else {
            return Err(IngestError::ManifestUnusable(format!(
                "{location} is not an ECR image"
            )));
        };
        let id = match reference {
            EcrReference::Digest(d) => ImageIdentifier::builder().image_digest(d.as_str()),
            EcrReference::Tag(t) => ImageIdentifier::builder().image_tag(t),
        }
        .build();
        let mut req = self
            .client()
            .batch_get_image()
            .registry_id(registry_id)
            .repository_name(repository)
            .image_ids(id);
        for t in ACCEPTED_MEDIA_TYPES {
            req = req.accepted_media_types(t);
        }
        let what = format!("BatchGetImage {location}");
        let out = req.send().await.map_err(|e| classify(e, &what))?;
        if let Some(image) = out.images().first() {
            let Some(manifest) = image.image_manifest() else {
                return Err(IngestError::ManifestUnusable(format!(
                    "{what}: no manifest in the answer"
                )));
            };
            return Ok(RawManifest {
                media_type: image.image_manifest_media_type().map(str::to_owned),
                body: manifest.as_bytes().to_vec(),
            });
        }
        let Some(failure) = out.failures().first() else {
            return Err(IngestError::ManifestUnusable(format!(
                "{what}: neither image nor failure in the answer"
            )));
        };
        let code = failure
            .failure_code()
            .map(|c| c.as_str())
            .unwrap_or("Unknown");
        let why = format!("{what}: {code}: {}", failure.failure_reason().unwrap_or(""));
        Err(if PERMANENT_FAILURES.contains(&code) {
            IngestError::ManifestUnusable(why)
        } else {
            IngestError::ManifestFetch(why)
        })
    }
}
