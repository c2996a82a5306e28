//! The CloudWatch Logs Insights query that shows one pair's log lines across the functions
//! (every line of a sync carries the pair key, the referral id and the opportunity id).

/// The functions whose log groups hold a pair's lines (`/aws/lambda/<stack>/<function>`).
pub const FUNCTIONS: [&str; 4] = [
    "webhook-intake",
    "pair-sync",
    "opportunity-poller",
    "webhook-registration",
];

/// Characters an id may keep in the query; anything else is dropped (ids are GUIDs and
/// short codes, and a query must not be built from arbitrary text).
fn clean(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// The query for the lines naming any of `ids`, oldest first.
pub fn query(ids: &[&str]) -> String {
    let mut ids: Vec<String> = ids
        .iter()
        .map(|i| clean(i))
        .filter(|i| !i.is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    let filter = ids
        .iter()
        .map(|id| format!("@message like \"{id}\""))
        .collect::<Vec<_>>()
        .join(" or ");
    format!(
        "fields @timestamp, @log, level, message, pair_key, referral_id, opportunity_id, correlation_id, error\n\
         | filter {filter}\n\
         | sort @timestamp asc\n\
         | limit 1000"
    )
}

/// The stack's function log groups.
pub fn log_groups(stack: &str) -> Vec<String> {
    FUNCTIONS
        .iter()
        .map(|f| format!("/aws/lambda/{stack}/{f}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_each_id_once_and_nothing_else() {
        let q = query(&["r-1", "o-2", "r-1", "\"| drop"]);
        assert!(
            q.contains(
                "@message like \"drop\" or @message like \"o-2\" or @message like \"r-1\"\n"
            ),
            "{q}"
        );
        assert!(!q.contains("\"|"), "{q}");
        assert!(q.ends_with("limit 1000"));
        assert_eq!(log_groups("prod")[1], "/aws/lambda/prod/pair-sync");
    }
}
