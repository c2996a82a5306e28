//! Everything a sync needs, built once per process (Lambda init or the local runner) and
//! shared by every message it handles.

use std::sync::Arc;

use crate::config::ColumnNames;
use crate::dataverse::DataverseClient;
use crate::engine::pair::Currencies;
use crate::mapping::Mapping;
use crate::partner_center::PartnerCenterClient;
use crate::store::Store;

/// The user's sync options (see the README's settings table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncOptions {
    /// Only referrals that are co-sell (involve Microsoft) are synced to the CRM.
    pub cosell_only: bool,
    /// Prefix the opportunity name with ✔ when in sync (✘ when the last sync failed).
    pub checkmark: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            cosell_only: false,
            checkmark: true,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    pub pc: Arc<PartnerCenterClient>,
    pub dv: Arc<DataverseClient>,
    pub store: Arc<dyn Store>,
    pub mapping: Arc<Mapping>,
    pub columns: ColumnNames,
    pub options: SyncOptions,
    /// The org's currency rows, read once per process.
    pub currencies: Arc<Currencies>,
}

impl Engine {
    /// Fetches both services' tokens at once, ahead of the first sync.
    pub async fn warm_up(&self) {
        tokio::join!(self.pc.warm_up(), self.dv.warm_up());
    }
}
