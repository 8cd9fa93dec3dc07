//! Measurement 6: cost per million pushes at AWS list prices, from the
//! measured call counts, units and durations, against a naive design (one
//! SQS message per event, one ingest and one deliver invocation per event,
//! a GetItem and an UpdateItem per event).

/// us-east-1 list prices as published in 2025 (Lambda arm64, SQS standard,
/// DynamoDB on-demand).
pub const PRICES_DATE: &str = "us-east-1 list prices as published in 2025";
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
pub const SQS_PER_MILLION_REQUESTS: f64 = 0.40;
pub const DDB_PER_MILLION_RRU: f64 = 0.125;
pub const DDB_PER_MILLION_WRU: f64 = 0.625;
/// The functions' MemorySize in template.yaml.
pub const MEMORY_GB: f64 = 128.0 / 1024.0;
/// A stated (not measured) webhook endpoint response time for the
/// sensitivity line: real endpoints answer in tens to hundreds of ms, the
/// local sink in microseconds.
pub const ENDPOINT_MS: f64 = 100.0;
pub const MILLION: f64 = 1_000_000.0;

/// Per-push quantities of one design, everything per single push.
#[derive(Clone, Debug, Default)]
pub struct PerPush {
    pub ingest_invocations: f64,
    /// Billed ms of ingest per push (invocations × billed duration).
    pub ingest_billed_ms: f64,
    pub deliver_invocations: f64,
    pub deliver_billed_ms: f64,
    /// SQS requests per push, by what makes them.
    pub sqs: Vec<(&'static str, f64)>,
    pub rru: f64,
    pub wru: f64,
    /// Webhook requests in flight per deliver invocation (for the endpoint
    /// sensitivity line): 1 without batching, the concurrency with it.
    pub in_flight: f64,
}

pub struct Design {
    pub name: String,
    pub note: String,
    pub p: PerPush,
}

/// Billed duration: Lambda rounds each invocation up to the next 1 ms.
pub fn billed_ms(duration_ms: f64) -> f64 {
    duration_ms.max(0.0).ceil().max(1.0)
}

/// Cost lines per million pushes: (line, quantity per million, $).
pub fn lines(p: &PerPush) -> Vec<(String, f64, f64)> {
    let gbs = |ms: f64| ms / 1000.0 * MEMORY_GB * MILLION;
    let mut out = vec![
        (
            "Lambda requests".to_owned(),
            (p.ingest_invocations + p.deliver_invocations) * MILLION,
            (p.ingest_invocations + p.deliver_invocations) * LAMBDA_PER_MILLION_REQUESTS,
        ),
        (
            "ingest compute (GB-s)".to_owned(),
            gbs(p.ingest_billed_ms),
            gbs(p.ingest_billed_ms) * LAMBDA_GB_SECOND,
        ),
        (
            "deliver compute (GB-s)".to_owned(),
            gbs(p.deliver_billed_ms),
            gbs(p.deliver_billed_ms) * LAMBDA_GB_SECOND,
        ),
    ];
    for (what, n) in &p.sqs {
        out.push((
            format!("SQS: {what}"),
            n * MILLION,
            n * SQS_PER_MILLION_REQUESTS,
        ));
    }
    out.push((
        "DynamoDB read units".to_owned(),
        p.rru * MILLION,
        p.rru * DDB_PER_MILLION_RRU,
    ));
    out.push((
        "DynamoDB write units".to_owned(),
        p.wru * MILLION,
        p.wru * DDB_PER_MILLION_WRU,
    ));
    out
}

pub fn total(p: &PerPush) -> f64 {
    lines(p).iter().map(|(_, _, c)| c).sum()
}

/// Extra deliver compute per million pushes if every endpoint took
/// [`ENDPOINT_MS`] to answer: the wait is billed once per `in_flight` pushes.
pub fn endpoint_extra(p: &PerPush) -> f64 {
    let ms_per_push = ENDPOINT_MS / p.in_flight.max(1.0);
    ms_per_push / 1000.0 * MEMORY_GB * MILLION * LAMBDA_GB_SECOND
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_shape_costs_what_the_price_list_says() {
        let p = PerPush {
            ingest_invocations: 1.0,
            ingest_billed_ms: 10.0,
            deliver_invocations: 1.0,
            deliver_billed_ms: 10.0,
            sqs: vec![("send", 1.0), ("receive", 1.0), ("delete", 1.0)],
            rru: 1.0,
            wru: 1.0,
            in_flight: 1.0,
        };
        // 2 M requests $0.40; 2 × 1 M × 10 ms × 0.125 GB = 2,500 GB-s ≈ $0.0333;
        // 3 M SQS $1.20; RRU $0.125; WRU $0.625.
        let t = total(&p);
        assert!((t - (0.40 + 2500.0 * LAMBDA_GB_SECOND + 1.20 + 0.125 + 0.625)).abs() < 1e-9);
        assert_eq!(billed_ms(3.2), 4.0);
        assert_eq!(billed_ms(0.1), 1.0);
    }
}
