//! Lambda entry point of opportunity-sync: consumes the outbound queue (SQS event source with
//! `ReportBatchItemFailures`) and creates or updates each opportunity's referral in Partner Center.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use cosell::engine::outbound::sync_opportunity;
use cosell::engine::OutboundMessage;
use cosell_edge::aws::{self, QueueName};
use cosell_edge::batch::{drive, DEFAULT_CONCURRENCY};
use cosell_edge::settings::Services;
use cosell_edge::startup::Started;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cosell_edge::logging::init();
    let started = Started::load(Services::BOTH).await?;
    let engine = Arc::new(started.engine()?);
    let queue = Arc::new(aws::queue(&started.sdk, QueueName::Outbound)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (engine, queue) = (engine.clone(), queue.clone());
        async move {
            let outcome = drive(
                queue.as_ref(),
                &event.payload,
                DEFAULT_CONCURRENCY,
                OutboundMessage::parse,
                |message| {
                    let engine = engine.clone();
                    async move {
                        let outcome = sync_opportunity(&engine, &message).await?;
                        tracing::info!(opportunity_id = %message.opportunity_id, ?outcome, "opportunity synced");
                        Ok(())
                    }
                },
            )
            .await;
            Ok::<SqsBatchResponse, Error>(outcome.response)
        }
    }))
    .await
}
