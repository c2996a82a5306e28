//! What the mapping may name: the referral's field paths (from the documented resource) and
//! the Dataverse columns of the three tables (from the entity reference). Kept by hand so a
//! typo in a mapping file is caught at start-up rather than as a silently empty field.

use crate::config::ColumnNames;

use super::spec::Table;

/// Referral paths, with whether the service lets a client write them. Array items are
/// written `[0]`; a path naming an array (e.g. `target`) maps the whole list.
const REFERRAL_PATHS: &[(&str, bool)] = &[
    ("id", false),
    ("engagementId", false),
    ("organizationId", false),
    ("organizationName", false),
    ("externalReferenceId", true),
    ("name", true),
    ("createdDateTime", false),
    ("updatedDateTime", false),
    ("expirationDateTime", false),
    ("acceptedDateTime", false),
    ("status", true),
    ("substatus", true),
    ("statusReason", true),
    ("qualification", true),
    ("type", true),
    ("direction", false),
    ("target", true),
    ("target[0].type", true),
    ("target[0].id", true),
    ("customerProfile.name", true),
    ("customerProfile.size", true),
    ("customerProfile.ids", true),
    ("customerProfile.address.addressLine1", true),
    ("customerProfile.address.addressLine2", true),
    ("customerProfile.address.city", true),
    ("customerProfile.address.state", true),
    ("customerProfile.address.postalCode", true),
    ("customerProfile.address.country", true),
    ("customerProfile.team", true),
    ("customerProfile.team[0].firstName", true),
    ("customerProfile.team[0].lastName", true),
    ("customerProfile.team[0].email", true),
    ("customerProfile.team[0].phoneNumber", true),
    ("customerProfile.team[0].contactPreference.locale", true),
    ("consent.consentToToShareInfoWithOthers", true),
    ("consent.consentToContact", true),
    ("consent.consentToShareReferralWithMicrosoftSellers", true),
    ("details.notes", true),
    ("details.dealValue", true),
    ("details.currency", true),
    ("details.closingDateTime", true),
    ("details.requirements.industries", true),
    ("details.requirements.products", true),
    ("details.requirements.services", true),
    ("details.requirements.solutions", true),
    ("team", true),
    ("team[0].firstName", true),
    ("team[0].lastName", true),
    ("team[0].email", true),
    ("team[0].phoneNumber", true),
    // "Required for Services co-sell referrals only" (FY26 taxonomy, values UNVERIFIED).
    ("partnerRole", true),
    ("solutionArea", true),
    ("solutionPlay", true),
    ("inviteContext.notes", true),
    ("inviteContext.invitedBy", false),
    ("eTag", false),
    ("links", false),
];

/// Normalizes array indexes to `[0]`, so `team[2].email` checks as `team[0].email`.
fn normalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.trim().chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[0]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// `Some(writable)` for a known referral path, `None` for an unknown one.
pub fn referral_path(path: &str, extra: &[String]) -> Option<bool> {
    let norm = normalize(path);
    REFERRAL_PATHS
        .iter()
        .find(|(p, _)| *p == norm)
        .map(|(_, w)| *w)
        .or_else(|| extra.iter().any(|e| normalize(e) == norm).then_some(true))
}

/// True for a known path or a prefix of one (used by conflict rules such as `customerProfile`).
pub fn referral_path_or_prefix(path: &str, extra: &[String]) -> bool {
    let norm = normalize(path);
    referral_path(path, extra).is_some()
        || REFERRAL_PATHS
            .iter()
            .map(|(p, _)| p.to_string())
            .chain(extra.iter().map(|e| normalize(e)))
            .any(|p| {
                p.strip_prefix(&norm)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
            })
}

/// Standard columns, with whether the connector may write them.
const OPPORTUNITY_COLUMNS: &[(&str, bool)] = &[
    ("opportunityid", false),
    ("name", true),
    ("description", true),
    ("estimatedvalue", true),
    ("isrevenuesystemcalculated", true),
    ("actualvalue", true),
    ("estimatedclosedate", true),
    ("actualclosedate", true),
    ("customerid", true),
    ("parentaccountid", true),
    ("parentcontactid", true),
    ("closeprobability", true),
    ("transactioncurrencyid", true),
    ("exchangerate", false),
    ("statecode", false),
    ("statuscode", true),
    ("ownerid", true),
    ("originatingleadid", true),
    ("pricelevelid", true),
    ("salesstage", true),
    ("opportunityratingcode", true),
    ("msdyn_forecastcategory", true),
    ("createdon", false),
    ("modifiedon", false),
    ("createdby", false),
    ("modifiedby", false),
    ("versionnumber", false),
    ("overriddencreatedon", true),
    ("importsequencenumber", true),
];

const ADDRESS_COLUMNS: &[(&str, bool)] = &[
    ("address1_line1", true),
    ("address1_line2", true),
    ("address1_city", true),
    ("address1_stateorprovince", true),
    ("address1_postalcode", true),
    ("address1_country", true),
];

const ACCOUNT_COLUMNS: &[(&str, bool)] = &[
    ("accountid", false),
    ("name", true),
    ("websiteurl", true),
    ("telephone1", true),
    ("accountnumber", true),
    ("emailaddress1", true),
    ("industrycode", true),
    ("description", true),
    ("transactioncurrencyid", true),
    ("primarycontactid", true),
    ("parentaccountid", true),
];

const CONTACT_COLUMNS: &[(&str, bool)] = &[
    ("contactid", false),
    ("firstname", true),
    ("lastname", true),
    ("fullname", false),
    ("emailaddress1", true),
    ("telephone1", true),
    ("mobilephone", true),
    ("jobtitle", true),
    ("parentcustomerid", true),
];

/// Resolves `$col.<name>` to the configured logical name; other names pass through.
/// `Err(name)` for an unknown placeholder.
pub fn resolve_column<'a>(column: &'a str, cols: &'a ColumnNames) -> Result<&'a str, &'a str> {
    let Some(name) = column.trim().strip_prefix("$col.") else {
        return Ok(column.trim());
    };
    Ok(match name {
        "sync_flag" => &cols.sync_flag,
        "referral_id" => &cols.referral_id,
        "referral_link" => &cols.referral_link,
        "help_needed" => &cols.help_needed,
        "solutions" => &cols.solutions,
        "audit" => &cols.audit,
        "decision" => &cols.decision,
        "visibility" => &cols.visibility,
        other => return Err(other),
    })
}

/// `Some(writable)` for a known column of the table, `None` for an unknown one. Connector
/// columns (configured names) belong to the opportunity.
pub fn column(table: &Table, column: &str, cols: &ColumnNames, extra: &[String]) -> Option<bool> {
    let list: Vec<&[(&str, bool)]> = match table {
        Table::Opportunity => vec![OPPORTUNITY_COLUMNS],
        Table::Account => vec![ACCOUNT_COLUMNS, ADDRESS_COLUMNS],
        Table::Contact => vec![CONTACT_COLUMNS, ADDRESS_COLUMNS],
        Table::Unknown(_) => return None,
    };
    if let Some(w) = list
        .iter()
        .flat_map(|l| l.iter())
        .find(|(c, _)| *c == column)
        .map(|(_, w)| *w)
    {
        return Some(w);
    }
    if *table == Table::Opportunity {
        let connector = [
            &cols.sync_flag,
            &cols.referral_id,
            &cols.referral_link,
            &cols.help_needed,
            &cols.solutions,
            &cols.audit,
            &cols.decision,
            &cols.visibility,
        ];
        if connector.iter().any(|c| c.as_str() == column) {
            return Some(true);
        }
    }
    extra.iter().any(|e| e == column).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_normalize_and_prefixes_match() {
        assert_eq!(
            referral_path("customerProfile.team[3].email", &[]),
            Some(true)
        );
        assert_eq!(referral_path("createdDateTime", &[]), Some(false));
        assert_eq!(referral_path("details.dealvalue", &[]), None);
        assert!(referral_path_or_prefix("customerProfile", &[]));
        assert!(referral_path_or_prefix("customerProfile.address", &[]));
        assert!(!referral_path_or_prefix("customerProf", &[]));
        assert_eq!(
            referral_path("details.solutionArea", &["details.solutionArea".into()]),
            Some(true)
        );
    }
}
