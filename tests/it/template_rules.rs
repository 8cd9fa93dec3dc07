//! The template refuses parameter combinations that would deploy and then
//! fail: a large delivery batch without a batching window (Lambda refuses the
//! mapping mid-deploy), a webhook timeout that leaves deliver no time to start
//! a request (every job drains to the dead-letter queue), and values above the
//! code's caps (every cold start fails).
//!
//! The engine: `scripts/stack_resources.py`, which already provisions the
//! local stack and the tests from `template.yaml` and, like CloudFormation,
//! checks parameter constraints (`MinValue`, `MaxValue`, `AllowedValues`) and
//! evaluates the `Rules` assertions before creating anything; so the local
//! stack refuses exactly what a deploy would. cfn-lint was tried first: with
//! `--parameters` it checks `AllowedValues` on plain CloudFormation templates
//! only (not after the SAM transform), never `MinValue`/`MaxValue`, and it
//! uses `Rules` only to prune condition scenarios, never to refuse values.
//! The caps are compared with `shared::config::Config`, the code itself.

use std::collections::HashMap;
use std::process::{Command, Output};

use alin_tests::repo_root;
use serde_json::Value;
use shared::config::Config;

/// A valid ingest token (the template may require one of at least 32
/// characters), so every combination below differs only in what it tests.
const TOKEN: &str = "IngestToken=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn python() -> std::path::PathBuf {
    repo_root().join(".venv/bin/python")
}

/// `stack_resources.py describe` with these parameter overrides.
fn describe(params: &[String]) -> Output {
    let root = repo_root();
    let mut cmd = Command::new(python());
    cmd.arg(root.join("scripts/stack_resources.py"))
        .args(["describe", "--template"])
        .arg(root.join("template.yaml"))
        .args(["--param", TOKEN]);
    for p in params {
        cmd.args(["--param", p]);
    }
    cmd.output()
        .expect("stack_resources.py runs (run scripts/tools.sh)")
}

fn refusal(params: &[String]) -> String {
    let out = describe(params);
    assert!(
        !out.status.success(),
        "{params:?} was accepted; it must be refused"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(name: &str, value: impl std::fmt::Display) -> String {
    format!("{name}={value}")
}

/// Many combinations through the same functions `stack_resources.py
/// describe`/`create` run (parameter checks, then Rules), in one Python
/// process: `None` = accepted, `Some(reason)` = refused.
fn check_many(combos: &[Vec<String>]) -> Vec<Option<String>> {
    let script = r#"
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import stack_resources as sr
template = sr.load_template(Path(sys.argv[2]))
out = []
for combo in json.load(sys.stdin):
    try:
        params = sr.resolve_parameters(template, sr.parse_params(combo))
        sr.check_rules(template, sr.Resolver(template, params, "us-east-1", "local", describe_only=True))
        out.append(None)
    except sr.StackError as err:
        out.append(str(err))
print(json.dumps(out))
"#;
    let root = repo_root();
    let combos: Vec<Vec<String>> = combos
        .iter()
        .map(|c| {
            std::iter::once(TOKEN.to_owned())
                .chain(c.iter().cloned())
                .collect()
        })
        .collect();
    let mut child = Command::new(python())
        .args(["-c", script])
        .arg(root.join("scripts"))
        .arg(root.join("template.yaml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs (run scripts/tools.sh)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(&serde_json::to_vec(&combos).expect("json"))
            .expect("write combos");
    }
    let out = child.wait_with_output().expect("python finishes");
    assert!(
        out.status.success(),
        "rule check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Option<String>> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(results.len(), combos.len());
    results
}

/// The template's Parameters section, decoded by cfn-lint's own YAML loader
/// (which understands the short `!Ref` forms).
fn template_parameters() -> HashMap<String, Value> {
    let script = "import json,sys\nfrom cfnlint.decode import decode\n\
                  t,m=decode(sys.argv[1])\nassert not m, m\n\
                  print(json.dumps(t['Parameters'], default=str))";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(repo_root().join("template.yaml"))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "decoding template.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parameters as JSON")
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
    let out = describe(&[]);
    assert!(
        out.status.success(),
        "the default parameters are refused: {}",
        String::from_utf8_lossy(&out.stderr)
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
