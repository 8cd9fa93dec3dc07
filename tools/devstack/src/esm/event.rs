//! Building the SQS event Lambda's event source mapping sends
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>) from
//! ReceiveMessage results.

use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::util::REGION;

/// One record, shaped exactly as in a Lambda SQS event.
pub fn record(message: &Message, queue_arn: &str) -> Value {
    let mut attributes = Map::new();
    if let Some(attrs) = message.attributes() {
        for (name, value) in attrs {
            attributes.insert(name.as_str().to_owned(), Value::String(value.clone()));
        }
    }
    let mut message_attributes = Map::new();
    if let Some(attrs) = message.message_attributes() {
        for (name, value) in attrs {
            message_attributes.insert(name.clone(), message_attribute(value));
        }
    }
    let mut record = json!({
        "messageId": message.message_id().unwrap_or_default(),
        "receiptHandle": message.receipt_handle().unwrap_or_default(),
        "body": message.body().unwrap_or_default(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body().unwrap_or_default(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    });
    // Present in Lambda's records only when the message has attributes.
    if let (Some(md5), Some(obj)) = (message.md5_of_message_attributes(), record.as_object_mut()) {
        obj.insert(
            "md5OfMessageAttributes".into(),
            Value::String(md5.to_owned()),
        );
    }
    record
}

/// Lambda's camel-cased message attribute shape, binary values in base64.
fn message_attribute(value: &MessageAttributeValue) -> Value {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut attr = json!({
        "stringListValues": value.string_list_values(),
        "binaryListValues": value.binary_list_values().iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>(),
        "dataType": value.data_type(),
    });
    if let Some(obj) = attr.as_object_mut() {
        if let Some(s) = value.string_value() {
            obj.insert("stringValue".into(), Value::String(s.to_owned()));
        }
        if let Some(b) = value.binary_value() {
            obj.insert("binaryValue".into(), Value::String(b64(b.as_ref())));
        }
    }
    attr
}

/// The whole event for a batch.
pub fn event(messages: &[Message], queue_arn: &str) -> Value {
    json!({ "Records": messages.iter().map(|m| record(m, queue_arn)).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::MessageSystemAttributeName;

    #[test]
    fn record_has_lambda_shape() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body("hello")
            .md5_of_body("5d41402abc4b2a76b9719d911017c592")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "1")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1700000000000")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("push")
                    .build()
                    .expect("attr"),
            )
            .message_attributes(
                "raw",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(vec![1, 2]))
                    .build()
                    .expect("attr"),
            )
            .md5_of_message_attributes("abc")
            .build();
        let ev = event(&[message], "arn:aws:sqs:us-east-1:123456789012:q");
        let r = &ev["Records"][0];
        assert_eq!(r["messageId"], "m-1");
        assert_eq!(r["receiptHandle"], "rh-1");
        assert_eq!(r["body"], "hello");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["attributes"]["SentTimestamp"], "1700000000000");
        assert_eq!(
            r["messageAttributes"]["kind"],
            json!({"stringValue": "push", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
        );
        assert_eq!(r["messageAttributes"]["raw"]["binaryValue"], "AQI=");
        assert_eq!(r["md5OfBody"], "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(r["md5OfMessageAttributes"], "abc");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:123456789012:q");
        assert_eq!(r["awsRegion"], "us-east-1");
    }
}
