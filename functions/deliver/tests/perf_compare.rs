//! Throughput against a bare reqwest client, in one process on the same
//! local 204 sinks (16 ports, 64 in flight, 4 per host): 10,000 jobs over
//! 1,000 repositories with the in-memory store, so only the delivery path is
//! compared. Ignored by default (timing); run it in release:
//! `cargo test --release -p deliver --test perf_compare -- --ignored --nocapture`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use deliver::{Config, Deliverer};
use shared::adapters::{MemoryQueue, MemoryStore};
use shared::domain::{validate_webhook_url, DeliveryJob, RepositoryName};
use shared::net::StaticLookup;
use shared::ports::WebhookStore;
use shared::webhook::build_request;

const HOSTS: usize = 16;
const REPOS: usize = 1_000;
const JOBS: usize = 10_000;
const ROUNDS: usize = 16;

async fn sink() -> SocketAddr {
    async fn answer(body: axum::body::Bytes) -> axum::http::StatusCode {
        drop(body);
        axum::http::StatusCode::NO_CONTENT
    }
    let app = axum::Router::new().fallback(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn body(i: usize) -> String {
    format!(
        r#"{{"v":1,"webhook_id":"evt_{i}","kind":"push","repository":"user{r}/app","tag":"t{i}","image_size":1234,"layers":["sha256:{d}"],"repository_size":5678}}"#,
        r = i % REPOS,
        d = "c".repeat(64)
    )
}

fn event() -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = (0..JOBS)
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.receipt_handle = Some(format!("rh-{i}"));
            m.body = Some(body(i));
            m.attributes = HashMap::from([("ApproximateReceiveCount".into(), "1".into())]);
            m
        })
        .collect();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release with --ignored"]
async fn against_a_bare_client() {
    let mut addrs = Vec::new();
    for _ in 0..HOSTS {
        addrs.push(sink().await);
    }
    let store = Arc::new(MemoryStore::new());
    let mut secrets = Vec::new();
    let mut urls = Vec::new();
    for r in 0..REPOS {
        let url = format!("http://{}/hook/{r}", addrs[r % HOSTS]);
        let rec = store
            .put_url(
                &RepositoryName::parse(&format!("user{r}/app")).unwrap(),
                &validate_webhook_url(&url, true).unwrap(),
                "2026-11-28T08:00:00Z",
            )
            .await
            .unwrap();
        secrets.push(rec.webhook.unwrap().secret);
        urls.push(url);
    }
    let settings = Config {
        allow_private_targets: true,
        ..Config::default()
    };
    let deliverer = Deliverer::new(
        settings,
        store,
        Arc::new(MemoryQueue::new()),
        Arc::new(StaticLookup::new()),
    )
    .unwrap();

    // The bare client's requests, built beforehand (as alin-bench does).
    let mut by_host: Vec<Vec<Prepared>> = vec![Vec::new(); HOSTS];
    for i in 0..JOBS {
        let r = i % REPOS;
        let job = DeliveryJob::parse(&body(i)).unwrap();
        let req = build_request(
            &job,
            "container.alin.io",
            &secrets[r],
            time::OffsetDateTime::now_utc(),
        );
        let mut h = reqwest::header::HeaderMap::new();
        for (n, v) in req.headers {
            if n != "Content-Length" {
                h.append(
                    reqwest::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
        }
        by_host[r % HOSTS].push((reqwest::Url::parse(&urls[r]).unwrap(), h, req.body));
    }
    let client = reqwest::Client::builder()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4)
        .tcp_nodelay(true)
        .build()
        .unwrap();

    let mut ours_all = Vec::new();
    let mut bare_all = Vec::new();
    let (mut ours_cpu, mut bare_cpu) = (0u64, 0u64);
    for round in 0..ROUNDS {
        // Alternate which goes first so neither always runs on a warmer machine.
        for which in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            if which == 0 {
                let e = event();
                let (t, c) = (Instant::now(), cpu_ticks());
                let report = deliverer.deliver(e, None).await.unwrap();
                ours_all.push(t.elapsed().as_secs_f64());
                ours_cpu += cpu_ticks() - c;
                assert_eq!(report.summary.delivered, JOBS as u64);
            } else {
                let (t, c) = (Instant::now(), cpu_ticks());
                bare_round(&client, &by_host).await;
                bare_all.push(t.elapsed().as_secs_f64());
                bare_cpu += cpu_ticks() - c;
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, bare) = (median(&mut ours_all), median(&mut bare_all));
    eprintln!(
        "median: deliver {:.0} ms, bare {:.0} ms, ratio {:.2}; best: deliver {:.0} ms, bare {:.0} ms, ratio {:.2}",
        ours * 1e3,
        bare * 1e3,
        bare / ours,
        ours_all[0] * 1e3,
        bare_all[0] * 1e3,
        bare_all[0] / ours_all[0]
    );
    eprintln!(
        "process CPU (sinks included): deliver {} ticks, bare {} ticks, ratio {:.2}",
        ours_cpu,
        bare_cpu,
        bare_cpu as f64 / ours_cpu as f64
    );
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

type Prepared = (reqwest::Url, reqwest::header::HeaderMap, Vec<u8>);

/// The bare client: per host, PER_HOST workers taking the next request in
/// turn, a global semaphore of 64 (alin-bench's bare-client, in process).
async fn bare_round(client: &reqwest::Client, by_host: &[Vec<Prepared>]) {
    let global = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for list in by_host.iter().cloned() {
        let list = Arc::new(list);
        let cursor = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let (list, cursor, client, global) =
                (list.clone(), cursor.clone(), client.clone(), global.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = cursor.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = list.get(i) else { break };
                    let _permit = global.acquire().await.unwrap();
                    let mut req = reqwest::Request::new(reqwest::Method::POST, p.0.clone());
                    *req.headers_mut() = p.1.clone();
                    *req.body_mut() = Some(reqwest::Body::from(p.2.clone()));
                    let resp = client.execute(req).await.unwrap();
                    let _ = resp.bytes().await;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Where deliver's own CPU goes per job, outside HTTP (release numbers are
/// the meaningful ones).
#[test]
#[ignore = "timing; run in release with --ignored"]
fn per_job_costs() {
    let secret = shared::webhook::WebhookSecret::generate();
    let per_job = |name: &str, t: Instant| {
        eprintln!(
            "{name}: {:.2} µs/job",
            t.elapsed().as_secs_f64() * 1e6 / JOBS as f64
        );
    };
    let t = Instant::now();
    let e = event();
    per_job("building the SqsEvent (not deliver's)", t);
    let json = serde_json::to_string(&e).unwrap();
    let t = Instant::now();
    let e: SqsEvent = serde_json::from_str(&json).unwrap();
    per_job("deserialising the SqsEvent (lambda_runtime)", t);
    let bodies: Vec<String> = e.records.iter().filter_map(|m| m.body.clone()).collect();
    let t = Instant::now();
    drop(e);
    per_job("dropping the SqsEvent", t);
    let t = Instant::now();
    let jobs: Vec<DeliveryJob> = bodies
        .iter()
        .map(|b| DeliveryJob::parse(b).unwrap())
        .collect();
    per_job("DeliveryJob::parse", t);
    let now = time::OffsetDateTime::now_utc();
    let t = Instant::now();
    let mut n = 0;
    for j in &jobs {
        n += build_request(j, "container.alin.io", &secret, now)
            .body
            .len();
    }
    per_job("build_request (sign)", t);
    assert!(n > 0);
    let url = reqwest::Url::parse("http://127.0.0.1:8080/hook/1?t=x").unwrap();
    let t = Instant::now();
    for _ in 0..JOBS {
        let _ = validate_webhook_url(url.as_str(), true).unwrap();
    }
    per_job("validate_webhook_url (once per repository in deliver)", t);
}
