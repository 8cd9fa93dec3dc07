//! moto standing in for DynamoDB and SQS, with the stack's resources in it.
//! [`Moto`] runs `scripts/moto_server.py` (on a port it binds itself) under a `sh`
//! watchdog that kills it when our end of its stdin pipe closes (the
//! [`Moto`] dropped, or this process gone), so [`Moto::shared`] can live in a
//! `static`. [`Moto::provision`] feeds template.yaml's table and queues to
//! moto's own CloudFormation, so the local stack is the template's.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
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
    /// Starts a private moto server on a port the OS picks when moto binds
    /// it, and waits until it answers. moto binds it itself (port 0) because
    /// a port probed free here and bound by moto a second later could be
    /// taken in between by any server of a test running beside it, and the
    /// readiness probe would then find that server instead.
    pub async fn start() -> Result<Moto, DevstackError> {
        Self::spawn(0).await
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
        if answers_http(&format!("http://127.0.0.1:{port}")).await {
            let why = format!("127.0.0.1:{port} is already in use (another `devstack up`?)");
            return Err(DevstackError::Setup(why));
        }
        Self::spawn(port).await
    }

    /// Runs moto on `port` (0: the OS picks one) and waits until the port
    /// it printed (`moto listening on 127.0.0.1:PORT`) answers.
    async fn spawn(port: u16) -> Result<Moto, DevstackError> {
        let script = paths::in_repo("scripts/moto_server.py");
        let name = match port {
            0 => format!("moto-{}.log", paths::random_hex(4)),
            port => format!("moto-{port}.log"),
        };
        let log_path = paths::in_repo(".devstack/logs").join(name);
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
        // Dropped on an error below, which stops the server.
        let mut moto = Moto {
            endpoint: String::new(),
            watchdog,
        };
        let started = Instant::now();
        let why = loop {
            let exited = lock(&moto.watchdog)
                .as_mut()
                .and_then(|(child, _)| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                break format!("exited ({status}) before answering");
            }
            if moto.endpoint.is_empty() {
                moto.endpoint = listening_on(&log_path).unwrap_or_default();
            }
            if !moto.endpoint.is_empty() && answers_http(&moto.endpoint).await {
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

    /// Creates template.yaml's table and queues (its `AWS::DynamoDB::Table`
    /// and `AWS::SQS::Queue` resources, as declared) through moto's
    /// CloudFormation, named `prefix` + logical id, with parameter overrides
    /// (`Name=Value`, checked against the template's constraints, which moto
    /// leaves unchecked). Returns the outputs: `WebhooksTable` (the table
    /// name), `<Queue>Url`/`<Queue>Arn`/`<Queue>Name` for each queue (the URL
    /// as moto answers it at its endpoint), and `Parameters` (every template
    /// parameter with a value, as a string).
    pub async fn provision(
        &self,
        prefix: &str,
        overrides: &[&str],
    ) -> Result<Map<String, Value>, DevstackError> {
        let template = template()?;
        let params = parameters(&template, overrides)?;
        let feed = feed(&template, prefix);
        self.create_stack(&format!("{prefix}stack"), &feed, &params)
            .await?;
        let failed = |e: String| DevstackError::Setup(format!("stack {prefix}: {e}"));
        let sqs = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let mut outputs = Map::new();
        for (id, resource) in feed["Resources"].as_object().into_iter().flatten() {
            let name = format!("{prefix}{id}");
            if resource["Type"] != "AWS::SQS::Queue" {
                outputs.insert(id.clone(), json!(name));
                continue;
            }
            let url = sqs.get_queue_url().queue_name(&name).send().await;
            let url = url.map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
            let url = url.queue_url.unwrap_or_default();
            let attributes = sqs.get_queue_attributes().queue_url(&url);
            let described = attributes
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await;
            let described = described.map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
            let arn = described.attributes.unwrap_or_default();
            let arn = arn.get(&QueueAttributeName::QueueArn).cloned();
            outputs.insert(format!("{id}Url"), json!(url));
            outputs.insert(format!("{id}Arn"), json!(arn.unwrap_or_default()));
            outputs.insert(format!("{id}Name"), json!(name));
        }
        outputs.insert("Parameters".into(), Value::Object(params));
        Ok(outputs)
    }

    /// CreateStack in moto's CloudFormation, with the values of the
    /// parameters `template` declares. A plain form POST rather than
    /// `aws-sdk-cloudformation`: this one call is all devstack needs, and
    /// that crate alone added about 90 s of compiling to every CI run. moto
    /// reads which service is called from the credential scope of the
    /// `Authorization` header and checks no signature.
    async fn create_stack(
        &self,
        stack: &str,
        template: &Value,
        params: &Map<String, Value>,
    ) -> Result<(), DevstackError> {
        let failed = |e: String| DevstackError::Setup(format!("creating stack {stack}: {e}"));
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "CreateStack")
            .append_pair("Version", "2010-05-15")
            .append_pair("StackName", stack)
            .append_pair("TemplateBody", &template.to_string());
        let declared = template["Parameters"].as_object().into_iter().flatten();
        for (k, (name, _)) in declared.enumerate() {
            let value = params.get(name).and_then(Value::as_str).unwrap_or_default();
            form.append_pair(&format!("Parameters.member.{}.ParameterKey", k + 1), name)
                .append_pair(
                    &format!("Parameters.member.{}.ParameterValue", k + 1),
                    value,
                );
        }
        let scope = format!("testing/20260101/{REGION}/cloudformation/aws4_request");
        let authorization =
            format!("AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0");
        let answer = local_http()
            .map_err(|e| failed(e.to_string()))?
            .post(format!("{}/", self.endpoint))
            .header("authorization", authorization)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        match status.is_success() {
            true => Ok(()),
            false => Err(failed(format!("{status}: {text}"))),
        }
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

/// `http://HOST:PORT` from the line moto_server.py prints once it holds its port.
fn listening_on(log_path: &std::path::Path) -> Option<String> {
    let log = std::fs::read_to_string(log_path).ok()?;
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("moto listening on "))?;
    Some(format!("http://{}", line.trim()))
}

/// A client for moto on 127.0.0.1: no proxy, and a bound on every call.
fn local_http() -> reqwest::Result<reqwest::Client> {
    let client = reqwest::Client::builder().no_proxy();
    client.timeout(Duration::from_secs(30)).build()
}

async fn answers_http(endpoint: &str) -> bool {
    let Ok(client) = local_http() else {
        return false;
    };
    client
        .get(format!("{endpoint}/moto-api/"))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .is_ok()
}

/// template.yaml as JSON, its short tags (`!Ref x`, `!GetAtt a.b`, `!Sub …`)
/// in their long form (`{"Ref": …}`, `{"Fn::GetAtt": [a, b]}`, `{"Fn::Sub": …}`).
/// Read and parsed once per process: every test's stack is made from it.
pub fn template() -> Result<Value, DevstackError> {
    static PARSED: OnceLock<Result<Value, String>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        let path = paths::in_repo("template.yaml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(long_form(yaml))
    });
    parsed.clone().map_err(DevstackError::Setup)
}

fn long_form(yaml: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Yaml;
    match yaml {
        Yaml::Tagged(tagged) => {
            let (tag, value) = (tagged.tag.to_string(), long_form(tagged.value));
            match (tag.trim_start_matches('!'), value) {
                ("Ref", value) => json!({ "Ref": value }),
                ("GetAtt", Value::String(path)) => {
                    json!({ "Fn::GetAtt": path.splitn(2, '.').collect::<Vec<_>>() })
                }
                (function, value) => json!({ format!("Fn::{function}"): value }),
            }
        }
        Yaml::Mapping(map) => {
            let key = |k: Yaml| match k {
                Yaml::String(s) => s,
                other => serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            };
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (key(k), long_form(v)))
                    .collect(),
            )
        }
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        scalar => serde_json::to_value(scalar).unwrap_or(Value::Null),
    }
}

/// A scalar as CloudFormation passes parameter values: a string.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// Every template parameter with a value (its default, or an override),
/// overrides checked as CloudFormation checks them: a declared name, and
/// within `AllowedValues`, `MinValue` and `MaxValue`.
fn parameters(template: &Value, overrides: &[&str]) -> Result<Map<String, Value>, DevstackError> {
    let declared = template["Parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let default = |(name, d): (&String, &Value)| Some((name.clone(), json!(text(&d["Default"])?)));
    let mut values: Map<String, Value> = declared.iter().filter_map(default).collect();
    for o in overrides {
        let bad = |why: &str| DevstackError::Setup(format!("parameter {o:?}: {why}"));
        let (name, value) = o
            .split_once('=')
            .ok_or_else(|| bad("expected Name=Value"))?;
        let d = declared
            .get(name)
            .ok_or_else(|| bad("not a template parameter"))?;
        let allowed = d["AllowedValues"].as_array();
        let allowed = allowed.is_none_or(|a| a.iter().any(|v| text(v).as_deref() == Some(value)));
        let number = value.parse::<f64>().ok();
        let in_range = d["Type"] != "Number"
            || number.is_some_and(|x| {
                d["MinValue"].as_f64().is_none_or(|min| x >= min)
                    && d["MaxValue"].as_f64().is_none_or(|max| x <= max)
            });
        if !(allowed && in_range) {
            return Err(bad("outside the template's constraints"));
        }
        values.insert(name.to_owned(), json!(value));
    }
    Ok(values)
}

/// What moto's CloudFormation is fed: the template's table and queues named
/// `prefix` + logical id, the mappings and the parameters they use (as
/// strings: moto's `Fn::FindInMap` misses a mapping key given as a Number).
fn feed(template: &Value, prefix: &str) -> Value {
    let kinds = [
        ("AWS::DynamoDB::Table", "TableName"),
        ("AWS::SQS::Queue", "QueueName"),
    ];
    let mut resources = Map::new();
    for (id, resource) in template["Resources"].as_object().into_iter().flatten() {
        let Some((_, name)) = kinds.iter().find(|(kind, _)| resource["Type"] == *kind) else {
            continue;
        };
        let mut resource = resource.clone();
        resource["Properties"][name] = json!(format!("{prefix}{id}"));
        resources.insert(id.clone(), resource);
    }
    let text = Value::Object(resources.clone()).to_string();
    let declared = template["Parameters"].as_object().into_iter().flatten();
    let used = declared.filter(|(name, _)| text.contains(&json!({ "Ref": name }).to_string()));
    let parameters: Map<String, Value> = used
        .map(|(name, _)| (name.clone(), json!({ "Type": "String" })))
        .collect();
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Mappings": template["Mappings"],
        "Parameters": parameters,
        "Resources": resources,
    })
}

/// The `MemorySize` (MiB) template.yaml gives the function with logical id
/// `function`: its own, else the `Globals` one.
pub fn template_memory_size(template: &Value, function: &str) -> Option<u64> {
    let own = &template["Resources"][function]["Properties"]["MemorySize"];
    own.as_u64()
        .or_else(|| template["Globals"]["Function"]["MemorySize"].as_u64())
}
