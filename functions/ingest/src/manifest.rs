//! Manifests: where to find the one a push origin ([`ManifestLocation`]),
//! the port that fetches raw manifests ([`ManifestSource`]; Distribution over
//! HTTP and ECR's BatchGetImage are its adapters, a map is the unit tests'
//! fake), and [`resolve_layers`], which turns an image manifest or an index
//! into the distinct layers with their sizes.
//!
//! Registry events carry neither layers nor sizes, so this is the only way to
//! fill a webhook's `layers`, `image_size` and the repository size.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use shared::domain::Digest;
use shared::ports::LayerSize;

use crate::error::IngestError;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// What we ask registries for, most specific first.
pub const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
];

/// Largest manifest body read; real ones are a few KiB, big indexes ~100 KiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest layer size accepted (2^53: also the largest integer JSON carries
/// portably).
pub const MAX_LAYER_SIZE: u64 = 1 << 53;
/// Manifests fetched for one push at most (index + platforms + nested
/// indexes): bounds the work a hostile or odd index can cause.
pub const MAX_FETCHES_PER_PUSH: usize = 64;
/// Distinct layers one push may have: what a delivery job can carry. A
/// manifest or index beyond it is unusable, and refusing it early keeps a
/// hostile index's parsed layers small.
pub const MAX_LAYERS_PER_PUSH: usize = 1024;
/// Index nesting followed at most (an index of indexes is legal but rare).
const MAX_DEPTH: usize = 3;
/// Platform manifests fetched concurrently for one index.
const CHILD_CONCURRENCY: usize = 4;
/// The annotation buildx puts on attestation manifests inside an index:
/// their "layers" are in-toto statements, not image content.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// Where a manifest lives.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ManifestLocation {
    /// A manifest in a Distribution (v2 API) registry. Only its repository
    /// and digest are used to build the request URL, from `REGISTRY_URL`;
    /// `origin` is the origin of the event's `target.url` (path, query and
    /// credentials dropped), kept so the fetcher can refuse an event that
    /// names another origin.
    Distribution {
        origin: url::Url,
        /// The registry's repository path as the event gave it (validated).
        repository: String,
        digest: Digest,
    },
    /// An image in ECR.
    Ecr {
        /// The registry (account) id.
        registry_id: String,
        /// ECR's repository name (not the webhook repository name).
        repository: String,
        reference: EcrReference,
    },
}

/// An ECR image reference: its digest when the event carried one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EcrReference {
    Digest(Digest),
    Tag(String),
}

impl ManifestLocation {
    /// The same repository's manifest with `digest` (an index's child).
    pub fn child(&self, digest: &Digest) -> Result<ManifestLocation, IngestError> {
        match self {
            Self::Distribution {
                origin, repository, ..
            } => Ok(Self::Distribution {
                origin: origin.clone(),
                repository: repository.clone(),
                digest: digest.clone(),
            }),
            Self::Ecr {
                registry_id,
                repository,
                ..
            } => Ok(Self::Ecr {
                registry_id: registry_id.clone(),
                repository: repository.clone(),
                reference: EcrReference::Digest(digest.clone()),
            }),
        }
    }

    /// The digest a fetched manifest is checked against: a Distribution
    /// manifest's. (ECR looks images up by digest through its own
    /// authenticated API, so its answer is taken as is.)
    pub fn verifiable_digest(&self) -> Option<Digest> {
        match self {
            Self::Distribution { digest, .. } => Some(digest.clone()),
            Self::Ecr { .. } => None,
        }
    }
}

/// Shown in logs: an origin and a validated path, never a query string or
/// credentials, and never longer than the names it is made of.
impl fmt::Display for ManifestLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Distribution {
                origin,
                repository,
                digest,
            } => write!(
                f,
                "{}/v2/{repository}/manifests/{digest}",
                crate::bounded::origin(origin)
            ),
            Self::Ecr {
                registry_id,
                repository,
                reference,
            } => {
                let r = match reference {
                    EcrReference::Digest(d) => format!("@{d}"),
                    EcrReference::Tag(t) => format!(":{t}"),
                };
                write!(f, "ecr://{registry_id}/{repository}{r}")
            }
        }
    }
}

impl fmt::Debug for ManifestLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A manifest as fetched: its bytes and the media type the source declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: Option<String>,
    pub body: Vec<u8>,
}

/// The manifest bytes one invocation may hold at once (bodies being read or
/// parsed). A hostile index of large manifests then waits for room instead of
/// running ingest out of memory; parsed results are small (at most
/// [`MAX_LAYERS_PER_PUSH`] layers a push).
pub const MANIFEST_BYTES_IN_FLIGHT: usize = 8 * 1024 * 1024;

/// A budget of manifest bytes in flight, made once per invocation. Each
/// fetch reserves its body's size (the declared length, else the maximum)
/// before reading it and gives it back once the body is parsed and dropped.
#[derive(Clone)]
pub struct ByteBudget {
    bytes: Arc<tokio::sync::Semaphore>,
    total: usize,
}

/// Bytes reserved from a [`ByteBudget`]; given back on drop.
pub struct BudgetPermit {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ByteBudget {
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, u32::MAX as usize);
        Self {
            bytes: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
        }
    }

    /// Waits until `bytes` (clamped to the whole budget) are free and
    /// reserves them.
    pub async fn reserve(&self, bytes: usize) -> BudgetPermit {
        let n = bytes.clamp(1, self.total) as u32;
        // The semaphore is never closed, so acquiring fails only if it were;
        // then run unbudgeted rather than refuse the event.
        BudgetPermit {
            _permit: self.bytes.clone().acquire_many_owned(n).await.ok(),
        }
    }

    /// Bytes free right now (tests and the benchmark read it).
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

impl Default for ByteBudget {
    fn default() -> Self {
        Self::new(MANIFEST_BYTES_IN_FLIGHT)
    }
}

/// Fetches raw manifests. Implementations map "not there" to
/// [`IngestError::ManifestUnusable`], "may never be fetched" to
/// [`IngestError::Refused`] and transient trouble to
/// [`IngestError::ManifestFetch`].
#[async_trait]
pub trait ManifestSource: Send + Sync {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError>;

    /// [`fetch`](Self::fetch) within `budget`: the returned permit covers the
    /// body until the caller drops it. The default reserves after the fetch
    /// (right for sources whose answers are small and bounded by their API);
    /// the Distribution fetcher reserves before it reads the body.
    async fn fetch_within(
        &self,
        location: &ManifestLocation,
        budget: &ByteBudget,
    ) -> Result<(RawManifest, BudgetPermit), IngestError> {
        let raw = self.fetch(location).await?;
        let permit = budget.reserve(raw.body.len()).await;
        Ok((raw, permit))
    }
}

#[async_trait]
impl<T: ManifestSource + ?Sized> ManifestSource for Arc<T> {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError> {
        (**self).fetch(location).await
    }

    async fn fetch_within(
        &self,
        location: &ManifestLocation,
        budget: &ByteBudget,
    ) -> Result<(RawManifest, BudgetPermit), IngestError> {
        (**self).fetch_within(location, budget).await
    }
}

/// Routes each location to its source: URLs to Distribution, ECR to ECR.
pub struct ManifestSources {
    pub distribution: Arc<dyn ManifestSource>,
    pub ecr: Arc<dyn ManifestSource>,
}

#[async_trait]
impl ManifestSource for ManifestSources {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError> {
        match location {
            ManifestLocation::Distribution { .. } => self.distribution.fetch(location).await,
            ManifestLocation::Ecr { .. } => self.ecr.fetch(location).await,
        }
    }

    async fn fetch_within(
        &self,
        location: &ManifestLocation,
        budget: &ByteBudget,
    ) -> Result<(RawManifest, BudgetPermit), IngestError> {
        match location {
            ManifestLocation::Distribution { .. } => {
                self.distribution.fetch_within(location, budget).await
            }
            ManifestLocation::Ecr { .. } => self.ecr.fetch_within(location, budget).await,
        }
    }
}

/// `sha256:<hex>` of `bytes`: the digest a registry gives that content.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    Digest::parse(&s).unwrap_or_else(|_| unreachable!("a sha256 hex digest is always valid"))
}

/// A parsed manifest: an image's layers or an index's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image { layers: Vec<LayerSize> },
    Index { children: Vec<Digest> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    media_type: Option<String>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

impl Descriptor {
    /// Attestation manifests (buildx) and unknown/unknown platforms are not
    /// runnable images; their blobs are not image layers.
    fn is_attestation(&self) -> bool {
        self.annotations.contains_key(REFERENCE_TYPE_ANNOTATION)
            || self
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
    }
}

fn is_index_type(t: &str) -> bool {
    t == OCI_INDEX || t == DOCKER_MANIFEST_LIST
}

fn is_image_type(t: &str) -> bool {
    t == OCI_MANIFEST || t == DOCKER_MANIFEST
}

/// Parses an image manifest or an index. The body's `mediaType` wins over
/// the declared one; OCI lets both be absent, then the shape decides.
pub fn parse_manifest(raw: &RawManifest) -> Result<Manifest, IngestError> {
    let doc: ManifestDoc = serde_json::from_slice(&raw.body).map_err(|e| {
        unusable(format!(
            "manifest is not valid JSON: {}",
            crate::bounded::bounded(&e.to_string())
        ))
    })?;
    let declared = doc
        .media_type
        .as_deref()
        .or(raw.media_type.as_deref())
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match declared.as_deref() {
        Some(t) if is_index_type(t) => parse_index(doc),
        Some(t) if is_image_type(t) => parse_image(doc),
        _ if doc.manifests.is_some() && doc.layers.is_none() => parse_index(doc),
        _ if doc.layers.is_some() => parse_image(doc),
        other => Err(unusable(format!(
            "unsupported manifest type {}",
            crate::bounded::bounded(other.unwrap_or("(none)"))
        ))),
    }
}

fn unusable(why: String) -> IngestError {
    IngestError::ManifestUnusable(why)
}

fn digest_of(d: &Descriptor) -> Result<Digest, IngestError> {
    Digest::parse(&d.digest).map_err(|_| {
        unusable(format!(
            "manifest names an invalid digest {:?}",
            crate::bounded::bounded(&d.digest)
        ))
    })
}

/// An index's runnable children (attestations left out), at most
/// [`MAX_FETCHES_PER_PUSH`] of them.
fn parse_index(doc: ManifestDoc) -> Result<Manifest, IngestError> {
    let children = doc
        .manifests
        .ok_or_else(|| unusable("index without manifests".into()))?
        .iter()
        .filter(|m| !m.is_attestation())
        .map(digest_of)
        .collect::<Result<Vec<_>, _>>()?;
    if children.len() > MAX_FETCHES_PER_PUSH {
        return Err(unusable(format!(
            "index has {} manifests (at most {MAX_FETCHES_PER_PUSH} are fetched)",
            children.len()
        )));
    }
    Ok(Manifest::Index { children })
}

/// An image manifest's layers, each with a size in range, at most
/// [`MAX_LAYERS_PER_PUSH`] of them.
fn parse_image(doc: ManifestDoc) -> Result<Manifest, IngestError> {
    let layers = doc
        .layers
        .ok_or_else(|| unusable("image manifest without layers".into()))?;
    if layers.len() > MAX_LAYERS_PER_PUSH {
        return Err(unusable(format!(
            "image manifest has {} layers (at most {MAX_LAYERS_PER_PUSH})",
            layers.len()
        )));
    }
    let layer = |l: &Descriptor| {
        let digest = digest_of(l)?;
        let size = l
            .size
            .ok_or_else(|| unusable(format!("layer {digest} has no size")))?;
        // Sizes come from whoever pushed; no registry stores a layer
        // this large, and sums of such values would overflow.
        if size > MAX_LAYER_SIZE {
            return Err(unusable(format!(
                "layer {digest} size {size} is out of range"
            )));
        }
        Ok(LayerSize {
            digest: digest.as_str().to_owned(),
            size,
        })
    };
    let layers = layers.iter().map(layer).collect::<Result<Vec<_>, _>>()?;
    Ok(Manifest::Image { layers })
}

/// Fetches the manifest at `location` and returns its distinct layers in
/// first-seen order: for an index, those of its platform manifests in index
/// order. A Distribution URL naming a `sha256` digest is checked against the
/// bytes received.
/// Manifest bodies are read within `bytes` and dropped as soon as parsed.
pub async fn resolve_layers(
    source: &dyn ManifestSource,
    location: &ManifestLocation,
    bytes: &ByteBudget,
) -> Result<Vec<LayerSize>, IngestError> {
    let budget = AtomicUsize::new(MAX_FETCHES_PER_PUSH);
    let per_manifest = resolve_at(source, location, 0, &budget, bytes).await?;
    let mut seen = HashSet::new();
    let layers: Vec<LayerSize> = per_manifest
        .into_iter()
        .filter(|l| seen.insert(l.digest.clone()))
        .collect();
    if layers.len() > MAX_LAYERS_PER_PUSH {
        return Err(IngestError::ManifestUnusable(format!(
            "the image has {} distinct layers (at most {MAX_LAYERS_PER_PUSH})",
            layers.len()
        )));
    }
    if layers
        .iter()
        .try_fold(0u64, |a, l| a.checked_add(l.size))
        .is_none()
    {
        return Err(IngestError::ManifestUnusable(
            "the layers' sizes add up past 2^64".into(),
        ));
    }
    Ok(layers)
}

/// Sum of the layers' sizes: the webhook's `image_size`. Saturating, though
/// `resolve_layers` already refuses sums that overflow.
pub fn image_size(layers: &[LayerSize]) -> u64 {
    layers.iter().fold(0u64, |a, l| a.saturating_add(l.size))
}

fn resolve_at<'a>(
    source: &'a dyn ManifestSource,
    location: &'a ManifestLocation,
    depth: usize,
    budget: &'a AtomicUsize,
    bytes: &'a ByteBudget,
) -> futures::future::BoxFuture<'a, Result<Vec<LayerSize>, IngestError>> {
    Box::pin(async move {
        let taken = budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1));
        if taken.is_err() {
            return Err(IngestError::ManifestUnusable(format!(
                "index needs more than {MAX_FETCHES_PER_PUSH} manifests"
            )));
        }
        let (raw, permit) = source.fetch_within(location, bytes).await?;
        if raw.body.len() > MAX_MANIFEST_BYTES {
            return Err(IngestError::ManifestUnusable(format!(
                "manifest is larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        if let Some(expected) = location.verifiable_digest() {
            if expected.as_str().starts_with("sha256:") {
                let actual = sha256_digest(&raw.body);
                if actual != expected {
                    return Err(IngestError::ManifestUnusable(format!(
                        "manifest at {location} hashes to {actual}, not {expected}"
                    )));
                }
            }
        }
        let parsed = parse_manifest(&raw);
        // The body and its reservation go before any child is fetched.
        drop(raw);
        drop(permit);
        match parsed? {
            Manifest::Image { layers } => Ok(layers),
            Manifest::Index { children } => {
                if depth + 1 >= MAX_DEPTH {
                    return Err(IngestError::ManifestUnusable(format!(
                        "indexes nested deeper than {MAX_DEPTH}"
                    )));
                }
                let locations = children
                    .iter()
                    .map(|d| location.child(d))
                    .collect::<Result<Vec<_>, _>>()?;
                // Chunks keep index order, which is the first-seen order.
                let mut layers = Vec::new();
                for chunk in locations.chunks(CHILD_CONCURRENCY) {
                    let per_child = futures::future::try_join_all(
                        chunk
                            .iter()
                            .map(|l| resolve_at(source, l, depth + 1, budget, bytes)),
                    )
                    .await?;
                    layers.extend(per_child.into_iter().flatten());
                    // Duplicates across platforms are common; only distinct
                    // ones count toward the bound, checked as we go so a
                    // hostile index stops early.
                    let distinct: HashSet<&str> =
                        layers.iter().map(|l| l.digest.as_str()).collect();
                    if distinct.len() > MAX_LAYERS_PER_PUSH {
                        return Err(IngestError::ManifestUnusable(format!(
                            "the index has more than {MAX_LAYERS_PER_PUSH} distinct layers"
                        )));
                    }
                }
                Ok(layers)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn dist(origin: &str, digest: &str) -> ManifestLocation {
        ManifestLocation::Distribution {
            origin: crate::bounded::origin_url(&url::Url::parse(origin).unwrap()),
            repository: "alice/app".into(),
            digest: Digest::parse(digest).unwrap(),
        }
    }

    #[test]
    fn child_location_keeps_the_repository() {
        let loc = dist(
            "http://127.0.0.1:5000/v2/alice/app/manifests/x?x=1",
            &d('a'),
        );
        let child = loc.child(&Digest::parse(&d('b')).unwrap()).unwrap();
        assert_eq!(
            child.to_string(),
            format!("http://127.0.0.1:5000/v2/alice/app/manifests/{}", d('b'))
        );
        assert_eq!(child.verifiable_digest().unwrap().as_str(), d('b'));
    }

    #[test]
    fn display_hides_queries_and_credentials() {
        assert_eq!(
            dist(
                "https://u:p@r.example:8443/v2/a/b/manifests/x?token=s",
                &d('a')
            )
            .to_string(),
            format!("https://r.example:8443/v2/alice/app/manifests/{}", d('a'))
        );
    }

    #[tokio::test]
    async fn the_byte_budget_blocks_until_bytes_are_given_back() {
        let budget = ByteBudget::new(100);
        let a = budget.reserve(60).await;
        assert_eq!(budget.available(), 40);
        // More than the whole budget is clamped to it, and waits for room.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(1000)).await;
        assert!(waiting.is_err(), "reserved past the budget");
        drop(a);
        let all = budget.reserve(1000).await;
        assert_eq!(budget.available(), 0);
        drop(all);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn too_many_layers_or_children_are_unusable() {
        for (media_type, field, limit) in [
            (OCI_MANIFEST, "layers", MAX_LAYERS_PER_PUSH),
            (OCI_INDEX, "manifests", MAX_FETCHES_PER_PUSH),
        ] {
            let entries: Vec<String> = (0..=limit)
                .map(|i| format!(r#"{{"digest":"sha256:{i:064x}","size":1}}"#))
                .collect();
            let raw = RawManifest {
                media_type: Some(media_type.into()),
                body: format!(r#"{{"{field}":[{}]}}"#, entries.join(",")).into_bytes(),
            };
            let parsed = parse_manifest(&raw);
            assert!(
                matches!(parsed, Err(IngestError::ManifestUnusable(_))),
                "{field}"
            );
        }
    }

    #[test]
    fn parses_the_fixture_manifest() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/distribution-2.8-push-manifest.json");
        let body = &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))[..];
        let raw = RawManifest {
            media_type: Some(OCI_MANIFEST.into()),
            body: body.to_vec(),
        };
        let Manifest::Image { layers } = parse_manifest(&raw).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(
            layers,
            vec![LayerSize {
                digest: "sha256:b1387840bec18458d9bb3bd9cff80b0839e9e2adca42e2269fe6bff32b0b9b52"
                    .into(),
                size: 126
            }]
        );
        assert_eq!(
            sha256_digest(body).as_str(),
            "sha256:4efb9572a88a346a86b79761a7ea7f41fd9b93f49deecf6bd9c7e9161d808ab7"
        );
    }

    #[test]
    fn parses_indexes_skipping_attestations() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{a}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{b}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{c}","size":1,"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}
            ]}}"#,
            a = d('a'),
            b = d('b'),
            c = d('c')
        );
        let raw = RawManifest {
            media_type: None,
            body: body.into_bytes(),
        };
        assert_eq!(
            parse_manifest(&raw).unwrap(),
            Manifest::Index {
                children: vec![Digest::parse(&d('a')).unwrap()]
            }
        );
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        for body in [
            "not json",
            "{}",
            r#"{"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#,
            r#"{"layers":[{"digest":"md5:x","size":1}]}"#,
            r#"{"layers":[{"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]}"#,
        ] {
            let raw = RawManifest {
                media_type: None,
                body: body.as_bytes().to_vec(),
            };
            let e = parse_manifest(&raw).unwrap_err();
            assert!(matches!(e, IngestError::ManifestUnusable(_)), "{body}: {e}");
        }
    }
}
