//! The demo's last step: once the walk-through is over, nothing was duplicated or lost. Every
//! referral has exactly one opportunity, each pair is in the crosswalk, the sync queue is
//! drained and no message was dead-lettered. A step can pass while a duplicate row or a
//! dead letter appears behind it (our own write echoing back, say); this step catches that.

use std::time::{Duration, Instant};

use cosell::config::ColumnNames;
use cosell::queue::Queue;
use cosell::store::Store;
use serde_json::Value;

use super::runtime::Runtime;
use super::standins::Standins;

/// Why the connector is not (yet) at rest.
enum Unsettled {
    /// May still resolve: work queued, a link not recorded yet.
    NotYet(String),
    /// Will not resolve by waiting: a duplicate, a dead letter.
    Broken(String),
}

/// Waits up to `t` for both sides to agree; what is wrong when they do not.
pub(super) async fn step(
    s: &Standins,
    columns: &ColumnNames,
    runtime: &Runtime,
    t: Duration,
) -> Result<(String, ()), String> {
    let deadline = Instant::now() + t;
    loop {
        match check(s, columns, runtime).await {
            Ok(summary) => return Ok((summary, ())),
            Err(Unsettled::Broken(why)) => return Err(why),
            Err(Unsettled::NotYet(why)) if Instant::now() >= deadline => {
                return Err(format!("not at rest after {} ms: {why}", t.as_millis()))
            }
            Err(Unsettled::NotYet(_)) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

async fn check(
    s: &Standins,
    columns: &ColumnNames,
    runtime: &Runtime,
) -> Result<String, Unsettled> {
    let queues = [("sync", runtime.queue())];
    for (name, queue) in &queues {
        let depth = queue
            .depth()
            .await
            .map_err(|e| Unsettled::NotYet(format!("{name} queue: {e}")))?;
        if depth.dead > 0 {
            let first = queue
                .list_dead_letters(1)
                .await
                .ok()
                .and_then(|d| d.into_iter().next())
                .map(|d| d.reason)
                .unwrap_or_default();
            return Err(Unsettled::Broken(format!(
                "{} message(s) dead-lettered on the {name} queue: {first}",
                depth.dead
            )));
        }
        let pending = depth.visible + depth.in_flight + depth.delayed;
        if pending > 0 {
            return Err(Unsettled::NotYet(format!(
                "{pending} message(s) left on the {name} queue"
            )));
        }
    }

    // The connected referrals for Microsoft (second shared-referral step) belong to their
    // engagement's own referral, which is the one paired with an opportunity.
    let referrals = s.pc.partner_referrals();
    let for_microsoft = s.pc.referrals().len() - referrals.len();
    let opportunities = s.dv.rows("opportunities");
    let store = runtime.store();
    for referral in &referrals {
        let Some(id) = referral.get("id").and_then(Value::as_str) else {
            continue;
        };
        let rows: Vec<&str> = opportunities
            .iter()
            .filter(|o| o.get(&columns.referral_id).and_then(Value::as_str) == Some(id))
            .filter_map(|o| o.get("opportunityid").and_then(Value::as_str))
            .collect();
        let opportunity = match rows.as_slice() {
            [one] => *one,
            [] => {
                return Err(Unsettled::NotYet(format!(
                    "referral {id} has no opportunity yet"
                )))
            }
            many => {
                return Err(Unsettled::Broken(format!(
                    "referral {id} has {} opportunities: {}",
                    many.len(),
                    many.join(", ")
                )))
            }
        };
        let link = store
            .get_link_by_referral(id)
            .await
            .map_err(|e| Unsettled::NotYet(format!("crosswalk: {e}")))?;
        if link.as_ref().map(|l| l.opportunity_id.as_str()) != Some(opportunity) {
            return Err(Unsettled::NotYet(format!(
                "referral {id} is not linked to opportunity {opportunity} yet"
            )));
        }
    }
    Ok(format!(
        "{} referral(s) <-> {} opportunit(ies), each pair linked once ({for_microsoft} referral(s) for Microsoft beside them); queues drained, nothing dead-lettered",
        referrals.len(),
        opportunities.len()
    ))
}
