//! Lambda entry point of referral-sync: consumes the inbound queue (SQS event source with
//! `ReportBatchItemFailures`) and brings each referral into Dataverse.

use cosell::engine::inbound::sync_referral;
use cosell::engine::InboundMessage;
use cosell_edge::aws::QueueName;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cosell_edge::consumer::run(
        QueueName::Inbound,
        InboundMessage::parse,
        |engine, message: InboundMessage| async move {
            let outcome = sync_referral(&engine, &message).await?;
            tracing::info!(referral_id = %message.referral_id, ?outcome, "referral synced");
            Ok(())
        },
    )
    .await
}
