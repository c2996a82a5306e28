//! Every metric the connector emits, in one place: the emitting code and the template test
//! (dashboard widgets, alarms) both read these names, so neither can drift from the other.
//!
//! All metrics go to [`NAMESPACE`] with the stack name as the [`STACK`] dimension (added by
//! the exporter to every metric), plus the dimensions listed for each metric. Dimension
//! values are fixed words or HTTP status codes: never a customer name, an e-mail, an id or
//! a deal value.

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "cosell-sync";

/// The dimension naming the stack (the CloudFormation stack, or `local` for a local run).
pub const STACK: &str = "Stack";

/// Dimension keys.
pub mod dim {
    /// `inbound` (a Partner Center change) or `outbound` (a Dataverse change); `operator`
    /// for a backfill or replay, `unknown` for an unreadable message.
    pub const DIRECTION: &str = "Direction";
    /// What became of a sync: see [`super::Outcome`].
    pub const OUTCOME: &str = "Outcome";
    /// The HTTP status the webhook intake answered.
    pub const STATUS: &str = "Status";
    /// `partner-center`, `dataverse` or `entra`: see [`super::Service`].
    pub const SERVICE: &str = "Service";
    /// `opportunity-poll` or `referral-sweep`.
    pub const SOURCE: &str = "Source";
}

/// The unit a metric is reported in (CloudWatch's unit names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    /// The CloudWatch (EMF) unit name.
    pub fn cloudwatch(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A counter adds up; a distribution keeps every value of a flush (EMF values array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Distribution,
}

/// One metric: its name, how it is aggregated, its unit and its own dimensions (besides
/// [`STACK`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub dimensions: &'static [&'static str],
    pub help: &'static str,
}

const fn counter(
    name: &'static str,
    dimensions: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        unit: Unit::Count,
        dimensions,
        help,
    }
}

/// Messages reconciled, by direction and outcome.
pub const SYNCS: Metric = counter(
    "Syncs",
    &[dim::DIRECTION, dim::OUTCOME],
    "messages reconciled, by direction and outcome",
);
/// 1 for a failed or dead-lettered sync, 0 for any other: its average is the failure rate.
pub const SYNC_FAILED: Metric = Metric {
    name: "SyncFailed",
    kind: Kind::Distribution,
    unit: Unit::Count,
    dimensions: &[],
    help: "1 per failed or dead-lettered sync, 0 per other (average = failure rate)",
};
/// From the change's own timestamp to our write on the other side.
pub const SYNC_LATENCY: Metric = Metric {
    name: "SyncLatency",
    kind: Kind::Distribution,
    unit: Unit::Milliseconds,
    dimensions: &[dim::DIRECTION],
    help: "time from the change to our write on the other side",
};
/// Webhook deliveries, by the status the intake answered.
pub const WEBHOOK_DELIVERIES: Metric = counter(
    "WebhookDeliveries",
    &[dim::STATUS],
    "webhook deliveries, by answer code",
);
/// 429 answers received.
pub const THROTTLES: Metric = counter("Throttles", &[dim::SERVICE], "429 answers received");
/// The `Retry-After` waits of those 429s.
pub const RETRY_AFTER_WAIT: Metric = Metric {
    name: "RetryAfterWait",
    kind: Kind::Distribution,
    unit: Unit::Milliseconds,
    dimensions: &[dim::SERVICE],
    help: "the wait each 429 asked for",
};
/// HTTP calls made (one per logical call, whatever its retries).
pub const CALLS: Metric = counter("Calls", &[dim::SERVICE], "HTTP calls (logical)");
/// Attempts after the first one (`Retries / Calls` = retries per call).
pub const RETRIES: Metric = counter(
    "Retries",
    &[dim::SERVICE],
    "attempts after the first (Retries / Calls = retries per call)",
);
/// Access tokens fetched.
pub const TOKEN_RENEWALS: Metric =
    counter("TokenRenewals", &[dim::SERVICE], "access tokens fetched");
/// Token requests that failed: an expired or revoked refresh token stops all work.
pub const TOKEN_RENEWAL_FAILURES: Metric = counter(
    "TokenRenewalFailures",
    &[dim::SERVICE],
    "token requests that failed",
);
/// Changes a poll or sweep found (and queued).
pub const CHANGES_FOUND: Metric = counter(
    "ChangesFound",
    &[dim::SOURCE],
    "changes a poll or sweep queued",
);
/// Pages a poll or sweep read.
pub const PAGES_READ: Metric = counter("PagesRead", &[dim::SOURCE], "pages a poll or sweep read");

/// Every metric, for the exporter's units, the template test and `cosell status`.
pub const ALL: &[Metric] = &[
    SYNCS,
    SYNC_FAILED,
    SYNC_LATENCY,
    WEBHOOK_DELIVERIES,
    THROTTLES,
    RETRY_AFTER_WAIT,
    CALLS,
    RETRIES,
    TOKEN_RENEWALS,
    TOKEN_RENEWAL_FAILURES,
    CHANGES_FOUND,
    PAGES_READ,
];

/// The metric named `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// Values of [`dim::DIRECTION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
    Operator,
    Unknown,
}

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::Inbound,
        Direction::Outbound,
        Direction::Operator,
        Direction::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
            Direction::Operator => "operator",
            Direction::Unknown => "unknown",
        }
    }
}

/// Values of [`dim::OUTCOME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The other side's record was created (opportunity or referral).
    Created,
    /// One side or both were written.
    Updated,
    /// Nothing to write: our own echo, or a change to nothing mapped.
    SkippedEcho,
    /// Deliberately not synced (sync flag off, not co-sell, deleted, ...).
    Skipped,
    /// Under the wrong key: sent on to the right pair.
    Forwarded,
    /// Lost optimistic-concurrency races until the attempt gave up (retried).
    Conflict,
    /// Failed; the queue delivers it again.
    Failed,
    /// Failed for good (or out of attempts): in the dead-letter queue.
    DeadLettered,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::SkippedEcho,
        Outcome::Skipped,
        Outcome::Forwarded,
        Outcome::Conflict,
        Outcome::Failed,
        Outcome::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::SkippedEcho => "skipped-echo",
            Outcome::Skipped => "skipped",
            Outcome::Forwarded => "forwarded",
            Outcome::Conflict => "conflict",
            Outcome::Failed => "failed",
            Outcome::DeadLettered => "dead-lettered",
        }
    }

    /// Counted in the failure rate ([`SYNC_FAILED`]). A conflict is a race that the retry
    /// normally settles, so it is not.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::DeadLettered)
    }
}

/// Values of [`dim::SERVICE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    PartnerCenter,
    Dataverse,
    Entra,
    Other,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::PartnerCenter,
        Service::Dataverse,
        Service::Entra,
        Service::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::PartnerCenter => "partner-center",
            Service::Dataverse => "dataverse",
            Service::Entra => "entra",
            Service::Other => "other",
        }
    }
}

/// Values of [`dim::SOURCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    OpportunityPoll,
    ReferralSweep,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::OpportunityPoll, Source::ReferralSweep];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::OpportunityPoll => "opportunity-poll",
            Source::ReferralSweep => "referral-sweep",
        }
    }
}
