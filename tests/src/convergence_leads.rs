//! Leads in the convergence run (issue 24): Microsoft sends Marketplace and qualified leads
//! and edits them; the seller answers in the Dynamics 365 lead (the decision column's
//! accept or decline, a disqualification) or qualifies it, which makes an opportunity the
//! pair moves to. [`Simulation::check_leads`] compares each lead referral with its lead,
//! or, once qualified, hands it on to the opportunity checks.

use std::collections::HashSet;

use cosell::dataverse::Qualify;
use cosell::mapping::{resolve_column, strip_checkmark, InboundContext};
use cosell::partner_center::Referral;
use cosell::store::Store;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::convergence::{same, Simulation, ACCEPT, DECLINE};

/// The qualifications Microsoft's leads come with (`Direct`: a Marketplace lead).
const QUALIFICATIONS: [&str; 3] = ["Direct", "SalesQualified", "MarketingQualified"];
/// `statecode` of a lead.
const OPEN: i64 = 0;
const QUALIFIED: i64 = 1;
const DISQUALIFIED: i64 = 2;

/// What became of the leads of a run.
#[derive(Debug, Default, Clone)]
pub struct LeadFigures {
    /// Lead referrals Microsoft sent.
    pub leads: u64,
    /// Leads the seller qualified (the pair now on the opportunity made).
    pub qualified: u64,
    /// Disqualified by the seller (not declined).
    pub disqualified: u64,
    /// Of the qualified, those whose opportunity the seller won or lost at once.
    pub closed_at_once: u64,
    /// Open leads the seller accepted in the decision column.
    pub accepted: u64,
    /// Leads the seller declined in the decision column (closed by the connector then).
    pub declined: u64,
    /// Open leads with no answer yet.
    pub undecided: u64,
}

impl LeadFigures {
    pub fn line(&self) -> String {
        format!(
            "leads={} qualified={} (closed_at_once={}) disqualified={} lead_accepted={} lead_declined={} lead_undecided={}",
            self.leads,
            self.qualified,
            self.closed_at_once,
            self.disqualified,
            self.accepted,
            self.declined,
            self.undecided
        )
    }
}

/// True for a referral the engine classifies as a lead (not a co-sell opportunity).
pub fn is_lead(raw: &Value) -> bool {
    serde_json::from_value::<Referral>(raw.clone()).is_ok_and(|r| r.kind().is_lead())
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// The CRM column (opportunity terms, as the edit log keeps them) of a lead edit's path.
fn edit_column(path: &str) -> Option<&'static str> {
    match path {
        "name" => Some("name"),
        "details.notes" => Some("description"),
        _ => None,
    }
}

impl Simulation {
    pub(crate) fn new_lead(&mut self) -> bool {
        let n = self.next();
        let customer = format!("Lead customer {}", self.rng.random_range(0..5));
        let qualification = QUALIFICATIONS[self.rng.random_range(0..QUALIFICATIONS.len())];
        self.h
            .pc
            .create_incoming_lead(&format!("Lead {n}"), &customer, qualification);
        true
    }

    /// Open lead referrals (Microsoft edits them wherever the pair is).
    fn open_lead_referral_ids(&self) -> Vec<String> {
        self.h
            .pc
            .referrals()
            .into_iter()
            .filter(|r| r["status"] != "Closed" && is_lead(r))
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Microsoft renames a lead referral or changes its notes.
    pub(crate) async fn edit_lead_referral(&mut self) -> bool {
        let ids = self.open_lead_referral_ids();
        let Some(id) = self.pick(&ids) else {
            return false;
        };
        let Ok(mut r) = self.user_pc.get_referral(&id).await else {
            return false;
        };
        let n = self.next();
        let edit = if self.rng.random_bool(0.5) {
            let name = format!("Lead {n} renamed in Partner Center");
            r.name = Some(name.clone());
            ("name", json!(name))
        } else {
            let notes = format!("Lead notes {n}");
            r.details.get_or_insert_with(Default::default).notes = Some(notes.clone());
            ("description", json!(notes))
        };
        let etag = r.e_tag.clone().unwrap_or_default();
        let done = self.user_pc.put_referral(&id, &etag, &r).await.is_ok();
        self.record_edit(id, edit.0, edit.1, done);
        done
    }

    /// Open, flagged leads the seller works; `keep` picks among them by the row.
    fn open_leads(&self, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        let cols = &self.h.config.columns;
        self.h
            .dv
            .rows("leads")
            .into_iter()
            .filter(|l| int(&l["statecode"]) == Some(OPEN) && l[cols.sync_flag.as_str()] == true)
            .filter(|l| keep(l))
            .filter_map(|l| l["leadid"].as_str().map(str::to_string))
            .collect()
    }

    /// The seller accepts or declines an undecided lead in its decision column.
    pub(crate) fn decide_lead(&mut self) -> bool {
        let decision = self.h.config.columns.decision.clone();
        let ids = self.open_leads(|l| l[decision.as_str()].is_null());
        let Some(id) = self.pick(&ids) else {
            return false;
        };
        let value = if self.rng.random_bool(0.7) {
            ACCEPT
        } else {
            DECLINE
        };
        let mut change = Map::new();
        change.insert(decision, json!(value));
        self.h.dv.user_update("leads", &id, change).is_some()
    }

    /// The seller disqualifies an open lead (Lost, Cannot Contact or No Longer Interested).
    pub(crate) fn disqualify_lead(&mut self) -> bool {
        let ids = self.open_leads(|_| true);
        let Some(id) = self.pick(&ids) else {
            return false;
        };
        let status = self.rng.random_range(4..=6);
        let mut change = Map::new();
        change.insert("statecode".into(), json!(DISQUALIFIED));
        change.insert("statuscode".into(), json!(status));
        self.h.dv.user_update("leads", &id, change).is_some()
    }

    /// The seller qualifies an open lead they have not declined (`QualifyLead`, as the app
    /// does: an opportunity, and maybe an account and a contact, each from the lead).
    pub(crate) async fn qualify_lead(&mut self) -> bool {
        let decision = self.h.config.columns.decision.clone();
        let ids = self.open_leads(|l| int(&l[decision.as_str()]) != Some(DECLINE));
        let Some(id) = self.pick(&ids) else {
            return false;
        };
        let what = Qualify {
            create_account: self.rng.random_bool(0.5),
            create_contact: self.rng.random_bool(0.5),
            create_opportunity: true,
        };
        // Through the API (faults and all): an answer lost after the commit leaves the lead
        // qualified though the seller saw an error; the check reads what happened.
        let Ok(made) = self.h.engine.dv.qualify_lead(&id, what).await else {
            return false;
        };
        // Now and then the seller wins or loses the new opportunity at once, before the
        // connector has seen the qualification (the lead poll runs later).
        if self.rng.random_bool(0.2) {
            if let Some((_, opp)) = made.iter().find(|(e, _)| e == "opportunity") {
                let close = if self.rng.random_bool(0.6) {
                    json!({"statecode": 1, "statuscode": 3})
                } else {
                    json!({"statecode": 2, "statuscode": 5})
                };
                let Value::Object(change) = close else {
                    return true;
                };
                self.h.dv.user_update("opportunities", opp, change);
                self.figures.leads.closed_at_once += 1;
            }
        }
        true
    }

    /// Checks every lead referral; returns the ids of those whose pair is on a lead (the
    /// opportunity checks skip them). A qualified lead's referral is left to those checks,
    /// after its move is checked here.
    pub(crate) async fn check_leads(
        &mut self,
        referrals: &[Value],
        opps: &[Value],
        out: &mut Vec<String>,
    ) -> HashSet<String> {
        let cols = self.h.config.columns.clone();
        let leads = self.h.dv.rows("leads");
        let mut on_lead = HashSet::new();
        for lead in &leads {
            if let Some(rid) = lead[cols.referral_id.as_str()].as_str() {
                if !referrals.iter().any(|r| r["id"] == rid) {
                    out.push(format!(
                        "lead {} points at missing referral {rid}",
                        lead["leadid"]
                    ));
                }
            }
        }
        for raw in referrals.iter().filter(|r| is_lead(r)) {
            self.figures.leads.leads += 1;
            let id = raw["id"].as_str().unwrap_or_default().to_string();
            let mine: Vec<&Value> = leads
                .iter()
                .filter(|l| l[cols.referral_id.as_str()] == id.as_str())
                .collect();
            if mine.len() > 1 {
                self.figures.duplicates += (mine.len() - 1) as u64;
                out.push(format!("lead referral {id} has {} leads", mine.len()));
            }
            let Some(lead) = mine.first().copied() else {
                out.push(format!(
                    "lead referral {id} ({} / {}) has no lead",
                    raw["status"], raw["substatus"]
                ));
                on_lead.insert(id);
                continue;
            };
            let lead_id = lead["leadid"].as_str().unwrap_or_default().to_string();
            if int(&lead["statecode"]) == Some(QUALIFIED) {
                self.figures.leads.qualified += 1;
                self.check_moved(raw, &id, &lead_id, opps, out).await;
                continue;
            }
            on_lead.insert(id.clone());
            self.check_on_lead(raw, &id, lead, out).await;
        }
        on_lead
    }

    /// A qualified lead: the referral accepted (or since won or lost on the opportunity),
    /// pointing at the one opportunity the qualification made, which carries the referral
    /// id and the sync flag, and the crosswalk link moved to it.
    async fn check_moved(
        &mut self,
        raw: &Value,
        id: &str,
        lead_id: &str,
        opps: &[Value],
        out: &mut Vec<String>,
    ) {
        let cols = &self.h.config.columns;
        let made: Vec<&Value> = opps
            .iter()
            .filter(|o| o["_originatingleadid_value"] == lead_id)
            .collect();
        let [opp] = made.as_slice() else {
            out.push(format!(
                "qualified lead {lead_id} (referral {id}) made {} opportunities",
                made.len()
            ));
            return;
        };
        let opp_id = opp["opportunityid"].as_str().unwrap_or_default();
        let status = (raw["status"].as_str(), raw["substatus"].as_str());
        if !matches!(
            status,
            (Some("Active"), Some("Accepted")) | (Some("Closed"), Some("Won" | "Lost"))
        ) {
            out.push(format!(
                "qualified lead {lead_id}: referral {id} is {status:?}, not accepted"
            ));
        }
        if opp[cols.referral_id.as_str()] != id || opp[cols.sync_flag.as_str()] != true {
            out.push(format!(
                "qualified lead {lead_id}: opportunity {opp_id} shows referral {} and sync flag {}",
                opp[cols.referral_id.as_str()],
                opp[cols.sync_flag.as_str()]
            ));
        }
        match self.h.store.get_link_by_referral(id).await {
            Ok(Some(link)) if link.opportunity_id == opp_id => {}
            other => out.push(format!(
                "qualified lead {lead_id}: the crosswalk of referral {id} is {other:?}, not opportunity {opp_id}"
            )),
        }
        if let Ok(Some(link)) = self.h.store.get_link_by_opportunity(lead_id).await {
            out.push(format!(
                "qualified lead {lead_id} is still linked: {link:?}"
            ));
        }
    }

    /// A lead the pair is still on: linked, its mapped columns the referral's (a closed
    /// lead is read-only: Microsoft's edits may stay pending on it), the referral's status
    /// the seller's answer, and no edit lost.
    async fn check_on_lead(&mut self, raw: &Value, id: &str, lead: &Value, out: &mut Vec<String>) {
        let cols = self.h.config.columns.clone();
        let mapping = self.worker.engine.mapping.clone();
        let lead_id = lead["leadid"].as_str().unwrap_or_default();
        match self.h.store.get_link_by_referral(id).await {
            Ok(Some(link)) if link.opportunity_id == lead_id => {}
            other => out.push(format!(
                "lead referral {id}: crosswalk {other:?} does not name lead {lead_id}"
            )),
        }
        let referral: Referral = match serde_json::from_value(raw.clone()) {
            Ok(r) => r,
            Err(e) => {
                out.push(format!("lead referral {id} does not parse: {e}"));
                return;
            }
        };
        let state = int(&lead["statecode"]);
        let decision = int(&lead[cols.decision.as_str()]);
        let status = (
            raw["status"].as_str().unwrap_or_default(),
            raw["substatus"].as_str().unwrap_or_default(),
        );
        let agrees = match (state, decision) {
            (Some(OPEN), Some(ACCEPT)) => status == ("Active", "Accepted"),
            // A declined referral disqualifies its open lead: an open one is a mismatch.
            (Some(OPEN), Some(DECLINE)) => false,
            (Some(OPEN), _) => status.0 == "New",
            // Accepted and then disqualified: lost; disqualified before the accept was
            // answered: declined.
            (Some(DISQUALIFIED), Some(ACCEPT)) => {
                matches!(status, ("Closed", "Lost" | "Declined"))
            }
            (Some(DISQUALIFIED), _) => status == ("Closed", "Declined"),
            _ => false,
        };
        match (state, decision) {
            // Declined in the decision column (and the lead closed by the connector).
            (_, Some(DECLINE)) => self.figures.leads.declined += 1,
            (Some(OPEN), Some(ACCEPT)) => self.figures.leads.accepted += 1,
            (Some(OPEN), _) => self.figures.leads.undecided += 1,
            _ => self.figures.leads.disqualified += 1,
        }
        if !agrees {
            out.push(format!(
                "lead referral {id} is {status:?}, lead {lead_id} has statecode {state:?}, statuscode {}, decision {decision:?}",
                lead["statuscode"]
            ));
        }

        let wanted = mapping.lead_values(&referral);
        for f in &mapping.lead.fields {
            let Ok(column) = resolve_column(&f.column, &cols) else {
                continue;
            };
            let want = wanted.get(&f.referral).cloned().unwrap_or(Value::Null);
            let have = lead.get(column).cloned().unwrap_or(Value::Null);
            let norm = |v: &Value| match v.as_str() {
                Some(s) if f.checkmark => json!(strip_checkmark(s).trim()),
                Some("") => Value::Null,
                _ => v.clone(),
            };
            if norm(&want) == norm(&have) {
                continue;
            }
            // A closed lead is read-only: Microsoft's edit made after the seller closed
            // it stays in Partner Center.
            let pending = state != Some(OPEN)
                && edit_column(&f.referral).is_some_and(|c| self.edited_to(id, c, &want));
            if !pending {
                out.push(format!(
                    "lead referral {id} ({} / {}) / lead {lead_id} (statecode {state:?}): {column} is {have} on the lead, {want} by the referral (last edit {:?}; unconfirmed {:?})",
                    status.0,
                    status.1,
                    edit_column(&f.referral).and_then(|c| self.edits.get(&(id.to_string(), c))),
                    edit_column(&f.referral).and_then(|c| self.maybe_edits.get(&(id.to_string(), c))),
                ));
            }
        }

        // No edit undone: the lead as an opportunity would show it, in the same terms.
        let plan = mapping.inbound(&referral, &cols, &InboundContext::default());
        let shown = json!({"name": lead["subject"], "description": lead["description"]});
        let mut lost = Vec::new();
        self.figures.lost_edits +=
            self.lost_edits(id, lead_id, &plan.opportunity, &shown, &mut lost);
        self.figures.lost_edit_lines.extend(lost);
    }

    /// True when Microsoft's last edit of `column` (confirmed or not) gave it `value`.
    fn edited_to(&self, id: &str, column: &'static str, value: &Value) -> bool {
        let key = (id.to_string(), column);
        self.edits
            .get(&key)
            .is_some_and(|(_, v)| same(column, v, value))
            || self
                .maybe_edits
                .get(&key)
                .is_some_and(|m| m.iter().any(|(_, v)| same(column, v, value)))
    }
}
