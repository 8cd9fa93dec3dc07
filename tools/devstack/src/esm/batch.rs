//! Interpreting a function's answer to an SQS batch the way Lambda does
//! with `ReportBatchItemFailures`: which messages to delete.

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
    let mut failed = HashSet::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && message_ids.contains(id) => {
                failed.insert(id.to_owned());
            }
            _ => return Verdict::DeleteNone(Reason::InvalidResponse),
        }
    }
    Verdict::DeleteExcept(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> HashSet<String> {
        ["a", "b", "c"].into_iter().map(String::from).collect()
    }

    #[test]
    fn lists_failed_ids() {
        let v = verdict(
            &Outcome::Ok(json!({"batchItemFailures": [{"itemIdentifier": "b"}]})),
            &ids(),
        );
        assert_eq!(v, Verdict::DeleteExcept(["b".to_string()].into()));
    }

    #[test]
    fn empty_or_absent_list_is_full_success() {
        for ok in [
            json!({"batchItemFailures": []}),
            json!({}),
            json!(null),
            json!("done"),
        ] {
            assert_eq!(
                verdict(&Outcome::Ok(ok), &ids()),
                Verdict::DeleteExcept(HashSet::new())
            );
        }
    }

    #[test]
    fn unknown_or_empty_id_keeps_the_whole_batch() {
        for bad in [
            json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "a"}, {}]}),
            json!({"batchItemFailures": "a"}),
        ] {
            assert_eq!(
                verdict(&Outcome::Ok(bad), &ids()),
                Verdict::DeleteNone(Reason::InvalidResponse)
            );
        }
    }

    #[test]
    fn function_error_keeps_the_whole_batch() {
        let v = verdict(
            &Outcome::FunctionError(json!({"errorMessage": "x"})),
            &ids(),
        );
        assert_eq!(v, Verdict::DeleteNone(Reason::FunctionError));
    }
}
