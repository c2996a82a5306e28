//! What taking a sync lease found. A caller that read the record at the same moment it
//! asked for the lease (to save a round trip) may keep that read only when the claim is
//! [`LeaseClaim::Fresh`]: no earlier holder released the lease recently, so none can have
//! written the record after the read was served.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseClaim {
    /// Another worker holds the lease.
    Held,
    /// Taken, and no lease on this key was held or released within the marker's lifetime.
    Fresh,
    /// Taken after an earlier holder released it or let it expire (or the store cannot
    /// tell): read the record again now that the lease is held.
    Reclaimed,
}

impl LeaseClaim {
    pub fn is_taken(self) -> bool {
        self != LeaseClaim::Held
    }
}
