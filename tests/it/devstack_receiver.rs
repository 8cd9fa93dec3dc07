use std::io::{Read, Write};
use std::time::{Duration, Instant};

use devstack::receiver::{Behaviour, Options, Receiver};
use devstack::DevstackError;

#[tokio::test]
async fn records_requests_exactly_and_answers_with_headers() {
    let receiver = Receiver::start(
        Behaviour::status(429)
            .with_header("Retry-After", "7")
            .with_body("slow down"),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(receiver.url("/hooks/a%20b?x=1&y=%2F"))
        .header("X-First", "1")
        .header("X-Second", "2")
        .header("webhook-signature", "v1,abc")
        .body(vec![0u8, 200, 7])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.text().await.unwrap(), "slow down");

    let reqs = receiver.wait_for(1, Duration::from_secs(2)).await.unwrap();
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/hooks/a%20b?x=1&y=%2F");
    assert_eq!(r.path, "/hooks/a%20b");
    assert_eq!(&r.body[..], &[0u8, 200, 7]);
    assert_eq!(r.header("WEBHOOK-SIGNATURE"), Some("v1,abc"));
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    let first = names.iter().position(|n| *n == "x-first").unwrap();
    let second = names.iter().position(|n| *n == "x-second").unwrap();
    assert!(first < second, "received order kept: {names:?}");
    assert!(r.received_at >= started);
}

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let receiver = Receiver::start(Behaviour::Reset).await.unwrap();
    let addr = receiver.addr();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .unwrap();
        let mut buf = [0u8; 64];
        stream.read(&mut buf)
    })
    .await
    .unwrap();
    match outcome {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("expected a reset, read {n} bytes"),
    }
    assert_eq!(receiver.requests()[0].body_text(), "hi");

    let err = reqwest::Client::new()
        .post(receiver.url("/r"))
        .body("x")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
}

#[tokio::test]
async fn delay_then_respond_and_client_timeouts() {
    let receiver = Receiver::start(Behaviour::delay(
        Duration::from_millis(400),
        Behaviour::status(204),
    ))
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let resp = http.get(receiver.url("/slow")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(started.elapsed() >= Duration::from_millis(400));

    let err = http
        .get(receiver.url("/slow"))
        .timeout(Duration::from_millis(100))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // Recorded on arrival, before the behaviour runs.
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn script_counts_per_path_and_redirect() {
    let receiver = Receiver::start(Behaviour::script(|i| {
        if i < 2 {
            Behaviour::status(503)
        } else {
            Behaviour::ok()
        }
    }))
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            http.post(receiver.url("/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(
        http.post(receiver.url("/y")).send().await.unwrap().status(),
        503
    );
    let indexes: Vec<usize> = receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/x")
        .map(|r| r.index_for_path)
        .collect();
    assert_eq!(indexes, [0, 1, 2]);

    receiver.set_behaviour(Behaviour::sequence(vec![
        Behaviour::redirect("http://127.0.0.1:1/elsewhere"),
        Behaviour::status(410),
    ]));
    let resp = http.get(receiver.url("/z")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "http://127.0.0.1:1/elsewhere");
    assert_eq!(
        http.get(receiver.url("/z")).send().await.unwrap().status(),
        410
    );
    assert_eq!(
        http.get(receiver.url("/z")).send().await.unwrap().status(),
        410
    );

    match receiver.wait_for(100, Duration::from_millis(100)).await {
        Err(DevstackError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn sink_counts_on_several_ports() {
    let sink = Receiver::start_with(Options::counting(3), Behaviour::status(204))
        .await
        .unwrap();
    assert_eq!(sink.counts().len(), 3);
    let http = reqwest::Client::new();
    for i in 0..30 {
        let resp = http
            .post(sink.url_at(i, "/hook"))
            .body("0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    sink.wait_for(30, Duration::from_secs(2)).await.unwrap();
    assert_eq!(sink.count(), 30);
    assert_eq!(sink.counts(), [10, 10, 10]);
    assert_eq!(sink.body_bytes(), 300);
    assert!(sink.requests().is_empty(), "a counting receiver keeps none");
}
