//! The stand-in org's solution tables, the layout of Microsoft's co-sell connector with the
//! stand-in's `cosell_` prefix: a child table of the opportunity, one row per solution on
//! the deal ("Microsoft Partner Center Solutions"), each bound to a row of a catalogue of
//! Partner Center solutions ("Microsoft Solution Details": solution id, name, type).
//!
//! Lookups on the child are set only through their navigation properties
//! (`<nav>@odata.bind`); a bind to a row that does not exist is a 404, a bind through a
//! property the table lacks a 400. The relationship to the opportunity is parental:
//! deleting the opportunity deletes its solution rows.

use crate::expand::Nav;
use crate::state::TableDef;

pub const CHILD_SET: &str = "cosell_opportunitysolutions";
pub const CATALOGUE_SET: &str = "cosell_solutiondetails";
/// The opportunity's collection-valued navigation property to its solution rows.
pub const OPPORTUNITY_NAV: &str = "cosell_opportunity_cosell_opportunitysolution";
/// The child's lookups (attribute and navigation property share the name).
pub const CHILD_OPPORTUNITY: &str = "cosell_opportunityid";
pub const CHILD_CATALOGUE: &str = "cosell_solutiondetailid";

pub const TABLES: [TableDef; 4] = [
    TableDef {
        set: CHILD_SET,
        logical: "cosell_opportunitysolution",
        key: "cosell_opportunitysolutionid",
    },
    TableDef {
        set: CATALOGUE_SET,
        logical: "cosell_solutiondetail",
        key: "cosell_solutiondetailid",
    },
    // The same tables under the names microsoft-connector.toml guesses for Microsoft's
    // solution (an org moving off it has them).
    TableDef {
        set: "msp_partnercentersolutions",
        logical: "msp_partnercentersolution",
        key: "msp_partnercentersolutionid",
    },
    TableDef {
        set: "msp_solutiondetails",
        logical: "msp_solutiondetail",
        key: "msp_solutiondetailid",
    },
];

/// The navigation properties of one layout: (child set, catalogue set, opportunity's
/// collection, child -> opportunity, child -> catalogue, catalogue's collection).
type Layout = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

const fn navs(l: Layout) -> [(&'static str, &'static str, Nav); 4] {
    let (child, catalogue, collection, to_opportunity, to_catalogue, catalogue_collection) = l;
    [
        (
            "opportunities",
            collection,
            Nav::Many {
                child,
                attr: to_opportunity,
            },
        ),
        (
            child,
            to_opportunity,
            Nav::One {
                attr: to_opportunity,
                target: "opportunities",
            },
        ),
        (
            child,
            to_catalogue,
            Nav::One {
                attr: to_catalogue,
                target: catalogue,
            },
        ),
        (
            catalogue,
            catalogue_collection,
            Nav::Many {
                child,
                attr: to_catalogue,
            },
        ),
    ]
}

const COSELL: [(&str, &str, Nav); 4] = navs((
    CHILD_SET,
    CATALOGUE_SET,
    OPPORTUNITY_NAV,
    CHILD_OPPORTUNITY,
    CHILD_CATALOGUE,
    "cosell_solutiondetail_cosell_opportunitysolution",
));

const MSP: [(&str, &str, Nav); 4] = navs((
    "msp_partnercentersolutions",
    "msp_solutiondetails",
    "msp_opportunity_msp_partnercentersolution",
    "msp_opportunityid",
    "msp_solutiondetailid",
    "msp_solutiondetail_msp_partnercentersolution",
));

pub const NAVS: &[(&str, &str, Nav)] = &[
    COSELL[0], COSELL[1], COSELL[2], COSELL[3], MSP[0], MSP[1], MSP[2], MSP[3],
];

/// `(attribute, target set)` of a single-valued navigation property of one of these
/// tables; `None` for a table that is not one of them.
pub fn lookup(set: &str, nav: &str) -> Option<Result<(&'static str, &'static str), String>> {
    if !TABLES.iter().any(|t| t.set == set) {
        return None;
    }
    Some(match crate::expand::navigation(set, nav) {
        Some(Nav::One { attr, target }) => Ok((attr, target)),
        _ => Err(format!(
            "An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload."
        )),
    })
}

/// The solution rows of the opportunity `opportunity_id`, in either layout, as
/// `(child set, row id)`: a parental relationship, so deleting the opportunity deletes them.
pub fn children_of(
    inner: &crate::state::Inner,
    opportunity_id: &str,
) -> Vec<(&'static str, String)> {
    NAVS.iter()
        .filter_map(|(set, _, nav)| match (set, nav) {
            (&"opportunities", Nav::Many { child, attr }) => Some((*child, *attr)),
            _ => None,
        })
        .flat_map(|(child, attr)| {
            let column = format!("_{attr}_value");
            inner
                .table(child)
                .rows
                .iter()
                .filter(move |(_, r)| {
                    r.data.get(&column).and_then(|v| v.as_str()) == Some(opportunity_id)
                })
                .map(move |(id, _)| (child, id.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}
