//! moto standing in for DynamoDB and SQS, with the stack's resources in it.
//! [`Moto`] runs `scripts/moto_server.py` on a free port under a `sh`
//! watchdog that kills it when our end of its stdin pipe closes (the
//! [`Moto`] dropped, or this process gone), so [`Moto::shared`] can live in a
//! `static`. [`Moto::provision`] makes the table and queues as template.yaml
//! declares them (the drift test `stack_template` checks it), named prefix +
//! logical id.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    SseSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use crate::paths::{self, lock, REGION};
use crate::DevstackError;

/// Runs the command given as arguments with stdin from /dev/null, kills it
/// when our stdin reaches EOF, and exits with its status when it ends first.
const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- & server=$!
( read -r _ <&3; kill "$server" 2>/dev/null ) & reader=$!
exec 3<&-
wait "$server"; status=$?
kill "$reader" 2>/dev/null; exit "$status"
"#;

static SHARED: OnceCell<Moto> = OnceCell::const_new();

pub struct Moto {
    endpoint: String,
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl Moto {
    /// Starts a private moto server and waits until it answers; a port race
    /// (another process grabbing the probed port) is retried twice.
    pub async fn start() -> Result<Moto, DevstackError> {
        let mut last_error = DevstackError::Setup("moto not started".into());
        for _ in 0..3 {
            match Self::start_on(paths::free_port()?).await {
                Ok(moto) => return Ok(moto),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// A moto server shared by the whole process (started on first use, and
    /// again on the next call if that failed); tests isolate themselves by
    /// resource name prefixes.
    pub async fn shared() -> Result<&'static Moto, DevstackError> {
        SHARED.get_or_try_init(Moto::start).await
    }

    /// Starts moto on a fixed `port` (`devstack up` uses the one
    /// `events/local.env` names), failing when something already answers there.
    pub async fn start_on(port: u16) -> Result<Moto, DevstackError> {
        let endpoint = format!("http://127.0.0.1:{port}");
        if answers_http(&endpoint).await {
            let why = format!("127.0.0.1:{port} is already in use (another `devstack up`?)");
            return Err(DevstackError::Setup(why));
        }
        let script = paths::in_repo("scripts/moto_server.py");
        let log_path = paths::in_repo(".devstack/logs").join(format!("moto-{port}.log"));
        let log = (log_path.parent().map_or(Ok(()), std::fs::create_dir_all))
            .and_then(|()| std::fs::File::create(&log_path))
            .and_then(|log| Ok((log.try_clone()?, log)))
            .map_err(|e| DevstackError::io(format!("creating {}", log_path.display()), e))?;
        let mut moto = Command::new("sh");
        moto.args(["-c", WATCHDOG, "devstack-moto"])
            .arg(paths::venv_python())
            .arg(&script);
        moto.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::piped());
        let spawning = format!("spawning {} (run scripts/tools.sh)", script.display());
        let mut child = moto
            .stdout(log.0)
            .stderr(log.1)
            .spawn()
            .map_err(|e| DevstackError::io(spawning, e))?;
        // Piped above, so always there.
        let watchdog = Mutex::new(child.stdin.take().map(|stdin| (child, stdin)));
        let moto = Moto { endpoint, watchdog };
        let started = Instant::now();
        let why = loop {
            let exited = lock(&moto.watchdog)
                .as_mut()
                .and_then(|(child, _)| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                break format!("exited ({status}) before answering");
            }
            if answers_http(&moto.endpoint).await {
                return Ok(moto);
            }
            if started.elapsed() > Duration::from_secs(60) {
                break "did not answer within 60 s".to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let log = paths::log_tail(&log_path, 20);
        Err(DevstackError::Setup(format!(
            "moto {why} (run scripts/tools.sh); log:\n{log}"
        )))
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration for this moto (see [`sdk_config`]). Build clients
    /// inside the runtime that uses them: their connection pools are tied to
    /// the tokio runtime they first ran on, and each `#[tokio::test]` has its own.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.endpoint).await
    }

    pub fn function_env(&self) -> Vec<(String, String)> {
        let credentials = [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ];
        let region = [("AWS_REGION", REGION), ("AWS_DEFAULT_REGION", REGION)];
        let all = [("AWS_ENDPOINT_URL", self.endpoint.as_str())]
            .into_iter()
            .chain(credentials)
            .chain(region);
        all.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// Creates the table and the four queues under `prefix` with template
    /// parameter overrides (`Name=Value`) and returns the outputs:
    /// `WebhooksTable` (the table name), `<Queue>Url`/`<Queue>Arn`/`<Queue>Name`
    /// for each queue, and `Parameters` (name → value as a string, as
    /// CloudFormation renders them).
    pub async fn provision(
        &self,
        prefix: &str,
        overrides: &[&str],
    ) -> Result<Map<String, Value>, DevstackError> {
        let (sdk, params) = (self.sdk_config().await, Params::parse(overrides)?);
        let mut outputs = Map::new();
        let table = format!("{prefix}{TABLE}");
        create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await?;
        outputs.insert(TABLE.into(), Value::String(table));
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for (id, visibility_secs, redrive) in params.queues() {
            let name = format!("{prefix}{id}");
            let retention = if redrive.is_some() {
                345_600
            } else {
                1_209_600
            };
            let mut attributes = vec![
                (
                    QueueAttributeName::MessageRetentionPeriod,
                    retention.to_string(),
                ),
                (QueueAttributeName::SqsManagedSseEnabled, "true".to_owned()),
            ];
            if let Some(secs) = visibility_secs {
                attributes.push((QueueAttributeName::VisibilityTimeout, secs.to_string()));
            }
            if let Some((dlq, max_receive_count)) = redrive {
                let arn = outputs
                    .get(&format!("{dlq}Arn"))
                    .cloned()
                    .unwrap_or_default();
                let policy =
                    json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count });
                attributes.push((QueueAttributeName::RedrivePolicy, policy.to_string()));
            }
            let failed = |e: String| DevstackError::Setup(format!("creating queue {name}: {e}"));
            let created = sqs
                .create_queue()
                .queue_name(&name)
                .set_attributes(Some(attributes.into_iter().collect()));
            let created = created
                .send()
                .await
                .map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
            let url = created
                .queue_url
                .ok_or_else(|| failed("no QueueUrl".into()))?;
            let described = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn);
            let described = described
                .send()
                .await
                .map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
            let arn = described
                .attributes
                .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn));
            let arn = arn.ok_or_else(|| failed("no QueueArn".into()))?;
            for (output, value) in [("Url", url), ("Arn", arn), ("Name", name)] {
                outputs.insert(format!("{id}{output}"), Value::String(value));
            }
        }
        let rendered = params
            .0
            .iter()
            .map(|(n, v)| (n.to_string(), json!(v.to_string())));
        outputs.insert("Parameters".into(), Value::Object(rendered.collect()));
        Ok(outputs)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let watchdog = self.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
        let Some((mut child, stdin)) = watchdog.take() else {
            return;
        };
        // EOF on the watchdog's stdin makes it kill moto and exit.
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        // Last resort; moto itself may then outlive us until its next request.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An SDK configuration for the moto-compatible endpoint (moto itself, or
/// an `AwsProxy` in front of it): us-east-1 and static `testing` credentials,
/// nothing read from the developer's profile; a plain-HTTP client (moto and
/// the proxy speak HTTP; the workspace links no SDK default HTTPS client).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    let credentials =
        aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "devstack");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials)
        .load()
        .await
}

async fn answers_http(endpoint: &str) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build();
    let Ok(client) = client else { return false };
    client
        .get(format!("{endpoint}/moto-api/"))
        .send()
        .await
        .is_ok()
}

/// The template parameters the table and queues (or their callers) depend on,
/// with the template's defaults.
pub const PARAMETERS: [(&str, u32); 4] = [
    ("MaxAttempts", 6),
    ("DeliverTimeoutSeconds", 60),
    ("DeliverBatchSize", 1000),
    ("DeliverBatchingWindowSeconds", 5),
];
/// Parameters the template no longer has, accepted and ignored for old callers.
const RETIRED: [&str; 1] = ["EnableRegistryEventsQueue"];
/// The values DeliverTimeoutSeconds may take (the template's AllowedValues).
pub const DELIVER_TIMEOUTS: [u32; 9] = [15, 30, 60, 90, 120, 180, 300, 600, 900];
/// The table's logical id, also its output key.
pub const TABLE: &str = "WebhooksTable";
/// Hash and range key attribute names (both strings).
pub const KEYS: [&str; 2] = ["pk", "sk"];

/// One queue as the template declares it: logical id (and name suffix),
/// VisibilityTimeout in seconds (`None`: SQS's default, 30 s), and the
/// dead-letter queue's logical id and maxReceiveCount. Queues with a
/// dead-letter queue keep messages 4 days, dead-letter queues 14.
pub type QueueSpec = (&'static str, Option<u32>, Option<(&'static str, u32)>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, u32)>);

impl Params {
    /// Parses `Name=Value` overrides over the defaults, checking them as the
    /// template's constraints do.
    pub fn parse(overrides: &[&str]) -> Result<Params, DevstackError> {
        let mut values = PARAMETERS.to_vec();
        for o in overrides {
            let bad = |why: &str| DevstackError::Setup(format!("parameter {o:?}: {why}"));
            let (name, value) = o
                .split_once('=')
                .ok_or_else(|| bad("expected Name=Value"))?;
            if RETIRED.contains(&name) {
                continue;
            }
            let slot = values.iter_mut().find(|(n, _)| *n == name);
            let slot = slot.ok_or_else(|| bad("not a parameter of the local stack"))?;
            slot.1 = value.parse().map_err(|_| bad("not a number"))?;
        }
        let params = Params(values);
        if !(1..=1000).contains(&params.get("MaxAttempts")) {
            return Err(DevstackError::Setup("MaxAttempts must be 1..=1000".into()));
        }
        if !DELIVER_TIMEOUTS.contains(&params.get("DeliverTimeoutSeconds")) {
            let allowed = format!("DeliverTimeoutSeconds must be one of {DELIVER_TIMEOUTS:?}");
            return Err(DevstackError::Setup(allowed));
        }
        Ok(params)
    }

    /// The value of one of [`PARAMETERS`] (0 for a name that is not one).
    pub fn get(&self, name: &str) -> u32 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// The delivery queue's visibility timeout: 6 x the deliver function's
    /// timeout, as Lambda requires for an SQS event source.
    pub fn delivery_visibility_secs(&self) -> u32 {
        6 * self.get("DeliverTimeoutSeconds")
    }

    /// The four queues, dead-letter queues first (a redrive policy names an
    /// existing queue). The registry-events queue: 6 x the ingest function's
    /// 30 s timeout; five receives.
    pub fn queues(&self) -> [QueueSpec; 4] {
        let delivery_redrive = ("DeliveryDeadLetterQueue", self.get("MaxAttempts"));
        [
            ("DeliveryDeadLetterQueue", None, None),
            ("RegistryEventsDeadLetterQueue", None, None),
            (
                "DeliveryQueue",
                Some(self.delivery_visibility_secs()),
                Some(delivery_redrive),
            ),
            (
                "RegistryEventsQueue",
                Some(180),
                Some(("RegistryEventsDeadLetterQueue", 5)),
            ),
        ]
    }
}

async fn create_table(db: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), DevstackError> {
    let failed = |what: &str, e: String| DevstackError::Setup(format!("{what} {name}: {e}"));
    let sse = SseSpecification::builder().enabled(true).build();
    let mut request = db
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (key, key_type) in KEYS.into_iter().zip([KeyType::Hash, KeyType::Range]) {
        let attribute = AttributeDefinition::builder()
            .attribute_name(key)
            .attribute_type(ScalarAttributeType::S);
        let element = KeySchemaElement::builder()
            .attribute_name(key)
            .key_type(key_type)
            .build();
        let (attribute, element) = (attribute.build().and_then(|a| element.map(|k| (a, k))))
            .map_err(|e| failed("describing", e.to_string()))?;
        request = request.attribute_definitions(attribute).key_schema(element);
    }
    let created = request.sse_specification(sse).send().await;
    created.map_err(|e| failed("creating", DisplayErrorContext(e).to_string()))?;
    Ok(())
}

/// The `MemorySize` (MiB) template.yaml gives the function with logical id
/// `function`: its own, else the `Globals` one. Read as text (the template's
/// short tags need no YAML engine for this one key).
pub fn template_memory_size(template: &str, function: &str) -> Option<u64> {
    // The MemorySize line in the block that starts at `header` (at `indent`
    // spaces) and runs until the next line at that indent or less.
    let memory = |header: &str, indent: usize| {
        let lines = template
            .lines()
            .skip_while(|l| l.trim_end() != header)
            .skip(1);
        let mut block =
            lines.take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent);
        block
            .find_map(|l| l.trim().strip_prefix("MemorySize:"))
            .and_then(|v| v.trim().parse().ok())
    };
    memory(&format!("  {function}:"), 2).or_else(|| memory("Globals:", 0))
}
