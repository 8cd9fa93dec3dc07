//! `deliver`: the Lambda function that turns delivery jobs from the SQS
//! delivery queue into the contract's signed webhook POSTs and accounts for
//! their outcomes (the outcomes policy).
//!
//! The binary is a thin shell around [`Deliverer`]; everything here is
//! testable with in-memory ports or against moto and local HTTP servers.
//! [`Deliverer::deliver`] works one batch and returns the SQS partial-batch
//! response with the invocation's [`Summary`]; [`Deliverer::handle`] is the
//! Lambda handler (deadline from the context, EMF line on stdout).
//!
//! The flow of a batch, one module per stage (`handler` wires them):
//! - `plan`: parse (`parse`), coalesce (`coalesce`: the newest push of a
//!   tag wins), list the batch's repositories;
//! - `send`: the repositories read 100 a `get_many` and routed as each read
//!   answers, their jobs fed to the dispatcher (`dispatch`: concurrency
//!   limits, deadline, host breaker) running one `attempt` per job while
//!   the next reads and the finished repositories' outcome writes go on;
//! - `account`: the outcome per repository ("disable after N"), which
//!   records come back and with which visibility — the retry schedule is
//!   [`backoff`];
//! - `respond`: visibilities set, `batchItemFailures` built.
//!
//! One EMF line per invocation ([`metrics`]).

mod account;
mod attempt;
pub mod backoff;
mod coalesce;
pub mod config;
mod dispatch;
pub mod error;
mod handler;
pub mod metrics;
mod parse;
mod plan;
mod respond;
mod send;

pub use backoff::{parse_retry_after, retry_delay, retry_delay_secs, scheduled_delay};
pub use config::{Config, DeliveryPolicy};
pub use error::DeliverError;
pub use handler::{build_client, BatchReport, Deliverer};
pub use metrics::Summary;
pub use parse::{SqsAttributes, SqsBatch, SqsRecord};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reads;
