//! `cosell webhook show|register|test|unregister`: Partner Center's webhook registration for
//! this connector, and an end-to-end check with Partner Center's validation event (which
//! Partner Center only sends to a registration that includes `test-created`).

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use cosell::engine::intake::{last_test_event, TestEventRecord};
use cosell::engine::registration::{
    ensure_webhook, recorded_registration, remove_webhook, RegistrationChange,
};
use cosell::engine::wiring;
use cosell::partner_center::event::{registered_events, TEST_CREATED};
use cosell::partner_center::{Cleared, PartnerCenterClient, PartnerCenterError};
use cosell::retry::CallError;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use super::error::OpsError;
use super::output::{opt, write_json, write_pairs, Format, OutputArgs, Style};
use super::settings::Settings;
use super::target::{Target, TargetArgs};

/// How often `webhook test` looks again while waiting.
const POLL_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    pub action: WebhookAction,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum WebhookAction {
    /// Show Partner Center's registration, the one the connector last made, and the last test event.
    Show,
    /// Register (or re-register) the intake URL for referral events.
    Register {
        /// The intake URL [default: the stack's WebhookUrl output].
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Ask Partner Center for its test event and report whether it arrived and verified.
    Test {
        /// How long to wait for the event.
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        wait: u64,
    },
    /// Stop deliveries: Partner Center has no DELETE, so the registration is updated to no events.
    Unregister,
}

pub async fn run(
    args: WebhookArgs,
    settings: &Settings,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let format = args.output.output;
    let url = match &args.action {
        WebhookAction::Register { url: Some(u) } => Some(parse_url(u)?),
        _ => None,
    };
    let config = settings.config()?;
    let target = args.target.open(settings).await?;
    let http = wiring::http_client(&config).map_err(|e| OpsError::failed(e.to_string()))?;
    let pc = wiring::partner_center_client(&config, &http, None);
    match args.action {
        WebhookAction::Show => show(&pc, &target, format, style, out).await,
        WebhookAction::Register { .. } => {
            let url = match (url, &target.webhook_url) {
                (Some(u), _) => u,
                (None, Some(stack_url)) => parse_url(stack_url)?,
                (None, None) => {
                    return Err(OpsError::usage(
                        "pass --url, or --stack to use the stack's WebhookUrl output",
                    ))
                }
            };
            register(&pc, &target, &url, format, out).await
        }
        WebhookAction::Test { wait } => {
            test(&pc, &target, Duration::from_secs(wait), format, style, out).await
        }
        WebhookAction::Unregister => unregister(&pc, &target, format, out).await,
    }
}

async fn unregister(
    pc: &PartnerCenterClient,
    target: &Target,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let cleared = remove_webhook(pc, target.store.as_ref()).await?;
    let message = match &cleared {
        Cleared::Cleared => {
            "webhook registration updated to no events: Partner Center delivers nothing more (its API has no DELETE)".to_string()
        }
        Cleared::NoneRegistered => "no webhook registration with events: nothing to do".to_string(),
        Cleared::LeftInPlace { reason } => format!(
            "Partner Center refused a registration with no events ({reason}); the registration is left as it is: remove it in Partner Center"
        ),
    };
    match format {
        Format::Json => write_json(
            out,
            &json!({"removed": cleared == Cleared::Cleared, "message": message}),
        )?,
        Format::Table => writeln!(out, "{message}")?,
    }
    match cleared {
        Cleared::LeftInPlace { .. } => Err(OpsError::failed(message)),
        _ => Ok(()),
    }
}

fn parse_url(text: &str) -> Result<Url, OpsError> {
    let url = Url::parse(text.trim())
        .map_err(|e| OpsError::usage(format!("--url: '{text}' is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OpsError::usage(format!(
            "--url: '{text}' must be an https:// URL"
        )));
    }
    Ok(url)
}

async fn show(
    pc: &PartnerCenterClient,
    target: &Target,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let registration = pc.get_registration().await?;
    let stored = recorded_registration(target.store.as_ref()).await?;
    let test_event = last_test_event(target.store.as_ref()).await?;
    match format {
        Format::Json => write_json(
            out,
            &json!({
                "registration": registration,
                "recorded": stored.as_ref().map(|r| json!({"url": r.webhook_url, "events": r.webhook_events, "recorded_at": r.recorded_at})),
                "last_test_event": test_event,
            }),
        )?,
        Format::Table => {
            let mut pairs = match &registration {
                Some(r) => vec![
                    ("registered url", r.webhook_url.clone()),
                    ("events", r.webhook_events.join(", ")),
                ],
                None => vec![("registered url", "missing".to_string())],
            };
            pairs.push((
                "connector registered",
                match &stored {
                    Some(r) => format!("{} at {}", opt(r.webhook_url.as_deref()), r.recorded_at),
                    None => "missing".into(),
                },
            ));
            pairs.push((
                "last test event",
                opt(test_event.as_ref().map(|t| t.received_at.as_str())),
            ));
            write_pairs(out, &pairs, style)?;
        }
    }
    if registration.is_none() {
        return Err(OpsError::failed(
            "Partner Center has no webhook registration: run `cosell webhook register`",
        ));
    }
    Ok(())
}

async fn register(
    pc: &PartnerCenterClient,
    target: &Target,
    url: &Url,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let events = registered_events();
    let change = ensure_webhook(pc, target.store.as_ref(), url, &events).await?;
    let what = match change {
        RegistrationChange::Registered => "registered",
        RegistrationChange::Updated => "updated",
        RegistrationChange::AlreadyCurrent => "already current",
    };
    match format {
        Format::Json => write_json(
            out,
            &json!({"change": what, "url": url.as_str(), "events": events}),
        )?,
        Format::Table => writeln!(out, "webhook {what}: {url} ({})", events.join(", "))?,
    }
    Ok(())
}

/// How a test ended.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Verified(TestEventRecord),
    /// Partner Center gave up delivering (unreachable, or the intake refused it).
    NotDelivered(String),
    /// Delivered, but the intake of this target recorded no verified test event.
    NotRecorded(String),
    TimedOut(String),
}

/// How one test event went: Partner Center's status and whether the intake verified it.
pub(crate) struct RoundTrip {
    pub correlation: String,
    pub ok: bool,
    pub message: String,
    pub status: String,
}

/// Asks Partner Center for its test event and waits until the connector's store records it
/// as verified, or Partner Center reports it failed, or `wait` passes.
pub(crate) async fn round_trip(
    pc: &PartnerCenterClient,
    target: &Target,
    wait: Duration,
) -> Result<RoundTrip, OpsError> {
    // Partner Center refuses a validation event unless the registration includes
    // `test-created`: say what is missing instead of relaying its 400.
    match pc.get_registration().await? {
        None => {
            return Err(OpsError::failed(
                "Partner Center has no webhook registration: run `cosell webhook register` first",
            ))
        }
        Some(r) if !r.accepts_test_event() => {
            return Err(OpsError::failed(format!(
                "the webhook registration does not include {TEST_CREATED} (it has: {}); Partner Center sends a test event only to a registration that does: run `cosell webhook register` to add it",
                if r.webhook_events.is_empty() { "no events".to_string() } else { r.webhook_events.join(", ") }
            )))
        }
        Some(_) => {}
    }
    // A second of slack: the intake's clock stamps the arrival, not ours.
    let started = OffsetDateTime::now_utc() - Duration::from_secs(1);
    let correlation = match pc.send_test_event().await {
        Ok(c) => c,
        Err(PartnerCenterError::Call(CallError::Throttled { retry_after, .. })) => {
            return Err(OpsError::failed(format!(
                "Partner Center allows 2 test events a minute: try again in {}s",
                retry_after.as_secs().max(1)
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut last_status = String::from("unknown");
    let verdict = loop {
        if let Some(record) = last_test_event(target.store.as_ref()).await? {
            if is_this_test(&record, &correlation, started) {
                break Verdict::Verified(record);
            }
        }
        // A transient error on the status call is not a verdict; keep waiting.
        if let Ok(status) = pc.test_event_status(&correlation).await {
            last_status = status.status.to_ascii_lowercase();
        }
        match last_status.as_str() {
            "failed" => break Verdict::NotDelivered(last_status.clone()),
            // The intake records before it answers, so a completed delivery without a
            // record means it went to another connector or was answered without verifying.
            "completed" | "succeeded" | "delivered" => {
                if let Some(record) = last_test_event(target.store.as_ref()).await? {
                    if is_this_test(&record, &correlation, started) {
                        break Verdict::Verified(record);
                    }
                }
                break Verdict::NotRecorded(last_status.clone());
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            break Verdict::TimedOut(last_status.clone());
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    let (ok, message) = match &verdict {
        Verdict::Verified(r) => (true, format!("delivered and verified (arrived {})", r.received_at)),
        Verdict::NotDelivered(s) => (false, format!(
            "not delivered: Partner Center reports '{s}'; the intake URL is unreachable or refused the event (check the registered URL with `cosell webhook show` and the intake's logs for a signature rejection)"
        )),
        Verdict::NotRecorded(s) => (false, format!(
            "Partner Center reports '{s}', but {} recorded no verified test event: the registration points at another connector, or the intake did not verify it",
            target.label
        )),
        Verdict::TimedOut(s) => (false, format!(
            "no result within {}s (Partner Center status: '{s}')",
            wait.as_secs()
        )),
    };
    let status = status_of(&verdict, &last_status);
    Ok(RoundTrip {
        correlation,
        ok,
        message,
        status,
    })
}

async fn test(
    pc: &PartnerCenterClient,
    target: &Target,
    wait: Duration,
    format: Format,
    style: &Style,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let RoundTrip {
        correlation,
        ok,
        message,
        status,
    } = round_trip(pc, target, wait).await?;
    match format {
        Format::Json => write_json(
            out,
            &json!({"correlation_id": correlation, "verified": ok, "partner_center_status": status, "message": message}),
        )?,
        Format::Table => write_pairs(
            out,
            &[
                ("correlation id", correlation.clone()),
                ("partner center", status),
                (
                    "result",
                    if ok {
                        "verified".into()
                    } else {
                        "failed".into()
                    },
                ),
                ("detail", message.clone()),
            ],
            style,
        )?,
    }
    if ok {
        Ok(())
    } else {
        Err(OpsError::failed(format!("webhook test: {message}")))
    }
}

fn status_of(verdict: &Verdict, last: &str) -> String {
    match verdict {
        Verdict::Verified(_) if last == "unknown" || last == "pending" => "delivered".into(),
        _ => last.to_string(),
    }
}

/// Whether the recorded event answers this test: it names the correlation id (Partner
/// Center's resource URI ends with it), or, when it names none, it arrived after the request.
fn is_this_test(record: &TestEventRecord, correlation: &str, started: OffsetDateTime) -> bool {
    let uri = record.event["ResourceUri"].as_str().unwrap_or_default();
    if uri.contains(correlation) {
        return true;
    }
    let names_other = uri.contains("validationEvents/")
        && !uri.trim_end_matches('/').ends_with("validationEvents");
    !names_other
        && OffsetDateTime::parse(&record.received_at, &Rfc3339).is_ok_and(|at| at >= started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uri: &str, at: &str) -> TestEventRecord {
        TestEventRecord {
            event: json!({"EventName": "test-created", "ResourceUri": uri}),
            received_at: at.into(),
        }
    }

    #[test]
    fn matches_a_test_event_by_correlation_or_arrival() {
        let started = OffsetDateTime::parse("2026-05-01T10:00:00Z", &Rfc3339).unwrap();
        let ours = record(
            "https://pc/webhooks/v1/registration/validationEvents/abc",
            "2026-05-01T09:00:00Z",
        );
        assert!(is_this_test(&ours, "abc", started));
        let other = record(
            "https://pc/webhooks/v1/registration/validationEvents/old",
            "2026-05-01T10:00:05Z",
        );
        assert!(!is_this_test(&other, "abc", started));
        let unnamed_new = record("https://pc/somewhere", "2026-05-01T10:00:05Z");
        assert!(is_this_test(&unnamed_new, "abc", started));
        let unnamed_old = record("https://pc/somewhere", "2026-05-01T09:59:00Z");
        assert!(!is_this_test(&unnamed_old, "abc", started));
    }

    #[test]
    fn rejects_non_http_urls() {
        assert!(parse_url("ftp://x/y").is_err());
        assert!(parse_url("not a url").is_err());
        assert!(parse_url("https://example.com/hook").is_ok());
    }
}
