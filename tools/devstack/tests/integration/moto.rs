use std::time::Duration;

use devstack::moto::Moto;
use devstack::paths;

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
    let addr = format!("127.0.0.1:{}", moto.port());
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

#[tokio::test]
async fn create_stack_when_the_script_exists() {
    let script = Moto::stack_script();
    let root = paths::repo_root().unwrap();
    let template = ["template.yaml", "template.yml", "infra/template.yaml"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file());
    let Some(template) = template.filter(|_| script.is_file()) else {
        println!(
            "note: skipping create_stack test: {} or a SAM template under {} is missing",
            script.display(),
            root.display()
        );
        return;
    };
    let moto = Moto::shared().await.unwrap();
    let resources = moto
        .create_stack(&template, "devstack-selftest")
        .await
        .unwrap();
    assert!(!resources.is_empty(), "no resources reported");
    // Every queue the script reports must really exist in this moto.
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let queue_urls: Vec<&str> = resources
        .iter()
        .filter(|(k, _)| k.ends_with("QueueUrl"))
        .filter_map(|(_, v)| v.as_str())
        .collect();
    assert!(!queue_urls.is_empty(), "no queue URLs in {resources:?}");
    for url in queue_urls {
        assert!(url.contains("devstack-selftest"), "{url} lacks the prefix");
        sqs.get_queue_attributes()
            .queue_url(url)
            .send()
            .await
            .unwrap();
    }
}
