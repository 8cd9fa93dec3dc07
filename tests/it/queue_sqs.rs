//! The SQS delivery queue against moto through the real SDK: batched sends,
//! visibility changes, and sends that survive injected AWS faults.

use std::time::Duration;

use alin_tests::Stack;
use devstack::aws_proxy::{Fault, FaultKind};
use shared::domain::job::{derive_webhook_id, DeliveryJob};
use shared::domain::RepositoryName;
use shared::ports::DeliveryQueue;

fn jobs(n: usize) -> Vec<DeliveryJob> {
    (0..n)
        .map(|i| {
            DeliveryJob::parse(&format!(
                r#"{{"v":1,"webhook_id":"{}","kind":"push","repository":"user{i}/app","tag":"1.0","image_size":{i},"layers":[],"repository_size":{i}}}"#,
                derive_webhook_id(&["test", &i.to_string()])
            ))
            .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn twenty_five_jobs_go_out_in_three_calls() {
    let stack = Stack::new("send").await;
    let queue = stack.queue();
    let sent = jobs(25);
    let report = queue.send_jobs(&sent).await.unwrap();
    assert_eq!(report.sent, 25);
    assert!(report.failed.is_empty());
    assert_eq!(report.calls, 3);
    assert_eq!(
        stack.proxy.count("sqs:SendMessageBatch"),
        3,
        "{:?}",
        stack.proxy.counts()
    );
    let got = stack.drain(&stack.queue_url, 100).await;
    assert_eq!(got.len(), 25);
    let mut parsed: Vec<DeliveryJob> = got
        .iter()
        .map(|m| DeliveryJob::parse(m.body().unwrap()).unwrap())
        .collect();
    parsed.sort_by_key(|j| j.image_size);
    assert_eq!(parsed, sent);
}

#[tokio::test]
async fn visibility_change_hides_and_releases_messages() {
    let stack = Stack::new("visibility").await;
    let queue = stack.queue();
    queue.send_jobs(&jobs(2)).await.unwrap();
    let got = stack.drain(&stack.queue_url, 2).await;
    assert_eq!(got.len(), 2);
    let handles: Vec<String> = got
        .iter()
        .map(|m| m.receipt_handle().unwrap().to_owned())
        .collect();
    // One comes back at once, the other is hidden for a long time.
    queue
        .change_visibility(&[(handles[0].clone(), 0), (handles[1].clone(), 600)])
        .await
        .unwrap();
    assert_eq!(stack.proxy.count("sqs:ChangeMessageVisibilityBatch"), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = stack.drain(&stack.queue_url, 10).await;
    assert_eq!(again.len(), 1, "only the released message is visible");
    assert_eq!(again[0].message_id(), got[0].message_id());
    let receives = again[0]
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .cloned();
    assert_eq!(receives.as_deref(), Some("2"));
}

#[tokio::test]
async fn sends_survive_throttling_and_server_errors() {
    let stack = Stack::new("faults").await;
    let queue = stack.queue();
    stack.proxy.set_faults(vec![
        Fault {
            operation_prefix: "sqs:SendMessageBatch".into(),
            kind: FaultKind::Throttle,
            every: 2,
        },
        Fault {
            operation_prefix: "sqs:SendMessageBatch".into(),
            kind: FaultKind::ServerError,
            every: 3,
        },
    ]);
    let report = queue.send_jobs(&jobs(40)).await.unwrap();
    assert!(stack.proxy.injected() > 0, "faults were injected");
    assert_eq!(report.sent, 40, "{:?}", report.failed);
    stack.proxy.set_faults(vec![]);
    let got = stack.drain(&stack.queue_url, 100).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|m| DeliveryJob::parse(m.body().unwrap()).unwrap().webhook_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every job arrived");
}

#[tokio::test]
async fn a_bad_queue_is_reported_not_lost() {
    let stack = Stack::new("badq").await;
    let queue = shared::adapters::SqsQueue::new(
        stack.sqs.clone(),
        format!("{}-does-not-exist", stack.queue_url),
    );
    let report = queue.send_jobs(&jobs(3)).await.unwrap();
    assert_eq!(report.sent, 0);
    assert_eq!(
        report.failed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let _ = RepositoryName::parse("a/b");
}
