//! What the handler-level fuzz targets share: one current-thread runtime, a
//! resolver that never touches the network, a manifest source that serves
//! fuzz-chosen bytes, and a tiny byte reader to turn the input into a few
//! choices plus the text fields of an event.
#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use std::sync::Arc;

use async_trait::async_trait;
use ingest::{Ingest, IngestError, ManifestLocation, ManifestSource, RawManifest};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{validate_webhook_url, RepositoryName};
use shared::net::NameLookup;
use shared::ports::WebhookStore;

/// One runtime per fuzzing process (building one per input would dominate).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// Resolves every name to one address, without any DNS traffic: `hooks.test`
/// (and its subdomains) to a private address, so the address rule refuses
/// it before any connection; everything else to a public documentation-free
/// address that is never connected to in these targets (settings only
/// classifies it).
pub struct OfflineLookup;

#[async_trait]
impl NameLookup for OfflineLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<SocketAddr>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "empty name"));
        }
        let ip = if host == "hooks.test" || host.ends_with(".hooks.test") {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7))
        } else {
            IpAddr::V4(Ipv4Addr::new(93, 184, 215, 14))
        };
        Ok(vec![SocketAddr::new(ip, 0)])
    }
}

/// Serves the same fuzz-chosen manifest for every location; never fails
/// retryably, so any 5xx / retryable failure an input causes is a bug.
pub struct FuzzManifests {
    pub manifest: Option<RawManifest>,
}

#[async_trait]
impl ManifestSource for FuzzManifests {
    async fn fetch(&self, location: &ManifestLocation) -> Result<RawManifest, IngestError> {
        match &self.manifest {
            Some(m) => Ok(m.clone()),
            None => Err(IngestError::ManifestUnusable(format!(
                "GET {location}: HTTP 404"
            ))),
        }
    }
}

/// A memory store where each `(repository, url)` has that webhook
/// (validated, private addresses allowed when `allow_private`).
pub async fn store_with(webhooks: &[(&str, &str)], allow_private: bool) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::default());
    for (repo, url) in webhooks {
        let url = validate_webhook_url(url, allow_private).expect("a valid seed URL");
        let repo = RepositoryName::parse(repo).expect("a valid seed repository");
        store
            .put_url(&repo, &url, "2026-11-28T08:00:00Z")
            .await
            .expect("the memory store accepts a URL");
    }
    store
}

/// Ingest over memory adapters: the repositories the fuzz inputs name have
/// a webhook, the registry serves `manifest` (or 404s); returns the handler
/// and its queue.
pub async fn ingest_with(manifest: Option<RawManifest>) -> (Ingest, Arc<MemoryQueue>) {
    let repos = ["alice/app", "library/hello-world", "library/my-repo", "team/app"];
    let webhooks = repos.map(|r| (r, "https://hooks.example.com/h?token=x"));
    let queue = Arc::new(MemoryQueue::default());
    let ingest = Ingest::new(
        store_with(&webhooks, false).await,
        queue.clone(),
        Arc::new(FuzzManifests { manifest }),
    );
    (ingest, queue)
}

/// The fuzz-chosen manifest bytes, with the media type `pick` chooses.
pub fn manifest(pick: usize, body: &[u8]) -> RawManifest {
    RawManifest {
        media_type: Some(MEDIA_TYPES[pick % MEDIA_TYPES.len()].to_owned())
            .filter(|t| !t.is_empty()),
        body: body.to_vec(),
    }
}

/// Splits the input on 0xFF bytes (never valid UTF-8, so never inside a
/// field the fuzzer means as text) into at most `max` parts.
pub fn parts(data: &[u8], max: usize) -> Vec<&[u8]> {
    data.splitn(max, |b| *b == 0xFF).collect()
}

/// A byte as a choice among `n` (0 when absent).
pub fn pick(data: &[u8], at: usize, n: usize) -> usize {
    data.get(at).map_or(0, |b| usize::from(*b) % n.max(1))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub const MEDIA_TYPES: [&str; 6] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/json",
    "",
];
