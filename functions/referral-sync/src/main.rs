//! Lambda entry point of referral-sync: consumes the inbound queue (SQS event source with
//! `ReportBatchItemFailures`) and brings each referral into Dataverse.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use cosell::engine::inbound::sync_referral;
use cosell::engine::InboundMessage;
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
    let queue = Arc::new(aws::queue(&started.sdk, QueueName::Inbound)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (engine, queue) = (engine.clone(), queue.clone());
        async move {
            let outcome = drive(
                queue.as_ref(),
                &event.payload,
                DEFAULT_CONCURRENCY,
                InboundMessage::parse,
                |message| {
                    let engine = engine.clone();
                    async move {
                        let outcome = sync_referral(&engine, &message).await?;
                        tracing::info!(referral_id = %message.referral_id, ?outcome, "referral synced");
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
