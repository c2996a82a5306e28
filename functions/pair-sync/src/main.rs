//! Lambda entry point of pair-sync, the referral <-> opportunity mapping function: consumes
//! the FIFO sync queue (SQS event source with `ReportBatchItemFailures`) and reconciles each
//! message's pair, both directions.

use cosell::engine::{reconcile_pair, SyncMessage};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cosell_edge::consumer::run(
        SyncMessage::parse,
        |engine, message: SyncMessage| async move {
            let outcome = reconcile_pair(&engine, &message).await?;
            tracing::info!(key = %message.key, ?outcome, "pair reconciled");
            Ok(outcome)
        },
    )
    .await
}
