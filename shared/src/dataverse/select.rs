//! The `$select` of every read: Dataverse's query guidance asks for it on every retrieve (all
//! columns cost the service, and the wire), so each table has one list: the columns the
//! models read, the connector's configured columns, and the ones a mapping adds.

use crate::config::ColumnNames;
use crate::mapping::{resolve_column, Mapping, Table};

const OPPORTUNITY: &[&str] = &[
    "opportunityid",
    "name",
    "description",
    "estimatedvalue",
    "estimatedclosedate",
    "actualclosedate",
    "isrevenuesystemcalculated",
    "statecode",
    "statuscode",
    "customerid",
    "parentaccountid",
    "parentcontactid",
    "transactioncurrencyid",
    "modifiedon",
    "createdon",
    "versionnumber",
];

const ACCOUNT: &[&str] = &[
    "accountid",
    "name",
    "address1_line1",
    "address1_line2",
    "address1_city",
    "address1_stateorprovince",
    "address1_postalcode",
    "address1_country",
];

const CONTACT: &[&str] = &[
    "contactid",
    "firstname",
    "lastname",
    "fullname",
    "emailaddress1",
    "telephone1",
    "parentcustomerid",
];

/// Lookup columns: the Web API exposes them only as `_<name>_value`.
const LOOKUPS: &[&str] = &[
    "customerid",
    "parentaccountid",
    "parentcontactid",
    "transactioncurrencyid",
    "parentcustomerid",
    "primarycontactid",
    "ownerid",
    "originatingleadid",
    "pricelevelid",
    "createdby",
    "modifiedby",
];

/// The column as `$select` names it.
fn select_name(column: &str) -> String {
    let c = column.trim().to_ascii_lowercase();
    if LOOKUPS.contains(&c.as_str()) {
        format!("_{c}_value")
    } else {
        c
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selects {
    opportunity: Vec<String>,
    account: Vec<String>,
    contact: Vec<String>,
}

impl Selects {
    pub fn new(columns: &ColumnNames) -> Self {
        let mut s = Selects::default();
        for c in OPPORTUNITY {
            s.add(&Table::Opportunity, c);
        }
        for c in [
            &columns.sync_flag,
            &columns.referral_id,
            &columns.referral_link,
            &columns.help_needed,
            &columns.solutions,
            &columns.audit,
            &columns.decision,
        ] {
            s.add(&Table::Opportunity, c);
        }
        for c in ACCOUNT {
            s.add(&Table::Account, c);
        }
        for c in CONTACT {
            s.add(&Table::Contact, c);
        }
        s
    }

    /// Adds a column to a table's list (ignored when already there, empty or a table the
    /// client does not read).
    pub fn add(&mut self, table: &Table, column: &str) {
        let list = match table {
            Table::Opportunity => &mut self.opportunity,
            Table::Account => &mut self.account,
            Table::Contact => &mut self.contact,
            Table::Unknown(_) => return,
        };
        let name = select_name(column);
        if !name.is_empty() && !name.contains('@') && !list.contains(&name) {
            list.push(name);
        }
    }

    /// Takes a column off a table's list.
    pub fn remove(&mut self, table: &Table, column: &str) {
        let name = select_name(column);
        match table {
            Table::Opportunity => self.opportunity.retain(|c| *c != name),
            Table::Account => self.account.retain(|c| *c != name),
            Table::Contact => self.contact.retain(|c| *c != name),
            Table::Unknown(_) => {}
        }
    }

    /// Every column `mapping` reads or writes on each table.
    pub fn add_mapping(&mut self, mapping: &Mapping, columns: &ColumnNames) {
        // The deal-type columns are read only when the mapping names them (a column a
        // mapping does not use need not exist: Dataverse refuses a $select of one).
        let deal = &mapping.deal_type;
        let visibility = deal.visibility.as_ref().map(|v| v.column.as_str());
        for column in std::iter::once(deal.column.as_str()).chain(visibility) {
            if let Ok(c) = resolve_column(column, columns) {
                self.add(&Table::Opportunity, c);
            }
        }
        for (column, _) in mapping.related.columns() {
            self.add(&Table::Opportunity, column);
        }
        for f in &mapping.fields {
            if let Ok(c) = resolve_column(&f.column, columns) {
                self.add(&f.table, c);
            }
            for c in f.set_also.keys() {
                self.add(&f.table, c);
            }
        }
    }

    pub fn opportunity(&self) -> String {
        self.opportunity.join(",")
    }

    pub fn account(&self) -> String {
        self.account.join(",")
    }

    pub fn contact(&self) -> String {
        self.contact.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> ColumnNames {
        let c = |n: &str| format!("cosell_{n}");
        ColumnNames {
            sync_flag: c("sync"),
            referral_id: c("referralid"),
            referral_link: c("referrallink"),
            help_needed: c("helpneeded"),
            solutions: c("solutions"),
            audit: c("audit"),
            decision: c("decision"),
            visibility: c("visibility"),
        }
    }

    #[test]
    fn lookups_are_selected_by_their_value_property() {
        let s = Selects::new(&cols());
        assert!(s.opportunity().contains("_customerid_value"));
        assert!(s.contact().contains("_parentcustomerid_value"));
        assert!(!s.opportunity().split(',').any(|c| c == "customerid"));
    }

    #[test]
    fn the_default_mapping_adds_nothing_unknown_and_no_duplicates() {
        let cols = cols();
        let mut s = Selects::new(&cols);
        s.add_mapping(&Mapping::default_mapping(), &cols);
        let opp = s.opportunity();
        let names: Vec<&str> = opp.split(',').collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len());
        assert!(names.contains(&cols.referral_id.as_str()));
    }
}
