//! The limit `deliver` is measured against: the same webhook POSTs (built
//! beforehand with deliver's code) sent by a bare reqwest client, HTTP/1.1
//! keep-alive, same global and per-host concurrency, own process; only HTTP
//! while the clock runs. `SSL_CERT_FILE`: an extra CA bundle, as for deliver.
//! usage: bare-client <requests.json> <global concurrency> <per-host concurrency>
//! prints {"sent","ok","elapsed_us","peak_rss_kib","cpu_ms"} (CPU while sending)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devstack::paths::{cpu_ms, peak_rss_kib};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;

#[derive(serde::Deserialize)]
struct Spec {
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

type Res<T> = Result<T, String>;

/// The requests, grouped per host:port in file order, ready to send.
fn load(path: &str) -> Res<BTreeMap<String, Vec<reqwest::Request>>> {
    let text = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let specs: Vec<Spec> = serde_json::from_slice(&text).map_err(|e| format!("parsing: {e}"))?;
    let mut by_host: BTreeMap<String, Vec<reqwest::Request>> = BTreeMap::new();
    for s in specs {
        let url = reqwest::Url::parse(&s.url).map_err(|e| format!("url {}: {e}", s.url))?;
        let host = format!("{}:{:?}", url.host_str().unwrap_or_default(), url.port());
        let mut req = reqwest::Request::new(reqwest::Method::POST, url);
        let headers: &mut HeaderMap = req.headers_mut();
        for (n, v) in s.headers {
            let name = HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("{n}: {e}"))?;
            let value = HeaderValue::from_str(&v).map_err(|e| format!("{n}: {e}"))?;
            headers.append(name, value);
        }
        *req.body_mut() = Some(s.body.into());
        by_host.entry(host).or_default().push(req);
    }
    Ok(by_host)
}

async fn run(args: &[String]) -> Res<serde_json::Value> {
    let [_, file, global, per_host] = args else {
        return Err("usage: bare-client <requests.json> <global> <per-host>".into());
    };
    let global: usize = global.parse().map_err(|_| "bad global concurrency")?;
    let per_host: usize = per_host.parse().map_err(|_| "bad per-host concurrency")?;
    let by_host = load(file)?;
    let mut client = reqwest::Client::builder();
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        let pem = std::fs::read(&file).map_err(|e| format!("SSL_CERT_FILE: {e}"))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("CA: {e}"))? {
            client = client.add_root_certificate(cert);
        }
    }
    let client = client
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(per_host.max(1))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let sent = by_host.values().map(Vec::len).sum::<usize>();
    let (ok, limit) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(Semaphore::new(global.max(1))),
    );
    let (cpu_before, started) = (cpu_ms(std::process::id()), Instant::now());
    let mut tasks = tokio::task::JoinSet::new();
    for list in by_host.into_values() {
        let (list, cursor) = (Arc::new(list), Arc::new(AtomicUsize::new(0)));
        for _ in 0..per_host.max(1) {
            let (list, cursor, client) = (list.clone(), cursor.clone(), client.clone());
            let (ok, limit) = (ok.clone(), limit.clone());
            tasks.spawn(async move {
                while let Some(req) = list.get(cursor.fetch_add(1, Ordering::Relaxed)) {
                    let Ok(_permit) = limit.acquire().await else {
                        break;
                    };
                    let Some(req) = req.try_clone() else { continue };
                    if let Ok(resp) = client.execute(req).await {
                        let good = resp.status().is_success();
                        // Read the (empty) body so the connection is reused.
                        if resp.bytes().await.is_ok() && good {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("a sender task failed: {e}"))?;
    }
    let (elapsed, pid) = (started.elapsed(), std::process::id());
    Ok(serde_json::json!({
        "sent": sent, "ok": ok.load(Ordering::Relaxed), "elapsed_us": u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "peak_rss_kib": peak_rss_kib(pid), "cpu_ms": cpu_ms(pid).zip(cpu_before).map(|(a, b)| a - b),
    }))
}

#[tokio::main]
async fn main() {
    match run(&std::env::args().collect::<Vec<_>>()).await {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("bare-client: {e}");
            std::process::exit(2)
        }
    }
}
