//! A forwarding proxy in front of moto that notes when each AWS request was outstanding, so
//! a function's first event can be measured without the time it waited on AWS: moto's own
//! speed (a Python server) then no longer decides the figure. The functions are pointed at
//! it with `AWS_ENDPOINT_URL`; moto checks no signature, so forwarding as-is is enough.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;

#[derive(Default)]
struct Calls(Mutex<Vec<(Instant, Instant)>>);

pub struct AwsTimer {
    pub url: String,
    calls: Arc<Calls>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for AwsTimer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Upstream {
    http: reqwest::Client,
    moto: String,
    calls: Arc<Calls>,
}

async fn forward(State(up): State<Arc<Upstream>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = up
        .http
        .request(parts.method.clone(), format!("{}{path}", up.moto))
        .body(body);
    for (k, v) in &parts.headers {
        if k != http::header::HOST && k != http::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let answer = match out.send().await {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    up.calls
        .0
        .lock()
        .expect("calls")
        .push((started, Instant::now()));
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    for (k, v) in &headers {
        if k != http::header::CONTENT_LENGTH && k != http::header::TRANSFER_ENCODING {
            resp.headers_mut().insert(k, v.clone());
        }
    }
    resp
}

impl AwsTimer {
    pub async fn start(moto: &str) -> anyhow::Result<AwsTimer> {
        let calls = Arc::new(Calls::default());
        let up = Arc::new(Upstream {
            http: reqwest::Client::new(),
            moto: moto.trim_end_matches('/').to_string(),
            calls: calls.clone(),
        });
        let listener = tokio::net::TcpListener::bind(crate::env::loopback()).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = Router::new().fallback(forward).with_state(up);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(AwsTimer { url, calls, server })
    }

    /// Time inside `[from, to]` with at least one AWS request outstanding (overlapping
    /// requests counted once).
    pub fn waited(&self, from: Instant, to: Instant) -> Duration {
        let mut spans: Vec<(Instant, Instant)> = self
            .calls
            .0
            .lock()
            .expect("calls")
            .iter()
            .map(|&(a, b)| (a.max(from), b.min(to)))
            .filter(|(a, b)| a < b)
            .collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut current: Option<(Instant, Instant)> = None;
        for (a, b) in spans {
            current = match current {
                Some((s, e)) if a <= e => Some((s, e.max(b))),
                Some((s, e)) => {
                    total += e - s;
                    Some((a, b))
                }
                None => Some((a, b)),
            };
        }
        if let Some((s, e)) = current {
            total += e - s;
        }
        total
    }
}
