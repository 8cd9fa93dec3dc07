//! End to end with a real registry: Debian's `docker-registry` (CNCF
//! Distribution 2.8) notifies the `ingest` binary (Lambda Runtime API behind
//! the Function URL emulation, against moto) while `skopeo` pushes OCI image
//! layouts this test writes by hand. Checks what lands on the delivery
//! queue: one job per tagged manifest push (blob pushes ignored), with the
//! layers, image size and repository size (a shared layer counted once),
//! also for a multi-platform image (an OCI index).
//! Skipped, with the reason printed, when docker-registry or skopeo is not
//! installed (scripts/tools.sh installs both).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alin_tests::{repo_root, Stack};
use devstack::function_url::FunctionUrl;
use devstack::registry::{find_tool, Layer, OciLayout, Registry};
use devstack::runtime_api::LocalFunction;
use shared::domain::DeliveryJob;
use support::{hook, ingest_binary, size_of};

use crate::ingest_support as support;

const TOKEN: &str = "e2e-ingest-token";

fn layer(content: &str) -> Layer {
    Layer::new(content.as_bytes()).unwrap()
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
    if find_tool("docker-registry").is_none() || find_tool("skopeo").is_none() {
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
    let registry_port = devstack::free_port().unwrap();
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
    let notify = format!("{}/", url.url());
    let registry = Registry::start(work.path(), registry_port, &notify, TOKEN)
        .await
        .unwrap();

    // Two images sharing one layer: [base, app1] and [base, app2].
    let base = layer("base layer: the same bytes in both images\n");
    let app1 = layer("first application layer\n");
    let app2 = layer("second application layer, a little longer than the first\n");
    let mut oci = OciLayout::new(&work.path().join("layout")).unwrap();
    let first = oci.add_image("1.0", &[base.clone(), app1.clone()]).unwrap();
    let second = oci.add_image("2.0", &[base.clone(), app2.clone()]).unwrap();
    let app3 = layer("an arm64-only layer\n");
    let multi = oci
        .add_index(
            "3.0",
            &[
                ("amd64", &[base.clone(), app1.clone()]),
                ("arm64", &[base.clone(), app3.clone()]),
            ],
        )
        .unwrap();
    let mut jobs = Vec::new();

    // WHEN the first image is pushed under two tags, then the second image
    registry.push(&oci, "1.0", "alice/app:1.0").unwrap();
    wait_for_job(&stack, &mut jobs, "alice/app:1.0", &log).await;
    registry.push(&oci, "1.0", "alice/app:1.1").unwrap();
    wait_for_job(&stack, &mut jobs, "alice/app:1.1", &log).await;
    registry.push(&oci, "2.0", "alice/app:2.0").unwrap();
    wait_for_job(&stack, &mut jobs, "alice/app:2.0", &log).await;
    // AND a multi-platform image: an index and its untagged platform manifests
    registry.push(&oci, "3.0", "alice/app:3.0").unwrap();
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
