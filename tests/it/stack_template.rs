//! The local stack against template.yaml: devstack feeds the template's
//! table and queues to moto's CloudFormation (`Moto::provision`, the one path
//! of tests, bench and `devstack up`), and this checks what moto made of
//! them, property by property, against the template read with a YAML loader
//! that keeps the short tags (`!Ref`, `!GetAtt`, `!FindInMap`), resolved
//! here for the few forms the table and queues use. A property moto ignores
//! fails here; so does a broken visibility rule in the template itself.

use std::collections::BTreeSet;

use alin_tests::{repo_root, Stack};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value as Json};
use serde_yaml::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml parses with its short tags")
}

/// The template's resources of `kind`, by logical id.
fn resources<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    let all = t["Resources"].as_mapping().expect("Resources");
    all.iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("logical id"), &r["Properties"]))
        .collect()
}

/// A scalar as text (`5`, `"5"` and `true` alike).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Resolves the intrinsic functions the table and queues use, with the
/// parameter values the stack was created with and its outputs for ARNs.
fn resolve(
    t: &Value,
    v: &Value,
    params: &Map<String, Json>,
    outputs: &Map<String, Json>,
) -> String {
    let Value::Tagged(tagged) = v else {
        return text(v);
    };
    let args = &tagged.value;
    match tagged.tag.to_string().as_str() {
        "!Ref" => {
            let name = text(args);
            match params.get(&name).and_then(Json::as_str) {
                Some(value) => value.to_owned(),
                None => text(&t["Parameters"][name.as_str()]["Default"]),
            }
        }
        "!GetAtt" => {
            let (id, attribute) = text(args)
                .split_once('.')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .expect("Id.Attr");
            assert_eq!(attribute, "Arn", "only ARNs are referenced");
            outputs[&format!("{id}Arn")]
                .as_str()
                .expect("ARN output")
                .to_owned()
        }
        "!FindInMap" => {
            let [map, key, attribute] = args.as_sequence().expect("three arguments").as_slice()
            else {
                panic!("FindInMap takes three arguments");
            };
            let key = resolve(t, key, params, outputs);
            text(&t["Mappings"][text(map).as_str()][key.as_str()][text(attribute).as_str()])
        }
        other => panic!("unsupported tag {other} in a table or queue"),
    }
}

#[test]
fn the_delivery_queue_visibility_is_six_times_every_allowed_deliver_timeout() {
    let t = template();
    let allowed: Vec<u32> = t["Parameters"]["DeliverTimeoutSeconds"]["AllowedValues"]
        .as_sequence()
        .expect("AllowedValues")
        .iter()
        .map(|v| text(v).parse().expect("a number"))
        .collect();
    // Lambda needs the visibility at 6 x the function's timeout; the
    // template looks it up: a row per allowed value, each agreeing.
    let rows = t["Mappings"]["DeliverTimeouts"]
        .as_mapping()
        .expect("DeliverTimeouts");
    assert_eq!(rows.len(), allowed.len());
    for seconds in allowed {
        let row = &rows[seconds.to_string().as_str()];
        assert_eq!(
            text(&row["QueueVisibilityTimeout"]),
            (6 * seconds).to_string()
        );
    }
}

async fn check_against_template(hint: &str, overrides: &[&str]) {
    let t = template();
    let stack = Stack::with_params(hint, overrides).await;
    let outputs = &stack.outputs;
    let params = outputs["Parameters"]
        .as_object()
        .expect("Parameters output");

    let tables = resources(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let (id, props) = tables[0];
    let table = stack
        .dynamodb
        .describe_table()
        .table_name(outputs[id].as_str().expect("table output"))
        .send()
        .await
        .expect("table exists")
        .table
        .expect("described");
    let pairs = |seq: &Value, a: &str, b: &str| -> BTreeSet<(String, String)> {
        seq.as_sequence()
            .expect("a list")
            .iter()
            .map(|e| (text(&e[a]), text(&e[b])))
            .collect()
    };
    let live_keys: BTreeSet<_> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        live_keys,
        pairs(&props["KeySchema"], "AttributeName", "KeyType")
    );
    let live_attributes: BTreeSet<_> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        live_attributes,
        pairs(
            &props["AttributeDefinitions"],
            "AttributeName",
            "AttributeType"
        )
    );
    let billing = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map(|m| m.as_str().to_owned());
    assert_eq!(billing, Some(text(&props["BillingMode"])));
    // No item expires, so the template declares no TTL and none is set.
    assert!(props.get("TimeToLiveSpecification").is_none());
    let ttl = stack
        .dynamodb
        .describe_time_to_live()
        .table_name(table.table_name().unwrap_or_default())
        .send()
        .await
        .expect("TTL described")
        .time_to_live_description
        .and_then(|d| d.time_to_live_status)
        .map(|s| s.as_str().to_owned());
    assert_ne!(ttl.as_deref(), Some("ENABLED"));

    let queues = resources(&t, "AWS::SQS::Queue");
    let declared: BTreeSet<&str> = queues.iter().map(|(id, _)| *id).collect();
    let created: BTreeSet<&str> = outputs
        .keys()
        .filter_map(|k| k.strip_suffix("Url"))
        .collect();
    assert_eq!(
        created, declared,
        "devstack creates exactly the template's queues"
    );
    for (id, props) in queues {
        let url = outputs[&format!("{id}Url")]
            .as_str()
            .expect("queue URL output");
        let mut live = stack
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .expect("queue exists")
            .attributes
            .unwrap_or_default();
        let mut attribute = |name| live.remove(&name).unwrap_or_default();
        let expect = |key: &str, default: &str| match props.get(key) {
            Some(v) => resolve(&t, v, params, outputs),
            None => default.to_owned(),
        };
        assert_eq!(
            attribute(QueueAttributeName::VisibilityTimeout),
            expect("VisibilityTimeout", "30"),
            "{id}"
        );
        assert_eq!(
            attribute(QueueAttributeName::MessageRetentionPeriod),
            expect("MessageRetentionPeriod", "345600"),
            "{id}"
        );
        let live_redrive = attribute(QueueAttributeName::RedrivePolicy);
        match props.get("RedrivePolicy") {
            None => assert_eq!(live_redrive, "", "{id} has no redrive policy"),
            Some(policy) => {
                let live: Json = serde_json::from_str(&live_redrive).expect("redrive JSON");
                assert_eq!(
                    live["deadLetterTargetArn"].as_str(),
                    Some(resolve(&t, &policy["deadLetterTargetArn"], params, outputs).as_str()),
                    "{id}"
                );
                assert_eq!(
                    live["maxReceiveCount"].to_string().trim_matches('"'),
                    resolve(&t, &policy["maxReceiveCount"], params, outputs),
                    "{id}"
                );
            }
        }
    }
}

#[tokio::test]
async fn provisioned_stack_matches_the_template_with_defaults() {
    check_against_template("drift-default", &[]).await;
}

#[tokio::test]
async fn provisioned_stack_matches_the_template_with_overrides() {
    check_against_template(
        "drift-params",
        &["MaxAttempts=2", "DeliverTimeoutSeconds=15"],
    )
    .await;
}

#[tokio::test]
async fn parameters_outside_the_templates_constraints_are_refused() {
    let moto = devstack::moto::Moto::shared().await.expect("moto");
    for bad in [
        "NoSuchParameter=1",
        "DeliverTimeoutSeconds=16",
        "MaxAttempts=0",
    ] {
        assert!(
            moto.provision("drift-bad-", &[bad]).await.is_err(),
            "{bad} accepted"
        );
    }
}
