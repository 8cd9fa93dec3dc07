//! The local stack's DynamoDB table and SQS queues, created with the SDK the
//! way template.yaml declares them: the one provisioning path of the tests,
//! the benchmark and `devstack up`. What the template says (key schema,
//! visibility timeouts, retention, redrive policies, parameter
//! defaults) is restated here once, and a drift test in the integration
//! tests (`stack_template`) reads template.yaml and fails when the two part.
//!
//! Physical names are the caller's prefix + the logical id, so tests sharing
//! one moto never collide.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    SseSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Map, Value};

use crate::DevstackError;

/// The template parameters the table and queues (or their callers) depend on,
/// with the template's defaults.
pub const PARAMETERS: [(&str, u32); 4] = [
    ("MaxAttempts", 6),
    ("DeliverTimeoutSeconds", 60),
    ("DeliverBatchSize", 1000),
    ("DeliverBatchingWindowSeconds", 5),
];
/// Overrides of parameters the template no longer has, accepted and ignored
/// so older callers keep working.
const RETIRED: [&str; 1] = ["EnableRegistryEventsQueue"];
/// The values DeliverTimeoutSeconds may take (the template's AllowedValues).
pub const DELIVER_TIMEOUTS: [u32; 9] = [15, 30, 60, 90, 120, 180, 300, 600, 900];

/// The table's logical id, also its output key.
pub const TABLE: &str = "WebhooksTable";
/// Hash and range key attribute names (both strings).
pub const KEYS: [&str; 2] = ["pk", "sk"];

/// One queue as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Logical id (and name suffix).
    pub logical_id: &'static str,
    /// VisibilityTimeout in seconds; `None` leaves SQS's default (30 s).
    pub visibility_secs: Option<u32>,
    /// MessageRetentionPeriod in seconds.
    pub retention_secs: u32,
    /// The dead-letter queue's logical id and maxReceiveCount.
    pub redrive: Option<(&'static str, u32)>,
}

/// Resolved parameter values (template defaults with the caller's overrides).
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
            let slot = values
                .iter_mut()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| bad("not a parameter of the local stack"))?;
            slot.1 = value.parse().map_err(|_| bad("not a number"))?;
        }
        let params = Params(values);
        if !(1..=1000).contains(&params.get("MaxAttempts")) {
            return Err(DevstackError::Setup("MaxAttempts must be 1..=1000".into()));
        }
        if !DELIVER_TIMEOUTS.contains(&params.get("DeliverTimeoutSeconds")) {
            return Err(DevstackError::Setup(format!(
                "DeliverTimeoutSeconds must be one of {DELIVER_TIMEOUTS:?}"
            )));
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
    /// timeout, as Lambda requires for an SQS event source (the template's
    /// DeliverTimeouts mapping).
    pub fn delivery_visibility_secs(&self) -> u32 {
        6 * self.get("DeliverTimeoutSeconds")
    }

    /// The four queues, dead-letter queues first (a redrive policy names an
    /// existing queue).
    pub fn queues(&self) -> [QueueSpec; 4] {
        const FOUR_DAYS: u32 = 345_600;
        const FOURTEEN_DAYS: u32 = 1_209_600;
        let dlq = |logical_id| QueueSpec {
            logical_id,
            visibility_secs: None,
            retention_secs: FOURTEEN_DAYS,
            redrive: None,
        };
        [
            dlq("DeliveryDeadLetterQueue"),
            dlq("RegistryEventsDeadLetterQueue"),
            QueueSpec {
                logical_id: "DeliveryQueue",
                visibility_secs: Some(self.delivery_visibility_secs()),
                retention_secs: FOUR_DAYS,
                redrive: Some(("DeliveryDeadLetterQueue", self.get("MaxAttempts"))),
            },
            // 6 x the ingest function's 30 s timeout; five receives.
            QueueSpec {
                logical_id: "RegistryEventsQueue",
                visibility_secs: Some(180),
                retention_secs: FOUR_DAYS,
                redrive: Some(("RegistryEventsDeadLetterQueue", 5)),
            },
        ]
    }
}

/// Creates the table and the four queues under `prefix` at the endpoint of
/// `sdk` and returns the outputs: `WebhooksTable` (the table name),
/// `<Queue>Url`/`<Queue>Arn`/`<Queue>Name` for each queue, and `Parameters`
/// (name → value as a string, as CloudFormation renders them).
pub async fn create(
    sdk: &aws_config::SdkConfig,
    prefix: &str,
    overrides: &[&str],
) -> Result<Map<String, Value>, DevstackError> {
    let params = Params::parse(overrides)?;
    let mut outputs = Map::new();
    let table = format!("{prefix}{TABLE}");
    create_table(&aws_sdk_dynamodb::Client::new(sdk), &table).await?;
    outputs.insert(TABLE.into(), Value::String(table));
    let sqs = aws_sdk_sqs::Client::new(sdk);
    for queue in params.queues() {
        let name = format!("{prefix}{}", queue.logical_id);
        let mut attributes = vec![
            (
                QueueAttributeName::MessageRetentionPeriod,
                queue.retention_secs.to_string(),
            ),
            (QueueAttributeName::SqsManagedSseEnabled, "true".to_owned()),
        ];
        if let Some(secs) = queue.visibility_secs {
            attributes.push((QueueAttributeName::VisibilityTimeout, secs.to_string()));
        }
        if let Some((dlq, max_receive_count)) = queue.redrive {
            let arn = outputs
                .get(&format!("{dlq}Arn"))
                .cloned()
                .unwrap_or_default();
            let policy =
                json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count });
            attributes.push((QueueAttributeName::RedrivePolicy, policy.to_string()));
        }
        let (url, arn) = create_queue(&sqs, &name, attributes).await?;
        outputs.insert(format!("{}Url", queue.logical_id), Value::String(url));
        outputs.insert(format!("{}Arn", queue.logical_id), Value::String(arn));
        outputs.insert(format!("{}Name", queue.logical_id), Value::String(name));
    }
    let rendered = params
        .0
        .iter()
        .map(|(n, v)| ((*n).to_owned(), json!(v.to_string())));
    outputs.insert("Parameters".into(), Value::Object(rendered.collect()));
    Ok(outputs)
}

async fn create_table(db: &aws_sdk_dynamodb::Client, name: &str) -> Result<(), DevstackError> {
    let failed = |what: &str, e: String| DevstackError::Setup(format!("{what} {name}: {e}"));
    let mut request = db
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .sse_specification(SseSpecification::builder().enabled(true).build());
    for (key, key_type) in KEYS.into_iter().zip([KeyType::Hash, KeyType::Range]) {
        let attribute = AttributeDefinition::builder()
            .attribute_name(key)
            .attribute_type(ScalarAttributeType::S)
            .build();
        let element = KeySchemaElement::builder()
            .attribute_name(key)
            .key_type(key_type)
            .build();
        let (attribute, element) = attribute
            .and_then(|a| element.map(|k| (a, k)))
            .map_err(|e| failed("describing", e.to_string()))?;
        request = request.attribute_definitions(attribute).key_schema(element);
    }
    request
        .send()
        .await
        .map_err(|e| failed("creating", DisplayErrorContext(e).to_string()))?;
    Ok(())
}

/// Creates one queue; returns its URL and ARN.
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<(String, String), DevstackError> {
    let failed = |e: String| DevstackError::Setup(format!("creating queue {name}: {e}"));
    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
    let url = created
        .queue_url
        .ok_or_else(|| failed("no QueueUrl".into()))?;
    let described = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
    let arn = described
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| failed("no QueueArn".into()))?;
    Ok((url, arn))
}

/// The `MemorySize` (MiB) template.yaml gives the function with logical id
/// `function`: its own, else the `Globals` one. Read as text (the template's
/// short tags need no YAML engine for this one key).
pub fn template_memory_size(template: &str, function: &str) -> Option<u64> {
    // The lines of the block that starts at `header` (at `indent` spaces)
    // and runs until the next line at that indent or less.
    let block = |header: &str, indent: usize| -> Option<Vec<&str>> {
        let mut lines = template.lines().skip_while(|l| l.trim_end() != header);
        lines.next()?;
        Some(
            lines
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .collect(),
        )
    };
    let memory = |lines: Vec<&str>| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("MemorySize:"))
            .and_then(|v| v.trim().parse().ok())
    };
    block(&format!("  {function}:"), 2)
        .and_then(memory)
        .or_else(|| block("Globals:", 0).and_then(memory))
}
