//! The synthetic workloads: repository names, delivery jobs with distinct
//! tags (so nothing is coalesced), native push events, and SQS events shaped
//! exactly as Lambda's event source mapping hands them to a function.

use std::time::SystemTime;

use serde_json::{json, Value};
use shared::domain::job::{derive_webhook_id, JOB_VERSION};
use shared::domain::{DeliveryJob, Digest, JobKind, RepositoryName, Tag};

use crate::Res;

/// Layers per pushed image in every workload (a typical small image).
pub const LAYERS: usize = 3;

/// `bench/<prefix>0000`, …
pub fn repos(prefix: &str, n: usize) -> Res<Vec<RepositoryName>> {
    let repo = |i| RepositoryName::parse(&format!("bench/{prefix}{i:04}"));
    (0..n).map(|i| repo(i).map_err(|e| e.to_string())).collect()
}

pub fn digest(n: u64) -> String {
    format!("sha256:{n:064x}")
}

fn layers(seed: u64) -> Vec<String> {
    (0..LAYERS as u64)
        .map(|l| digest(seed * 16 + l + 1))
        .collect()
}

/// The `index`-th job, for `repo`, tag `t<index>`.
pub fn job(repo: &RepositoryName, index: usize) -> Res<DeliveryJob> {
    let tag = format!("t{index}");
    let e = |e: shared::domain::NameError| e.to_string();
    Ok(DeliveryJob {
        v: JOB_VERSION,
        webhook_id: derive_webhook_id(&["bench", repo.as_str(), &tag]),
        kind: JobKind::Push,
        repository: repo.clone(),
        tag: Tag::parse(&tag).map_err(e)?,
        digest: Some(Digest::parse(&digest(index as u64 + 1_000_000)).map_err(e)?),
        image_size: 48_000_000 + index as u64,
        layers: layers(index as u64)
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<_, _>>()
            .map_err(e)?,
        repository_size: 900_000_000,
        pushed_at: Some("2026-11-28T08:00:00Z".to_owned()),
    })
}

/// A native push event (the registry's push event format) for `repo`, tag
/// `tag`, registry id `id`.
pub fn native_push(repo: &RepositoryName, tag: &str, id: &str, seed: u64) -> Value {
    json!({
        "event": "push", "username": repo.username(), "repository": repo.repository(), "tag": tag,
        "digest": digest(seed + 2_000_000), "image_size": 48_000_000 + seed, "layers": layers(seed),
        "repository_size": 900_000_000u64, "pushed_at": "2026-11-28T08:00:00Z", "id": id,
    })
}

/// UUID-shaped, unique per (prefix, i).
fn hex_id(prefix: &str, i: usize) -> String {
    let p: String = prefix.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{p:0<8.8}-0000-4000-8000-{i:012x}")
}

/// One SQS record as Lambda's event source mapping builds it (devstack's
/// builder, from a message that was never queued: the receipt handle is
/// synthetic, only valid for workloads that never use it).
pub fn sqs_record(prefix: &str, i: usize, body: String, queue_arn: &str) -> Value {
    use aws_sdk_sqs::types::{Message, MessageSystemAttributeName as Name};
    let (id, sent) = (
        hex_id(prefix, i),
        devstack::paths::epoch_millis(SystemTime::now()),
    );
    let handle = format!(
        "AQEB{}bench+synthetic+receipt+handle/never+valid==",
        id.replace('-', "")
    );
    let attributes = [
        (Name::ApproximateReceiveCount, "1".to_owned()),
        (Name::SentTimestamp, sent.to_string()),
        (Name::SenderId, "AIDAIENQZJOLO23YVJ4VO".to_owned()),
        (
            Name::ApproximateFirstReceiveTimestamp,
            (sent + 5).to_string(),
        ),
    ];
    let message = Message::builder()
        .message_id(id)
        .receipt_handle(handle)
        .body(body)
        .md5_of_body("");
    devstack::esm::event::record(
        &message.set_attributes(Some(attributes.into())).build(),
        queue_arn,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_valid_and_distinct() {
        let r = repos("x", 2).unwrap();
        let a = job(&r[0], 1).unwrap();
        let b = job(&r[0], 2).unwrap();
        a.validate().unwrap();
        assert_ne!(a.image_ref(), b.image_ref());
        assert_ne!(a.webhook_id, b.webhook_id);
        assert_eq!(DeliveryJob::parse(&a.to_json()).unwrap(), a);
        assert_ne!(hex_id("tp", 1), hex_id("tp", 2));
        assert_ne!(hex_id("tp", 1), hex_id("fa", 1));
        let r = sqs_record("tp", 1, "{}".into(), "arn");
        assert_eq!(
            (
                &r["eventSourceARN"],
                &r["attributes"]["ApproximateReceiveCount"]
            ),
            (&json!("arn"), &json!("1"))
        );
    }
}
