//! What can be wrong with a mapping file, or with one value while mapping a record.
//! Field indexes count `[[field]]` entries from 1, as a reader of the file would.

/// One problem, naming the field (index and referral path) it belongs to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("mapping file is not valid TOML for a mapping: {reason}")]
    Parse { reason: String },
    #[error("[lead]: {0}")]
    Lead(String),
    #[error("mapping file extends '{name}', but only \"default\" can be extended")]
    UnknownBase { name: String },

    #[error("field #{index} ({path}): unknown referral field path")]
    UnknownReferralPath { index: usize, path: String },
    #[error(
        "field #{index} ({path}): unknown table '{table}' (use opportunity, account or contact)"
    )]
    UnknownTable {
        index: usize,
        path: String,
        table: String,
    },
    #[error("field #{index} ({path}): unknown column '{column}' on {table}")]
    UnknownColumn {
        index: usize,
        path: String,
        table: String,
        column: String,
    },
    #[error("field #{index} ({path}): unknown connector column placeholder '{placeholder}'")]
    UnknownPlaceholder {
        index: usize,
        path: String,
        placeholder: String,
    },
    #[error("field #{index} ({path}): unknown transform '{transform}'")]
    UnknownTransform {
        index: usize,
        path: String,
        transform: String,
    },
    #[error(
        "field #{index} ({path}): unknown direction '{direction}' (use both, inbound or outbound)"
    )]
    UnknownDirection {
        index: usize,
        path: String,
        direction: String,
    },
    #[error("field #{index} ({path}): transform value_map needs a value map, and '{map}' is not defined")]
    MissingValueMap {
        index: usize,
        path: String,
        map: String,
    },
    #[error("field #{index} ({path}): column {table}.{column} is already the target of field #{first_index}")]
    DuplicateColumn {
        index: usize,
        first_index: usize,
        path: String,
        table: String,
        column: String,
    },
    #[error("field #{index} ({path}): the referral field is read-only, it cannot be sent to Partner Center")]
    ReadOnlyOutbound { index: usize, path: String },
    #[error("field #{index} ({path}): column {table}.{column} is read-only in Dataverse, it cannot be written")]
    ReadOnlyColumn {
        index: usize,
        path: String,
        table: String,
        column: String,
    },

    #[error("value map '{map}' covers unknown enum '{covers}'")]
    UnknownEnum { map: String, covers: String },
    #[error("value map '{map}' is not total: no entry for {}", missing.join(", "))]
    ValueMapNotTotal { map: String, missing: Vec<String> },
    #[error("value map '{map}' has two entries for Partner Center value '{value}'")]
    ValueMapDuplicate { map: String, value: String },
    #[error("status table is not total: no inbound rule for {}", missing.join(", "))]
    StatusNotTotal { missing: Vec<String> },
    #[error("status rule {rule}: {status}/{substatus} is not a documented status/substatus pair")]
    StatusUndocumentedPair {
        rule: String,
        status: String,
        substatus: String,
    },
    #[error(
        "status rule {rule}: status reason {statuscode} belongs to another state than {state}"
    )]
    StatusStateMismatch {
        rule: String,
        state: String,
        statuscode: i32,
    },
    #[error("status rule {rule}: unknown Dataverse state '{state}' (use open, won or lost)")]
    UnknownState { rule: String, state: String },
    #[error("conflict rule names unknown referral field '{field}'")]
    UnknownConflictField { field: String },

    #[error("field #{index} ({path}): a value is required and there is none")]
    MissingRequired { index: usize, path: String },
    #[error("field #{index} ({path}): {reason}")]
    BadValue {
        index: usize,
        path: String,
        reason: String,
    },
    #[error(
        "no status rule for Partner Center status {status}/{substatus}: opportunity left open"
    )]
    UnmappedStatus { status: String, substatus: String },
    #[error("a co-sell referral needs a customer contact with an e-mail address")]
    CoSellNeedsContact,
    #[error("a co-sell referral needs at least one solution")]
    CoSellNeedsSolution,
    #[error("the opportunity asks Microsoft for help but its visibility is private: share it with Microsoft sellers, or clear the help")]
    HelpButPrivate,
    #[error("a referral with a deal value needs its currency, and the opportunity has none")]
    NoCurrency,
    /// Refused before sending, as Partner Center would refuse it (`taxonomy.rs`).
    #[error("Services co-sell: {0}")]
    Services(#[from] super::taxonomy::ServicesError),
    #[error("[deal_type]: {reason}")]
    DealType { reason: String },
    #[error("[solutions]: {reason}")]
    Solutions { reason: String },
    #[error("the built referral does not deserialize: {reason}")]
    Build { reason: String },
}
