//! Lambda entry point of opportunity-sync: consumes the outbound queue (SQS event source with
//! `ReportBatchItemFailures`) and creates or updates each opportunity's referral in Partner Center.

use cosell::engine::outbound::sync_opportunity;
use cosell::engine::OutboundMessage;
use cosell_edge::aws::QueueName;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cosell_edge::consumer::run(
        QueueName::Outbound,
        OutboundMessage::parse,
        |engine, message: OutboundMessage| async move {
            let outcome = sync_opportunity(&engine, &message).await?;
            tracing::info!(opportunity_id = %message.opportunity_id, ?outcome, "opportunity synced");
            Ok(())
        },
    )
    .await
}
