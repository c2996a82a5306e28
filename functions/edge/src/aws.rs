//! The AWS side of a function: one SDK configuration per process (credentials and region from
//! the Lambda environment; `AWS_ENDPOINT_URL` points it at a local stand-in in tests), the
//! DynamoDB store and the SQS queues named by the template's `COSELL_*` variables.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use cosell::queue::sqs::SqsQueue;
use cosell::store::dynamodb::DynamoStore;

use crate::settings::required_var;
use crate::EdgeError;

/// Every AWS call gives up after this long (the SDK retries inside it); well within the
/// shortest function timeout (10 s for the intake allows one slow attempt and a retry).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(8);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // The SDK's default client, on the roots the process reads once (see `tls`).
        .http_client(crate::tls::aws_http_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// The variables holding the sync queue's URL and its dead-letter queue's URL.
pub const SYNC_QUEUE_VARIABLES: (&str, &str) = ("COSELL_SYNC_QUEUE_URL", "COSELL_SYNC_DLQ_URL");

/// The store on the table named by `COSELL_TABLE_NAME`.
pub fn store(config: &SdkConfig) -> Result<DynamoStore, EdgeError> {
    let table = required_var("COSELL_TABLE_NAME")?;
    Ok(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(config),
        table,
    ))
}

/// The FIFO sync queue (with its DLQ) named by `COSELL_SYNC_QUEUE_URL` and
/// `COSELL_SYNC_DLQ_URL`: every change of a pair, from either side, goes there.
pub fn sync_queue(config: &SdkConfig) -> Result<SqsQueue, EdgeError> {
    let (url, dlq) = SYNC_QUEUE_VARIABLES;
    Ok(SqsQueue::new(
        aws_sdk_sqs::Client::new(config),
        required_var(url)?,
        required_var(dlq)?,
    ))
}

pub fn secrets_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(config)
}
