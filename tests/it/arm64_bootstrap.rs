//! The deployable artifacts themselves: each arm64 `bootstrap` built by
//! `cargo lambda build --release --arm64` (what `sam build` runs), started
//! under qemu-user with the Lambda Runtime API emulation, answers a real
//! invocation against moto.
//!
//! `scripts/test.sh` builds the bootstraps first and sets
//! `ALIN_REQUIRE_ARM64=1`, so there a missing bootstrap or qemu is a failure;
//! a developer running `cargo test` alone without them gets a skip notice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alin_tests::{repo_root, Stack};
use devstack::runtime_api::LocalFunction;
use serde_json::{json, Value};

const QEMU: &str = "/usr/bin/qemu-aarch64";
const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// A launcher script that runs the arm64 bootstrap under qemu-user, so the
/// Runtime API emulation can start it like any binary.
fn qemu_launcher(name: &str, dir: &Path) -> Option<PathBuf> {
    let bootstrap = repo_root()
        .join("target/lambda")
        .join(name)
        .join("bootstrap");
    let ready = bootstrap.is_file() && Path::new(QEMU).is_file() && Path::new(SYSROOT).is_dir();
    if !ready {
        assert!(
            std::env::var_os("ALIN_REQUIRE_ARM64").is_none(),
            "{} or {QEMU} or {SYSROOT} missing",
            bootstrap.display()
        );
        eprintln!(
            "SKIP: {} not built (cargo lambda build --release --arm64) or qemu-user missing",
            bootstrap.display()
        );
        return None;
    }
    let launcher = dir.join(name);
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nexec {QEMU} -L {SYSROOT} {} \"$@\"\n",
            bootstrap.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(launcher)
}

fn load_event(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

async fn start(
    name: &str,
    stack: &Stack,
    dir: &Path,
    extra: &[(&str, &str)],
) -> Option<LocalFunction> {
    let launcher = qemu_launcher(name, dir)?;
    let mut env = stack.function_env();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let log = dir.join(format!("{name}.log"));
    Some(
        LocalFunction::start(&launcher, &env, &log)
            .await
            .expect("bootstrap starts under qemu"),
    )
}

#[tokio::test]
async fn arm64_bootstraps_answer_real_invocations_under_qemu() {
    let stack = Stack::new("arm64").await;
    let dir = tempfile::tempdir().unwrap();
    let slow = Duration::from_secs(60); // qemu-user emulation is slow to start

    // settings: the sample PUT, then GET.
    let Some(settings) = start("settings", &stack, dir.path(), &[]).await else {
        return;
    };
    let put = settings
        .invoke(load_event("events/settings/put-webhook.json"), slow)
        .await
        .unwrap();
    let put = put.ok().expect("PUT answered").clone();
    assert_eq!(put["statusCode"], 200, "{put}");
    let config: Value = serde_json::from_str(put["body"].as_str().unwrap()).unwrap();
    assert_eq!(config["repository"], "alice/app");
    assert!(config["secret"].as_str().unwrap().starts_with("whsec_"));
    let get = settings
        .invoke(load_event("events/settings/get-webhook.json"), slow)
        .await
        .unwrap();
    assert_eq!(get.ok().unwrap()["statusCode"], 200);

    // ingest: the sample native push over HTTP becomes one job.
    let ingest = start(
        "ingest",
        &stack,
        dir.path(),
        &[("INGEST_TOKEN", "local-ingest-token")],
    )
    .await
    .expect("ingest bootstrap");
    let res = ingest
        .invoke(load_event("events/ingest/http-native-push.json"), slow)
        .await
        .unwrap();
    let res = res.ok().expect("ingest answered").clone();
    assert_eq!(res["statusCode"], 202, "{res}");
    let jobs = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(jobs.len(), 1);

    // deliver: the sample batch; its repositories point nowhere reachable,
    // so every job is answered (dropped or failed), none panics.
    let deliver = start("deliver", &stack, dir.path(), &[])
        .await
        .expect("deliver bootstrap");
    let res = deliver
        .invoke(load_event("events/deliver/sqs-batch.json"), slow)
        .await
        .unwrap();
    let res = res.ok().expect("deliver answered").clone();
    assert!(res.get("batchItemFailures").is_some(), "{res}");
    let _ = json!(null);
}
