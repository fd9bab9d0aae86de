//! One HTTP/1 exchange with another node's (or the user's) HTTP server,
//! through hyper's client connection: the registry forwarding a write to
//! its owner, the console consumer fetching schemas.

use std::time::Duration;

use axum::http::{header, request, response, Method, Request};
use bytes::Bytes;
use http_body_util::BodyExt;

/// `text` percent-encoded as one URL path segment (RFC 3986's unreserved
/// characters kept).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url`'s `host:port`, for `http://` URLs (a path after it is dropped).
pub fn authority(url: &str) -> Result<&str, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    Ok(rest.split('/').next().unwrap_or(rest))
}

/// Sends `parts` with `body` to `authority` and returns the answer's head
/// and at most `answer_bytes_max` of its body, all within `timeout`.
pub async fn exchange(
    authority: &str,
    parts: request::Builder,
    body: Bytes,
    answer_bytes_max: usize,
    timeout: Duration,
) -> Result<(response::Parts, Bytes), String> {
    let outgoing = parts
        .header(header::HOST, authority)
        .body(http_body_util::Full::new(body))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let answer = sender
            .send_request(outgoing)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = answer.into_parts();
        let bytes = http_body_util::Limited::new(body, answer_bytes_max)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((parts, bytes))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {} seconds", timeout.as_secs()))?
}

/// GET `path` from the server at `url`: the status and the body.
pub async fn get(
    url: &str,
    path: &str,
    answer_bytes_max: usize,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let request = Request::builder().method(Method::GET).uri(path);
    let (parts, body) = exchange(
        authority(url)?,
        request,
        Bytes::new(),
        answer_bytes_max,
        timeout,
    )
    .await?;
    Ok((parts.status.as_u16(), body))
}
