//! Which connector a command looks at: a local run's data directory (SQLite), a deployed
//! stack found by name (its CloudFormation outputs), or an explicit table and queue URLs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use clap::Args;
use cosell::queue::sqs::SqsQueue;
use cosell::queue::Queue;
use cosell::store::aws_local;
use cosell::store::dynamodb::DynamoStore;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;

use super::error::OpsError;
use super::settings::Settings;
// The local runner's names, so both open the same file and queues.
use crate::local::runtime::{open_sync_queue, RuntimeOptions, DATABASE_FILE as DB_FILE};

/// Every AWS call of a command gives up after this long (the SDK retries inside it).
const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// A local run's data directory [default: $COSELL_DATA_DIR or ./.cosell].
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// A deployed stack: table and queues come from its CloudFormation outputs.
    #[arg(long, value_name = "NAME", global = true)]
    pub stack: Option<String>,
    /// A deployed connector's DynamoDB table (with --queue-url).
    #[arg(long, value_name = "NAME", global = true)]
    pub table: Option<String>,
    /// The FIFO sync queue's URL (with --table).
    #[arg(long, value_name = "URL", global = true)]
    pub queue_url: Option<String>,
    /// The sync queue's dead-letter queue URL [default: from the queue's redrive policy].
    #[arg(long, value_name = "URL", global = true)]
    pub dlq_url: Option<String>,
    /// AWS region [default: from the AWS environment or profile].
    #[arg(long, value_name = "REGION", global = true)]
    pub region: Option<String>,
    /// Send AWS calls to a local emulator (e.g. moto) at this URL, with dummy credentials.
    #[arg(long, value_name = "URL", global = true)]
    pub endpoint_url: Option<String>,
}

/// The opened store and queues of one connector.
pub struct Target {
    pub store: Arc<dyn Store>,
    /// The sync queue (with its dead-letter queue).
    pub queue: Arc<dyn Queue>,
    /// Where it is, for messages ("local data in .cosell", "stack prod", ...).
    pub label: String,
    /// The stack's webhook URL output, when the target is a stack.
    pub webhook_url: Option<String>,
}

/// The deployed resources a command needs, by their template.yaml output names.
#[derive(Debug, Clone, Default, PartialEq)]
struct AwsNames {
    table: String,
    queue_url: String,
    dlq_url: Option<String>,
    webhook_url: Option<String>,
}

impl TargetArgs {
    pub async fn open(&self, settings: &Settings) -> Result<Target, OpsError> {
        let explicit = self.table.is_some() || self.queue_url.is_some();
        let chosen = [self.data_dir.is_some(), self.stack.is_some(), explicit]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            return Err(OpsError::usage(
                "choose one target: --data-dir, --stack, or --table with --queue-url",
            ));
        }
        if let Some(stack) = &self.stack {
            let sdk = self.sdk_config().await;
            let names = stack_outputs(&sdk, stack).await?;
            return open_aws(&sdk, names, format!("stack {stack}")).await;
        }
        if explicit {
            let (Some(table), Some(queue)) = (&self.table, &self.queue_url) else {
                return Err(OpsError::usage("--table and --queue-url go together"));
            };
            let names = AwsNames {
                table: table.clone(),
                queue_url: queue.clone(),
                dlq_url: self.dlq_url.clone(),
                webhook_url: None,
            };
            let sdk = self.sdk_config().await;
            return open_aws(&sdk, names, format!("table {table}")).await;
        }
        let dir = self.data_dir.clone().unwrap_or_else(|| settings.data_dir());
        open_local(dir)
    }

    async fn sdk_config(&self) -> SdkConfig {
        let region = self.region.clone();
        if let Some(endpoint) = &self.endpoint_url {
            let region = region.unwrap_or_else(|| "us-east-1".to_string());
            return aws_local::sdk_config(endpoint, &region).await;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
                .operation_timeout(AWS_OPERATION_TIMEOUT)
                .build(),
        );
        if let Some(r) = region {
            loader = loader.region(Region::new(r));
        }
        loader.load().await
    }
}

fn open_local(dir: PathBuf) -> Result<Target, OpsError> {
    let db = dir.join(DB_FILE);
    // Never create an empty store by accident: that would hide a wrong directory.
    if !db.is_file() {
        return Err(OpsError::failed(format!(
            "no local connector data in {} (no {DB_FILE}); pass --data-dir, --stack, or --table with --queue-url",
            dir.display()
        )));
    }
    let store = SqliteStore::open(&db)?;
    let queue = open_sync_queue(&db, RuntimeOptions::default().max_attempts)
        .map_err(|e| OpsError::failed(format!("{e:#}")))?;
    Ok(Target {
        store: Arc::new(store),
        queue: Arc::new(queue),
        label: format!("local data in {}", dir.display()),
        webhook_url: None,
    })
}

async fn open_aws(sdk: &SdkConfig, names: AwsNames, label: String) -> Result<Target, OpsError> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let dlq = match names.dlq_url {
        Some(u) => u,
        None => dead_letter_queue_of(&sqs, &names.queue_url).await?,
    };
    Ok(Target {
        store: Arc::new(DynamoStore::new(dynamo, names.table)),
        queue: Arc::new(SqsQueue::new(sqs, names.queue_url, dlq)),
        label,
        webhook_url: names.webhook_url,
    })
}

/// The URL of the queue named as `deadLetterTargetArn` in a queue's RedrivePolicy.
async fn dead_letter_queue_of(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<String, OpsError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| {
            OpsError::failed(format!(
                "cannot read queue {queue_url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            ))
        })?;
    let policy = attrs
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
        .ok_or_else(|| {
            OpsError::failed(format!(
                "queue {queue_url} has no dead-letter queue; pass its URL with --dlq-url"
            ))
        })?;
    let arn = serde_json::from_str::<serde_json::Value>(&policy)
        .ok()
        .and_then(|v| v["deadLetterTargetArn"].as_str().map(str::to_string))
        .ok_or_else(|| OpsError::failed(format!("queue {queue_url}: unreadable RedrivePolicy")))?;
    let name = arn.rsplit(':').next().unwrap_or_default();
    let found = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            OpsError::failed(format!(
                "cannot find dead-letter queue {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            ))
        })?;
    found
        .queue_url
        .ok_or_else(|| OpsError::failed(format!("dead-letter queue {name} has no URL")))
}

/// Reads the stack's outputs (names as in template.yaml's Outputs section).
async fn stack_outputs(sdk: &SdkConfig, stack: &str) -> Result<AwsNames, OpsError> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let described = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            OpsError::failed(format!(
                "cannot describe stack {stack}: {}",
                aws_sdk_cloudformation::error::DisplayErrorContext(e)
            ))
        })?;
    let outputs: Vec<(String, String)> = described
        .stacks()
        .first()
        .map(|s| {
            s.outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    names_from_outputs(stack, &outputs)
}

fn names_from_outputs(stack: &str, outputs: &[(String, String)]) -> Result<AwsNames, OpsError> {
    let get = |key: &str| {
        outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let need = |key: &str| {
        get(key).ok_or_else(|| {
            OpsError::failed(format!(
                "stack {stack} has no output {key}; is it a cosell-sync stack?"
            ))
        })
    };
    Ok(AwsNames {
        table: need("TableName")?,
        queue_url: need("SyncQueueUrl")?,
        dlq_url: get("SyncDeadLetterQueueUrl"),
        webhook_url: get("WebhookUrl"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(keys: &[&str]) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.to_string(), format!("value-of-{k}")))
            .collect()
    }

    #[test]
    fn stack_outputs_name_every_resource() {
        let all = outputs(&[
            "TableName",
            "SyncQueueUrl",
            "SyncDeadLetterQueueUrl",
            "WebhookUrl",
        ]);
        let names = names_from_outputs("s", &all).unwrap();
        assert_eq!(names.table, "value-of-TableName");
        assert_eq!(names.queue_url, "value-of-SyncQueueUrl");
        assert_eq!(
            names.dlq_url.as_deref(),
            Some("value-of-SyncDeadLetterQueueUrl")
        );
        assert_eq!(names.webhook_url.as_deref(), Some("value-of-WebhookUrl"));
        let err = names_from_outputs("s", &outputs(&["TableName"])).unwrap_err();
        assert!(err.to_string().contains("SyncQueueUrl"), "{err}");
    }

    #[test]
    fn template_declares_the_outputs_read_here() {
        let template = include_str!("../../../../template.yaml");
        for key in [
            "TableName",
            "SyncQueueUrl",
            "SyncDeadLetterQueueUrl",
            "WebhookUrl",
        ] {
            assert!(
                template.contains(&format!("\n  {key}:\n")),
                "template.yaml lacks output {key}"
            );
        }
    }
}
