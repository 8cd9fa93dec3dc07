//! The template refuses parameter combinations that would deploy and then
//! fail: a large delivery batch without a batching window (Lambda refuses the
//! mapping mid-deploy), a webhook timeout that leaves deliver no time to start
//! a request (every job drains to the dead-letter queue), and values above the
//! code's caps (every cold start fails).
//!
//! The engine: CloudFormation checks parameter constraints (`MinValue`,
//! `MaxValue`, `AllowedValues`, `MinLength`) and then evaluates the `Rules`
//! assertions before it creates anything. No offline engine does both:
//! cfn-lint's `--parameters` checks neither (it uses `Rules` only to prune
//! condition scenarios) and moto ignores `Rules`. So this test applies them
//! itself to template.yaml as parsed by serde_yaml, with the functions a Rule
//! may use here (`Ref` to a parameter, `Fn::Equals`, `Fn::Not`, `Fn::And`,
//! `Fn::Or`, `Fn::Contains`); an unknown function fails the test, so a new
//! kind of Rule cannot pass unchecked.
//! The caps are compared with `shared::config::Config`, the code itself.

use std::collections::HashMap;

use alin_tests::repo_root;
use serde_json::Value;
use serde_yaml::Value as Yaml;
use shared::config::Config;

/// A valid ingest token (the template requires one of at least 32
/// characters), so every combination below differs only in what it tests.
const TOKEN: &str = "IngestToken=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn template() -> Yaml {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml parses with its short tags")
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A function call as (name, argument), from either the short tag
/// (`!Equals [...]`) or the long form (`{"Fn::Equals": [...]}`).
fn call(v: &Yaml) -> Option<(String, &Yaml)> {
    match v {
        Yaml::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            Some((k.trim_start_matches("Fn::").to_owned(), v))
        }
        _ => None,
    }
}

/// A Rule expression's value: a string, a list of strings, or a boolean.
#[derive(Debug, PartialEq)]
enum Val {
    Str(String),
    List(Vec<String>),
    Bool(bool),
}

fn eval(v: &Yaml, params: &HashMap<String, String>) -> Val {
    if let Some(s) = scalar(v) {
        return Val::Str(s);
    }
    if let Yaml::Sequence(items) = v {
        let strings = items
            .iter()
            .map(|i| scalar(i).expect("list items are strings"));
        return Val::List(strings.collect());
    }
    let (name, arg) = call(v).unwrap_or_else(|| panic!("not a Rule expression: {v:?}"));
    let args = || arg.as_sequence().expect("function arguments are a list");
    let boolean = |v: &Yaml| match eval(v, params) {
        Val::Bool(b) => b,
        other => panic!("not a condition: {other:?}"),
    };
    match name.as_str() {
        "Ref" => {
            let p = arg.as_str().expect("Ref names a parameter");
            Val::Str(
                params
                    .get(p)
                    .unwrap_or_else(|| panic!("unknown parameter {p}"))
                    .clone(),
            )
        }
        "Equals" => Val::Bool(eval(&args()[0], params) == eval(&args()[1], params)),
        "Not" => Val::Bool(!boolean(&args()[0])),
        "And" => Val::Bool(args().iter().all(boolean)),
        "Or" => Val::Bool(args().iter().any(boolean)),
        "Contains" => match (eval(&args()[0], params), eval(&args()[1], params)) {
            (Val::List(l), Val::Str(s)) => Val::Bool(l.contains(&s)),
            other => panic!("Fn::Contains takes a list and a string: {other:?}"),
        },
        other => panic!("a Rule uses {other}, which this check does not know"),
    }
}

/// What CloudFormation would say of these parameter overrides (`Name=Value`,
/// the ingest token added): `None` = accepted, `Some(reason)` = refused.
fn check(t: &Yaml, overrides: &[String]) -> Option<String> {
    let declared = t["Parameters"].as_mapping().expect("Parameters");
    let mut given: HashMap<String, String> = HashMap::new();
    for o in std::iter::once(TOKEN.to_owned()).chain(overrides.iter().cloned()) {
        let (k, v) = o.split_once('=').expect("Name=Value");
        given.insert(k.to_owned(), v.to_owned());
    }
    let mut params = HashMap::new();
    for (name, spec) in declared {
        let name = name.as_str().expect("parameter name");
        let Some(value) = given
            .remove(name)
            .or_else(|| spec.get("Default").and_then(scalar))
        else {
            return Some(format!("Parameter {name} has no value"));
        };
        let num = |k: &str| {
            spec.get(k)
                .and_then(scalar)
                .map(|s| s.parse::<f64>().expect("number"))
        };
        if spec.get("Type").and_then(Yaml::as_str) == Some("Number") {
            let Ok(n) = value.parse::<f64>() else {
                return Some(format!("Parameter {name} must be a number"));
            };
            if num("MinValue").is_some_and(|m| n < m) {
                return Some(format!("Parameter {name} is below its MinValue"));
            }
            if num("MaxValue").is_some_and(|m| n > m) {
                return Some(format!("Parameter {name} is above its MaxValue"));
            }
        }
        if num("MinLength").is_some_and(|m| (value.chars().count() as f64) < m) {
            return Some(format!("Parameter {name} is shorter than its MinLength"));
        }
        if let Some(allowed) = spec.get("AllowedValues").and_then(Yaml::as_sequence) {
            if !allowed.iter().filter_map(scalar).any(|a| a == value) {
                return Some(format!("Parameter {name} is not one of its AllowedValues"));
            }
        }
        params.insert(name.to_owned(), value);
    }
    if let Some(unknown) = given.keys().next() {
        return Some(format!("Parameter {unknown} is not declared"));
    }
    let rules = t["Rules"].as_mapping().expect("Rules");
    for (name, rule) in rules {
        let applies = rule
            .get("RuleCondition")
            .is_none_or(|c| eval(c, &params) == Val::Bool(true));
        if !applies {
            continue;
        }
        for a in rule["Assertions"].as_sequence().expect("Assertions") {
            if eval(&a["Assert"], &params) != Val::Bool(true) {
                let why = a
                    .get("AssertDescription")
                    .and_then(Yaml::as_str)
                    .unwrap_or("");
                return Some(format!(
                    "Rule {} refused: {why}",
                    name.as_str().unwrap_or("?")
                ));
            }
        }
    }
    None
}

fn refusal(params: &[String]) -> String {
    check(&template(), params)
        .unwrap_or_else(|| panic!("{params:?} was accepted; it must be refused"))
}

fn p(name: &str, value: impl std::fmt::Display) -> String {
    format!("{name}={value}")
}

/// Many combinations against one parse of the template.
fn check_many(combos: &[Vec<String>]) -> Vec<Option<String>> {
    let t = template();
    combos.iter().map(|c| check(&t, c)).collect()
}

/// The template's Parameters section as JSON.
fn template_parameters() -> HashMap<String, Value> {
    serde_json::to_value(&template()["Parameters"])
        .and_then(serde_json::from_value)
        .expect("Parameters as JSON")
}

fn number(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().expect("whole number"),
        Value::String(s) => s.parse().expect("whole number"),
        other => panic!("not a number: {other}"),
    }
}

#[test]
fn defaults_are_accepted() {
    assert_eq!(
        check(&template(), &[]),
        None,
        "the default parameters are refused"
    );
}

#[test]
fn a_batch_over_ten_needs_a_batching_window() {
    let err = refusal(&[
        p("DeliverBatchSize", 1000),
        p("DeliverBatchingWindowSeconds", 0),
    ]);
    assert!(
        err.contains("DeliverBatchingWindowForLargeBatches"),
        "wrong rule: {err}"
    );
    let err = check_many(&[vec![
        p("DeliverBatchSize", 11),
        p("DeliverBatchingWindowSeconds", 0),
    ]])
    .remove(0)
    .expect("BatchSize 11 without a window is refused");
    assert!(err.contains("at least 1"), "unclear message: {err}");
    // What Lambda itself accepts stays accepted.
    let ok = check_many(&[
        vec![
            p("DeliverBatchSize", 10),
            p("DeliverBatchingWindowSeconds", 0),
        ],
        vec![
            p("DeliverBatchSize", 1),
            p("DeliverBatchingWindowSeconds", 0),
        ],
        vec![
            p("DeliverBatchSize", 10000),
            p("DeliverBatchingWindowSeconds", 1),
        ],
    ]);
    assert_eq!(ok, vec![None, None, None]);
}

/// For every deliver timeout T the template allows, the webhook timeout D is
/// accepted up to T/2 − 2 and refused above (D + 2 s is deliver's reserve at
/// the end of an invocation; at least half of it must be usable to start
/// requests). Checked at the boundary, near T, at T and at the cap.
#[test]
fn the_webhook_timeout_leaves_room_to_start_requests() {
    let params = template_parameters();
    let allowed: Vec<u64> = params["DeliverTimeoutSeconds"]["AllowedValues"]
        .as_array()
        .expect("DeliverTimeoutSeconds has AllowedValues")
        .iter()
        .map(number)
        .collect();
    assert!(allowed.len() >= 5, "{allowed:?}");
    let cap = number(&params["DeliveryTimeoutSecs"]["MaxValue"]);
    let checks: Vec<(u64, u64, bool)> = allowed
        .iter()
        .flat_map(|&t| {
            let top = t / 2 - 2;
            [
                (t, 1, true),
                (t, top, true),
                (t, top + 1, false),
                (t, t - 2, false),
                (t, t, false),
                (t, cap, false),
            ]
        })
        .collect();
    let combos: Vec<Vec<String>> = checks
        .iter()
        .map(|&(t, d, _)| vec![p("DeliverTimeoutSeconds", t), p("DeliveryTimeoutSecs", d)])
        .collect();
    for (&(t, d, ok), result) in checks.iter().zip(check_many(&combos)) {
        assert_eq!(
            result.is_none(),
            ok,
            "DeliverTimeoutSeconds={t} DeliveryTimeoutSecs={d}: expected {}; {result:?}",
            if ok { "accepted" } else { "refused" }
        );
        if let Some(err) = result.filter(|_| d < cap) {
            assert!(
                err.contains(&format!("DeliveryTimeoutFitsDeliverTimeout{t}")),
                "T={t} D={d} refused by the wrong check: {err}"
            );
        }
    }
    // And the command line refuses it with the rule's description.
    let err = refusal(&[p("DeliverTimeoutSeconds", 60), p("DeliveryTimeoutSecs", 55)]);
    assert!(err.contains("must be 1 to 28"), "unclear message: {err}");
}

/// Template parameter → the code's variable. MaxValue must be exactly the
/// code's cap: the code accepts it and refuses one more, and so does the
/// template.
#[test]
fn max_values_are_the_codes_caps() {
    let params = template_parameters();
    let pairs = [
        ("FailureThreshold", "FAILURE_THRESHOLD"),
        ("DeliveryTimeoutSecs", "DELIVERY_TIMEOUT_SECS"),
        ("DeliveryConcurrency", "DELIVERY_CONCURRENCY"),
        ("PerHostConcurrency", "PER_HOST_CONCURRENCY"),
        ("RetryBaseDelaySecs", "RETRY_BASE_DELAY_SECS"),
        ("MaxAttempts", "MAX_ATTEMPTS"),
    ];
    for (param, var) in pairs {
        let max = number(
            params[param]
                .get("MaxValue")
                .unwrap_or_else(|| panic!("{param} has no MaxValue")),
        );
        let config = |value: u64| {
            Config::from_lookup(|k| match k {
                "WEBHOOKS_TABLE" => Some("t".into()),
                "DELIVERY_QUEUE_URL" => Some("http://127.0.0.1:1/q".into()),
                k if k == var => Some(value.to_string()),
                _ => None,
            })
        };
        assert!(
            config(max).is_ok(),
            "{param} MaxValue {max}: the code refuses {var}={max}"
        );
        assert!(
            config(max + 1).is_err(),
            "{param} MaxValue {max} is below the code's cap ({var}={} is accepted)",
            max + 1
        );
        let err = check_many(&[vec![p(param, max + 1), p("DeliverTimeoutSeconds", 900)]])
            .remove(0)
            .unwrap_or_else(|| panic!("{param}={} is accepted", max + 1));
        assert!(
            err.contains(param) && err.contains("MaxValue"),
            "{param}={} refused for another reason: {err}",
            max + 1
        );
    }
}
