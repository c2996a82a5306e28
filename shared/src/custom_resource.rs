//! The CloudFormation custom resource protocol, without Lambda: the request CloudFormation
//! sends, the response it waits for, and the PUT of that response to the pre-signed S3 URL.
//!
//! CloudFormation waits up to an hour for an answer it never gets, so [`run_custom_resource`]
//! turns every error, panic and time-out of the action into a FAILED response.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::retry::{self, CallError, RetryPolicy};

/// Time kept back from the action's budget to send the response.
pub const RESPOND_RESERVE: Duration = Duration::from_secs(15);

/// CloudFormation rejects responses larger than 4096 bytes; a long reason must not cause that.
const MAX_REASON_BYTES: usize = 1024;

/// Prefix of the physical id given to a resource whose Create failed. CloudFormation then
/// sends a Delete for it during rollback, which must not touch anything real.
pub const FAILED_CREATE_PREFIX: &str = "create-failed-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// A custom resource request, as CloudFormation documents it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    pub request_type: RequestType,
    /// Pre-signed S3 URL: whoever holds it can answer for the stack, so it is kept out of
    /// `Debug` output.
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    #[serde(default)]
    pub resource_type: String,
    pub logical_resource_id: String,
    /// Present on Update and Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_token: Option<String>,
    #[serde(default)]
    pub resource_properties: Map<String, Value>,
    /// Present on Update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_resource_properties: Option<Map<String, Value>>,
}

impl std::fmt::Debug for CustomResourceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self
            .response_url
            .split_once('?')
            .map_or(self.response_url.as_str(), |(base, _)| base);
        f.debug_struct("CustomResourceRequest")
            .field("request_type", &self.request_type)
            .field("response_url", &format_args!("{url}?***"))
            .field("stack_id", &self.stack_id)
            .field("request_id", &self.request_id)
            .field("resource_type", &self.resource_type)
            .field("logical_resource_id", &self.logical_resource_id)
            .field("physical_resource_id", &self.physical_resource_id)
            .field("resource_properties", &self.resource_properties)
            .field("old_resource_properties", &self.old_resource_properties)
            .finish()
    }
}

impl CustomResourceRequest {
    /// A string property of the resource, e.g. `WebhookUrl`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.resource_properties.get(name)?.as_str()
    }

    /// True for the Delete that rolls back a Create which had failed: nothing to undo.
    pub fn deletes_failed_create(&self) -> bool {
        self.request_type == RequestType::Delete
            && self
                .physical_resource_id
                .as_deref()
                .is_some_and(|id| id.starts_with(FAILED_CREATE_PREFIX))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ResponseStatus {
    Success,
    Failed,
}

/// The answer CloudFormation waits for at the request's `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    pub status: ResponseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_echo: bool,
    /// Values for `!GetAtt` on the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

impl CustomResourceResponse {
    pub fn success(
        request: &CustomResourceRequest,
        physical_resource_id: String,
        data: Option<Map<String, Value>>,
    ) -> Self {
        CustomResourceResponse {
            status: ResponseStatus::Success,
            reason: None,
            physical_resource_id,
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
            no_echo: false,
            data,
        }
    }

    /// A FAILED answer. It keeps the resource's physical id (CloudFormation reads a new id on
    /// a failed Update as a replacement) and makes a recognisable one for a failed Create.
    pub fn failed(request: &CustomResourceRequest, reason: &str) -> Self {
        let physical_resource_id = request
            .physical_resource_id
            .clone()
            .unwrap_or_else(|| format!("{FAILED_CREATE_PREFIX}{}", request.request_id));
        CustomResourceResponse {
            status: ResponseStatus::Failed,
            reason: Some(retry::truncate(reason, MAX_REASON_BYTES)),
            physical_resource_id,
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
            no_echo: false,
            data: None,
        }
    }
}

/// Why an action produced no physical id: any text, shown to the user in the stack's events.
pub type ActionResult = Result<(String, Option<Map<String, Value>>), String>;

/// Runs `action` within `budget` (the invocation's remaining time) less a reserve for sending
/// the answer, and makes the answer: SUCCESS with the action's physical id and data, FAILED
/// with the reason on an error, a panic or a time-out. On Delete the physical id is always the
/// request's, as CloudFormation requires.
pub async fn run_custom_resource<F>(
    request: &CustomResourceRequest,
    budget: Duration,
    action: F,
) -> CustomResourceResponse
where
    F: Future<Output = ActionResult>,
{
    // Small budgets (tests, a nearly spent invocation) keep a quarter for the answer.
    let reserve = RESPOND_RESERVE.min(budget / 4);
    let limit = budget.saturating_sub(reserve);
    let outcome = tokio::time::timeout(limit, CatchPanic(Box::pin(action))).await;
    let response = match outcome {
        Ok(Ok(Ok((physical_id, data)))) => {
            let physical_id = match (request.request_type, &request.physical_resource_id) {
                (RequestType::Delete, Some(old)) => old.clone(),
                _ => physical_id,
            };
            CustomResourceResponse::success(request, physical_id, data)
        }
        Ok(Ok(Err(reason))) => CustomResourceResponse::failed(request, &reason),
        Ok(Err(panic)) => {
            CustomResourceResponse::failed(request, &format!("the handler panicked: {panic}"))
        }
        Err(_) => CustomResourceResponse::failed(
            request,
            &format!(
                "no result within {:.1}s (the function's time budget less the time kept to answer)",
                limit.as_secs_f64()
            ),
        ),
    };
    tracing::info!(
        request_type = ?request.request_type,
        logical_resource_id = %request.logical_resource_id,
        request_id = %request.request_id,
        status = ?response.status,
        reason = response.reason.as_deref().unwrap_or(""),
        "custom resource handled"
    );
    response
}

/// The retry policy for answering: short attempts, so that a few fit in [`RESPOND_RESERVE`].
pub fn respond_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        max_inline_wait: Duration::from_secs(3),
        attempt_timeout: Duration::from_secs(3),
    }
}

/// PUTs the response to the pre-signed URL with [`respond_policy`].
pub async fn respond(
    http: &reqwest::Client,
    response_url: &str,
    response: &CustomResourceResponse,
) -> Result<(), CallError> {
    respond_with(http, &respond_policy(), response_url, response).await
}

/// PUTs the response to the pre-signed URL. The URL was signed for an empty content type, so
/// the request carries `content-type: ""` (any other value fails the signature check).
pub async fn respond_with(
    http: &reqwest::Client,
    policy: &RetryPolicy,
    response_url: &str,
    response: &CustomResourceResponse,
) -> Result<(), CallError> {
    const CALL: &str = "answer CloudFormation";
    let body = serde_json::to_vec(response).expect("a response always serializes");
    let resp = retry::send(policy, CALL, || {
        http.put(response_url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
    })
    .await?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(CallError::Unavailable {
        call: CALL.to_string(),
        status: status.as_u16(),
        attempts: 1,
        body: retry::truncate(&text, 500),
    })
}

/// Polls a future and turns a panic inside it into an error with the panic's message.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Poll::Ready(Err(message))
            }
        }
    }
}

#[cfg(test)]
mod tests;
