//! `deliver`: the Lambda function that turns delivery jobs from the SQS
//! delivery queue into the signed webhook POSTs of CONTRACT §4 and accounts
//! for their outcomes per CONTRACT §5.
//!
//! The binary is a thin shell around [`Deliverer`]; everything here is
//! testable with in-memory ports or against moto and local HTTP servers.
//! [`Deliverer::deliver`] works one batch and returns the SQS partial-batch
//! response with the invocation's [`Figures`]; [`Deliverer::handle`] is the
//! Lambda handler (deadline from the context, EMF line on stdout).
//!
//! Decisions worth knowing (details in the modules):
//! - `Retry-After` (seconds or HTTP date) can lengthen a retry's wait, never
//!   shorten it below the schedule, and never beyond 900 s ([`backoff`]).
//! - Per repository and batch, one outcome: any 2xx → delivered (count 0);
//!   else any 410 → gone (disabled); else failed, counted once, with the
//!   last failure's reason. `last_delivery` is the last attempt by start
//!   time, whatever its own outcome.
//! - A job that failed its `MAX_ATTEMPTS`-th attempt is reported failed with
//!   visibility 0; the queue's redrive policy (`maxReceiveCount =
//!   MAX_ATTEMPTS`) moves it to the DLQ on its next receive.
//! - One EMF line per invocation ([`metrics`]).

pub mod backoff;
mod batch;
mod dispatch;
pub mod error;
mod handler;
pub mod metrics;
mod send;
pub mod settings;

pub use backoff::{parse_retry_after, retry_delay, retry_delay_secs, scheduled_delay};
pub use error::DeliverError;
pub use handler::{build_client, BatchReport, Deliverer};
pub use metrics::Figures;
pub use settings::Settings;

#[cfg(test)]
mod tests;
