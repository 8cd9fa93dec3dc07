//! Registries for ingest to fetch from: Debian's `docker-registry` with
//! notifications, OCI layouts written on the spot and `skopeo` pushing them
//! (missing tools reported by [`find_tool`]); and a [`StubRegistry`] for exact
//! answers (manifests by digest, scripted paths, every request logged).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::paths::{self, lock};
use crate::receiver::{Behaviour, Receiver, RecordedRequest};
use crate::DevstackError;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn io(context: &str) -> impl FnOnce(std::io::Error) -> DevstackError + '_ {
    move |e| DevstackError::io(context, e)
}

/// `name` on PATH (or under /usr/bin), if installed.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]);
    dirs.map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A layer: its gzip bytes (a real gzip stream, so skopeo pushes it
/// unchanged), their digest and size, and the digest of the content.
#[derive(Debug, Clone)]
pub struct Layer {
    pub gz: Vec<u8>,
    pub digest: String,
    pub size: u64,
    pub diff_id: String,
}

impl Layer {
    pub fn new(content: &[u8]) -> Result<Layer, DevstackError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, content).map_err(io("gzip"))?;
        let gz = gz.finish().map_err(io("gzip"))?;
        Ok(Layer {
            digest: sha256(&gz),
            size: gz.len() as u64,
            diff_id: sha256(content),
            gz,
        })
    }
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`), what
/// `skopeo copy oci:DIR:TAG` reads.
pub struct OciLayout {
    dir: PathBuf,
    index: Vec<Value>,
}

impl OciLayout {
    pub fn new(dir: &Path) -> Result<OciLayout, DevstackError> {
        std::fs::create_dir_all(dir.join("blobs").join("sha256"))
            .map_err(io("creating a layout"))?;
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(io("writing oci-layout"))?;
        Ok(OciLayout {
            dir: dir.to_owned(),
            index: Vec::new(),
        })
    }

    fn blob(&self, bytes: &[u8]) -> Result<(String, u64), DevstackError> {
        let digest = sha256(bytes);
        let path = self
            .dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        std::fs::write(path, bytes).map_err(io("writing a blob"))?;
        Ok((digest, bytes.len() as u64))
    }

    /// Writes one platform's layers, config and manifest; returns the
    /// manifest's digest and size.
    fn image(&self, arch: &str, layers: &[Layer]) -> Result<(String, u64), DevstackError> {
        for l in layers {
            self.blob(&l.gz)?;
        }
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        let config = json!({"architecture": arch, "os": "linux", "config": {},
                            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let (config_digest, config_size) = self.blob(config.to_string().as_bytes())?;
        let descriptor =
            |l: &Layer| json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.size});
        let descriptors: Vec<Value> = layers.iter().map(descriptor).collect();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": descriptors
        });
        self.blob(manifest.to_string().as_bytes())
    }

    /// Names a manifest or index `tag` in index.json; returns its digest.
    fn tag(
        &mut self,
        tag: &str,
        media_type: &str,
        (digest, size): (String, u64),
    ) -> Result<String, DevstackError> {
        self.index.push(
            json!({"mediaType": media_type, "digest": digest, "size": size,
                               "annotations": {"org.opencontainers.image.ref.name": tag}}),
        );
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        std::fs::write(self.dir.join("index.json"), index.to_string())
            .map_err(io("writing index.json"))?;
        Ok(digest)
    }

    /// A single-platform (amd64) image tagged `tag`; returns the manifest digest.
    pub fn add_image(&mut self, tag: &str, layers: &[Layer]) -> Result<String, DevstackError> {
        let manifest = self.image("amd64", layers)?;
        self.tag(tag, OCI_MANIFEST, manifest)
    }

    /// A multi-platform image (an OCI index) tagged `tag`; returns the index digest.
    pub fn add_index(
        &mut self,
        tag: &str,
        platforms: &[(&str, &[Layer])],
    ) -> Result<String, DevstackError> {
        let mut manifests = Vec::new();
        for (arch, layers) in platforms {
            let (digest, size) = self.image(arch, layers)?;
            manifests.push(
                json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                                  "platform": {"architecture": arch, "os": "linux"}}),
            );
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let blob = self.blob(index.to_string().as_bytes())?;
        self.tag(tag, OCI_INDEX, blob)
    }
}

/// A `docker-registry serve` process notifying `notify_url` with a bearer
/// token; killed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    work: PathBuf,
}

impl Registry {
    /// Starts the registry on 127.0.0.1:`port` (chosen by the caller, so
    /// ingest can be told `REGISTRY_URL` before the registry exists) with its
    /// storage and config under `work`, and waits until it listens.
    pub async fn start(
        work: &Path,
        port: u16,
        notify_url: &str,
        token: &str,
    ) -> Result<Registry, DevstackError> {
        let binary = find_tool("docker-registry").ok_or_else(|| {
            DevstackError::Setup("docker-registry (apt-get install docker-registry)".into())
        })?;
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\nnotifications:\n  endpoints:\n    \
             - name: ingest\n      url: {notify_url}\n      headers:\n        Authorization: [Bearer {token}]\n      \
             timeout: 15s\n      threshold: 3\n      backoff: 500ms\n",
            storage = work.join("storage").display()
        );
        let config_path = work.join("registry.yml");
        std::fs::write(&config_path, config).map_err(io("writing registry.yml"))?;
        let log = std::fs::File::create(work.join("registry.log"))
            .map_err(io("creating registry.log"))?;
        let mut child = Command::new(binary);
        let child = child
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stderr(log.try_clone().map_err(io("log"))?);
        let child = child
            .stdout(log)
            .spawn()
            .map_err(io("starting docker-registry"))?;
        let registry = Registry {
            child,
            port,
            work: work.to_owned(),
        };
        // On localhost a connect is refused or accepted at once.
        let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        let what = || {
            format!(
                "docker-registry to listen; log:\n{}",
                paths::log_tail(&work.join("registry.log"), 200)
            )
        };
        paths::wait_until(Duration::from_secs(20), what, listening).await?;
        Ok(registry)
    }

    /// Pushes `tag` of `layout` to `destination` (`repository:tag`) with
    /// `skopeo copy --all` (an index goes with every platform, as `docker
    /// buildx` pushes it).
    pub fn push(
        &self,
        layout: &OciLayout,
        tag: &str,
        destination: &str,
    ) -> Result<(), DevstackError> {
        let skopeo = find_tool("skopeo")
            .ok_or_else(|| DevstackError::Setup("skopeo (apt-get install skopeo)".into()))?;
        let policy = self.work.join("policy.json");
        let accept_all = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;
        std::fs::write(&policy, accept_all).map_err(io("writing policy.json"))?;
        let mut copy = Command::new(skopeo);
        copy.arg("--policy")
            .arg(&policy)
            .args(["copy", "--all", "--dest-tls-verify=false"]);
        copy.arg(format!("oci:{}:{tag}", layout.dir.display()));
        copy.arg(format!("docker://127.0.0.1:{}/{destination}", self.port));
        let out = copy
            .env("HOME", &self.work)
            .output()
            .map_err(io("running skopeo"))?;
        let failed = || {
            format!(
                "skopeo copy {tag} to {destination} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        };
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| DevstackError::Setup(failed()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Distribution registry's manifest endpoint on 127.0.0.1 (a devstack
/// [`Receiver`]): serves the manifests put into it under their digests,
/// answers any other path as a test scripts it (`404 {}` by default), and
/// logs every request with the credentials it presented.
pub struct StubRegistry {
    receiver: Receiver,
    routes: Arc<Mutex<HashMap<String, Behaviour>>>,
}

impl StubRegistry {
    pub async fn start() -> Result<StubRegistry, DevstackError> {
        let routes: Arc<Mutex<HashMap<String, Behaviour>>> = Arc::default();
        let table = routes.clone();
        let receiver = Receiver::start(Behaviour::Script(Arc::new(move |req| {
            lock(&table).get(&req.path).cloned().unwrap_or_else(|| {
                Behaviour::status(404)
                    .with_header("content-type", "application/json")
                    .with_body("{}")
            })
        })))
        .await?;
        Ok(StubRegistry { receiver, routes })
    }

    /// `http://127.0.0.1:PORT`, what ingest's `REGISTRY_URL` names.
    pub fn base(&self) -> String {
        self.receiver.url("").trim_end_matches('/').to_owned()
    }

    /// The manifest path of `reference` (a digest or tag) in `repository`.
    pub fn path(repository: &str, reference: &str) -> String {
        format!("/v2/{repository}/manifests/{reference}")
    }

    pub fn url(&self, repository: &str, reference: &str) -> String {
        self.receiver.url(&Self::path(repository, reference))
    }

    pub fn answer(&self, path: &str, behaviour: Behaviour) {
        lock(&self.routes).insert(path.to_owned(), behaviour);
    }

    /// Serves `manifest` as `media_type` under its digest in `repository`;
    /// returns the digest.
    pub fn put(&self, repository: &str, media_type: &str, manifest: Vec<u8>) -> String {
        let digest = sha256(&manifest);
        let served = Behaviour::ok().with_header("content-type", media_type);
        self.answer(&Self::path(repository, &digest), served.with_body(manifest));
        digest
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.receiver.requests()
    }

    /// Each request's path and the `Authorization` it presented, in order.
    pub fn seen(&self) -> Vec<(String, Option<String>)> {
        let auth = |r: &RecordedRequest| r.header("authorization").map(str::to_owned);
        let requests = self.receiver.requests();
        requests.iter().map(|r| (r.path.clone(), auth(r))).collect()
    }
}
