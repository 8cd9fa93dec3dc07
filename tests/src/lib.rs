//! The integration tests' view of devstack: one moto per run (shared by the
//! whole `it` binary), a fresh table and queues per test under a unique
//! prefix (`Moto::provision`), and a counting/fault-injecting proxy per test
//! between the SDK and moto so every test can count its own AWS calls
//! exactly; the delivery queue's jobs as real messages and the SQS event
//! Lambda builds from them; slow receivers; the independent signature check.

use std::path::PathBuf;

use aws_sdk_sqs::types::Message;
use devstack::aws_proxy::AwsProxy;
use devstack::moto::Moto;
use devstack::receiver::{Behaviour, Receiver};
use serde_json::{Map, Value};

/// The resources of one test and the clients to reach them through its proxy.
pub struct Stack {
    pub moto: &'static Moto,
    pub proxy: AwsProxy,
    pub outputs: Map<String, Value>,
    pub table: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub sdk: aws_config::SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// The repository root (where template.yaml lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn out(outputs: &Map<String, Value>, key: &str) -> String {
    outputs
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("stack output {key} missing: {outputs:?}"))
        .to_owned()
}

impl Stack {
    /// Creates the template's table and queues under a unique prefix.
    pub async fn new(hint: &str) -> Stack {
        Self::with_params(hint, &[]).await
    }

    /// Like [`Stack::new`], overriding template parameters (`Name=Value`).
    pub async fn with_params(hint: &str, params: &[&str]) -> Stack {
        Self::on(Moto::shared().await.expect("moto starts"), hint, params).await
    }

    /// Like [`Stack::with_params`] on a moto of its own, for a test whose
    /// timing must not depend on what the tests beside it make the shared
    /// moto do: it applies DynamoDB calls one at a time, so a test
    /// hammering it delays everyone else's calls by seconds. The moto is
    /// left running for the rest of the run (its watchdog ends it with us).
    pub async fn isolated(hint: &str, params: &[&str]) -> Stack {
        let moto = Moto::start().await.expect("moto starts");
        Self::on(Box::leak(Box::new(moto)), hint, params).await
    }

    async fn on(moto: &'static Moto, hint: &str, params: &[&str]) -> Stack {
        let prefix = format!("{hint}-{:08x}-", rand::random::<u32>());
        let outputs = moto
            .provision(&prefix, params)
            .await
            .expect("stack created");
        let proxy = AwsProxy::start(moto.endpoint())
            .await
            .expect("proxy starts");
        let sdk = sdk_config(&proxy.endpoint()).await;
        Stack {
            moto,
            table: out(&outputs, "WebhooksTable"),
            queue_url: out(&outputs, "DeliveryQueueUrl"),
            queue_arn: out(&outputs, "DeliveryQueueArn"),
            dlq_url: out(&outputs, "DeliveryDeadLetterQueueUrl"),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
            outputs,
            proxy,
        }
    }

    /// The environment a function binary needs to use this stack through
    /// the proxy.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.function_env();
        for (k, v) in env.iter_mut() {
            if k == "AWS_ENDPOINT_URL" {
                *v = self.proxy.endpoint();
            }
        }
        env.push(("WEBHOOKS_TABLE".into(), self.table.clone()));
        env.push(("DELIVERY_QUEUE_URL".into(), self.queue_url.clone()));
        env
    }

    pub fn store(&self) -> shared::adapters::DynamoStore {
        shared::adapters::DynamoStore::new(self.dynamodb.clone(), &self.table)
    }

    pub fn queue(&self) -> shared::adapters::SqsQueue {
        shared::adapters::SqsQueue::new(self.sqs.clone(), &self.queue_url)
    }

    /// Sends `bodies` to the delivery queue.
    pub async fn enqueue(&self, bodies: &[String]) {
        for body in bodies {
            let send = self.sqs.send_message().queue_url(&self.queue_url);
            send.message_body(body).send().await.expect("send");
        }
    }

    /// Sends `bodies` to the delivery queue and receives them back: real
    /// messages, whose receipt handles work.
    pub async fn enqueue_and_receive(&self, bodies: &[String]) -> Vec<Message> {
        self.enqueue(bodies).await;
        let msgs = self.drain(&self.queue_url, bodies.len()).await;
        assert_eq!(msgs.len(), bodies.len(), "every job received back");
        msgs
    }

    /// The SQS event Lambda's event source mapping sends for `msgs`.
    pub fn sqs_event(&self, msgs: &[Message]) -> Value {
        devstack::esm::event::event(msgs, &self.queue_arn)
    }

    /// Receives every message currently visible on `queue_url` (up to `max`).
    pub async fn drain(&self, queue_url: &str, max: usize) -> Vec<Message> {
        let mut all = Vec::new();
        let mut empty_rounds = 0;
        while all.len() < max && empty_rounds < 2 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                empty_rounds += 1;
            } else {
                empty_rounds = 0;
            }
            all.extend(msgs);
        }
        all
    }
}

pub use devstack::{free_port, sdk_config};

/// A receiver that waits `millis` before answering as `then` says: a slow
/// webhook endpoint.
pub async fn slow_receiver(millis: u64, then: Behaviour) -> Receiver {
    let slow = Behaviour::delay(std::time::Duration::from_millis(millis), then);
    Receiver::start(slow).await.expect("receiver starts")
}

/// Verifies a received webhook with the PyPI `standardwebhooks` library.
pub fn verify_with_standardwebhooks(
    secret: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), String> {
    devstack::verify_standardwebhooks(secret, headers, body).map_err(|e| e.to_string())
}
