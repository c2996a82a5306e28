//! The poller's handler: the schedule's input names the task, `{"task":"poll"}` (Dataverse
//! changes) or `{"task":"reconcile"}` (the Partner Center sweep), both onto the sync queue,
//! and the answer is a small JSON report of what was enqueued.

use std::time::Duration;

use cosell::engine::lead_poller::poll_leads;
use cosell::engine::poller::poll_opportunities;
use cosell::engine::reconcile::sweep_referrals;
use cosell::engine::solution_poller::poll_solution_rows;
use cosell::engine::{Engine, SyncError};
use cosell::queue::Queue;
use serde::Deserialize;
use serde_json::{json, Value};

/// How far before its watermark the sweep looks again: covers clock skew and referrals
/// whose update became visible late, at the cost of re-enqueueing a few (harmless).
pub const SWEEP_OVERLAP: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Task {
    Poll,
    Reconcile,
}

#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    #[error("unknown input {0}: expected {{\"task\":\"poll\"}} or {{\"task\":\"reconcile\"}}")]
    BadInput(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl Task {
    pub fn of(event: &Value) -> Result<Task, PollerError> {
        serde_json::from_value(event.clone()).map_err(|_| {
            let mut shown = event.to_string();
            shown.truncate(200);
            PollerError::BadInput(shown)
        })
    }
}

/// Runs the task and reports what it did.
pub async fn run_task(
    task: Task,
    engine: &Engine,
    queue: &dyn Queue,
) -> Result<Value, PollerError> {
    match task {
        Task::Poll => {
            let r = poll_opportunities(&engine.dv, engine.store.as_ref(), queue, &engine.columns)
                .await?;
            let leads = poll_leads(engine, queue).await?;
            let rows = poll_solution_rows(&engine.dv, engine.store.as_ref(), queue).await?;
            tracing::info!(
                enqueued = r.enqueued,
                deleted = r.deleted,
                full_resync = r.full_resync,
                "poll done"
            );
            Ok(json!({
                "task": "poll",
                "enqueued": r.enqueued,
                "deleted": r.deleted,
                "full_resync": r.full_resync,
                "leads": leads,
                "solution_rows": rows.enqueued,
            }))
        }
        Task::Reconcile => {
            let r =
                sweep_referrals(&engine.pc, engine.store.as_ref(), queue, SWEEP_OVERLAP).await?;
            tracing::info!(
                enqueued = r.enqueued,
                pages = r.pages,
                "reconcile sweep done"
            );
            Ok(json!({
                "task": "reconcile",
                "enqueued": r.enqueued,
                "pages": r.pages,
                "watermark": r.watermark,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/events")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_schedules_inputs_name_the_tasks() {
        assert_eq!(
            Task::of(&fixture("scheduled-poll.json")).unwrap(),
            Task::Poll
        );
        assert_eq!(
            Task::of(&fixture("scheduled-reconcile.json")).unwrap(),
            Task::Reconcile
        );
    }

    #[test]
    fn any_other_input_is_refused_by_name() {
        let err = Task::of(&fixture("eventbridge-scheduled.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected {\"task\":\"poll\"}"), "{err}");
        assert!(Task::of(&json!({"task": "sweep"})).is_err());
        assert!(Task::of(&json!("poll")).is_err());
    }
}
