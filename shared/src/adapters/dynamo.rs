//! The webhook store on DynamoDB: one table, two item kinds (see
//! ARCHITECTURE.md for the layout). Every write that must be exact under
//! concurrency is a single conditional UpdateItem or one transaction.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::domain::{
    BatchOutcome, DeliveryAttempt, LastDelivery, OutcomeApplied, OutcomeKind, RepoRecord,
    RepositoryName, WebhookConfig,
};
use crate::ports::{LayerSize, StoreError, WebhookStore, WebhookUpdate};
use crate::webhook::{CustomHeaders, PayloadFormat, WebhookSecret};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// Sort key of a repository's record.
pub const SK_REPO: &str = "repo";
/// Sort key prefix of a counted layer.
pub const SK_LAYER_PREFIX: &str = "layer#";
/// What a batch read (`get_many`) brings back of a record: what routing and
/// delivering need, and the size. Not the failure count, the disable
/// time and reason, the last delivery or the timestamps: only the settings
/// API shows those, and every attribute left out is one less to read for
/// each of a batch's records.
const BATCH_READ_ATTRIBUTES: &str =
    "pk, #url_attr, secret, enabled, url_version, #fmt_attr, #hdr_attr, deliveries, repository_size";
/// What counting layers reads of the repository record and the layer
/// markers: which exist, and the size (not the webhook and its history).
const SIZE_ATTRIBUTES: &str = "pk, sk, repository_size";
/// BatchGetItem's limit.
const BATCH_GET_MAX: usize = 100;
/// TransactWriteItems' limit, less the one repository update.
const LAYERS_PER_TRANSACTION: usize = 99;
/// BatchGetItem calls in flight at once.
const PARALLEL_READS: usize = 10;
/// Rounds of UnprocessedKeys / optimistic-concurrency retries before giving up.
const MAX_ROUNDS: u32 = 12;
/// Extra tries of a counting transaction cancelled by `TransactionConflict`.
const TRANSACTION_CONFLICT_RETRIES: u32 = 3;

type Item = HashMap<String, AttributeValue>;

/// DynamoDB-backed [`WebhookStore`].
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn repo_key(repo: &RepositoryName) -> Item {
        HashMap::from([
            (PK.to_owned(), s(format!("repo#{repo}"))),
            (SK.to_owned(), s(SK_REPO)),
        ])
    }

    fn layer_key(repo: &RepositoryName, digest: &str) -> Item {
        HashMap::from([
            (PK.to_owned(), s(format!("repo#{repo}"))),
            (SK.to_owned(), s(format!("{SK_LAYER_PREFIX}{digest}"))),
        ])
    }

    /// BatchGetItem over any number of keys, ≤100 a call, the calls
    /// concurrent (a batch of 1,000 repositories must not wait for ten round
    /// trips in a row before its first POST), UnprocessedKeys retried with
    /// backoff. Returns every item found.
    async fn batch_get(
        &self,
        keys: Vec<Item>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let chunks: Vec<Vec<Item>> = keys.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
        let parts: Vec<Vec<Item>> = futures::stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(chunk, projection))
            .buffer_unordered(PARALLEL_READS)
            .try_collect()
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// One BatchGetItem chunk, only the `projection`'s attributes when given.
    async fn batch_get_chunk(
        &self,
        chunk: Vec<Item>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(chunk.len());
        let mut pending = chunk;
        let mut round = 0;
        while !pending.is_empty() {
            if round > 0 {
                backoff(round).await;
            }
            if round >= MAX_ROUNDS {
                return Err(StoreError::Retryable(format!(
                    "BatchGetItem left {} keys unprocessed after {MAX_ROUNDS} rounds",
                    pending.len()
                )));
            }
            round += 1;
            let ka = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .set_projection_expression(projection.map(str::to_owned))
                .set_expression_attribute_names(projection.and_then(aliases_in))
                .build()
                .map_err(|e| StoreError::Permanent(e.to_string()))?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, ka)
                .send()
                .await
                .map_err(map_err)?;
            if let Some(mut r) = out.responses {
                found.extend(r.remove(&self.table).unwrap_or_default());
            }
            if let Some(mut u) = out.unprocessed_keys {
                if let Some(ka) = u.remove(&self.table) {
                    pending = ka.keys;
                }
            }
        }
        Ok(found)
    }

    async fn update_repo(
        &self,
        repo: &RepositoryName,
        update: &str,
        condition: Option<&str>,
        values: Vec<(&str, AttributeValue)>,
        ret: ReturnValue,
    ) -> Result<Result<Option<Item>, Option<Item>>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::repo_key(repo)))
            .update_expression(update)
            .return_values(ret)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(c) = condition {
            req = req.condition_expression(c);
        }
        let expressions = format!("{update} {}", condition.unwrap_or_default());
        req = req.set_expression_attribute_names(aliases_in(&expressions));
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(out) => Ok(Ok(out.attributes)),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let item = match e.into_err() {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                        c.item
                    }
                    _ => None,
                };
                Ok(Err(item))
            }
            Err(e) => Err(map_err(e)),
        }
    }

    /// The record as it is now (consistent read).
    async fn read_item(&self, repo: &RepositoryName) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::repo_key(repo)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        Ok(out.item)
    }

    /// One of the failure count's two conditional writes (below the
    /// threshold: count; at it: count and disable). What it did is read by
    /// `applied` from the item it returns (`ret`). When its condition fails:
    /// `Stale` if the record (as the write saw it, else read again) is gone
    /// or names another URL version; `None` if it still names this one, so
    /// the other write's condition holds now.
    async fn count_failure(
        &self,
        repo: &RepositoryName,
        (update, condition): (&str, &str),
        values: Vec<(&str, AttributeValue)>,
        ret: ReturnValue,
        applied: fn(Option<Item>) -> OutcomeApplied,
        url_version: u64,
    ) -> Result<Option<OutcomeApplied>, StoreError> {
        let seen = match self
            .update_repo(repo, update, Some(condition), values, ret)
            .await?
        {
            Ok(item) => return Ok(Some(applied(item))),
            Err(seen) => seen,
        };
        let current = match seen {
            Some(item) => Some(item),
            None => self.read_item(repo).await?,
        };
        let same_url = current.is_some_and(|item| item_matches_version(&item, url_version));
        Ok((!same_url).then_some(OutcomeApplied::Stale))
    }

    async fn record_failure(
        &self,
        repo: &RepositoryName,
        outcome: &BatchOutcome,
        (reason, history): (&str, &HistoryWrite),
        threshold: u32,
    ) -> Result<OutcomeApplied, StoreError> {
        let version = n(outcome.url_version);
        let ld = s(serde_json::to_string(&outcome.last_delivery).unwrap_or_default());
        let (below_update, at_update) = history.failure_updates();
        // Both writes count one failure of this URL version against the
        // threshold; the one at the threshold also disables.
        let counted = |extra: &[(&'static str, AttributeValue)]| {
            let mut values = vec![
                (":one", n(1)),
                (":ld", ld.clone()),
                (":v", version.clone()),
                (":tm1", n(threshold.saturating_sub(1))),
            ];
            values.extend_from_slice(extra);
            history.with(values)
        };
        let (below_if, at_if) = (
            format!("{SAME_URL} AND consecutive_failures < :tm1"),
            format!("{SAME_URL} AND consecutive_failures >= :tm1"),
        );
        let below = (below_update.as_str(), below_if.as_str());
        let at = (at_update.as_str(), at_if.as_str());
        let url_version = outcome.url_version;
        for round in 0..MAX_ROUNDS {
            // Below the threshold: a plain atomic increment, no read needed.
            let values = counted(&[]);
            let (ret, applied) = (ReturnValue::AllNew, counted_below);
            let done = self.count_failure(repo, below, values, ret, applied, url_version);
            if let Some(applied) = done.await? {
                return Ok(applied);
            }
            let values = counted(&[
                (":f", AttributeValue::Bool(false)),
                (":now", s(&outcome.now)),
                (":reason", s(reason)),
            ]);
            let (ret, applied) = (ReturnValue::AllOld, counted_and_disabled);
            let done = self.count_failure(repo, at, values, ret, applied, url_version);
            match done.await? {
                Some(applied) => return Ok(applied),
                // A success reset the count in between: go round again.
                None => backoff(round + 1).await,
            }
        }
        Err(StoreError::Retryable(
            "failure count kept changing under contention".into(),
        ))
    }
}

/// An outcome write's condition: the record still has the URL version the
/// batch delivered to (a URL changed meanwhile makes the outcome stale).
const SAME_URL: &str = "attribute_exists(#url_attr) AND url_version = :v";

/// What a write that counted a failure below the threshold did, from the
/// record after it (ALL_NEW).
fn counted_below(new: Option<Item>) -> OutcomeApplied {
    let new = new.unwrap_or_default();
    OutcomeApplied::Applied {
        consecutive_failures: num(&new, "consecutive_failures") as u32,
        disabled_now: false,
    }
}

/// What a write that counted a failure and disabled did, from the record
/// before it (ALL_OLD): exactly one writer sees it still enabled, and only
/// that one reports disabling it.
fn counted_and_disabled(old: Option<Item>) -> OutcomeApplied {
    let old = old.unwrap_or_default();
    OutcomeApplied::Applied {
        consecutive_failures: num(&old, "consecutive_failures") as u32 + 1,
        disabled_now: matches!(old.get("enabled"), Some(AttributeValue::Bool(true))),
    }
}

/// The history part of an outcome write: the new list replaces the stored
/// one in the same UpdateItem (read-modify-write on what `deliver` read at
/// the start of the batch, guarded by the outcome's `url_version`
/// condition), so a write never grows the list past its bound.
struct HistoryWrite {
    /// `, deliveries = :hist`, or empty.
    set: &'static str,
    value: Option<AttributeValue>,
}

impl HistoryWrite {
    fn of(history: Option<&[DeliveryAttempt]>) -> Self {
        match history {
            None => Self {
                set: "",
                value: None,
            },
            Some(h) => Self {
                set: ", deliveries = :hist",
                value: Some(s(serde_json::to_string(h).unwrap_or_else(|_| "[]".into()))),
            },
        }
    }

    /// The two failure updates: below the threshold (count), and at it
    /// (count and disable).
    fn failure_updates(&self) -> (String, String) {
        let count = "SET consecutive_failures = consecutive_failures + :one, last_delivery = :ld";
        (
            format!("{count}{}", self.set),
            format!(
                "{count}, enabled = :f, disabled_at = if_not_exists(disabled_at, :now), \
                 disabled_reason = if_not_exists(disabled_reason, :reason){}",
                self.set
            ),
        )
    }

    fn with<'a>(
        &self,
        mut values: Vec<(&'a str, AttributeValue)>,
    ) -> Vec<(&'a str, AttributeValue)> {
        if let Some(v) = &self.value {
            values.push((":hist", v.clone()));
        }
        values
    }
}

/// The attribute names `expression` uses by alias: `url` and `format` are
/// DynamoDB reserved words, and `headers` is aliased alike so no future
/// reserved word can break an expression. `None` when it uses none.
fn aliases_in(expression: &str) -> Option<HashMap<String, String>> {
    let names: HashMap<String, String> = [
        ("#url_attr", "url"),
        ("#fmt_attr", "format"),
        ("#hdr_attr", "headers"),
    ]
    .into_iter()
    .filter(|(alias, _)| expression.contains(alias))
    .map(|(alias, name)| (alias.to_owned(), name.to_owned()))
    .collect();
    (!names.is_empty()).then_some(names)
}

fn item_matches_version(item: &Item, version: u64) -> bool {
    item.contains_key("url") && num(item, "url_version") == version
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &Item, key: &str) -> u64 {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v.parse().unwrap_or(0),
        _ => 0,
    }
}

fn text(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

async fn backoff(round: u32) {
    let base = 20u64 << round.min(6);
    let jitter = rand::random::<u64>() % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Maps an SDK error to retryable or permanent.
pub(crate) fn map_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Retryable(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let msg = format!("{code}: {}", se.err().message().unwrap_or(""));
            if is_retryable_code(code) {
                StoreError::Retryable(msg)
            } else {
                StoreError::Permanent(msg)
            }
        }
        _ => StoreError::Permanent(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
    }
}

/// AWS error codes that mean "later", across DynamoDB and SQS.
pub(crate) fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "Throttling"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "InternalFailure"
            | "InternalError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "RequestThrottled"
            | "KMSThrottlingException"
            | "SlowDown"
            | ""
    )
}

fn record_from_item(repo: &RepositoryName, item: &Item) -> Result<RepoRecord, StoreError> {
    let webhook = match text(item, "url") {
        None => None,
        Some(url) => {
            let secret_text = text(item, "secret").unwrap_or_default();
            let secret = WebhookSecret::parse(&secret_text).map_err(|e| {
                StoreError::Permanent(format!("stored secret for {repo} is unusable: {e}"))
            })?;
            let last_delivery = text(item, "last_delivery")
                .and_then(|j| serde_json::from_str::<LastDelivery>(&j).ok());
            // Records written before formats and headers existed are `alin`
            // without headers.
            let format = match text(item, "format") {
                None => PayloadFormat::Alin,
                Some(f) => PayloadFormat::parse(&f).map_err(|_| {
                    StoreError::Permanent(format!("stored payload format for {repo} is unknown"))
                })?,
            };
            let headers = match text(item, "headers") {
                None => CustomHeaders::default(),
                Some(h) => CustomHeaders::from_stored(&h)
                    .map_err(|why| StoreError::Permanent(format!("{why} ({repo})")))?,
            };
            Some(WebhookConfig {
                url,
                secret,
                enabled: matches!(item.get("enabled"), Some(AttributeValue::Bool(true))),
                consecutive_failures: num(item, "consecutive_failures") as u32,
                disabled_at: text(item, "disabled_at"),
                disabled_reason: text(item, "disabled_reason"),
                last_delivery,
                created_at: text(item, "created_at").unwrap_or_default(),
                updated_at: text(item, "updated_at").unwrap_or_default(),
                url_version: num(item, "url_version"),
                format,
                headers,
                deliveries: text(item, "deliveries")
                    .and_then(|j| serde_json::from_str(&j).ok())
                    .unwrap_or_default(),
            })
        }
    };
    Ok(RepoRecord {
        repository: repo.clone(),
        webhook,
        repository_size: num(item, "repository_size"),
    })
}

fn repo_of_item(item: &Item) -> Option<RepositoryName> {
    match item.get(PK) {
        Some(AttributeValue::S(pk)) => pk
            .strip_prefix("repo#")
            .and_then(|r| RepositoryName::parse(r).ok()),
        _ => None,
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn get(&self, repo: &RepositoryName) -> Result<Option<RepoRecord>, StoreError> {
        match self.read_item(repo).await? {
            Some(item) => record_from_item(repo, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn get_many(
        &self,
        repos: &[RepositoryName],
    ) -> Result<HashMap<RepositoryName, RepoRecord>, StoreError> {
        let unique: HashSet<&RepositoryName> = repos.iter().collect();
        let keys = unique.iter().map(|r| Self::repo_key(r)).collect();
        let mut out = HashMap::with_capacity(unique.len());
        for item in self.batch_get(keys, Some(BATCH_READ_ATTRIBUTES)).await? {
            let Some(repo) = repo_of_item(&item) else {
                continue;
            };
            match record_from_item(&repo, &item) {
                Ok(rec) => {
                    out.insert(repo, rec);
                }
                // One corrupt item must not fail the whole batch: treat it as
                // having no usable webhook, loudly.
                Err(e) => {
                    tracing::error!(repository = %repo, error = %e, "unusable webhook record")
                }
            }
        }
        Ok(out)
    }

    async fn put_webhook(
        &self,
        repo: &RepositoryName,
        update: &WebhookUpdate,
        now: &str,
    ) -> Result<RepoRecord, StoreError> {
        let secret = WebhookSecret::generate();
        let mut values = vec![
            (":u", s(update.url.as_str())),
            (":t", AttributeValue::Bool(true)),
            (":zero", n(0)),
            (":one", n(1)),
            (":now", s(now)),
            (":s", s(secret.expose())),
            (":r", s(repo.as_str())),
            (":fmt", s(update.format.as_str())),
        ];
        // Headers: absent keeps them, empty removes them, else replaced.
        let (set_headers, remove_headers) = match &update.headers {
            None => ("", ""),
            Some(h) if h.is_empty() => ("", ", #hdr_attr"),
            Some(h) => {
                values.push((":h", s(h.to_stored())));
                (", #hdr_attr = :h", "")
            }
        };
        let expression = format!(
            "SET #url_attr = :u, enabled = :t, consecutive_failures = :zero, updated_at = :now, \
             created_at = if_not_exists(created_at, :now), secret = if_not_exists(secret, :s), \
             repository = :r, url_version = if_not_exists(url_version, :zero) + :one, \
             repository_size = if_not_exists(repository_size, :zero), #fmt_attr = :fmt{set_headers} \
             REMOVE disabled_at, disabled_reason{remove_headers}"
        );
        let res = self
            .update_repo(repo, &expression, None, values, ReturnValue::AllNew)
            .await?;
        let item = res
            .map_err(|_| {
                StoreError::Permanent("unconditional update reported a condition failure".into())
            })?
            .unwrap_or_default();
        record_from_item(repo, &item)
    }

    async fn delete(&self, repo: &RepositoryName) -> Result<bool, StoreError> {
        // The size, layers and url_version stay: the size is the repository's,
        // and the version must keep rising so stale outcomes stay stale.
        let res = self
            .update_repo(
                repo,
                "REMOVE #url_attr, secret, enabled, consecutive_failures, disabled_at, disabled_reason, \
                 last_delivery, created_at, updated_at, #fmt_attr, #hdr_attr, deliveries SET url_version = url_version + :one",
                Some("attribute_exists(#url_attr)"),
                vec![(":one", n(1))],
                ReturnValue::None,
            )
            .await?;
        Ok(res.is_ok())
    }

    async fn enable(
        &self,
        repo: &RepositoryName,
        now: &str,
    ) -> Result<Option<RepoRecord>, StoreError> {
        let res = self
            .update_repo(
                repo,
                "SET enabled = :t, consecutive_failures = :zero, updated_at = :now, url_version = url_version + :one \
                 REMOVE disabled_at, disabled_reason",
                Some("attribute_exists(#url_attr)"),
                vec![
                    (":t", AttributeValue::Bool(true)),
                    (":zero", n(0)),
                    (":one", n(1)),
                    (":now", s(now)),
                ],
                ReturnValue::AllNew,
            )
            .await?;
        match res {
            Ok(item) => record_from_item(repo, &item.unwrap_or_default()).map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn record_outcome(
        &self,
        repo: &RepositoryName,
        outcome: &BatchOutcome,
        threshold: u32,
    ) -> Result<OutcomeApplied, StoreError> {
        let history = HistoryWrite::of(outcome.history.as_deref());
        let ld = s(serde_json::to_string(&outcome.last_delivery).unwrap_or_default());
        let version = n(outcome.url_version);
        match &outcome.kind {
            OutcomeKind::Failed { reason } => {
                self.record_failure(repo, outcome, (reason, &history), threshold)
                    .await
            }
            OutcomeKind::Delivered => {
                let res = self
                    .update_repo(
                        repo,
                        &format!(
                            "SET consecutive_failures = :zero, last_delivery = :ld{}",
                            history.set
                        ),
                        Some(SAME_URL),
                        history.with(vec![(":zero", n(0)), (":ld", ld), (":v", version)]),
                        ReturnValue::None,
                    )
                    .await?;
                Ok(match res {
                    Ok(_) => OutcomeApplied::Applied {
                        consecutive_failures: 0,
                        disabled_now: false,
                    },
                    Err(_) => OutcomeApplied::Stale,
                })
            }
            OutcomeKind::Gone => {
                // Disabled at once, whatever the count: the same write as a
                // failure reaching the threshold.
                let (_, disable) = history.failure_updates();
                let values = history.with(vec![
                    (":f", AttributeValue::Bool(false)),
                    (":ld", ld),
                    (":one", n(1)),
                    (":now", s(&outcome.now)),
                    (":reason", s("receiver answered 410 Gone")),
                    (":v", version),
                ]);
                let res = self
                    .update_repo(repo, &disable, Some(SAME_URL), values, ReturnValue::AllOld)
                    .await?;
                Ok(res.map_or(OutcomeApplied::Stale, counted_and_disabled))
            }
        }
    }

    async fn add_layers(
        &self,
        repo: &RepositoryName,
        layers: &[LayerSize],
    ) -> Result<u64, StoreError> {
        let mut seen = HashSet::new();
        let layers: Vec<&LayerSize> = layers
            .iter()
            .filter(|l| seen.insert(l.digest.as_str()))
            .collect();
        for round in 0..MAX_ROUNDS {
            if round > 0 {
                // Another writer counted first (a hot repository): said at
                // info so that contention can be counted from the logs.
                tracing::info!(repository = %repo, round, "repository size changed meanwhile; reading it again");
                backoff(round).await;
            }
            // The first try is conditional on the size read, so the size it
            // returns needs no read. Once that race is lost the repository is
            // hot: conditioning on the size again would let only one of N
            // writers win each round, so later tries add without that
            // condition (the layer markers still guard double counting) and
            // read the size back afterwards.
            let guarded = round == 0;
            let mut keys = vec![Self::repo_key(repo)];
            keys.extend(layers.iter().map(|l| Self::layer_key(repo, &l.digest)));
            let items = self.batch_get(keys, Some(SIZE_ATTRIBUTES)).await?;
            let mut size = None;
            let mut known = HashSet::new();
            for item in &items {
                match text(item, SK).as_deref() {
                    Some(SK_REPO) => {
                        size = item
                            .get("repository_size")
                            .map(|_| num(item, "repository_size"))
                    }
                    Some(sk) => {
                        if let Some(d) = sk.strip_prefix(SK_LAYER_PREFIX) {
                            known.insert(d.to_owned());
                        }
                    }
                    None => {}
                }
            }
            let fresh: Vec<&LayerSize> = layers
                .iter()
                .copied()
                .filter(|l| !known.contains(&l.digest))
                .collect();
            let mut total = size.unwrap_or(0);
            if fresh.is_empty() {
                return Ok(total);
            }
            let mut conflicted = false;
            for chunk in fresh.chunks(LAYERS_PER_TRANSACTION) {
                let added = chunk.iter().fold(0u64, |a, l| a.saturating_add(l.size));
                let guard = match guarded {
                    true => SizeGuard::Unchanged(size.map(|_| total)),
                    false => SizeGuard::None,
                };
                match self.count_chunk(repo, chunk, guard, added).await? {
                    true => {
                        total = total.saturating_add(added);
                        size = Some(total);
                    }
                    false => {
                        conflicted = true;
                        break;
                    }
                }
            }
            match (conflicted, guarded) {
                (false, true) => return Ok(total),
                (false, false) => return self.repository_size(repo).await,
                (true, _) => {}
            }
        }
        Err(StoreError::Retryable(
            "repository size kept changing under contention".into(),
        ))
    }
}

impl DynamoStore {
    /// The repository's size as of now (a strongly consistent read).
    async fn repository_size(&self, repo: &RepositoryName) -> Result<u64, StoreError> {
        let items = self
            .batch_get(vec![Self::repo_key(repo)], Some(SIZE_ATTRIBUTES))
            .await?;
        Ok(items.first().map_or(0, |item| num(item, "repository_size")))
    }

    /// One transaction: the layers' markers (each only if new) and the size,
    /// under `guard`. `Ok(false)` means another writer got there first.
    async fn count_chunk(
        &self,
        repo: &RepositoryName,
        chunk: &[&LayerSize],
        guard: SizeGuard,
        added: u64,
    ) -> Result<bool, StoreError> {
        let mut items = Vec::with_capacity(chunk.len() + 1);
        for l in chunk {
            let mut item = Self::layer_key(repo, &l.digest);
            item.insert("size".into(), n(l.size));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Permanent(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let (cond, mut values) = match guard {
            SizeGuard::Unchanged(Some(v)) => (
                Some("repository_size = :expected"),
                vec![(":expected", n(v))],
            ),
            SizeGuard::Unchanged(None) => (Some("attribute_not_exists(repository_size)"), vec![]),
            SizeGuard::None => (None, vec![]),
        };
        values.push((":zero", n(0)));
        values.push((":added", n(added)));
        values.push((":r", s(repo.as_str())));
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::repo_key(repo)))
            .update_expression("SET repository_size = if_not_exists(repository_size, :zero) + :added, repository = :r")
            .set_condition_expression(cond.map(str::to_owned));
        for (k, v) in values {
            update = update.expression_attribute_values(k, v);
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        items.push(TransactWriteItem::builder().update(update).build());
        self.transact(items).await
    }

    /// Runs one counting transaction. A cancellation because another
    /// transaction held an item (`TransactionConflict`) is passing: the same
    /// transaction is tried again, a few times, after a jittered pause.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        let mut conflicts = 0;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let reasons = match sent {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                    cancellation_codes(e.err())
                }
                Err(e) => return Err(map_err(e)),
            };
            match Cancelled::of(&reasons) {
                Cancelled::Lost => return Ok(false),
                Cancelled::Conflict if conflicts < TRANSACTION_CONFLICT_RETRIES => {
                    conflicts += 1;
                    tracing::info!(
                        retry = conflicts,
                        "size transaction conflicted; trying it again"
                    );
                    backoff(conflicts).await;
                }
                // Still conflicting: read again and retry within
                // `add_layers`' rounds rather than failing the push.
                Cancelled::Conflict => return Ok(false),
                Cancelled::Other => {
                    return Err(StoreError::Retryable(format!(
                        "transaction cancelled: {reasons:?}"
                    )))
                }
            }
        }
    }
}

fn cancellation_codes(
    e: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> Vec<String> {
    match e {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => t
            .cancellation_reasons()
            .iter()
            .filter_map(|r| r.code().map(str::to_owned))
            .collect(),
        _ => vec![],
    }
}

/// What a counting transaction requires of the repository's size.
#[derive(Debug, Clone, Copy)]
enum SizeGuard {
    /// That it is still the size read (`None`: not counted yet), so the
    /// size after the transaction is known without reading it.
    Unchanged(Option<u64>),
    /// Nothing: the markers alone keep a layer from being counted twice.
    None,
}

/// What a cancelled counting transaction's reasons mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancelled {
    /// A condition failed (or no reason given): another writer counted
    /// first; read again.
    Lost,
    /// Only conflicts with another transaction in flight: try the same again.
    Conflict,
    /// Anything else (throttling, validation): fail, retryable.
    Other,
}

impl Cancelled {
    fn of(codes: &[String]) -> Self {
        let real: Vec<&str> = codes
            .iter()
            .map(String::as_str)
            .filter(|c| *c != "None")
            .collect();
        if real.is_empty() || real.contains(&"ConditionalCheckFailed") {
            Self::Lost
        } else if real.iter().all(|c| *c == "TransactionConflict") {
            Self::Conflict
        } else {
            Self::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn cancellation_reasons() {
        let codes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Cancelled::of(&codes(&[])), Cancelled::Lost);
        assert_eq!(
            Cancelled::of(&codes(&["None", "ConditionalCheckFailed"])),
            Cancelled::Lost
        );
        assert_eq!(
            Cancelled::of(&codes(&["TransactionConflict", "ConditionalCheckFailed"])),
            Cancelled::Lost
        );
        assert_eq!(
            Cancelled::of(&codes(&["None", "TransactionConflict", "None"])),
            Cancelled::Conflict
        );
        assert_eq!(
            Cancelled::of(&codes(&["ThrottlingError", "TransactionConflict"])),
            Cancelled::Other
        );
    }

    /// A batch read's projection and the memory fake's `batch_read` leave
    /// out the same fields: a record field read by `record_from_item` but
    /// missing from `BATCH_READ_ATTRIBUTES` (or the other way round) fails
    /// here instead of silently coming back at its default.
    #[test]
    fn batch_read_projection_matches_the_memory_fake() {
        use crate::domain::record::{AttemptKind, DeliveryOutcome};
        let repo = RepositoryName::parse("alice/app").unwrap();
        let secret = WebhookSecret::generate();
        let attempt = DeliveryAttempt {
            webhook_id: "evt_1".into(),
            event: "push".into(),
            tag: "1.0".into(),
            attempt: 2,
            at: "2026-11-28T08:00:00Z".into(),
            duration_ms: 12,
            status: Some(503),
            error: None,
            kind: AttemptKind::Retry,
            payload: None,
        };
        let last = LastDelivery {
            webhook_id: "evt_1".into(),
            event: "push".into(),
            tag: "1.0".into(),
            at: "2026-11-28T08:00:00Z".into(),
            outcome: DeliveryOutcome::Retrying,
            status: Some(503),
            error: None,
            duration_ms: 12,
            attempt: 2,
        };
        let pairs = vec![("X-Team".to_owned(), "a".to_owned())];
        let headers = CustomHeaders::new(pairs, PayloadFormat::CloudEvents).unwrap();
        let full: Item = [
            (PK, s("repo#alice/app")),
            ("url", s("https://ci.example.com/h?token=t")),
            ("secret", s(secret.expose())),
            ("enabled", AttributeValue::Bool(true)),
            ("consecutive_failures", n(3)),
            ("disabled_at", s("2026-11-28T09:00:00Z")),
            ("disabled_reason", s("failures")),
            ("last_delivery", s(serde_json::to_string(&last).unwrap())),
            ("created_at", s("2026-11-01T00:00:00Z")),
            ("updated_at", s("2026-11-02T00:00:00Z")),
            ("url_version", n(7)),
            ("format", s("cloudevents")),
            ("headers", s(headers.to_stored())),
            ("deliveries", s(serde_json::to_string(&[attempt]).unwrap())),
            ("repository_size", n(42)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let aliases = aliases_in(BATCH_READ_ATTRIBUTES).unwrap_or_default();
        let projected: Item = BATCH_READ_ATTRIBUTES
            .split(", ")
            .map(|a| aliases.get(a).map_or(a, String::as_str))
            .filter_map(|a| full.get(a).map(|v| (a.to_owned(), v.clone())))
            .collect();
        let whole = record_from_item(&repo, &full).unwrap();
        let batch = record_from_item(&repo, &projected).unwrap();
        assert_eq!(batch, crate::adapters::memory::batch_read(&whole));
        // The item sets every field, so the projection really leaves some out.
        assert_ne!(batch, whole);
        assert_eq!(projected.len(), BATCH_READ_ATTRIBUTES.split(", ").count());
    }

    const CONFLICT: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#;

    /// A DynamoDB endpoint on 127.0.0.1 that cancels the first `conflicts`
    /// TransactWriteItems calls with `TransactionConflict`, then accepts.
    async fn endpoint(conflicts: usize) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    read_request(&mut sock).await;
                    let (status, body) = if n < conflicts {
                        ("400 Bad Request", CONFLICT)
                    } else {
                        ("200 OK", "{}")
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, calls)
    }

    async fn read_request(sock: &mut tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let Ok(n) = sock.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }

    fn store(url: &str) -> DynamoStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .endpoint_url(url)
            // The workspace links no SDK default client: the product's own.
            .http_client(crate::net::sdk_http::client(
                crate::net::tls::client_config().expect("the compiled-in roots"),
            ))
            .build();
        DynamoStore::new(Client::from_conf(config), "t")
    }

    fn items() -> Vec<TransactWriteItem> {
        let put = Put::builder()
            .table_name("t")
            .set_item(Some(HashMap::from([("pk".to_owned(), s("x"))])))
            .build()
            .unwrap();
        vec![TransactWriteItem::builder().put(put).build()]
    }

    /// GIVEN a transaction cancelled by `TransactionConflict` twice
    /// THEN the same transaction is sent again and succeeds; past the retry
    /// budget it is reported as a lost race (`add_layers` reads again and
    /// retries within its rounds) rather than failing the push.
    #[tokio::test]
    async fn a_transaction_conflict_is_tried_again() {
        let (url, calls) = endpoint(2).await;
        assert!(store(&url).transact(items()).await.unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let (url, calls) = endpoint(100).await;
        assert!(!store(&url).transact(items()).await.unwrap());
        assert_eq!(
            calls.load(Ordering::SeqCst) as u32,
            1 + TRANSACTION_CONFLICT_RETRIES
        );
    }
}
