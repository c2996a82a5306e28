//! [`Queue`] on Amazon SQS: one source queue plus its dead-letter queue, standard or FIFO
//! (a FIFO queue's URL ends in `.fifo`, and its DLQ must be FIFO too).
//!
//! Automatic dead-lettering is SQS's own RedrivePolicy on the source queue (SQS moves a
//! message once it has been received `maxReceiveCount` times; such messages carry no
//! reason attribute and are reported with [`MAX_RECEIVES_REASON`]). Explicit
//! [`Queue::dead_letter`] sends a copy to the DLQ with `cosell-dlq-*` message attributes
//! and then deletes the original. Listing and replaying read the DLQ with a short
//! visibility timeout and hand unselected messages back at once.
//!
//! SQS limits apply and are clamped to: receive at most 10 messages, wait at most 20 s,
//! delays at most 15 minutes, visibility at most 12 hours, timeouts in whole seconds
//! (rounded up), at most 10 message attributes (3 of them on dead letters are ours).
//!
//! FIFO: every send carries a `MessageDeduplicationId`, the caller's or a fresh one (so a
//! message without one is never taken for a duplicate, whatever the queue's
//! ContentBasedDeduplication). A dead letter is sent with its group and `dl-<message id>`
//! (a retried dead-lettering is dropped as a duplicate); a replay with its group and
//! `replay-<dead letter id>`. Scanning a FIFO DLQ (list, replay) holds what it has seen, and
//! SQS hands out nothing more of a group it holds: a group with more than one batch (10) of
//! letters shows only its first batch in a listing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, SdkError};
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::message_rules;
use super::{
    DeadLetter, OutMessage, Queue, QueueDepth, QueueError, QueueKind, Received, MAX_RECEIVES_REASON,
};
use crate::store::time_key::ceil_seconds;

const REASON_ATTR: &str = "cosell-dlq-reason";
const RECEIVE_COUNT_ATTR: &str = "cosell-dlq-receive-count";
const FAILED_AT_ATTR: &str = "cosell-dlq-failed-at";
const RESERVED: [&str; 3] = [REASON_ATTR, RECEIVE_COUNT_ATTR, FAILED_AT_ATTR];

const MAX_DELAY_S: i64 = 900;
const MAX_VISIBILITY_S: i64 = 43_200;
const MAX_WAIT_S: i64 = 20;
const MAX_BATCH: usize = 10;
/// How long listing/replaying hides DLQ messages while it scans (they are handed back).
const SCAN_VISIBILITY_S: i32 = 30;
/// DLQ retention for queues we create: the SQS maximum, 14 days.
const DLQ_RETENTION_S: &str = "1209600";

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dlq_url: String,
    kind: QueueKind,
    dlq_kind: QueueKind,
}

/// SQS requires FIFO queue names to end in `.fifo`, so the URL says the kind.
fn kind_of(url: &str) -> QueueKind {
    if url.ends_with(".fifo") {
        QueueKind::Fifo
    } else {
        QueueKind::Standard
    }
}

fn backend<E, R>(op: &str, e: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Backend(format!("sqs {op}: {}", DisplayErrorContext(&e)))
}

fn seconds(d: Duration, max: i64) -> i32 {
    ceil_seconds(d).min(max) as i32
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Invalid(e.to_string()))
}

/// The message's string attributes, without ours.
fn user_attributes(m: &Message) -> BTreeMap<String, String> {
    m.message_attributes()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

fn our_attribute<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.message_attributes()?.get(name)?.string_value()
}

fn system_attribute<'a>(m: &'a Message, name: &MessageSystemAttributeName) -> Option<&'a str> {
    m.attributes()?.get(name).map(String::as_str)
}

fn receive_count(m: &Message) -> Option<u32> {
    system_attribute(m, &MessageSystemAttributeName::ApproximateReceiveCount)?
        .parse()
        .ok()
}

fn group(m: &Message) -> Option<String> {
    system_attribute(m, &MessageSystemAttributeName::MessageGroupId).map(str::to_owned)
}

fn required<'a>(value: Option<&'a str>, what: &str) -> Result<&'a str, QueueError> {
    value.ok_or_else(|| QueueError::Corrupt(format!("SQS message without {what}")))
}

impl SqsQueue {
    /// The queue and its DLQ by URL; each is FIFO when its URL ends in `.fifo`.
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        let (url, dlq_url) = (queue_url.into(), dlq_url.into());
        SqsQueue {
            client,
            kind: kind_of(&url),
            dlq_kind: kind_of(&dlq_url),
            url,
            dlq_url,
        }
    }

    /// For local runs and tests: creates `name` and `name-dlq` unless they exist, with a
    /// RedrivePolicy that dead-letters after `max_receive_count` receives. A `name` ending
    /// in `.fifo` makes FIFO queues, `x.fifo` and `x-dlq.fifo`.
    pub async fn create_queues_if_missing(
        client: Client,
        name: &str,
        max_receive_count: u32,
        visibility: Duration,
    ) -> Result<Self, QueueError> {
        let (stem, fifo) = match name.strip_suffix(".fifo") {
            Some(stem) => (stem, true),
            None => (name, false),
        };
        let dlq_name = if fifo {
            format!("{stem}-dlq.fifo")
        } else {
            format!("{stem}-dlq")
        };
        let fifo_attributes =
            fifo.then(|| HashMap::from([(QueueAttributeName::FifoQueue, "true".to_owned())]));
        let dlq_url = client
            .create_queue()
            .queue_name(dlq_name)
            .set_attributes(fifo_attributes.clone())
            .attributes(QueueAttributeName::MessageRetentionPeriod, DLQ_RETENTION_S)
            .send()
            .await
            .map_err(|e| backend("CreateQueue", e))?
            .queue_url
            .ok_or_else(|| QueueError::Backend("CreateQueue returned no URL".into()))?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| QueueError::Backend("GetQueueAttributes returned no ARN".into()))?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        let url = client
            .create_queue()
            .queue_name(name)
            .set_attributes(fifo_attributes)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                seconds(visibility, MAX_VISIBILITY_S).to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .map_err(|e| backend("CreateQueue", e))?
            .queue_url
            .ok_or_else(|| QueueError::Backend("CreateQueue returned no URL".into()))?;
        Ok(SqsQueue::new(client, url, dlq_url))
    }

    pub fn queue_url(&self) -> &str {
        &self.url
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// Sends `m` to `url`, a queue of `kind`, after checking it against the kind's rules.
    async fn send_to(
        &self,
        url: &str,
        kind: QueueKind,
        m: &OutMessage,
    ) -> Result<String, QueueError> {
        message_rules::check(kind, m)?;
        let mut attrs = HashMap::new();
        for (k, v) in &m.attributes {
            attrs.insert(k.clone(), string_attribute(v)?);
        }
        let request = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(&m.body)
            .set_message_attributes((!attrs.is_empty()).then_some(attrs))
            .set_message_group_id(m.group.clone());
        let request = match kind {
            QueueKind::Standard => request.delay_seconds(seconds(m.delay, MAX_DELAY_S)),
            QueueKind::Fifo => request.message_deduplication_id(
                m.dedup_id
                    .clone()
                    .unwrap_or_else(|| Uuid::new_v4().simple().to_string()),
            ),
        };
        let out = request
            .send()
            .await
            .map_err(|e| backend("SendMessage", e))?;
        Ok(required(out.message_id(), "message id")?.to_owned())
    }

    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        visibility_s: i32,
        wait_s: i32,
    ) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .visibility_timeout(visibility_s)
            .wait_time_seconds(wait_s)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| backend("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    async fn delete_from(&self, url: &str, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(s) if s.is_receipt_handle_is_invalid() => QueueError::InvalidReceipt,
                _ => backend("DeleteMessage", e),
            })?;
        Ok(())
    }

    /// Makes DLQ messages held by a scan visible again.
    async fn hand_back(&self, receipts: Vec<String>) -> Result<(), QueueError> {
        for chunk in receipts.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| QueueError::Invalid(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.dlq_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }

    async fn count(&self, url: &str, names: &[QueueAttributeName]) -> Result<u64, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| backend("GetQueueAttributes", e))?;
        let attrs = out.attributes.unwrap_or_default();
        Ok(names
            .iter()
            .filter_map(|n| attrs.get(n)?.parse::<u64>().ok())
            .sum())
    }
}

fn dead_letter_from(m: &Message) -> Result<DeadLetter, QueueError> {
    let explicit = our_attribute(m, REASON_ATTR).is_some();
    Ok(DeadLetter {
        id: required(m.message_id(), "message id")?.to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        reason: our_attribute(m, REASON_ATTR)
            .unwrap_or(MAX_RECEIVES_REASON)
            .to_owned(),
        receive_count: if explicit {
            our_attribute(m, RECEIVE_COUNT_ATTR)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0)
        } else {
            // The count carries over from the source queue; our own scan added one.
            receive_count(m).unwrap_or(0).saturating_sub(1)
        },
        failed_at: our_attribute(m, FAILED_AT_ATTR)
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
        attributes: user_attributes(m),
        group: group(m),
    })
}

#[async_trait]
impl Queue for SqsQueue {
    fn kind(&self) -> QueueKind {
        self.kind
    }

    async fn send(&self, message: &OutMessage) -> Result<String, QueueError> {
        self.send_to(&self.url, self.kind, message).await
    }

    /// Checks every message before sending any, so a refused one enqueues nothing.
    async fn send_batch(&self, messages: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        for m in messages {
            message_rules::check(self.kind, m)?;
        }
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            ids.push(self.send_to(&self.url, self.kind, m).await?);
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let messages = self
            .receive_from(
                &self.url,
                max,
                seconds(visibility, MAX_VISIBILITY_S),
                seconds(wait, MAX_WAIT_S),
            )
            .await?;
        messages
            .iter()
            .map(|m| {
                Ok(Received {
                    id: required(m.message_id(), "message id")?.to_owned(),
                    receipt: required(m.receipt_handle(), "receipt handle")?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    // The attempt count decides dead-lettering: never guess it.
                    receive_count: receive_count(m).ok_or_else(|| {
                        QueueError::Corrupt("SQS message without ApproximateReceiveCount".into())
                    })?,
                    attributes: user_attributes(m),
                    group: group(m),
                })
            })
            .collect()
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete_from(&self.url, receipt).await
    }

    async fn release(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(delay, MAX_VISIBILITY_S))
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(
                    ChangeMessageVisibilityError::MessageNotInflight(_)
                    | ChangeMessageVisibilityError::ReceiptHandleIsInvalid(_),
                ) => QueueError::InvalidReceipt,
                _ => backend("ChangeMessageVisibility", e),
            })?;
        Ok(())
    }

    async fn dead_letter(&self, message: &Received, reason: &str) -> Result<(), QueueError> {
        let failed_at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .expect("the current time formats as RFC 3339");
        let mut letter = OutMessage::new(message.body.clone());
        letter.attributes = message.attributes.clone();
        letter
            .attributes
            .insert(REASON_ATTR.into(), reason.to_owned());
        letter
            .attributes
            .insert(RECEIVE_COUNT_ATTR.into(), message.receive_count.to_string());
        letter.attributes.insert(FAILED_AT_ATTR.into(), failed_at);
        letter.group = message.group.clone();
        if self.dlq_kind == QueueKind::Fifo {
            // A retry after a failed delete is dropped instead of filed twice.
            letter.dedup_id = Some(format!("dl-{}", message.id));
        }
        // Copy first, then delete: a failure in between leaves a duplicate, never a loss.
        self.send_to(&self.dlq_url, self.dlq_kind, &letter).await?;
        self.delete_from(&self.url, &message.receipt).await
    }

    async fn list_dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        while out.len() < limit {
            let batch = self
                .receive_from(&self.dlq_url, limit - out.len(), SCAN_VISIBILITY_S, 0)
                .await?;
            let mut fresh = false;
            for m in &batch {
                held.push(required(m.receipt_handle(), "receipt handle")?.to_owned());
                if seen.insert(m.message_id().unwrap_or_default().to_owned()) {
                    fresh = true;
                    out.push(dead_letter_from(m)?);
                }
            }
            if !fresh {
                break;
            }
        }
        self.hand_back(held).await?;
        Ok(out)
    }

    async fn replay_dead_letters(&self, ids: Option<&[String]>) -> Result<usize, QueueError> {
        let wanted: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(String::as_str).collect());
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        let mut moved = 0;
        loop {
            let batch = self
                .receive_from(&self.dlq_url, MAX_BATCH, SCAN_VISIBILITY_S, 0)
                .await?;
            let mut fresh = false;
            for m in &batch {
                let id = required(m.message_id(), "message id")?;
                let receipt = required(m.receipt_handle(), "receipt handle")?;
                if !seen.insert(id.to_owned()) {
                    held.push(receipt.to_owned());
                    continue;
                }
                fresh = true;
                if wanted.as_ref().is_some_and(|w| !w.contains(id)) {
                    held.push(receipt.to_owned());
                    continue;
                }
                let mut back = OutMessage::new(m.body().unwrap_or_default());
                back.attributes = user_attributes(m);
                back.group = group(m);
                if self.kind == QueueKind::Fifo {
                    back.dedup_id = Some(format!("replay-{id}"));
                }
                self.send_to(&self.url, self.kind, &back).await?;
                self.delete_from(&self.dlq_url, receipt).await?;
                moved += 1;
            }
            let all_found = wanted.as_ref().is_some_and(|w| moved == w.len());
            if !fresh || all_found {
                break;
            }
        }
        self.hand_back(held).await?;
        Ok(moved)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        use QueueAttributeName as A;
        Ok(QueueDepth {
            visible: self
                .count(&self.url, &[A::ApproximateNumberOfMessages])
                .await?,
            in_flight: self
                .count(&self.url, &[A::ApproximateNumberOfMessagesNotVisible])
                .await?,
            delayed: self
                .count(&self.url, &[A::ApproximateNumberOfMessagesDelayed])
                .await?,
            dead: self
                .count(
                    &self.dlq_url,
                    &[
                        A::ApproximateNumberOfMessages,
                        A::ApproximateNumberOfMessagesNotVisible,
                        A::ApproximateNumberOfMessagesDelayed,
                    ],
                )
                .await?,
        })
    }
}
