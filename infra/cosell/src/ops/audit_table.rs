//! The audit-entry table shared by `status` and `audit`.

use cosell::audit::AuditEntry;

use super::output::{clip, opt, Table};
use super::since::rfc3339;

pub fn audit_table(entries: &[AuditEntry]) -> Table {
    let mut table = Table::new(&[
        "AT",
        "DIRECTION",
        "ACTION",
        "OUTCOME",
        "REFERRAL",
        "OPPORTUNITY",
        "DETAIL",
    ]);
    for e in entries {
        let detail = match (&e.error, &e.detail) {
            (Some(err), _) => format!("error: {err}"),
            (None, Some(d)) => d.clone(),
            (None, None) => String::new(),
        };
        table.row(vec![
            rfc3339(e.at),
            e.direction.as_str().to_string(),
            e.action.clone(),
            e.outcome.as_str().to_string(),
            opt(e.referral_id.as_deref()),
            opt(e.opportunity_id.as_deref()),
            clip(&detail, 80),
        ]);
    }
    table
}
