//! Dynamics 365 (Dataverse Web API): the rows the connector reads and writes, and the client
//! that reads and writes them.

mod batch;
pub mod bind;
mod changes;
mod client;
mod error;
pub mod leads;
mod linked_rows;
pub mod metadata;
pub mod model;
pub mod query;
mod rows;
mod select;
mod solution_changes;
mod solution_rows;

pub use batch::{NewRow, PartAnswer};
pub use changes::ChangeSet;
pub use client::DataverseClient;
pub use error::DataverseError;
pub use leads::{Lead, Qualify};
pub use model::{Account, Contact, Opportunity};
pub use rows::Currency;
pub use select::Selects;
pub use solution_changes::SolutionRowSeen;
pub use solution_rows::RowWrite;
