//! The SQS event Lambda's event source mapping sends, built from
//! ReceiveMessage results with `aws_lambda_events`' own types.

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::Message;
use serde_json::{json, Value};

use crate::paths::REGION;

/// One record, shaped as in a Lambda SQS event.
pub fn record(message: &Message, queue_arn: &str) -> Value {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
    let attributes = message.attributes().into_iter().flatten();
    record.attributes = attributes
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    let blob = |b: &aws_sdk_sqs::primitives::Blob| {
        let mut data = Base64Data::default();
        data.extend_from_slice(b.as_ref());
        data
    };
    for (name, value) in message.message_attributes().into_iter().flatten() {
        let mut attr = SqsMessageAttribute::default();
        attr.string_value = value.string_value.clone();
        attr.binary_value = value.binary_value().map(blob);
        attr.string_list_values = value.string_list_values().to_vec();
        attr.binary_list_values = value.binary_list_values().iter().map(blob).collect();
        attr.data_type = Some(value.data_type.clone());
        record.message_attributes.insert(name.clone(), attr);
    }
    (record.event_source, record.event_source_arn) =
        (Some("aws:sqs".into()), Some(queue_arn.to_owned()));
    record.aws_region = Some(REGION.into());
    // Lambda leaves out what a message lacks (md5OfMessageAttributes, an
    // attribute's stringValue/binaryValue) rather than sending null.
    let drop_nulls =
        |value: &mut Value| value.as_object_mut().map(|o| o.retain(|_, v| !v.is_null()));
    let mut value = serde_json::to_value(record).unwrap_or_default();
    drop_nulls(&mut value);
    value["messageAttributes"]
        .as_object_mut()
        .into_iter()
        .flat_map(|a| a.values_mut())
        .for_each(|a| {
            drop_nulls(a);
        });
    value
}

pub fn event(messages: &[Message], queue_arn: &str) -> Value {
    json!({ "Records": messages.iter().map(|m| record(m, queue_arn)).collect::<Vec<_>>() })
}
