//! The webhook registration function: a CloudFormation custom resource (register on Create
//! and Update, unregister on Delete, and always an answer to CloudFormation), or invoked
//! directly with `{"action":"register"|"unregister"|"show"}` to repair or inspect.

use std::time::Duration;

use cosell::custom_resource::{
    respond, run_custom_resource, ActionResult, CustomResourceRequest, CustomResourceResponse,
    RequestType,
};
use cosell::engine::registration::{ensure_webhook, remove_webhook, RegistrationChange};
use cosell::partner_center::Cleared;
use cosell::partner_center::PartnerCenterClient;
use cosell::store::Store;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

/// The resource's physical id: there is one registration per Partner Center account.
pub const PHYSICAL_ID: &str = "partner-center-webhook-registration";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Register,
    Unregister,
    Show,
}

#[derive(Debug)]
pub enum Invocation {
    CustomResource(Box<CustomResourceRequest>),
    Direct(Action),
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("unknown input: expected a CloudFormation custom resource request or {{\"action\":\"register\"|\"unregister\"|\"show\"}} ({0})")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
    #[error("could not answer CloudFormation: {0}")]
    Respond(String),
}

impl Invocation {
    pub fn of(event: Value) -> Result<Invocation, RegistrationError> {
        if event.get("RequestType").is_some() {
            let request: CustomResourceRequest = serde_json::from_value(event)
                .map_err(|e| RegistrationError::BadInput(e.to_string()))?;
            return Ok(Invocation::CustomResource(Box::new(request)));
        }
        #[derive(Deserialize)]
        struct Direct {
            action: Action,
        }
        let direct: Direct = serde_json::from_value(event)
            .map_err(|e| RegistrationError::BadInput(e.to_string()))?;
        Ok(Invocation::Direct(direct.action))
    }
}

/// The webhook URL and events to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: Url,
    pub events: Vec<String>,
}

fn events_of(v: &Value) -> Option<Vec<String>> {
    let list: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| s.trim().to_string())
            .collect(),
        Value::String(s) => s.split(',').map(|e| e.trim().to_string()).collect(),
        _ => return None,
    };
    let list: Vec<String> = list.into_iter().filter(|e| !e.is_empty()).collect();
    (!list.is_empty()).then_some(list)
}

impl Target {
    /// From the custom resource's `WebhookUrl` and `Events` properties, each falling back to
    /// `COSELL_WEBHOOK_URL` / `COSELL_WEBHOOK_EVENTS` (the values direct invocations use).
    pub fn resolve(
        properties: &Map<String, Value>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Target, String> {
        let raw_url = properties
            .get("WebhookUrl")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| var("COSELL_WEBHOOK_URL"))
            .filter(|u| !u.trim().is_empty())
            .ok_or("no webhook URL: set the WebhookUrl property or COSELL_WEBHOOK_URL")?;
        let url = Url::parse(raw_url.trim())
            .map_err(|e| format!("webhook URL '{raw_url}' is not a URL ({e})"))?;
        if url.scheme() != "https" {
            return Err(format!("webhook URL '{raw_url}' must be https"));
        }
        let events = properties
            .get("Events")
            .and_then(events_of)
            .or_else(|| var("COSELL_WEBHOOK_EVENTS").and_then(|e| events_of(&Value::String(e))))
            .ok_or("no webhook events: set the Events property or COSELL_WEBHOOK_EVENTS")?;
        Ok(Target { url, events })
    }
}

/// What registering needs; `Err` holds why it could not be built at cold start, so that a
/// custom resource request still gets a FAILED answer instead of none.
pub struct Registrar {
    pub pc: PartnerCenterClient,
    pub store: Box<dyn Store>,
}

fn change_name(c: &RegistrationChange) -> &'static str {
    match c {
        RegistrationChange::Registered => "registered",
        RegistrationChange::Updated => "updated",
        RegistrationChange::AlreadyCurrent => "already-current",
    }
}

impl Registrar {
    pub async fn register(&self, target: &Target) -> Result<Value, String> {
        let change = ensure_webhook(&self.pc, self.store.as_ref(), &target.url, &target.events)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(url = %target.url, change = change_name(&change), "webhook registration ensured");
        Ok(json!({
            "action": "register",
            "change": change_name(&change),
            "webhook_url": target.url.as_str(),
            "events": target.events,
        }))
    }

    pub async fn unregister(&self) -> Result<Value, String> {
        let cleared = remove_webhook(&self.pc, self.store.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        // Partner Center has no DELETE: the registration is updated to no events.
        let (removed, left_in_place) = match cleared {
            Cleared::Cleared => (true, None),
            Cleared::NoneRegistered => (false, None),
            Cleared::LeftInPlace { reason } => (false, Some(reason)),
        };
        match &left_in_place {
            Some(reason) => {
                tracing::warn!(%reason, "Partner Center kept the webhook registration; remove its events in Partner Center")
            }
            None => tracing::info!(removed, "webhook registration retired"),
        }
        Ok(json!({"action": "unregister", "removed": removed, "left_in_place": left_in_place}))
    }

    pub async fn show(&self) -> Result<Value, String> {
        let current = self
            .pc
            .get_registration()
            .await
            .map_err(|e| e.to_string())?;
        Ok(json!({
            "action": "show",
            "registered": current.is_some(),
            "webhook_url": current.as_ref().map(|r| r.webhook_url.clone()),
            "events": current.map(|r| r.webhook_events).unwrap_or_default(),
        }))
    }
}

/// The custom resource's action: what to do for the request, with the reason of any failure.
pub async fn resource_action(
    registrar: Result<&Registrar, &str>,
    request: &CustomResourceRequest,
    var: impl Fn(&str) -> Option<String>,
) -> ActionResult {
    // The rollback of a Create that failed: nothing was registered by it.
    if request.deletes_failed_create() {
        return Ok((PHYSICAL_ID.to_string(), None));
    }
    let registrar = registrar.map_err(|why| format!("the function could not start: {why}"))?;
    match request.request_type {
        RequestType::Create | RequestType::Update => {
            let target = Target::resolve(&request.resource_properties, var)?;
            let report = registrar.register(&target).await?;
            let mut data = Map::new();
            data.insert("WebhookUrl".into(), json!(target.url.as_str()));
            data.insert("Change".into(), report["change"].clone());
            Ok((PHYSICAL_ID.to_string(), Some(data)))
        }
        RequestType::Delete => {
            registrar.unregister().await?;
            Ok((PHYSICAL_ID.to_string(), None))
        }
    }
}

/// Handles one custom resource request within `budget` and PUTs the answer to CloudFormation.
pub async fn handle_custom_resource(
    registrar: Result<&Registrar, &str>,
    http: &reqwest::Client,
    request: &CustomResourceRequest,
    budget: Duration,
    var: impl Fn(&str) -> Option<String>,
) -> Result<CustomResourceResponse, RegistrationError> {
    let response =
        run_custom_resource(request, budget, resource_action(registrar, request, var)).await;
    respond(http, &request.response_url, &response)
        .await
        .map_err(|e| RegistrationError::Respond(e.to_string()))?;
    Ok(response)
}

/// Handles a direct invocation.
pub async fn handle_direct(
    registrar: Result<&Registrar, &str>,
    action: Action,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Value, RegistrationError> {
    let registrar = registrar.map_err(|why| RegistrationError::Failed(why.to_string()))?;
    let done = match action {
        Action::Register => {
            let target = Target::resolve(&Map::new(), var).map_err(RegistrationError::Failed)?;
            registrar.register(&target).await
        }
        Action::Unregister => registrar.unregister().await,
        Action::Show => registrar.show().await,
    };
    done.map_err(RegistrationError::Failed)
}

#[cfg(test)]
mod tests;
