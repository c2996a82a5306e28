//! Losing an answer: the connection closes with nothing sent, or a proxy in front of the
//! service answers 504. Run after the handler, the write is committed and the client never
//! learns it, which is what makes retried creates duplicate records.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// How a lost answer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The socket closes with no response.
    Drop,
    /// `504 Gateway Timeout` with a proxy's HTML page, not the service's JSON error.
    GatewayTimeout,
}

/// Closes the connection unanswered. Unwinding the connection's task makes the server drop
/// the socket; `resume_unwind` bypasses the panic hook, so nothing is printed.
pub fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("injected connection drop"))
}

/// What a reverse proxy sends when the service behind it did not answer in time.
pub fn gateway_timeout() -> Response {
    (
        StatusCode::GATEWAY_TIMEOUT,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>",
    )
        .into_response()
}

/// Lets the request run to its end (the handler commits whatever it writes), then throws the
/// answer away and loses it as `lost` says, whatever its status was.
pub async fn after_handler(req: Request, next: Next, lost: Lost) -> Response {
    let answer = next.run(req).await;
    drop(answer);
    match lost {
        Lost::Drop => drop_connection(),
        Lost::GatewayTimeout => gateway_timeout(),
    }
}

/// True for the methods that can change something: the ones a lost answer is armed for.
pub fn is_write(method: &str) -> bool {
    ["POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}
