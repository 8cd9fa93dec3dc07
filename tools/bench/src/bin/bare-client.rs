//! The limit `deliver` is measured against: the same webhook POSTs (bodies
//! and headers built beforehand by alin-bench with the same code deliver
//! uses) sent by a bare reqwest client, HTTP/1.1 with keep-alive, at the
//! same concurrency (a global limit and a per-host limit), in its own
//! process like deliver. Nothing is signed, parsed or written here while the
//! clock runs: only HTTP.
//!
//! usage: bare-client <requests.json> <global concurrency> <per-host concurrency>
//! prints one JSON line: {"sent","ok","failed","elapsed_us","peak_rss_kib","cpu_ms"}
//! (cpu_ms: user + system CPU time while sending, 10 ms resolution)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;

#[derive(Deserialize)]
struct Spec {
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

struct Prepared {
    url: Url,
    headers: HeaderMap,
    body: Bytes,
}

fn fail(msg: String) -> ! {
    eprintln!("bare-client: {msg}");
    std::process::exit(2)
}

/// CPU time (user + system) this process has used, in ms.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        fail("usage: bare-client <requests.json> <global> <per-host>".into());
    }
    let global: usize = args[2]
        .parse()
        .unwrap_or_else(|_| fail("bad global".into()));
    let per_host: usize = args[3]
        .parse()
        .unwrap_or_else(|_| fail("bad per-host".into()));
    let text =
        std::fs::read(&args[1]).unwrap_or_else(|e| fail(format!("reading {}: {e}", args[1])));
    let specs: Vec<Spec> =
        serde_json::from_slice(&text).unwrap_or_else(|e| fail(format!("parsing: {e}")));
    drop(text);

    // Requests grouped per host:port, in file order.
    let mut by_host: BTreeMap<String, Vec<Prepared>> = BTreeMap::new();
    for s in specs {
        let url = Url::parse(&s.url).unwrap_or_else(|e| fail(format!("url {}: {e}", s.url)));
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut headers = HeaderMap::with_capacity(s.headers.len());
        for (n, v) in s.headers {
            let name = HeaderName::from_bytes(n.as_bytes())
                .unwrap_or_else(|e| fail(format!("header {n}: {e}")));
            let value =
                HeaderValue::from_str(&v).unwrap_or_else(|e| fail(format!("header {n}: {e}")));
            headers.append(name, value);
        }
        by_host.entry(key).or_default().push(Prepared {
            url,
            headers,
            body: Bytes::from(s.body),
        });
    }
    let total: usize = by_host.values().map(Vec::len).sum();

    let client = reqwest::Client::builder()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(per_host.max(1))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|e| fail(format!("client: {e}")));

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let global_limit = Arc::new(Semaphore::new(global.max(1)));
    let cpu_before = cpu_ms();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (_, list) in by_host {
        let list = Arc::new(list);
        let cursor = Arc::new(AtomicUsize::new(0));
        for _ in 0..per_host.max(1) {
            let (list, cursor, client) = (list.clone(), cursor.clone(), client.clone());
            let (ok, failed, global_limit) = (ok.clone(), failed.clone(), global_limit.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = cursor.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = list.get(i) else { break };
                    let Ok(_permit) = global_limit.acquire().await else {
                        break;
                    };
                    let mut req = reqwest::Request::new(Method::POST, p.url.clone());
                    *req.headers_mut() = p.headers.clone();
                    *req.body_mut() = Some(p.body.clone().into());
                    let good = match client.execute(req).await {
                        Ok(resp) => {
                            let status = resp.status();
                            // Read the (empty) body so the connection is reused.
                            resp.bytes().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for t in tasks {
        if t.await.is_err() {
            fail("a sender task panicked".into());
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_ms().zip(cpu_before).map(|(a, b)| a - b);
    println!(
        "{}",
        serde_json::json!({
            "sent": total,
            "ok": ok.load(Ordering::Relaxed),
            "failed": failed.load(Ordering::Relaxed),
            "elapsed_us": u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "peak_rss_kib": peak_rss_kib(),
            "cpu_ms": cpu,
        })
    );
}
