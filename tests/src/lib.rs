//! Shared harness for the integration tests: a moto server per test binary,
//! a fresh set of resources per test (created from `template.yaml` under a
//! unique prefix), and a counting/fault-injecting proxy per test between the
//! SDK and moto so every test can count its own AWS calls exactly.

use std::path::PathBuf;

use devstack::aws_proxy::AwsProxy;
use devstack::moto::Moto;
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
        let moto = Moto::shared().await.expect("moto starts");
        let prefix = format!("{hint}-{:08x}-", rand::random::<u32>());
        let outputs = if params.is_empty() {
            moto.create_stack(&repo_root().join("template.yaml"), &prefix)
                .await
                .expect("stack created")
        } else {
            create_with_params(moto, &prefix, params)
        };
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

    /// Receives every message currently visible on `queue_url` (up to `max`).
    pub async fn drain(&self, queue_url: &str, max: usize) -> Vec<aws_sdk_sqs::types::Message> {
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

fn create_with_params(moto: &Moto, prefix: &str, params: &[&str]) -> Map<String, Value> {
    let root = repo_root();
    let mut cmd = std::process::Command::new(root.join(".venv/bin/python"));
    cmd.arg(root.join("scripts/stack_resources.py"))
        .args(["create", "--endpoint", moto.endpoint(), "--template"])
        .arg(root.join("template.yaml"))
        .args(["--prefix", prefix]);
    for p in params {
        cmd.args(["--param", p]);
    }
    let out = cmd.output().expect("stack script runs");
    assert!(
        out.status.success(),
        "stack script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stack script prints JSON")
}

/// An SDK configuration pointing at `endpoint` with test credentials.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

/// Runs `scripts/verify_signature.py` (the PyPI `standardwebhooks` library)
/// on a received request; `Ok` when it verifies.
pub fn verify_with_standardwebhooks(
    secret: &str,
    headers: &[(String, String)],
    body: &str,
) -> Result<(), String> {
    use std::io::Write as _;
    let root = repo_root();
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let input =
        serde_json::json!({ "secret": secret, "headers": headers, "body": body }).to_string();
    let mut child = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/verify_signature.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
