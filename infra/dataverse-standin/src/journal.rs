//! Every API request as it came (method, path, query and the headers tests ask about), so a
//! test can check what the client sends on the wire: a `$select` on each read, the header
//! that keeps our writes from triggering Power Automate flows.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;

/// One request the API side received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    pub method: String,
    pub path: String,
    /// The decoded query string (empty when none).
    pub query: String,
    /// `MSCRM.SuppressCallbackRegistrationExpanderJob: true` was sent.
    pub suppress_flows: bool,
}

impl JournalEntry {
    /// A query option's value, e.g. `$select`.
    pub fn option(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Debug, Default)]
pub struct Journal(Mutex<Vec<JournalEntry>>);

impl Journal {
    pub fn entries(&self) -> Vec<JournalEntry> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

pub(crate) async fn layer(
    AxState(journal): AxState<Arc<Journal>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/api/data/") {
        let suppress_flows = req
            .headers()
            .get("MSCRM.SuppressCallbackRegistrationExpanderJob")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let entry = JournalEntry {
            method: req.method().as_str().to_string(),
            path,
            query: req.uri().query().unwrap_or_default().to_string(),
            suppress_flows,
        };
        journal
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }
    next.run(req).await
}
