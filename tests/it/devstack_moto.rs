use std::time::Duration;

use devstack::moto::Moto;

#[tokio::test]
async fn shared_moto_serves_sqs_through_the_sdk_config() {
    let moto = Moto::shared().await.unwrap();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    let again = Moto::shared().await.unwrap();
    assert_eq!(moto.endpoint(), again.endpoint(), "one server per process");

    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let url = sqs
        .create_queue()
        .queue_name("moto-smoke")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&url)
        .message_body("ping")
        .send()
        .await
        .unwrap();
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages()[0].body(), Some("ping"));
}

#[tokio::test]
async fn private_moto_dies_when_dropped() {
    let moto = Moto::start().await.unwrap();
    let addr = moto.endpoint().trim_start_matches("http://").to_owned();
    assert!(tokio::net::TcpStream::connect(&addr).await.is_ok());
    drop(moto);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "moto still listening on {addr} after drop");
}
