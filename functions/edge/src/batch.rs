//! One SQS batch from a Lambda event source mapping on the FIFO sync queue: each message
//! parsed and reconciled, its result turned into a [`Disposition`], and the answer Lambda
//! expects for partial batch failures (`ReportBatchItemFailures`).
//!
//! | outcome                         | what happens                                         | reported as failed |
//! |---------------------------------|------------------------------------------------------|--------------------|
//! | done                            | nothing (Lambda deletes the message)                 | no                 |
//! | forwarded to another pair       | sent to the queue under that pair's key              | only if that fails |
//! | unreadable body (poison)        | sent to the DLQ with the reason                      | only if that fails |
//! | retry (throttled, timed out...) | its visibility extended to the wait                  | yes                |
//! | permanent, or attempts used up  | sent to the DLQ with the reason                      | only if that fails |
//! | after a failure in its group    | not processed                                        | yes                |
//!
//! Lambda's FIFO rule: once a message of a group fails, the later messages of that group
//! in the batch must fail with it, or they would overtake it. Groups (pairs) are
//! independent, so they run at the same time, each in its own order.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use cosell::engine::disposition::queued;
use cosell::engine::{BadMessage, Disposition, PairOutcome, SyncError, SyncMessage};
use cosell::queue::{Queue, QueueError, Received};
use cosell::telemetry;
use futures_util::stream::{self, StreamExt};
use tracing::Instrument;

/// Pairs of one batch reconciled at the same time: enough to overlap the waits on Partner
/// Center and Dataverse, few enough not to trip their per-tenant throttling.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How a batch's messages are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryRules {
    /// Failed attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// Wait before retrying a transient failure that named none.
    pub fallback: Duration,
}

impl Default for RetryRules {
    fn default() -> Self {
        RetryRules {
            max_attempts: cosell::engine::disposition::DEFAULT_MAX_ATTEMPTS,
            fallback: Duration::from_secs(30),
        }
    }
}

/// What became of one message; for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Done,
    Forwarded,
    /// Left for SQS to deliver again after `delay` (reported in `batchItemFailures`).
    Retried {
        delay: Duration,
        reason: String,
    },
    DeadLettered {
        reason: String,
    },
    /// Not processed: an earlier message of its pair failed in this batch (reported).
    Held,
    /// The queue call that would have settled it failed (reported, delivered again).
    Unsettled {
        reason: String,
    },
}

impl Handled {
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Handled::Retried { .. } | Handled::Held | Handled::Unsettled { .. }
        )
    }
}

/// The outcome of every message, in the batch's order, and the answer for Lambda.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub handled: Vec<(String, Handled)>,
    pub response: SqsBatchResponse,
}

/// The record as the queue port sees a received message.
fn received(record: &SqsMessage) -> Received {
    Received {
        id: record.message_id.clone().unwrap_or_default(),
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        receive_count: record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        attributes: record
            .message_attributes
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?)))
            .collect::<BTreeMap<_, _>>(),
        group: record.attributes.get("MessageGroupId").cloned(),
    }
}

fn group_of(record: &SqsMessage) -> Option<String> {
    record.attributes.get("MessageGroupId").cloned()
}

/// Carries out the disposition of one message on the queue it came from.
async fn dispose(queue: &dyn Queue, message: &Received, disposition: Disposition) -> Handled {
    let settled = |r: Result<(), QueueError>, ok: Handled| match r {
        Ok(()) => ok,
        Err(e) => Handled::Unsettled {
            reason: e.to_string(),
        },
    };
    match disposition {
        Disposition::Done => Handled::Done,
        Disposition::Forward { to } => settled(
            queue.send(&queued(&to)).await.map(|_| ()),
            Handled::Forwarded,
        ),
        Disposition::Retry { delay, reason } => {
            // Reported as failed either way; the visibility is what makes it wait.
            if let Err(e) = queue.release(&message.receipt, delay).await {
                tracing::warn!(message_id = %message.id, error = %e, "could not extend the visibility; SQS delivers it after its own timeout");
            }
            Handled::Retried { delay, reason }
        }
        Disposition::DeadLetter { reason } => settled(
            queue.dead_letter(message, &reason).await,
            Handled::DeadLettered { reason },
        ),
    }
}

/// Parses, reconciles and disposes of one message.
async fn handle_one<P, S, Fut>(
    queue: &dyn Queue,
    record: &SqsMessage,
    parse: &P,
    sync: &S,
    rules: RetryRules,
) -> Handled
where
    P: Fn(&str) -> Result<SyncMessage, BadMessage>,
    S: Fn(SyncMessage) -> Fut,
    Fut: Future<Output = Result<PairOutcome, SyncError>>,
{
    let message = received(record);
    // The message's lines name its pair (the FIFO group is the pair key).
    let span = tracing::info_span!(
        "message",
        message_id = %message.id,
        pair_key = message.group.as_deref().unwrap_or("")
    );
    handle_received(queue, record, message, parse, sync, rules)
        .instrument(span)
        .await
}

/// The body of [`handle_one`], inside the message's span.
async fn handle_received<P, S, Fut>(
    queue: &dyn Queue,
    record: &SqsMessage,
    message: Received,
    parse: &P,
    sync: &S,
    rules: RetryRules,
) -> Handled
where
    P: Fn(&str) -> Result<SyncMessage, BadMessage>,
    S: Fn(SyncMessage) -> Fut,
    Fut: Future<Output = Result<PairOutcome, SyncError>>,
{
    let (sent, result, disposition) = match record.body.as_deref().map(parse) {
        None => (
            None,
            None,
            Disposition::DeadLetter {
                reason: "poison message: no body".into(),
            },
        ),
        Some(Err(bad)) => (
            None,
            None,
            Disposition::DeadLetter {
                reason: format!("poison message: {bad}"),
            },
        ),
        Some(Ok(parsed)) => {
            // Kept for the telemetry (its origin is the direction), parsed once.
            let sent = parsed.clone();
            let result = sync(parsed).await;
            let disposition = Disposition::of(
                &result,
                message.receive_count,
                rules.max_attempts,
                rules.fallback,
            );
            (Some(sent), Some(result), disposition)
        }
    };
    telemetry::sync::settled(sent.as_ref(), result.as_ref(), &disposition);
    let handled = dispose(queue, &message, disposition).await;
    match &handled {
        Handled::Done | Handled::Forwarded | Handled::Held => {
            tracing::debug!(message_id = %message.id, ?handled, "message handled")
        }
        Handled::Retried { delay, reason } => tracing::warn!(
            message_id = %message.id,
            attempt = message.receive_count,
            delay_s = delay.as_secs(),
            reason = %reason,
            "reconcile failed; SQS will deliver it again"
        ),
        Handled::DeadLettered { reason } => tracing::error!(
            message_id = %message.id,
            reason = %reason,
            "message sent to the dead-letter queue"
        ),
        Handled::Unsettled { reason } => tracing::error!(
            message_id = %message.id,
            error = %reason,
            "could not forward or dead-letter the message; SQS will deliver it again"
        ),
    }
    handled
}

/// Handles every record of `event`: the records of one group in order, at most
/// `concurrency` groups at a time. `parse` reads a body (an error makes it a poison message
/// for the DLQ); `sync` does the work.
///
/// A record without a message id is reported with an empty identifier, which Lambda treats
/// as a failure of the whole batch: better all again than one lost.
pub async fn drive<P, S, Fut>(
    queue: &dyn Queue,
    event: &SqsEvent,
    concurrency: usize,
    rules: RetryRules,
    parse: P,
    sync: S,
) -> BatchOutcome
where
    P: Fn(&str) -> Result<SyncMessage, BadMessage>,
    S: Fn(SyncMessage) -> Fut,
    Fut: Future<Output = Result<PairOutcome, SyncError>>,
{
    // The records of each group, in the batch's order; a record without a group (a
    // standard queue) is a group of its own.
    let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (i, record) in event.records.iter().enumerate() {
        match group_of(record) {
            Some(g) => match groups.iter_mut().find(|(k, _)| k.as_deref() == Some(&g)) {
                Some((_, members)) => members.push(i),
                None => groups.push((Some(g), vec![i])),
            },
            None => groups.push((None, vec![i])),
        }
    }
    let (parse, sync) = (&parse, &sync);
    let per_group: Vec<Vec<(usize, Handled)>> = stream::iter(groups)
        .map(|(_, members)| async move {
            let mut out = Vec::with_capacity(members.len());
            let mut failed = false;
            for i in members {
                let handled = if failed {
                    Handled::Held
                } else {
                    handle_one(queue, &event.records[i], parse, sync, rules).await
                };
                failed |= handled.is_failure();
                out.push((i, handled));
            }
            out
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut by_index: Vec<(usize, Handled)> = per_group.into_iter().flatten().collect();
    by_index.sort_by_key(|(i, _)| *i);
    let handled: Vec<(String, Handled)> = by_index
        .into_iter()
        .map(|(i, h)| (event.records[i].message_id.clone().unwrap_or_default(), h))
        .collect();
    let mut response = SqsBatchResponse::default();
    for (id, h) in &handled {
        if h.is_failure() || id.is_empty() {
            response.add_failure(id.clone());
        }
    }
    tracing::info!(
        messages = handled.len(),
        failed = response.batch_item_failures.len(),
        "batch handled"
    );
    BatchOutcome { handled, response }
}

#[cfg(test)]
mod tests;
