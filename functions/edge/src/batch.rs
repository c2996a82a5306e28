//! One SQS batch from a Lambda event source mapping: each message parsed and synced on its
//! own (a few at a time), its result turned into a [`Disposition`], and the answer Lambda
//! expects for partial batch failures (`ReportBatchItemFailures`).
//!
//! | outcome                        | what happens                                     | reported as failed |
//! |--------------------------------|--------------------------------------------------|--------------------|
//! | done                           | nothing (Lambda deletes the message)             | no                 |
//! | unreadable body (poison)       | sent to the DLQ with the reason                  | only if that fails |
//! | throttled / raced (`Requeue`)  | a delayed copy sent to the same queue            | only if that fails |
//! | transient (`Fail`)             | left for SQS to redeliver after its visibility   | yes                |
//! | permanent (`DeadLetter`)       | sent to the DLQ with the reason                  | only if that fails |
//!
//! Requeueing a copy, rather than failing the message, keeps a throttled message from using
//! up its receive count (and reaching the DLQ) while it waits.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use cosell::engine::{BadMessage, Disposition, SyncError};
use cosell::queue::{OutMessage, Queue, QueueError, Received};
use futures_util::stream::{self, StreamExt};

/// Messages of one batch synced at the same time: enough to overlap the waits on Partner
/// Center and Dataverse, few enough not to trip their per-tenant throttling.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The attribute on a requeued copy that says why it was requeued.
pub const REQUEUED_BECAUSE: &str = "requeued_because";

/// What became of one message; for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Done,
    Requeued {
        delay: Duration,
    },
    /// Left for SQS to redeliver (reported in `batchItemFailures`).
    Failed {
        reason: String,
    },
    DeadLettered {
        reason: String,
    },
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

/// Carries out the disposition of one message on the queue it came from. `Err` means the
/// message must be reported as failed so SQS delivers it again.
async fn dispose(
    queue: &dyn Queue,
    message: &Received,
    disposition: Disposition,
) -> Result<Handled, (Handled, QueueError)> {
    match disposition {
        Disposition::Done => Ok(Handled::Done),
        Disposition::Requeue { delay, reason } => {
            let mut copy = OutMessage::new(message.body.clone()).delay(delay);
            copy.attributes = message.attributes.clone();
            copy.attributes.insert(
                REQUEUED_BECAUSE.into(),
                cosell::retry::truncate(&reason, 256),
            );
            match queue.send(&copy).await {
                Ok(_) => Ok(Handled::Requeued { delay }),
                Err(e) => Err((Handled::Failed { reason }, e)),
            }
        }
        Disposition::Fail { reason } => Ok(Handled::Failed { reason }),
        Disposition::DeadLetter { reason } => match queue.dead_letter(message, &reason).await {
            Ok(()) => Ok(Handled::DeadLettered { reason }),
            Err(e) => Err((Handled::Failed { reason }, e)),
        },
    }
}

/// Parses, syncs and disposes of one message.
async fn handle_one<M, P, S, Fut>(
    queue: &dyn Queue,
    record: &SqsMessage,
    parse: &P,
    sync: &S,
) -> Handled
where
    P: Fn(&str) -> Result<M, BadMessage>,
    S: Fn(M) -> Fut,
    Fut: Future<Output = Result<(), SyncError>>,
{
    let message = received(record);
    let disposition = match record.body.as_deref().map(parse) {
        None => Disposition::DeadLetter {
            reason: "poison message: no body".into(),
        },
        Some(Err(bad)) => Disposition::DeadLetter {
            reason: format!("poison message: {bad}"),
        },
        Some(Ok(parsed)) => Disposition::of(&sync(parsed).await),
    };
    match dispose(queue, &message, disposition).await {
        Ok(handled) => {
            match &handled {
                Handled::Done => {
                    tracing::debug!(message_id = %message.id, "message done")
                }
                Handled::Requeued { delay } => tracing::info!(
                    message_id = %message.id,
                    delay_s = delay.as_secs(),
                    "message requeued with a delay"
                ),
                Handled::Failed { reason } => tracing::warn!(
                    message_id = %message.id,
                    receive_count = message.receive_count,
                    reason = %reason,
                    "message failed; SQS will deliver it again"
                ),
                Handled::DeadLettered { reason } => tracing::error!(
                    message_id = %message.id,
                    reason = %reason,
                    "message sent to the dead-letter queue"
                ),
            }
            handled
        }
        Err((handled, e)) => {
            tracing::error!(
                message_id = %message.id,
                error = %e,
                "could not requeue or dead-letter the message; SQS will deliver it again"
            );
            handled
        }
    }
}

/// Handles every record of `event` with at most `concurrency` at a time. `parse` reads a
/// body (an error makes it a poison message for the DLQ); `sync` does the work.
///
/// A record without a message id is reported with an empty identifier, which Lambda treats
/// as a failure of the whole batch: better all again than one lost.
pub async fn drive<M, P, S, Fut>(
    queue: &dyn Queue,
    event: &SqsEvent,
    concurrency: usize,
    parse: P,
    sync: S,
) -> BatchOutcome
where
    P: Fn(&str) -> Result<M, BadMessage>,
    S: Fn(M) -> Fut,
    Fut: Future<Output = Result<(), SyncError>>,
{
    let (parse, sync) = (&parse, &sync);
    let handled: Vec<(String, Handled)> = stream::iter(event.records.iter())
        .map(|record| async move {
            let id = record.message_id.clone().unwrap_or_default();
            (id, handle_one(queue, record, parse, sync).await)
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (id, h) in &handled {
        if matches!(h, Handled::Failed { .. }) || id.is_empty() {
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
