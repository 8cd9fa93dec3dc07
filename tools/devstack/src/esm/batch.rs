//! Interpreting a function's answer to an SQS batch the way Lambda does
//! with `ReportBatchItemFailures`: which messages to delete. Covered by the
//! `devstack_esm` integration tests.

use std::collections::HashSet;

use serde_json::Value;

use crate::runtime_api::Outcome;

/// What to do with a batch after the invocation.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Delete every message except these failed message ids.
    DeleteExcept(HashSet<String>),
    /// Delete nothing: the function failed, or its batch response was
    /// invalid (Lambda then treats the whole batch as failed).
    DeleteNone(Reason),
}

/// Why a whole batch is kept.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Reason {
    /// The invocation ended in a function error (or timeout).
    FunctionError,
    /// `batchItemFailures` was malformed or named an empty/unknown id.
    InvalidResponse,
}

/// The verdict for `outcome` on a batch holding `message_ids`.
pub fn verdict(outcome: &Outcome, message_ids: &HashSet<String>) -> Verdict {
    let value = match outcome {
        Outcome::FunctionError(_) => return Verdict::DeleteNone(Reason::FunctionError),
        Outcome::Ok(value) => value,
    };
    // No object, or no/null batchItemFailures, means full success.
    let failures = match value.get("batchItemFailures") {
        None | Some(Value::Null) => return Verdict::DeleteExcept(HashSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Verdict::DeleteNone(Reason::InvalidResponse),
    };
    let ids = failures.iter().map(|item| {
        let id = item.get("itemIdentifier").and_then(Value::as_str);
        id.filter(|id| message_ids.contains(*id)).map(str::to_owned)
    });
    match ids.collect::<Option<HashSet<_>>>() {
        Some(failed) => Verdict::DeleteExcept(failed),
        None => Verdict::DeleteNone(Reason::InvalidResponse),
    }
}
