//! Cost per million pushes at AWS list prices from the measured calls, units
//! and durations: our design fed three ways against a naive one (one SQS
//! message, one ingest and one deliver invocation, a GetItem and an
//! UpdateItem per event).

use serde_json::{json, Map, Value};

use crate::deliver_bench::CONCURRENCY;
use crate::ingest_bench::BATCH;
use crate::stats::billed_ms;
use crate::Res;

/// us-east-1 list prices as published in 2025 (Lambda arm64, SQS standard,
/// DynamoDB on-demand), $ per million units; free tiers ignored.
const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
const LAMBDA_REQUESTS: f64 = 0.20;
const SQS_REQUESTS: f64 = 0.40;
const DDB_RRU: f64 = 0.125;
const DDB_WRU: f64 = 0.625;
/// The functions' MemorySize in template.yaml.
const MEMORY_GB: f64 = 128.0 / 1024.0;
/// A stated (not measured) endpoint response time for the sensitivity line.
const ENDPOINT_MS: f64 = 100.0;

/// Everything one design spends per push.
#[derive(Clone, Default)]
struct PerPush {
    ingest_invocations: f64,
    ingest_ms: f64,
    deliver_invocations: f64,
    deliver_ms: f64,
    /// SQS requests: registry's sends, registry-queue polls, ingest's sends,
    /// the delivery mapping's receives and deletes, deliver's visibility changes.
    sqs: [f64; 6],
    rru: f64,
    wru: f64,
    /// Webhooks in flight per deliver invocation (1 unbatched).
    in_flight: f64,
}

const SQS_LINES: [&str; 6] = [
    "SQS: registry's SendMessage into the registry-events queue",
    "SQS: ReceiveMessage + DeleteMessageBatch on the registry-events queue",
    "SQS: SendMessage(Batch) by ingest to the delivery queue",
    "SQS: ReceiveMessage by the delivery queue's mapping",
    "SQS: DeleteMessage(Batch) by that mapping",
    "SQS: ChangeMessageVisibilityBatch by deliver",
];

/// (line, quantity per million pushes, $ per million pushes).
fn lines(p: &PerPush) -> Vec<(String, f64, f64)> {
    let (gbs, gb_s) = (|ms: f64| ms / 1000.0 * MEMORY_GB, LAMBDA_GB_SECOND * 1e6);
    let requests = p.ingest_invocations + p.deliver_invocations;
    let lambda = [
        ("Lambda requests", requests, LAMBDA_REQUESTS),
        ("ingest compute (GB-s)", gbs(p.ingest_ms), gb_s),
        ("deliver compute (GB-s)", gbs(p.deliver_ms), gb_s),
    ];
    let sqs = SQS_LINES
        .iter()
        .zip(p.sqs)
        .map(|(l, n)| (*l, n, SQS_REQUESTS));
    let ddb = [
        ("DynamoDB read units", p.rru, DDB_RRU),
        ("DynamoDB write units", p.wru, DDB_WRU),
    ];
    let all = lambda.into_iter().chain(sqs).chain(ddb);
    all.map(|(line, n, price)| (line.to_owned(), n * 1e6, n * price))
        .collect()
}

fn design(name: &str, p: &PerPush) -> Value {
    let lines = lines(p);
    let total: f64 = lines.iter().map(|l| l.2).sum();
    // Unbatched, each invocation bills the whole endpoint wait; batched, the
    // in-flight webhooks wait together.
    let wait = ENDPOINT_MS / p.in_flight.max(1.0) / 1000.0 * MEMORY_GB * 1e6 * LAMBDA_GB_SECOND;
    json!({ "name": name, "lines": lines, "total": total, "total_if_endpoints_take_100ms": total + wait })
}

fn f(v: &Value, path: &str) -> Res<f64> {
    v.pointer(path)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("cost: {path} was not measured"))
}

pub fn run(r: &Map<String, Value>) -> Res<Value> {
    let section = |name: &str| r.get(name).cloned().unwrap_or_default();
    let (d, i) = (&section("deliver"), &section("ingest"));
    let jobs = f(d, "/throughput/jobs")?;
    let events = f(i, "/events")?;
    let count = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_f64).unwrap_or(0.0);
    let http_pushes = f(i, "/http/pushes")?.max(1.0);
    let http_send = count(i, "/http/aws/calls/sqs:SendMessageBatch") / http_pushes;
    let http_rru = f(i, "/http/aws/rru")? / http_pushes;
    let single_n = f(d, "/single/invocations")?.max(1.0);
    let visibility_path = "/throughput/median_run/aws/calls/sqs:ChangeMessageVisibilityBatch";
    let visibility = count(d, visibility_path) / jobs;
    // The mapping's polls at their floor: one receive and one delete per 10 jobs.
    let batched = PerPush {
        deliver_invocations: 1.0 / jobs,
        deliver_ms: billed_ms(f(d, "/throughput/median_run/median_ms")?) / jobs,
        rru: f(d, "/throughput/median_run/aws/rru")? / jobs,
        wru: f(d, "/throughput/median_run/aws/wru")? / jobs,
        in_flight: CONCURRENCY as f64,
        ..PerPush::default()
    };
    let unbatched_deliver = PerPush {
        deliver_invocations: 1.0,
        deliver_ms: f(d, "/single/billed_ms_mean")?,
        ingest_invocations: 1.0,
        ingest_ms: f(i, "/http/billed_ms_mean")?,
        in_flight: 1.0,
        ..PerPush::default()
    };
    let naive = PerPush {
        sqs: [0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
        rru: 1.0,
        wru: 1.0,
        ..unbatched_deliver.clone()
    };
    let http = PerPush {
        ingest_invocations: 1.0,
        ingest_ms: unbatched_deliver.ingest_ms,
        sqs: [0.0, 0.0, http_send, 0.1, 0.1, visibility],
        rru: http_rru + batched.rru,
        ..batched.clone()
    };
    let queue = PerPush {
        ingest_invocations: f(i, "/invocations")? / events,
        ingest_ms: f(i, "/billed_ms_sum")? / events,
        sqs: [
            1.0,
            2.0 / BATCH as f64,
            count(i, "/aws/calls/sqs:SendMessageBatch") / events,
            0.1,
            0.1,
            visibility,
        ],
        rru: f(i, "/aws/rru")? / events + batched.rru,
        ..batched.clone()
    };
    let quiet = PerPush {
        sqs: [0.0, 0.0, http_send, 1.0, 1.0, 0.0],
        rru: http_rru + f(d, "/single/aws/rru")? / single_n,
        wru: f(d, "/single/aws/wru")? / single_n,
        ..unbatched_deliver
    };
    let designs = [
        design("naive", &naive),
        design("ours, Function URL", &http),
        design("ours, registry queue", &queue),
        design("ours, quiet service", &quiet),
    ];
    let total = |d: &Value| {
        (
            d["name"].as_str().unwrap_or("").to_owned(),
            d["total"].clone(),
        )
    };
    let totals: Map<String, Value> = designs.iter().map(total).collect();
    let prices =
        "us-east-1 list prices as published in 2025 (Lambda arm64 at 128 MB, SQS standard, DynamoDB on-demand)";
    Ok(json!({ "prices": prices, "designs": designs, "totals": totals }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_shape_costs_what_the_price_list_says() {
        let p = PerPush {
            ingest_invocations: 1.0,
            ingest_ms: 10.0,
            deliver_invocations: 1.0,
            deliver_ms: 10.0,
            sqs: [0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
            rru: 1.0,
            wru: 1.0,
            in_flight: 1.0,
        };
        // 2 M requests $0.40; 2 × 1 M × 10 ms × 0.125 GB = 2,500 GB-s; 3 M SQS
        // $1.20; RRU $0.125; WRU $0.625.
        let t = design("naive", &p)["total"].as_f64().unwrap_or_default();
        assert!((t - (0.40 + 2500.0 * LAMBDA_GB_SECOND + 1.20 + 0.125 + 0.625)).abs() < 1e-9);
        assert_eq!(billed_ms(3.2), 4.0);
        assert_eq!(billed_ms(0.1), 1.0);
    }
}
