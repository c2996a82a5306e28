//! The Dataverse Web API client. Every call carries the OData headers and a bearer token;
//! every read a `$select`; every write `MSCRM.SuppressCallbackRegistrationExpanderJob`, so
//! our own writes do not trigger Power Automate flows (such as those of Microsoft's co-sell
//! connector, which would sync them again). A 401 gets one retry with a fresh token; error
//! statuses become [`DataverseError`]; a 429 holds every caller of the environment with the
//! same credential back for its `Retry-After`.

use std::sync::Arc;

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::error::{DataverseError, DELTA_EXPIRED_TEXT, TRACKING_OFF_TEXT};
use super::model::{status_reason, Account, Contact, Opportunity};
use super::query;
use super::select::Selects;
use crate::config::ColumnNames;
use crate::entra::TokenProvider;
use crate::mapping::Mapping;
use crate::retry::{self, CallOptions, Idempotency, RetryPolicy, ThrottleGate};
use crate::telemetry::Service;

const API_PATH: &str = "api/data/v9.2/";
pub(super) const RETURN_REPRESENTATION: &str = "return=representation";
/// Rows per page when the caller doesn't say.
const DEFAULT_PAGE_SIZE: u32 = 500;

/// The row a call is about, for the text of 404/412 errors.
#[derive(Clone, Copy)]
pub(super) struct Target<'a> {
    pub entity: &'a str,
    pub id: &'a str,
}

/// The id a create call's target carries.
const NEW_ROW: &str = "(new)";

pub(super) const NO_TARGET: Target<'static> = Target { entity: "", id: "" };

/// What a request does, which decides its retries and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Read,
    Write(Idempotency),
}

/// A create is idempotent by construction when the body carries the new row's primary
/// key: a replay after the first was applied is refused as a duplicate.
fn create_idempotency(body: &Map<String, Value>, key: &str) -> Idempotency {
    match body.get(key) {
        Some(Value::String(id)) if !id.is_empty() => Idempotency::Idempotent,
        _ => Idempotency::NotIdempotent,
    }
}

/// `url` with `$select=<columns>` added.
pub(super) fn selecting(mut url: Url, columns: &str) -> Url {
    url.query_pairs_mut().append_pair("$select", columns);
    url
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// One page of a collection.
#[derive(Deserialize)]
pub(super) struct PageBody {
    #[serde(default)]
    pub value: Vec<Value>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta_link: Option<String>,
}

pub struct DataverseClient {
    pub(super) http: reqwest::Client,
    tokens: Arc<TokenProvider>,
    api_base: Url,
    columns: ColumnNames,
    policy: RetryPolicy,
    pub(super) page_size: u32,
    pub(super) selects: Selects,
    gate: Arc<ThrottleGate>,
    /// Set when the mapping keeps solutions as rows (`solution_rows.rs`).
    pub(super) solution_rows: Option<super::solution_rows::SolutionRows>,
}

impl DataverseClient {
    /// Fetches the access token ahead of the first call (at a cold start, while other
    /// start-up work runs). A failure only means the first call fetches it instead.
    pub async fn warm_up(&self) {
        if let Err(e) = self.tokens.token().await {
            tracing::warn!(error = %e, "could not fetch the Dataverse token ahead; the first call will");
        }
    }

    /// `org_url` is the environment URL (`https://org.crm.dynamics.com`); `tokens` must use
    /// the scope [`DataverseClient::scope_for`] gives for it.
    pub fn new(
        http: reqwest::Client,
        tokens: Arc<TokenProvider>,
        org_url: Url,
        columns: ColumnNames,
        policy: RetryPolicy,
    ) -> Self {
        let mut org = org_url;
        if !org.path().ends_with('/') {
            let path = format!("{}/", org.path());
            org.set_path(&path);
        }
        let api_base = org.join(API_PATH).expect("static path joins onto a URL");
        let gate = ThrottleGate::shared(&format!(
            "dataverse|{}|{}",
            api_base.origin().ascii_serialization(),
            tokens.credential_key()
        ));
        DataverseClient {
            http,
            tokens,
            api_base,
            selects: Selects::new(&columns),
            columns,
            policy,
            page_size: DEFAULT_PAGE_SIZE,
            gate,
            solution_rows: None,
        }
    }

    /// The environment's throttle gate, shared by every client of the same credential.
    pub fn throttle_gate(&self) -> &ThrottleGate {
        &self.gate
    }

    /// Also selects every column `mapping` reads or writes.
    pub fn with_mapping(mut self, mapping: &Mapping) -> Self {
        self.selects.add_mapping(mapping, &self.columns);
        self.solution_rows = super::solution_rows::SolutionRows::new(mapping, &self.columns);
        if let Some(rows) = &self.solution_rows {
            // Solutions are rows: the text column need not exist.
            self.selects
                .remove(&crate::mapping::Table::Opportunity, rows.column());
        }
        self
    }

    /// Rows per page of collection reads (capped at 5000).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, query::MAX_PAGE_SIZE);
        self
    }

    /// The client-credentials scope for an environment: `<scheme>://<host>/.default`.
    pub fn scope_for(org_url: &Url) -> String {
        format!("{}/.default", org_url.origin().ascii_serialization())
    }

    /// `{org}/api/data/v9.2/`.
    pub fn api_base(&self) -> &Url {
        &self.api_base
    }

    pub fn columns(&self) -> &ColumnNames {
        &self.columns
    }

    /// `{api}/{set}` or `{api}/{set}(<id>)`.
    pub(super) fn url(&self, path: &str) -> Url {
        self.api_base
            .join(path)
            .expect("entity paths join onto the API base")
    }

    pub(super) fn entity_url(
        &self,
        set: &str,
        entity: &str,
        id: &str,
    ) -> Result<Url, DataverseError> {
        let id = query::guid(id).ok_or_else(|| DataverseError::NotFound {
            entity: entity.to_string(),
            id: id.to_string(),
        })?;
        Ok(self.url(&format!("{set}({id})")))
    }

    /// A link the service handed back (next or delta link) must point at this environment:
    /// our bearer token never goes anywhere else.
    pub(super) fn own_link(&self, call: &str, link: &str) -> Result<Url, DataverseError> {
        let url = Url::parse(link).map_err(|e| DataverseError::Malformed {
            call: call.to_string(),
            reason: format!("link is not a URL: {e}"),
        })?;
        if url.origin() != self.api_base.origin() {
            return Err(DataverseError::Malformed {
                call: call.to_string(),
                reason: "link points outside the Dataverse environment".into(),
            });
        }
        Ok(url)
    }

    /// Sends one logical call: OData headers, token, retries, one token renewal on 401,
    /// and the mapping of error statuses.
    pub(super) async fn send(
        &self,
        call: &str,
        target: Target<'_>,
        kind: Kind,
        build: &(dyn Fn() -> RequestBuilder + Sync),
    ) -> Result<Response, DataverseError> {
        let idempotency = match kind {
            Kind::Read => Idempotency::Idempotent,
            Kind::Write(i) => i,
        };
        let options = CallOptions::new(idempotency, &self.gate).service(Service::Dataverse);
        let mut renewed = false;
        loop {
            let token = self.tokens.token().await?;
            let resp = retry::send_with(&self.policy, call, options, || {
                let req = build()
                    .bearer_auth(token.expose())
                    .header(ACCEPT, HeaderValue::from_static("application/json"))
                    .header("OData-MaxVersion", "4.0")
                    .header("OData-Version", "4.0");
                match kind {
                    Kind::Read => req,
                    Kind::Write(_) => {
                        req.header("MSCRM.SuppressCallbackRegistrationExpanderJob", "true")
                    }
                }
            })
            .await?;
            let status = resp.status();
            tracing::debug!(call, status = status.as_u16(), "dataverse call");
            if status == StatusCode::UNAUTHORIZED {
                if renewed {
                    return Err(DataverseError::Unauthorized {
                        call: call.to_string(),
                    });
                }
                tracing::info!(call, "401, renewing the token once");
                self.tokens.invalidate().await;
                renewed = true;
                continue;
            }
            return classify(call, target, resp).await;
        }
    }

    /// GET a JSON body.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        call: &str,
        target: Target<'_>,
        url: Url,
        prefer: Option<&str>,
    ) -> Result<T, DataverseError> {
        let resp = self
            .send(call, target, Kind::Read, &|| {
                let req = self.http.get(url.clone());
                match prefer {
                    Some(p) => req.header("Prefer", p),
                    None => req,
                }
            })
            .await?;
        read_json(call, resp).await
    }

    /// POST or PATCH `body` asking for the row back; falls back to a GET when the service
    /// answers 204 (it may ignore the preference).
    /// `select` names the columns to return.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_returning<T: DeserializeOwned>(
        &self,
        call: &str,
        target: Target<'_>,
        method: Method,
        url: Url,
        if_match: Option<&str>,
        body: &Map<String, Value>,
        select: &str,
    ) -> Result<T, DataverseError> {
        // PATCH always carries If-Match here (an etag or `*`): a replay changes nothing new.
        let idempotency = match method {
            Method::POST => create_idempotency(body, &format!("{}id", target.entity)),
            _ => Idempotency::Idempotent,
        };
        let url = selecting(url, select);
        let resp = self
            .send(call, target, Kind::Write(idempotency), &|| {
                let req = self
                    .http
                    .request(method.clone(), url.clone())
                    .header("Prefer", RETURN_REPRESENTATION)
                    .json(body);
                match if_match {
                    Some(etag) => req.header("If-Match", etag),
                    None => req,
                }
            })
            .await?;
        if resp.status() == StatusCode::NO_CONTENT {
            let location = resp
                .headers()
                .get("OData-EntityId")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let row_url = match location {
                Some(l) => selecting(self.own_link(call, &l)?, select),
                None if method == Method::PATCH => url.clone(),
                None => {
                    return Err(DataverseError::Malformed {
                        call: call.to_string(),
                        reason: "204 without OData-EntityId".into(),
                    })
                }
            };
            return self.get_json(call, target, row_url, None).await;
        }
        read_json(call, resp).await
    }

    /// The rows of a collection query, following `@odata.nextLink` to the end.
    pub(super) async fn query_all<T: DeserializeOwned>(
        &self,
        call: &str,
        url: Url,
    ) -> Result<Vec<T>, DataverseError> {
        let prefer = query::prefer_paged(self.page_size);
        let mut rows = Vec::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let page: PageBody = self.get_json(call, NO_TARGET, url, Some(&prefer)).await?;
            for v in page.value {
                rows.push(from_value(call, v)?);
            }
            if let Some(link) = page.next_link {
                next = Some(self.own_link(call, &link)?);
            }
        }
        Ok(rows)
    }

    // ---- opportunities ----

    pub async fn create_opportunity(
        &self,
        body: &Map<String, Value>,
    ) -> Result<Opportunity, DataverseError> {
        let target = Target {
            entity: "opportunity",
            id: NEW_ROW,
        };
        self.write_returning(
            "create opportunity",
            target,
            Method::POST,
            self.url("opportunities"),
            None,
            body,
            &self.selects.opportunity(),
        )
        .await
    }

    pub async fn get_opportunity(&self, id: &str) -> Result<Opportunity, DataverseError> {
        let url = self.entity_url("opportunities", "opportunity", id)?;
        let target = Target {
            entity: "opportunity",
            id,
        };
        self.read_opportunity_row("get opportunity", target, url)
            .await
    }

    /// Updates the row when its etag still matches (`None` updates whatever is there, but
    /// never creates). A stale etag gives [`DataverseError::Conflict`].
    pub async fn update_opportunity(
        &self,
        id: &str,
        etag: Option<&str>,
        body: &Map<String, Value>,
    ) -> Result<Opportunity, DataverseError> {
        if self.solution_rows.is_some() {
            // The answer must carry the solution rows, which a PATCH's never does.
            return self.write_opportunity_rows(id, etag, body, &[], &[]).await;
        }
        let url = self.entity_url("opportunities", "opportunity", id)?;
        let target = Target {
            entity: "opportunity",
            id,
        };
        self.write_returning(
            "update opportunity",
            target,
            Method::PATCH,
            url,
            Some(etag.unwrap_or("*")),
            body,
            &self.selects.opportunity(),
        )
        .await
    }

    /// Closes the opportunity as won through the `WinOpportunity` action.
    pub async fn win_opportunity(
        &self,
        id: &str,
        subject: &str,
        status_reason: i32,
    ) -> Result<(), DataverseError> {
        self.close("WinOpportunity", id, subject, status_reason)
            .await
    }

    /// Closes the opportunity as lost through the `LoseOpportunity` action.
    pub async fn lose_opportunity(
        &self,
        id: &str,
        subject: &str,
        status_reason: i32,
    ) -> Result<(), DataverseError> {
        self.close("LoseOpportunity", id, subject, status_reason)
            .await
    }

    async fn close(
        &self,
        action: &str,
        id: &str,
        subject: &str,
        status: i32,
    ) -> Result<(), DataverseError> {
        let row = self.entity_url("opportunities", "opportunity", id)?;
        let body = json!({
            "Status": status,
            "OpportunityClose": {
                "subject": subject,
                "opportunityid@odata.bind": row.as_str(),
            }
        });
        let url = self.url(action);
        let target = Target {
            entity: "opportunity",
            id,
        };
        // Not idempotent: a replay after the close was applied is refused (the row is
        // closed), which would read as a failure; the caller re-reads instead.
        self.send(
            action,
            target,
            Kind::Write(Idempotency::NotIdempotent),
            &|| self.http.post(url.clone()).json(&body),
        )
        .await?;
        Ok(())
    }

    /// Reopens a won or lost opportunity (state Open, status In Progress).
    pub async fn reopen_opportunity(&self, id: &str) -> Result<Opportunity, DataverseError> {
        let mut body = Map::new();
        body.insert("statecode".into(), json!(super::model::state::OPEN));
        body.insert("statuscode".into(), json!(status_reason::IN_PROGRESS));
        let url = self.entity_url("opportunities", "opportunity", id)?;
        let target = Target {
            entity: "opportunity",
            id,
        };
        self.write_returning(
            "reopen opportunity",
            target,
            Method::PATCH,
            url,
            Some("*"),
            &body,
            &self.selects.opportunity(),
        )
        .await
    }

    /// The opportunity linked to a referral through the configured referral-id column. When
    /// several are (a duplicate someone made by hand), the oldest wins and a warning is logged.
    pub async fn find_opportunity_by_referral_id(
        &self,
        referral_id: &str,
    ) -> Result<Option<Opportunity>, DataverseError> {
        let filter = format!(
            "{} eq {}",
            self.columns.referral_id,
            query::quote(referral_id)
        );
        let mut url = self.opportunity_url(self.url("opportunities"));
        url.query_pairs_mut()
            .append_pair("$filter", &filter)
            .append_pair("$orderby", "createdon asc,opportunityid asc");
        let mut rows: Vec<Opportunity> = self.query_all("find opportunity", url).await?;
        rows.iter_mut().for_each(|o| self.fill_solutions(o));
        if rows.len() > 1 {
            tracing::warn!(
                count = rows.len(),
                "several opportunities carry the same referral id; using the oldest"
            );
        }
        Ok((!rows.is_empty()).then(|| rows.swap_remove(0)))
    }

    // ---- accounts, contacts, currencies ----

    /// The account with this name (case-insensitive, as Dataverse compares strings) and,
    /// when given, this postal code.
    pub async fn find_account(
        &self,
        name: &str,
        postal_code: Option<&str>,
    ) -> Result<Option<Account>, DataverseError> {
        let url = self.find_account_url(name, postal_code);
        let mut rows: Vec<Account> = self.query_all("find account", url).await?;
        Ok((!rows.is_empty()).then(|| rows.swap_remove(0)))
    }

    /// The oldest account of that name (and postal code, when given).
    pub(super) fn find_account_url(&self, name: &str, postal_code: Option<&str>) -> Url {
        let mut filter = format!("name eq {}", query::quote(name));
        if let Some(pc) = postal_code {
            filter.push_str(&format!(" and address1_postalcode eq {}", query::quote(pc)));
        }
        let mut url = self.url("accounts");
        url.query_pairs_mut()
            .append_pair("$select", &self.selects.account())
            .append_pair("$filter", &filter)
            .append_pair("$orderby", "createdon asc,accountid asc");
        url
    }

    /// The oldest contact with that e-mail.
    pub(super) fn find_contact_url(&self, email: &str) -> Url {
        let mut url = self.url("contacts");
        url.query_pairs_mut()
            .append_pair("$select", &self.selects.contact())
            .append_pair(
                "$filter",
                &format!("emailaddress1 eq {}", query::quote(email)),
            )
            .append_pair("$orderby", "createdon asc,contactid asc");
        url
    }

    pub async fn create_account(&self, account: &Account) -> Result<Account, DataverseError> {
        let body = writable(account)?;
        let target = Target {
            entity: "account",
            id: NEW_ROW,
        };
        self.write_returning(
            "create account",
            target,
            Method::POST,
            self.url("accounts"),
            None,
            &body,
            &self.selects.account(),
        )
        .await
    }

    /// One account by id (for the customer profile of a referral the connector creates).
    pub async fn get_account(&self, id: &str) -> Result<Account, DataverseError> {
        let url = self.entity_url("accounts", "account", id)?;
        let target = Target {
            entity: "account",
            id,
        };
        let url = selecting(url, &self.selects.account());
        self.get_json("get account", target, url, None).await
    }

    /// One contact by id (the customer contact of a referral the connector creates).
    pub async fn get_contact(&self, id: &str) -> Result<Contact, DataverseError> {
        let url = self.entity_url("contacts", "contact", id)?;
        let target = Target {
            entity: "contact",
            id,
        };
        let url = selecting(url, &self.selects.contact());
        self.get_json("get contact", target, url, None).await
    }

    pub async fn find_contact_by_email(
        &self,
        email: &str,
    ) -> Result<Option<Contact>, DataverseError> {
        let url = self.find_contact_url(email);
        let mut rows: Vec<Contact> = self.query_all("find contact", url).await?;
        Ok((!rows.is_empty()).then(|| rows.swap_remove(0)))
    }

    /// Creates a contact; a `parentcustomerid` is bound as the contact's account.
    pub async fn create_contact(&self, contact: &Contact) -> Result<Contact, DataverseError> {
        let mut body = writable(contact)?;
        if let Some(account) = &contact.parentcustomerid {
            body.extend([super::bind::contact_company(account)]);
        }
        let target = Target {
            entity: "contact",
            id: NEW_ROW,
        };
        self.write_returning(
            "create contact",
            target,
            Method::POST,
            self.url("contacts"),
            None,
            &body,
            &self.selects.contact(),
        )
        .await
    }

    /// The id of the currency with this ISO code (`USD`), if the org has it.
    pub async fn find_currency(&self, iso_code: &str) -> Result<Option<String>, DataverseError> {
        #[derive(Deserialize)]
        struct Currency {
            transactioncurrencyid: String,
        }
        let mut url = self.url("transactioncurrencies");
        url.query_pairs_mut()
            .append_pair("$select", "transactioncurrencyid,isocurrencycode")
            .append_pair(
                "$filter",
                &format!("isocurrencycode eq {}", query::quote(iso_code)),
            );
        let rows: Vec<Currency> = self.query_all("find currency", url).await?;
        Ok(rows.into_iter().next().map(|c| c.transactioncurrencyid))
    }

    /// `WhoAmI`: the application user's id; a cheap check that credentials and access work.
    pub async fn who_am_i(&self) -> Result<String, DataverseError> {
        #[derive(Deserialize)]
        struct WhoAmI {
            #[serde(rename = "UserId")]
            user_id: String,
        }
        let me: WhoAmI = self
            .get_json("WhoAmI", NO_TARGET, self.url("WhoAmI"), None)
            .await?;
        Ok(me.user_id)
    }
}

/// A model row as a request body: read-only parts (etag, `_x_value` lookups, annotations)
/// dropped, since Dataverse rejects them on write.
pub(super) fn writable<T: serde::Serialize>(row: &T) -> Result<Map<String, Value>, DataverseError> {
    let Value::Object(mut map) =
        serde_json::to_value(row).map_err(|e| DataverseError::Malformed {
            call: "serialize row".into(),
            reason: e.to_string(),
        })?
    else {
        return Err(DataverseError::Malformed {
            call: "serialize row".into(),
            reason: "row is not a JSON object".into(),
        });
    };
    map.retain(|k, _| {
        let annotation = k.contains('@') && !k.ends_with("@odata.bind");
        let lookup_value = k.starts_with('_') && k.ends_with("_value");
        !(annotation || lookup_value)
    });
    Ok(map)
}

fn from_value<T: DeserializeOwned>(call: &str, v: Value) -> Result<T, DataverseError> {
    serde_json::from_value(v).map_err(|e| DataverseError::Malformed {
        call: call.to_string(),
        reason: e.to_string(),
    })
}

pub(super) async fn read_json<T: DeserializeOwned>(
    call: &str,
    resp: Response,
) -> Result<T, DataverseError> {
    let text = resp.text().await.map_err(|e| DataverseError::Malformed {
        call: call.to_string(),
        reason: e.without_url().to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| DataverseError::Malformed {
        call: call.to_string(),
        reason: e.to_string(),
    })
}

/// Turns a non-success status into its typed error.
async fn classify(
    call: &str,
    target: Target<'_>,
    resp: Response,
) -> Result<Response, DataverseError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    // A failed `$batch` answers with the failing operation's status and its error inside.
    let text = super::batch::failed_part(&content_type, &text).unwrap_or(text);
    let detail = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error)
        .unwrap_or_else(|_| ErrorDetail {
            code: String::new(),
            message: retry::truncate(&text, 300),
        });
    let message = retry::truncate(&detail.message, 500);
    let entity = target.entity.to_string();
    let id = target.id.to_string();
    Err(match status {
        _ if message.contains(DELTA_EXPIRED_TEXT) => DataverseError::DeltaExpired,
        StatusCode::BAD_REQUEST if message.to_ascii_lowercase().contains(TRACKING_OFF_TEXT) => {
            DataverseError::TrackingOff {
                call: call.to_string(),
                message,
            }
        }
        // On a create, a 404 names a bound row that is missing, not the new row.
        StatusCode::NOT_FOUND if !target.entity.is_empty() && target.id != NEW_ROW => {
            DataverseError::NotFound { entity, id }
        }
        StatusCode::PRECONDITION_FAILED => DataverseError::Conflict {
            entity,
            id,
            message,
        },
        StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN
            if message.to_ascii_lowercase().contains("read-only") =>
        {
            DataverseError::ReadOnly {
                entity,
                id,
                message,
            }
        }
        _ => DataverseError::Invalid {
            call: call.to_string(),
            status: status.as_u16(),
            code: detail.code,
            message,
        },
    })
}
