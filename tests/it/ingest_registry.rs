//! End to end with a real registry: Debian's `docker-registry` (CNCF
//! Distribution 2.8) notifies the `ingest` binary (Lambda Runtime API behind
//! the Function URL emulation, against moto) while `skopeo` pushes OCI image
//! layouts this test writes by hand. Checks what lands on the delivery
//! queue: one job per tagged manifest push (blob pushes ignored), with the
//! layers, image size and repository size (a shared layer counted once),
//! also for a multi-platform image (an OCI index).
//! Skipped, with the reason printed, when docker-registry or skopeo is not
//! installed (scripts/tools.sh installs both).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alin_tests::{repo_root, Stack};
use devstack::function_url::FunctionUrl;
use devstack::runtime_api::LocalFunction;
use ingest::manifest::{sha256_digest, OCI_INDEX, OCI_MANIFEST};
use serde_json::{json, Value};
use shared::domain::DeliveryJob;
use support::{hook, ingest_binary, size_of};

use crate::ingest_support as support;

const TOKEN: &str = "e2e-ingest-token";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `name` on PATH (or the Debian location), if installed.
fn find_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/bin").join(name)).filter(|p| p.is_file()))
}

// ------------------------------------------------------ OCI layout writer

/// CRC-32 (IEEE), for the gzip trailer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in one stored (uncompressed) block.
/// skopeo recompresses layers it cannot read as gzip, which would change
/// their digests; a real gzip stream keeps the pushed image byte-identical.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("small layer");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.push(1); // final block, stored
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// A layer: its gzip bytes, digest and size.
#[derive(Clone)]
struct Layer {
    gz: Vec<u8>,
    uncompressed_digest: String,
    digest: String,
    size: u64,
}

fn layer(content: &str) -> Layer {
    let gz = gzip_stored(content.as_bytes());
    Layer {
        digest: sha256_digest(&gz).as_str().to_owned(),
        size: gz.len() as u64,
        uncompressed_digest: sha256_digest(content.as_bytes()).as_str().to_owned(),
        gz,
    }
}

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
struct OciLayout {
    dir: PathBuf,
    index: Vec<Value>,
}

impl OciLayout {
    fn new(dir: &Path) -> OciLayout {
        std::fs::create_dir_all(dir.join("blobs").join("sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        OciLayout {
            dir: dir.to_owned(),
            index: Vec::new(),
        }
    }

    fn blob(&self, bytes: &[u8]) -> (String, u64) {
        let digest = sha256_digest(bytes).as_str().to_owned();
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(self.dir.join("blobs").join("sha256").join(hex), bytes).unwrap();
        (digest, bytes.len() as u64)
    }

    /// Writes an image's blobs (layers, config, manifest); returns the
    /// manifest's digest and size.
    fn write_image(&self, arch: &str, layers: &[Layer]) -> (String, u64) {
        for l in layers {
            self.blob(&l.gz);
        }
        let diff_ids: Vec<&str> = layers
            .iter()
            .map(|l| l.uncompressed_digest.as_str())
            .collect();
        let config = json!({"architecture": arch, "os": "linux",
                            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let (config_digest, config_size) = self.blob(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": layers.iter().map(|l| json!({"mediaType": OCI_LAYER, "digest": l.digest, "size": l.size})).collect::<Vec<_>>()
        });
        self.blob(manifest.to_string().as_bytes())
    }

    /// Names `digest` (of `media_type`) `tag` in index.json.
    fn tag(&mut self, tag: &str, media_type: &str, (digest, size): (String, u64)) -> String {
        self.index.push(
            json!({"mediaType": media_type, "digest": digest, "size": size,
                               "annotations": {"org.opencontainers.image.ref.name": tag}}),
        );
        let index = json!({"schemaVersion": 2, "manifests": self.index});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
        digest
    }

    /// A single-platform image tagged `tag`; returns the manifest digest.
    fn add_image(&mut self, tag: &str, layers: &[Layer]) -> String {
        let manifest = self.write_image("amd64", layers);
        self.tag(tag, OCI_MANIFEST, manifest)
    }

    /// A multi-platform image (an OCI index) tagged `tag`; returns the
    /// index digest.
    fn add_index(&mut self, tag: &str, platforms: &[(&str, &[Layer])]) -> String {
        let manifests: Vec<Value> = platforms
            .iter()
            .map(|(arch, layers)| {
                let (digest, size) = self.write_image(arch, layers);
                json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                       "platform": {"architecture": arch, "os": "linux"}})
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let blob = self.blob(index.to_string().as_bytes());
        self.tag(tag, OCI_INDEX, blob)
    }
}

// --------------------------------------------------------------- registry

/// A `docker-registry serve` process; killed (by its own pid) on drop.
struct Registry {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_registry(binary: &Path, work: &Path, notify_url: &str, port: u16) -> Registry {
    let config = format!(
        r#"version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
notifications:
  endpoints:
    - name: ingest
      url: {notify_url}
      headers:
        Authorization: [Bearer {TOKEN}]
      timeout: 15s
      threshold: 3
      backoff: 500ms
"#,
        storage = work.join("storage").display(),
    );
    let config_path = work.join("registry.yml");
    std::fs::write(&config_path, config).unwrap();
    let log = work.join("registry.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(binary)
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("docker-registry starts");
    let registry = Registry { child, port, log };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = http
            .get(format!("http://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            return registry;
        }
        assert!(
            Instant::now() < deadline,
            "docker-registry did not start:\n{}",
            std::fs::read_to_string(&registry.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn skopeo_copy(skopeo: &Path, work: &Path, layout: &Path, tag: &str, dest: &str) {
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let out = Command::new(skopeo)
        .arg("--policy")
        .arg(&policy)
        // --all: an index goes with every platform, as `docker buildx` pushes it.
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(dest)
        .env("HOME", work)
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo copy {tag} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until a job for `image` is on the queue, collecting every job seen.
async fn wait_for_job(stack: &Stack, seen: &mut Vec<DeliveryJob>, image: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|j| j.image_ref() == image) {
        assert!(
            Instant::now() < deadline,
            "no job for {image}; jobs so far: {seen:?}\ningest log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        for m in stack.drain(&stack.queue_url, 10).await {
            seen.push(DeliveryJob::parse(m.body().unwrap_or_default()).expect("a valid job"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn layer_digests(job: &DeliveryJob) -> Vec<&str> {
    job.layers.iter().map(|d| d.as_str()).collect()
}

#[tokio::test]
async fn skopeo_pushes_to_docker_registry_become_webhook_jobs() {
    let (Some(registry_bin), Some(skopeo)) = (find_tool("docker-registry"), find_tool("skopeo"))
    else {
        eprintln!(
            "SKIPPED skopeo_pushes_to_docker_registry_become_webhook_jobs: docker-registry or \
             skopeo is not installed (run scripts/tools.sh)"
        );
        return;
    };

    // GIVEN ingest behind a Function URL, and a registry notifying it
    let stack = Stack::new("ingest-e2e").await;
    hook(&stack, "alice/app").await;
    let mut env = stack.function_env();
    env.push(("INGEST_TOKEN".into(), TOKEN.into()));
    // The registry's own origin: manifests are fetched only from there.
    let registry_port = free_port();
    env.push((
        "REGISTRY_URL".into(),
        format!("http://127.0.0.1:{registry_port}"),
    ));
    let log = repo_root()
        .join(".devstack")
        .join("logs")
        .join(format!("ingest-e2e-{}.log", stack.table));
    let function = Arc::new(
        LocalFunction::start(&ingest_binary(), &env, &log)
            .await
            .expect("ingest starts")
            .with_timeout(Duration::from_secs(30)),
    );
    let url = FunctionUrl::serve(function.clone()).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let registry = start_registry(
        &registry_bin,
        work.path(),
        &format!("{}/", url.url()),
        registry_port,
    )
    .await;
    let dest = |tag: &str| format!("docker://127.0.0.1:{}/alice/app:{tag}", registry.port);

    // Two images sharing one layer: [base, app1] and [base, app2].
    let base = layer("base layer: the same bytes in both images\n");
    let app1 = layer("first application layer\n");
    let app2 = layer("second application layer, a little longer than the first\n");
    let layout = work.path().join("layout");
    let mut oci = OciLayout::new(&layout);
    let first = oci.add_image("1.0", &[base.clone(), app1.clone()]);
    let second = oci.add_image("2.0", &[base.clone(), app2.clone()]);
    let app3 = layer("an arm64-only layer\n");
    let multi = oci.add_index(
        "3.0",
        &[
            ("amd64", &[base.clone(), app1.clone()]),
            ("arm64", &[base.clone(), app3.clone()]),
        ],
    );
    let mut jobs = Vec::new();

    // WHEN the first image is pushed under two tags, then the second image
    skopeo_copy(&skopeo, work.path(), &layout, "1.0", &dest("1.0"));
    wait_for_job(&stack, &mut jobs, "alice/app:1.0", &log).await;
    skopeo_copy(&skopeo, work.path(), &layout, "1.0", &dest("1.1"));
    wait_for_job(&stack, &mut jobs, "alice/app:1.1", &log).await;
    skopeo_copy(&skopeo, work.path(), &layout, "2.0", &dest("2.0"));
    wait_for_job(&stack, &mut jobs, "alice/app:2.0", &log).await;
    // AND a multi-platform image: an index and its untagged platform manifests
    skopeo_copy(&skopeo, work.path(), &layout, "3.0", &dest("3.0"));
    wait_for_job(&stack, &mut jobs, "alice/app:3.0", &log).await;
    // Late duplicates would show up now (registry retries, blob events).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for m in stack.drain(&stack.queue_url, 10).await {
        jobs.push(DeliveryJob::parse(m.body().unwrap_or_default()).unwrap());
    }

    // THEN exactly one job per tagged manifest push, with the right content
    let images: Vec<String> = jobs.iter().map(DeliveryJob::image_ref).collect();
    assert_eq!(
        images,
        [
            "alice/app:1.0",
            "alice/app:1.1",
            "alice/app:2.0",
            "alice/app:3.0"
        ],
        "{jobs:?}"
    );
    let (j10, j11, j20, j30) = (&jobs[0], &jobs[1], &jobs[2], &jobs[3]);
    let size1 = base.size + app1.size;
    let size2 = base.size + app2.size;
    for j in [j10, j11] {
        assert_eq!(j.digest.as_ref().map(|d| d.as_str()), Some(first.as_str()));
        assert_eq!(
            layer_digests(j),
            [base.digest.as_str(), app1.digest.as_str()]
        );
        assert_eq!(j.image_size, size1);
        assert_eq!(j.repository_size, size1);
        assert!(j.pushed_at.is_some());
    }
    assert_ne!(j10.webhook_id, j11.webhook_id);
    assert_eq!(
        j20.digest.as_ref().map(|d| d.as_str()),
        Some(second.as_str())
    );
    assert_eq!(
        layer_digests(j20),
        [base.digest.as_str(), app2.digest.as_str()]
    );
    assert_eq!(j20.image_size, size2);
    // the shared base layer is counted once in the repository size
    let total = base.size + app1.size + app2.size;
    assert_eq!(j20.repository_size, total);
    // the index: distinct layers of its platforms in first-seen order
    assert_eq!(
        j30.digest.as_ref().map(|d| d.as_str()),
        Some(multi.as_str())
    );
    assert_eq!(
        layer_digests(j30),
        [
            base.digest.as_str(),
            app1.digest.as_str(),
            app3.digest.as_str()
        ]
    );
    assert_eq!(j30.image_size, base.size + app1.size + app3.size);
    assert_eq!(j30.repository_size, total + app3.size);
    assert_eq!(size_of(&stack, "alice/app").await, total + app3.size);

    // The registry's blob events were acknowledged and ignored, as the log says.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("ignored_blob=1"), "{logged}");
    assert!(logged.contains("ignored_untagged=1"), "{logged}");
    assert!(!logged.contains(TOKEN), "the token leaked into the log");
    drop(registry);
}
