//! Every error of the registry's and the REST proxy's HTTP APIs in their
//! JSON shape, `{"error_code": N, "message": M}`: the handlers' own errors
//! already are; this turns axum's (an unknown path, a method a path does
//! not take, a body over the limit, a malformed path or query) into the
//! same, as Confluent's services answer them (`HTTP 404 Not Found`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The most of a plain-text error body kept as the message.
const MESSAGE_BYTES_MAX: usize = 4 * 1024;

/// Middleware: a non-JSON error answer becomes a JSON one in
/// `content_type`.
pub async fn as_json(
    State(content_type): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    let answer = next.run(request).await;
    let status = answer.status();
    let is_json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return answer;
    }
    let text = axum::body::to_bytes(answer.into_body(), MESSAGE_BYTES_MAX)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        )
    } else {
        text
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(json!({"error_code": status.as_u16(), "message": message}).to_string()),
    )
        .into_response()
}
