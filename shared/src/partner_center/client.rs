//! The Partner Center client: the referrals API and the webhook registration API. They are
//! two services with two token audiences (`https://api.partner.microsoft.com` and
//! `https://api.partnercenter.microsoft.com`), so the client holds one token cache per
//! audience (both from the same grant) and one throttle gate per service. Every call carries
//! a bearer token, an `MS-RequestId` that stays the same across the retries of one logical
//! call (the idempotency key on the Partner Center REST headers page) and an
//! `MS-CorrelationId` that is new on every request ("should be reset for every call");
//! a 401 gets one retry with a fresh token.

use std::sync::Arc;
use tracing::Instrument;

use reqwest::header::{HeaderMap, ETAG, IF_MATCH};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use super::error::PartnerCenterError;
use super::referral::Referral;
use super::status::{ReferralStatus, ReferralSubstatus};
use crate::entra::TokenProvider;
use crate::retry::{self, CallOptions, Idempotency, RetryPolicy, ThrottleGate};
use crate::telemetry::Service;

/// The referrals API's token resource.
pub const REFERRALS_AUDIENCE: &str = "https://api.partner.microsoft.com";
/// The webhook registration API's token resource (the Partner Center REST API's).
pub const WEBHOOK_AUDIENCE: &str = "https://api.partnercenter.microsoft.com";
/// Entra v2 scopes of the two audiences.
pub const REFERRALS_SCOPE: &str = "https://api.partner.microsoft.com/.default";
pub const WEBHOOK_SCOPE: &str = "https://api.partnercenter.microsoft.com/.default";

const REFERRALS_PATH: &str = "v1.0/engagements/referrals";

/// Query options of a referral list. `None` leaves the option out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub orderby: Option<String>,
    pub top: Option<u32>,
    pub select: Option<String>,
}

/// One JSON Patch operation. The API accepts only `replace` and `add`, so nothing else can
/// be expressed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    Replace { path: String, value: Value },
    Add { path: String, value: Value },
}

impl PatchOp {
    pub fn replace(path: impl Into<String>, value: impl Into<Value>) -> Self {
        PatchOp::Replace {
            path: path.into(),
            value: value.into(),
        }
    }

    pub fn add(path: impl Into<String>, value: impl Into<Value>) -> Self {
        PatchOp::Add {
            path: path.into(),
            value: value.into(),
        }
    }
}

/// One page of a referral list; `next_link` is the checkpoint to resume from.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub referrals: Vec<Referral>,
    pub next_link: Option<Url>,
    pub count: Option<u64>,
}

#[derive(Deserialize)]
struct PageBody {
    #[serde(default)]
    value: Vec<Referral>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

pub struct PartnerCenterClient {
    pub(super) http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    webhook_tokens: Arc<TokenProvider>,
    api_base: Url,
    pub(super) webhook_api_base: Url,
    policy: RetryPolicy,
    referrals_gate: Arc<ThrottleGate>,
    webhook_gate: Arc<ThrottleGate>,
    /// Validation events have their own limit (2 a minute), which says nothing of the rest.
    validation_gate: Arc<ThrottleGate>,
}

/// Which of the two services a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    Referrals,
    Webhooks,
    /// `POST .../registration/validationEvents`: the webhook API with its own limit.
    Validation,
}

/// The id of one logical call, logged so a support case can quote it.
pub(super) struct CallIds {
    request_id: String,
}

impl CallIds {
    /// `request_id`: the id of a logical call sent again on its retries (a create the
    /// caller may repeat after a lost response); a fresh one otherwise.
    fn new(request_id: Option<&str>) -> Self {
        CallIds {
            request_id: request_id
                .map(str::to_string)
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
        }
    }
}

impl PartnerCenterClient {
    /// Fetches the access token ahead of the first call (at a cold start, while other
    /// start-up work runs). A failure only means the first call fetches it instead.
    pub async fn warm_up(&self) {
        if let Err(e) = self.tokens.token().await {
            tracing::warn!(error = %e, "could not fetch the Partner Center token ahead; the first call will");
        }
    }

    /// `tokens` is for the referrals API ([`REFERRALS_SCOPE`]); the webhook registration
    /// API's tokens come from the same grant for [`WEBHOOK_SCOPE`].
    pub fn new(
        http: reqwest::Client,
        tokens: Arc<TokenProvider>,
        api_base: Url,
        webhook_api_base: Url,
        policy: RetryPolicy,
    ) -> Self {
        let webhook_tokens = Arc::new(tokens.for_scope(WEBHOOK_SCOPE));
        let api_base = with_trailing_slash(api_base);
        let webhook_api_base = with_trailing_slash(webhook_api_base);
        let gate = |what: &str, base: &Url, tokens: &TokenProvider| {
            ThrottleGate::shared(&format!(
                "partner-center {what}|{}|{}|{}",
                base.origin().ascii_serialization(),
                tokens.scope(),
                tokens.credential_key()
            ))
        };
        PartnerCenterClient {
            http,
            referrals_gate: gate("referrals", &api_base, &tokens),
            webhook_gate: gate("webhooks", &webhook_api_base, &webhook_tokens),
            validation_gate: gate("validation", &webhook_api_base, &webhook_tokens),
            tokens,
            webhook_tokens,
            api_base,
            webhook_api_base,
            policy,
        }
    }

    /// The referrals API's throttle gate, shared by every client of the same credential.
    pub fn throttle_gate(&self) -> &ThrottleGate {
        &self.referrals_gate
    }

    fn referrals_url(&self, id: Option<&str>) -> Url {
        let mut url = self
            .api_base
            .join(REFERRALS_PATH)
            .expect("static path joins onto a base URL");
        if let Some(id) = id {
            url.path_segments_mut().expect("http(s) base URL").push(id);
        }
        url
    }

    /// Sends one logical call: token, ids, retries, one token renewal on 401, and the
    /// mapping of error statuses. `resource` names the referral for 404/412 errors.
    pub(super) async fn send(
        &self,
        call: &str,
        resource: &str,
        api: Api,
        idempotency: Idempotency,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response, PartnerCenterError> {
        self.send_as(call, resource, api, idempotency, None, build)
            .await
    }

    /// [`Self::send`] with the caller's `MS-RequestId` for the logical call.
    async fn send_as(
        &self,
        call: &str,
        resource: &str,
        api: Api,
        idempotency: Idempotency,
        request_id: Option<&str>,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response, PartnerCenterError> {
        let ids = CallIds::new(request_id);
        let (tokens, gate) = match api {
            Api::Referrals => (&self.tokens, &self.referrals_gate),
            Api::Webhooks => (&self.webhook_tokens, &self.webhook_gate),
            Api::Validation => (&self.webhook_tokens, &self.validation_gate),
        };
        let options = CallOptions::new(idempotency, gate).service(Service::PartnerCenter);
        // The call's lines carry the MS-CorrelationId of its latest attempt; so do the rest
        // of a sync's lines (its span declares the field, see `engine::pair::reconcile`).
        let sync_span = tracing::Span::current();
        let span = tracing::info_span!(
            "partner_center",
            call,
            request_id = %ids.request_id,
            correlation_id = tracing::field::Empty
        );
        self.send_in_span(
            call, resource, api, &ids, options, tokens, build, &sync_span,
        )
        .instrument(span)
        .await
    }

    /// The body of [`Self::send_as`], inside its call's span.
    #[allow(clippy::too_many_arguments)]
    async fn send_in_span(
        &self,
        call: &str,
        resource: &str,
        api: Api,
        ids: &CallIds,
        options: CallOptions<'_>,
        tokens: &TokenProvider,
        build: &(dyn Fn() -> RequestBuilder + Sync),
        sync_span: &tracing::Span,
    ) -> Result<Response, PartnerCenterError> {
        let mut renewed = false;
        loop {
            let token = tokens.token().await?;
            let resp = retry::send_with(&self.policy, call, options, || {
                let correlation_id = Uuid::new_v4().to_string();
                tracing::Span::current().record("correlation_id", correlation_id.as_str());
                sync_span.record("correlation_id", correlation_id.as_str());
                tracing::trace!(call, request_id = %ids.request_id, %correlation_id, "partner center request");
                let req = build()
                    .bearer_auth(token.expose())
                    .header("MS-RequestId", &ids.request_id)
                    .header("MS-CorrelationId", correlation_id);
                match api {
                    // Marked required on the Partner Center REST headers page.
                    Api::Webhooks | Api::Validation => req.header("MS-Contract-Version", "v1"),
                    Api::Referrals => req,
                }
            })
            .await?;
            let status = resp.status();
            tracing::debug!(call, request_id = %ids.request_id, status = status.as_u16(), "partner center call");
            if status == StatusCode::UNAUTHORIZED {
                if renewed {
                    return Err(PartnerCenterError::Unauthorized {
                        call: call.to_string(),
                    });
                }
                tracing::info!(call, request_id = %ids.request_id, "401, renewing the token once");
                tokens.invalidate().await;
                renewed = true;
                continue;
            }
            return classify(call, resource, ids, resp).await;
        }
    }

    /// All referrals the query matches, following `@odata.nextLink` to the end.
    pub async fn list_referrals(
        &self,
        query: &ListQuery,
    ) -> Result<Vec<Referral>, PartnerCenterError> {
        let mut page = self.list_first_page(query).await?;
        let mut all = std::mem::take(&mut page.referrals);
        while let Some(next) = page.next_link.take() {
            page = self.list_page(&next).await?;
            all.append(&mut page.referrals);
        }
        Ok(all)
    }

    /// The first page of a list; resume with [`Self::list_page`] on its `next_link`.
    pub async fn list_first_page(&self, query: &ListQuery) -> Result<Page, PartnerCenterError> {
        let mut url = self.referrals_url(None);
        {
            let mut q = url.query_pairs_mut();
            if let Some(f) = &query.filter {
                q.append_pair("$filter", f);
            }
            if let Some(o) = &query.orderby {
                q.append_pair("$orderby", o);
            }
            if let Some(t) = query.top {
                q.append_pair("$top", &t.to_string());
            }
            if let Some(s) = &query.select {
                q.append_pair("$select", s);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.fetch_page(url).await
    }

    /// A page from an `@odata.nextLink` (or a stored checkpoint of one).
    pub async fn list_page(&self, next_link: &Url) -> Result<Page, PartnerCenterError> {
        // The token must only go where the API lives, whatever a response says.
        if next_link.origin() != self.api_base.origin() {
            return Err(PartnerCenterError::Malformed {
                call: "list referrals".into(),
                reason: format!(
                    "next link points to another host: {}",
                    next_link.origin().ascii_serialization()
                ),
            });
        }
        self.fetch_page(next_link.clone()).await
    }

    async fn fetch_page(&self, url: Url) -> Result<Page, PartnerCenterError> {
        let call = "list referrals";
        let resp = self
            .send(call, "", Api::Referrals, Idempotency::Idempotent, &|| {
                self.http.get(url.clone())
            })
            .await?;
        let body: PageBody = read_json(call, resp).await?;
        let next_link = match body.next_link {
            Some(link) => Some(
                Url::parse(&link).map_err(|e| PartnerCenterError::Malformed {
                    call: call.into(),
                    reason: format!("bad @odata.nextLink: {e}"),
                })?,
            ),
            None => None,
        };
        Ok(Page {
            referrals: body.value,
            next_link,
            count: body.count,
        })
    }

    pub async fn get_referral(&self, id: &str) -> Result<Referral, PartnerCenterError> {
        let url = self.referrals_url(Some(id));
        let resp = self
            .send(
                "get referral",
                id,
                Api::Referrals,
                Idempotency::Idempotent,
                &|| self.http.get(url.clone()),
            )
            .await?;
        read_referral("get referral", resp).await
    }

    /// Creates a referral. Not idempotent (nothing documents that the referrals API
    /// de-duplicates on `MS-RequestId`): once the POST may have arrived it is not sent again,
    /// and the caller gets [`retry::CallError::OutcomeUnknown`].
    pub async fn create_referral(
        &self,
        referral: &Referral,
    ) -> Result<Referral, PartnerCenterError> {
        self.create_referral_as(referral, None).await
    }

    /// Creates a referral with the caller's `MS-RequestId` (the same on every retry of one
    /// logical create).
    pub async fn create_referral_as(
        &self,
        referral: &Referral,
        request_id: Option<&str>,
    ) -> Result<Referral, PartnerCenterError> {
        let url = self.referrals_url(None);
        let body = to_body(referral)?;
        let resp = self
            .send_as(
                "create referral",
                "",
                Api::Referrals,
                // Partner Center is not documented to honour `MS-RequestId` on referrals:
                // a resend after a lost answer could make a second one. The engine looks
                // for it by its external reference before it creates again.
                Idempotency::NotIdempotent,
                request_id,
                &|| {
                    self.http
                        .post(url.clone())
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                },
            )
            .await?;
        read_referral("create referral", resp).await
    }

    /// A JSON Patch update guarded by `etag`; a stale eTag gives [`PartnerCenterError::Conflict`].
    pub async fn update_referral(
        &self,
        id: &str,
        etag: &str,
        ops: &[PatchOp],
    ) -> Result<Referral, PartnerCenterError> {
        let call = "patch referral";
        let url = self.referrals_url(Some(id));
        let body = serde_json::to_vec(ops).map_err(|e| malformed(call, e))?;
        // Idempotent through If-Match: a replay after the first was applied gets a 412.
        let resp = self
            .send(call, id, Api::Referrals, Idempotency::Idempotent, &|| {
                self.http
                    .patch(url.clone())
                    .header("Content-Type", "application/json")
                    .header(IF_MATCH, etag)
                    .header("Prefer", "return=representation")
                    .body(body.clone())
            })
            .await?;
        if resp.status() == StatusCode::NO_CONTENT {
            // The service ignored `Prefer`; read the result so the caller gets the new eTag.
            return self.get_referral(id).await;
        }
        read_referral(call, resp).await
    }

    /// The older full update: the whole referral, `If-Match` required, `links` left out.
    pub async fn put_referral(
        &self,
        id: &str,
        etag: &str,
        referral: &Referral,
    ) -> Result<Referral, PartnerCenterError> {
        let call = "put referral";
        let url = self.referrals_url(Some(id));
        let mut full = referral.clone();
        full.links = None;
        let body = to_body(&full)?;
        let resp = self
            .send(call, id, Api::Referrals, Idempotency::Idempotent, &|| {
                self.http
                    .put(url.clone())
                    .header("Content-Type", "application/json")
                    .header(IF_MATCH, etag)
                    .body(body.clone())
            })
            .await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return self.get_referral(id).await;
        }
        read_referral(call, resp).await
    }

    /// Accepts a received referral: Active / Accepted.
    pub async fn accept_referral(
        &self,
        id: &str,
        etag: &str,
    ) -> Result<Referral, PartnerCenterError> {
        let ops = status_ops(ReferralStatus::Active, ReferralSubstatus::Accepted, None);
        self.update_referral(id, etag, &ops).await
    }

    /// Declines a received referral: Closed / Declined, with the reason.
    pub async fn decline_referral(
        &self,
        id: &str,
        etag: &str,
        reason: &str,
    ) -> Result<Referral, PartnerCenterError> {
        let ops = status_ops(
            ReferralStatus::Closed,
            ReferralSubstatus::Declined,
            Some(reason),
        );
        self.update_referral(id, etag, &ops).await
    }

    /// Closes a referral as won or lost.
    pub async fn close_referral(
        &self,
        id: &str,
        etag: &str,
        won: bool,
        reason: &str,
    ) -> Result<Referral, PartnerCenterError> {
        let sub = if won {
            ReferralSubstatus::Won
        } else {
            ReferralSubstatus::Lost
        };
        let ops = status_ops(ReferralStatus::Closed, sub, Some(reason));
        self.update_referral(id, etag, &ops).await
    }
}

/// The JSON Patch operations that move a referral to `status`/`sub` (with a reason).
pub fn status_ops(
    status: ReferralStatus,
    sub: ReferralSubstatus,
    reason: Option<&str>,
) -> Vec<PatchOp> {
    let mut ops = vec![
        PatchOp::replace("/status", status.as_str()),
        PatchOp::replace("/substatus", sub.as_str()),
    ];
    if let Some(r) = reason {
        // `add` sets a member whether or not it exists; `replace` would fail when absent.
        ops.push(PatchOp::add("/statusReason", r));
    }
    ops
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

fn to_body<T: Serialize>(value: &T) -> Result<Vec<u8>, PartnerCenterError> {
    serde_json::to_vec(value).map_err(|e| malformed("serialize request", e))
}

fn malformed(call: &str, e: impl std::fmt::Display) -> PartnerCenterError {
    PartnerCenterError::Malformed {
        call: call.to_string(),
        reason: e.to_string(),
    }
}

/// Maps an answer that retrying cannot change to the typed errors.
async fn classify(
    call: &str,
    resource: &str,
    ids: &CallIds,
    resp: Response,
) -> Result<Response, PartnerCenterError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    tracing::warn!(call, request_id = %ids.request_id, status = status.as_u16(), "partner center refused the call");
    match status {
        StatusCode::NOT_FOUND if !resource.is_empty() => Err(PartnerCenterError::NotFound {
            id: resource.to_string(),
        }),
        StatusCode::PRECONDITION_FAILED => Err(PartnerCenterError::Conflict {
            id: resource.to_string(),
        }),
        _ => {
            let text = resp.text().await.unwrap_or_default();
            Err(PartnerCenterError::Invalid {
                call: call.to_string(),
                status: status.as_u16(),
                message: error_message(&text),
            })
        }
    }
}

/// The service's own words from an error body (`description` or `message`), else the text.
pub(super) fn error_message(text: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let found = parsed.as_ref().and_then(|v| {
        ["description", "message", "error_description"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .or_else(|| v.pointer("/error/message").and_then(Value::as_str))
    });
    retry::truncate(found.unwrap_or(text), 1000)
}

pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    call: &str,
    resp: Response,
) -> Result<T, PartnerCenterError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| malformed(call, e.without_url()))?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(call, e))
}

async fn read_referral(call: &str, resp: Response) -> Result<Referral, PartnerCenterError> {
    let header_etag = etag_header(resp.headers());
    let mut referral: Referral = read_json(call, resp).await?;
    if referral.e_tag.is_none() {
        referral.e_tag = header_etag;
    }
    Ok(referral)
}

fn etag_header(headers: &HeaderMap) -> Option<String> {
    headers.get(ETAG)?.to_str().ok().map(str::to_string)
}
