//! Reading the two sides of a pair, and what the merge compares of each: the mapped field
//! values and the status in each side's own terms.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ColumnNames;
use crate::dataverse::{Currency, DataverseClient, DataverseError, Opportunity};
use crate::engine::{Engine, SyncError};
use crate::mapping::{FieldValues, TargetState};
use crate::partner_center::{PartnerCenterError, Referral};

/// The org's currency rows, read once and again only when a code or id is not among them
/// (at most once a minute), so a reconcile spends no request on currencies.
#[derive(Default)]
pub struct Currencies {
    rows: Mutex<Option<(Instant, Vec<Currency>)>>,
}

const CURRENCY_REFRESH: Duration = Duration::from_secs(60);

impl Currencies {
    async fn rows(&self, dv: &DataverseClient, missing: bool) -> Result<Vec<Currency>, SyncError> {
        {
            let cached = self.rows.lock().expect("currency cache poisoned");
            if let Some((at, rows)) = cached.as_ref() {
                if !missing || at.elapsed() < CURRENCY_REFRESH {
                    return Ok(rows.clone());
                }
            }
        }
        let rows = dv.list_currencies().await?;
        *self.rows.lock().expect("currency cache poisoned") = Some((Instant::now(), rows.clone()));
        Ok(rows)
    }

    async fn find(
        &self,
        dv: &DataverseClient,
        pick: impl Fn(&Currency) -> bool,
    ) -> Result<Option<Currency>, SyncError> {
        let rows = self.rows(dv, false).await?;
        if let Some(c) = rows.iter().find(|c| pick(c)) {
            return Ok(Some(c.clone()));
        }
        Ok(self.rows(dv, true).await?.into_iter().find(|c| pick(c)))
    }

    /// The ISO code of a currency row id.
    pub async fn iso_of(
        &self,
        dv: &DataverseClient,
        id: &str,
    ) -> Result<Option<String>, SyncError> {
        let id = id.trim();
        Ok(self
            .find(dv, |c| c.transactioncurrencyid.eq_ignore_ascii_case(id))
            .await?
            .map(|c| c.isocurrencycode.to_ascii_uppercase()))
    }

    /// The row id of an ISO code.
    pub async fn id_of(
        &self,
        dv: &DataverseClient,
        iso: &str,
    ) -> Result<Option<String>, SyncError> {
        let iso = iso.trim();
        Ok(self
            .find(dv, |c| c.isocurrencycode.eq_ignore_ascii_case(iso))
            .await?
            .map(|c| c.transactioncurrencyid))
    }
}

/// The referral, or `None` when Partner Center does not have it.
pub async fn read_referral(engine: &Engine, id: &str) -> Result<Option<Referral>, SyncError> {
    match engine.pc.get_referral(id).await {
        Ok(r) => Ok(Some(r)),
        Err(PartnerCenterError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The opportunity, or `None` when the CRM does not have it.
pub async fn read_opportunity(engine: &Engine, id: &str) -> Result<Option<Opportunity>, SyncError> {
    match engine.dv.get_opportunity(id).await {
        Ok(o) => Ok(Some(o)),
        Err(DataverseError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The referral's side of the merge.
pub fn referral_side(engine: &Engine, referral: &Referral) -> (FieldValues, String) {
    (
        engine.mapping.referral_values(referral),
        referral_status(referral),
    )
}

/// The opportunity's side of the merge.
pub async fn opportunity_side(
    engine: &Engine,
    opp: &Opportunity,
) -> Result<(FieldValues, String), SyncError> {
    let iso = match opp.transactioncurrencyid.as_deref() {
        Some(id) => engine.currencies.iso_of(&engine.dv, id).await?,
        None => None,
    };
    let values = engine
        .mapping
        .opportunity_values(opp, &engine.columns, iso.as_deref());
    Ok((values, opportunity_status(opp, &engine.columns)))
}

pub fn referral_status(referral: &Referral) -> String {
    let part = |s: Option<String>| s.unwrap_or_default();
    format!(
        "{}/{}",
        part(referral.status.as_ref().map(|s| s.to_string())),
        part(referral.substatus.as_ref().map(|s| s.to_string()))
    )
}

pub fn opportunity_status(opp: &Opportunity, columns: &ColumnNames) -> String {
    let decision = opp
        .column(&columns.decision)
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!(
        "{}/{}/{decision}",
        opp.statecode.unwrap_or_default(),
        opp.statuscode.unwrap_or_default()
    )
}

/// How the opportunity is closed, `None` while it is open.
pub fn closed_as(opp: &Opportunity) -> Option<TargetState> {
    use crate::dataverse::model::state;
    let statuscode = opp.statuscode.unwrap_or_default();
    match opp.statecode {
        Some(state::WON) => Some(TargetState::Won { statuscode }),
        Some(state::LOST) => Some(TargetState::Lost { statuscode }),
        _ => None,
    }
}

/// True when the row's sync flag column is set (a Yes/No column; tolerate 1 and "true").
pub fn sync_flag_on(engine: &Engine, opp: &Opportunity) -> bool {
    match opp.column(&engine.columns.sync_flag) {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(1),
        Some(serde_json::Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}
