//! Builds a small OCI image layout on disk (what `skopeo copy oci:DIR:TAG`
//! reads): real gzip'd tar layers, a config whose diff_ids match them, a
//! manifest and index.json. Made here so the demo needs no image download.

use std::path::Path;

use sha2::{Digest as _, Sha256};

/// One layer to put in an image.
pub struct Layer {
    pub file_name: String,
    pub content: Vec<u8>,
}

/// What was written: the manifest digest and each layer's digest and size.
pub struct Built {
    pub manifest_digest: String,
    pub layers: Vec<(String, u64)>,
}

fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Result<String, String> {
    let digest = sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    let path = dir.join("blobs").join("sha256").join(hex);
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(digest)
}

fn tar_gz(layer: &Layer) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(layer.content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_795_852_800);
    header.set_cksum();
    tar.append_data(&mut header, &layer.file_name, layer.content.as_slice())
        .map_err(|e| format!("tar: {e}"))?;
    let raw = tar.into_inner().map_err(|e| format!("tar: {e}"))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).map_err(|e| format!("gzip: {e}"))?;
    let compressed = gz.finish().map_err(|e| format!("gzip: {e}"))?;
    Ok((raw, compressed))
}

/// Writes an OCI layout at `dir` with one image tagged `tag`.
pub fn build(dir: &Path, tag: &str, layers: &[Layer]) -> Result<Built, String> {
    std::fs::create_dir_all(dir.join("blobs").join("sha256"))
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| e.to_string())?;
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut built_layers = Vec::new();
    for layer in layers {
        let (raw, gz) = tar_gz(layer)?;
        diff_ids.push(sha256(&raw));
        let digest = write_blob(dir, &gz)?;
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest, "size": gz.len()
        }));
        built_layers.push((digest, gz.len() as u64));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    })
    .to_string();
    let config_digest = write_blob(dir, config.as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors
    })
    .to_string();
    let manifest_digest = write_blob(dir, manifest.as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    })
    .to_string();
    std::fs::write(dir.join("index.json"), index).map_err(|e| e.to_string())?;
    Ok(Built {
        manifest_digest,
        layers: built_layers,
    })
}
