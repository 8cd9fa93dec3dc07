//! Adapters behind the ports: DynamoDB and SQS for real, memory for unit tests.

pub mod dynamo;
pub mod memory;
pub mod sqs;

pub use dynamo::DynamoStore;
pub use memory::{MemoryQueue, MemoryStore};
pub use sqs::SqsQueue;
