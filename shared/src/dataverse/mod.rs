//! Dynamics 365 (Dataverse Web API): the rows the connector reads and writes.

pub mod model;

pub use model::{Account, Contact, Opportunity};
