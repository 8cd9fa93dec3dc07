use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use devstack::esm::EventSourceMapping;
use devstack::moto::Moto;
use devstack::runtime_api::LocalFunction;
use devstack::{invoker_fn, Outcome};
use serde_json::{json, Value};

use crate::{echo_binary, log_path};

/// A fresh queue with a short visibility timeout, so kept messages come back
/// quickly enough to be checked.
async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, visibility_secs: u32) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attrs.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    (url, arn)
}

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&Moto::shared().await.unwrap().sdk_config().await)
}

async fn send_all(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[String]) {
    for chunk in bodies.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .unwrap()
            })
            .collect();
        let out = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty());
    }
}

/// Receives until `n` messages were seen or `timeout` passes.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut bodies = Vec::new();
    while bodies.len() < n && tokio::time::Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(30)
            .send()
            .await
            .unwrap();
        bodies.extend(
            out.messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_owned)),
        );
    }
    bodies
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let map = attrs.attributes().unwrap();
    let get = |k: &QueueAttributeName| map.get(k).map_or(0, |v| v.parse::<u64>().unwrap());
    get(&QueueAttributeName::ApproximateNumberOfMessages)
        + get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

#[tokio::test]
async fn echo_lambda_partial_batch_failures_keep_only_failed_messages() {
    let sqs = sqs().await;
    let (url, arn) = queue(&sqs, "esm-partial", 2).await;
    let bodies: Vec<String> = (0..25)
        .map(|i| {
            if i % 5 == 0 {
                format!("msg-{i}-please-fail")
            } else {
                format!("msg-{i}")
            }
        })
        .collect();
    send_all(&sqs, &url, &bodies).await;

    let function = LocalFunction::start(&echo_binary(), &[], &log_path("esm-echo"))
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    let esm = EventSourceMapping::start(
        sqs.clone(),
        url.clone(),
        arn,
        function,
        10,
        Duration::from_millis(300),
    );
    let stats = esm
        .wait_until(Duration::from_secs(60), |s| s.deleted >= 20)
        .await
        .unwrap();
    assert_eq!(stats.function_errors, 0);
    let stats = esm.stop().await.unwrap();
    assert_eq!(stats.deleted, 20, "{stats:?}");
    assert!(stats.records >= 25 && stats.failed >= 5, "{stats:?}");
    assert_eq!(stats.delete_errors, 0);

    // Only the five failed messages are left; they come back after the
    // visibility timeout.
    let left = drain(&sqs, &url, 5, Duration::from_secs(15)).await;
    let left: BTreeSet<String> = left.into_iter().collect();
    let expected: BTreeSet<String> = bodies
        .iter()
        .filter(|b| b.contains("fail"))
        .cloned()
        .collect();
    assert_eq!(left, expected);
    assert_eq!(queue_depth(&sqs, &url).await, 5);
}

#[tokio::test]
async fn invalid_batch_response_or_function_error_deletes_nothing() {
    let sqs = sqs().await;
    for (name, answer) in [
        (
            "esm-unknown-id",
            Outcome::Ok(json!({"batchItemFailures": [{"itemIdentifier": "not-a-message"}]})),
        ),
        (
            "esm-empty-id",
            Outcome::Ok(json!({"batchItemFailures": [{"itemIdentifier": ""}]})),
        ),
        (
            "esm-function-error",
            Outcome::FunctionError(json!({"errorMessage": "nope"})),
        ),
    ] {
        let (url, arn) = queue(&sqs, name, 30).await;
        send_all(&sqs, &url, &["a".into(), "b".into(), "c".into()]).await;
        let invoker = invoker_fn(move |_event: Value| {
            let answer = answer.clone();
            async move { answer }
        });
        let esm = EventSourceMapping::start(
            sqs.clone(),
            url.clone(),
            arn,
            invoker,
            10,
            Duration::from_millis(200),
        );
        esm.wait_until(Duration::from_secs(20), |s| s.records >= 3)
            .await
            .unwrap();
        let stats = esm.stop().await.unwrap();
        assert_eq!(stats.deleted, 0, "{name}: {stats:?}");
        assert_eq!(stats.failed, stats.records, "{name}: {stats:?}");
        assert_eq!(
            stats.function_errors + stats.invalid_responses,
            stats.invocations,
            "{name}"
        );
        assert_eq!(queue_depth(&sqs, &url).await, 3, "{name}: nothing deleted");
    }
}

#[tokio::test]
async fn event_shape_and_batching_window() {
    let sqs = sqs().await;
    let (url, arn) = queue(&sqs, "esm-shape", 30).await;
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = events.clone();
    let invoker = invoker_fn(move |event: Value| {
        seen.lock().unwrap().push(event);
        async { Outcome::Ok(Value::Null) }
    });
    let esm = EventSourceMapping::start(
        sqs.clone(),
        url.clone(),
        arn.clone(),
        invoker,
        10,
        Duration::from_millis(1500),
    );

    // Three messages 300 ms apart fall into one batching window.
    for i in 0..3 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("body-{i}"))
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("push")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stats = esm
        .wait_until(Duration::from_secs(20), |s| s.deleted >= 3)
        .await
        .unwrap();
    assert_eq!((stats.invocations, stats.records), (1, 3), "{stats:?}");
    esm.stop().await.unwrap();

    let event = events.lock().unwrap()[0].clone();
    let records = event["Records"].as_array().unwrap();
    let bodies: Vec<&str> = records
        .iter()
        .map(|r| r["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["body-0", "body-1", "body-2"]);
    let r = &records[0];
    assert_eq!(r["eventSource"], "aws:sqs");
    assert_eq!(r["eventSourceARN"], arn.as_str());
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
    for key in [
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    ] {
        assert!(r["attributes"][key].is_string(), "{key} missing: {r}");
    }
    assert_eq!(r["messageAttributes"]["kind"]["stringValue"], "push");
    assert_eq!(r["messageAttributes"]["kind"]["dataType"], "String");
    assert_eq!(r["md5OfBody"].as_str().unwrap().len(), 32);
    assert!(r["messageId"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(r["receiptHandle"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(queue_depth(&sqs, &url).await, 0);
}
