//! A local stand-in for the Lambda runtime API (the HTTP interface a function's runtime
//! polls for events), so tests can run a function binary as Lambda would and measure its
//! cold start. Serves on 127.0.0.1 at a free port:
//!
//! - `GET  /2018-06-01/runtime/invocation/next` (long poll; hands out queued events in order)
//! - `POST /2018-06-01/runtime/invocation/{id}/response`
//! - `POST /2018-06-01/runtime/invocation/{id}/error`
//! - `POST /2018-06-01/runtime/init/error`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The function ARN handed out with every event.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:cosell-local";

/// How long `invoke` waits, and the deadline each event carries, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

type Outcome = Result<Value, Value>;

struct Pending {
    request_id: String,
    event: Value,
    timeout: Duration,
}

struct Shared {
    /// Events not handed out yet; `/next` holds the receiver while it waits.
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    /// Invocations handed out (or queued) whose result is awaited.
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Set by the first `/next` after a spawn (or after start).
    first_next: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
}

pub struct RuntimeApi {
    address: SocketAddr,
    sender: mpsc::UnboundedSender<Pending>,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Starts the server on 127.0.0.1 at a free port.
    pub async fn start() -> RuntimeApi {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            first_next: watch::channel(None).0,
            init_error: watch::channel(None).0,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi {
            address,
            sender,
            shared,
            server,
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Queues `event` and waits for the function's response (`Ok`) or error (`Err`), for at
    /// most [`DEFAULT_TIMEOUT`].
    pub async fn invoke(&self, event: Value) -> Outcome {
        self.invoke_with_timeout(event, DEFAULT_TIMEOUT).await
    }

    /// Like [`invoke`](Self::invoke) with the given timeout, which is also the deadline the
    /// event carries. A time-out, or an init error reported by the function, comes back as
    /// `Err` with Lambda's `errorType`/`errorMessage` shape.
    pub async fn invoke_with_timeout(&self, event: Value, timeout: Duration) -> Outcome {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), tx);
        let queued = self.sender.send(Pending {
            request_id: request_id.clone(),
            event,
            timeout,
        });
        if queued.is_err() {
            return Err(lambda_error(
                "Runtime.Unavailable",
                "the runtime API stopped",
            ));
        }
        let mut init_error = self.shared.init_error.subscribe();
        let outcome = tokio::select! {
            result = rx => result.unwrap_or_else(|_| {
                Err(lambda_error("Runtime.Unavailable", "the runtime API stopped"))
            }),
            _ = tokio::time::sleep(timeout) => Err(lambda_error(
                "Sandbox.Timedout",
                &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            )),
            error = init_error.wait_for(Option::is_some) => match error {
                Ok(error) => Err(error.clone().unwrap_or(Value::Null)),
                Err(_) => Err(lambda_error("Runtime.Unavailable", "the runtime API stopped")),
            },
        };
        lock(&self.shared.waiting).remove(&request_id);
        outcome
    }

    /// The error the function reported at `/init/error`, if any.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.borrow().clone()
    }

    /// Starts `binary` as a Lambda function against this API, with the `AWS_LAMBDA_*`
    /// variables Lambda sets plus `env`. The process is killed when the handle drops.
    pub fn spawn_function(
        &self,
        binary: &Path,
        function_name: &str,
        env: &[(&str, &str)],
    ) -> std::io::Result<FunctionProcess> {
        self.shared.first_next.send_replace(None);
        let mut command = Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", self.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]00000000000000000000000000000000",
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command.spawn()?;
        // Its stdout (logs and EMF metric documents) kept for the test and passed on to
        // stderr, where it went before.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stdout.take() {
            let lines = stdout.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    lock(&lines).push(line);
                }
            });
        }
        Ok(FunctionProcess {
            child,
            spawned_at,
            first_next: self.shared.first_next.subscribe(),
            stdout,
        })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A function binary running against a [`RuntimeApi`]; killed on drop.
pub struct FunctionProcess {
    child: Child,
    spawned_at: Instant,
    first_next: watch::Receiver<Option<Instant>>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl FunctionProcess {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Time from spawn to the function's first `/next` call (its cold start), waiting at most
    /// `within`. `None` when the function did not ask for an event in that time.
    pub async fn cold_start(&mut self, within: Duration) -> Option<Duration> {
        let first = tokio::time::timeout(within, self.first_next.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?
            .expect("wait_for returned a value that is Some");
        Some(first.saturating_duration_since(self.spawned_at))
    }

    /// The lines the function has written to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// Whether the process has exited, and how.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lambda_error(error_type: &str, message: &str) -> Value {
    json!({"errorType": error_type, "errorMessage": message})
}

/// A body as JSON, or as a JSON string when it is not JSON (a runtime may post plain text).
fn body_value(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_next.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(Instant::now());
        }
        unset
    });
    let pending = {
        let mut queue = shared.queue.lock().await;
        queue.recv().await
    };
    let Some(pending) = pending else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let deadline = SystemTime::now()
        .checked_add(pending.timeout)
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(
            name,
            HeaderValue::from_str(&value).expect("header values are ASCII"),
        );
    };
    set("lambda-runtime-aws-request-id", pending.request_id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.into());
    set("lambda-runtime-trace-id", trace_id());
    (StatusCode::OK, headers, Json(pending.event)).into_response()
}

/// An X-Ray trace header of the documented form.
fn trace_id() -> String {
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{epoch:08x}-{};Parent={};Sampled=0",
        &random[..24],
        &random[16..32]
    )
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    match lock(&shared.waiting).remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            accepted()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(lambda_error(
                "InvalidRequestID",
                &format!("no invocation {id} awaits a result"),
            )),
        )
            .into_response(),
    }
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    finish(&shared, &id, Ok(body_value(&body)))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    finish(&shared, &id, Err(body_value(&body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    shared.init_error.send_replace(Some(body_value(&body)));
    accepted()
}
