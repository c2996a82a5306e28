//! Which side wins when both changed a field since the last sync.

use super::spec::Side;
use super::Mapping;

impl Mapping {
    /// The winner for a referral path (or `status`). The most specific `[conflict.fields]`
    /// entry applies: `customerProfile` covers `customerProfile.address.city`.
    pub fn conflict_winner(&self, field: &str) -> Side {
        self.conflict
            .fields
            .iter()
            .filter(|(key, _)| {
                field
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
            .max_by_key(|(key, _)| key.len())
            .map(|(_, side)| *side)
            .unwrap_or(self.conflict.default)
    }
}
