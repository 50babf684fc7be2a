//! A deliberately tiny HTTP/1.1 client over a raw `TcpStream`.
//!
//! The tests need two things from HTTP: `GET /healthz`, and the *rejected* WebSocket upgrade
//! (status + full JSON body of a 401/403). WebSocket client libraries only hand back the part of a
//! rejection body that arrived with the headers, so the upgrade request is written by hand here
//! (`Connection: close`, then the response is read to the end).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header names lower-cased; repeated headers keep the last value.
    pub headers: BTreeMap<String, String>,
    /// Decoded body (chunked transfer coding removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("HTTP {} body is not JSON: {:?}", self.status, self.text()))
    }
}

/// `GET path` with `Connection: close`.
pub async fn get(addr: SocketAddr, path: &str) -> Result<HttpResponse> {
    request(addr, "GET", path, &[]).await
}

/// Sends one request (no body) and reads the whole response. Times out after 10 s.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
) -> Result<HttpResponse> {
    request_with_body(addr, method, path, extra_headers, None).await
}

/// Sends one request with an optional body (sent with `Content-Length`) and reads the whole
/// response. Times out after 10 s.
pub async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse> {
    tokio::time::timeout(
        Duration::from_secs(10),
        request_inner(addr, method, path, extra_headers, body),
    )
    .await
    .map_err(|_| anyhow!("HTTP {method} {path} to {addr} timed out"))?
}

async fn request_inner(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    stream.write_all(&bytes).await?;

    let mut raw = Vec::new();
    // Read until EOF; a server that keeps the connection open despite `Connection: close` is
    // handled by stopping as soon as Content-Length bytes are present.
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // A reset after the full response was sent still leaves a usable response.
            Err(e) if !raw.is_empty() => {
                let _ = e;
                0
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(resp) = try_parse(&raw)? {
            return Ok(resp);
        }
    }
    match try_parse(&raw)? {
        Some(resp) => Ok(resp),
        None => parse_to_eof(&raw),
    }
}

fn split_head(raw: &[u8]) -> Option<(usize, &[u8])> {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p + 4, &raw[..p]))
}

fn parse_head(head: &[u8]) -> Result<(u16, BTreeMap<String, String>)> {
    let head = std::str::from_utf8(head).context("HTTP head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut headers = BTreeMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    Ok((status, headers))
}

/// `Some` once a complete response (by Content-Length or complete chunked body) is in `raw`.
fn try_parse(raw: &[u8]) -> Result<Option<HttpResponse>> {
    let Some((body_start, head)) = split_head(raw) else {
        return Ok(None);
    };
    let (status, headers) = parse_head(head)?;
    let rest = &raw[body_start..];
    if status == 101 || status == 204 || status == 304 {
        return Ok(Some(HttpResponse {
            status,
            headers,
            body: Vec::new(),
        }));
    }
    if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().context("bad content-length")?;
        if rest.len() >= len {
            return Ok(Some(HttpResponse {
                status,
                headers,
                body: rest[..len].to_vec(),
            }));
        }
        return Ok(None);
    }
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        return Ok(decode_chunked(rest).map(|body| HttpResponse {
            status,
            headers,
            body,
        }));
    }
    Ok(None)
}

fn parse_to_eof(raw: &[u8]) -> Result<HttpResponse> {
    let (body_start, head) = split_head(raw).ok_or_else(|| {
        anyhow!(
            "connection closed before a full HTTP head ({} bytes)",
            raw.len()
        )
    })?;
    let (status, headers) = parse_head(head)?;
    Ok(HttpResponse {
        status,
        headers,
        body: raw[body_start..].to_vec(),
    })
}

/// Decodes a chunked body; `None` if incomplete.
fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_str = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_str.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Tries a WebSocket upgrade on `path` by hand and returns the raw HTTP response.
/// Used to check rejections (401/403 + JSON body) before the upgrade.
pub async fn ws_upgrade_attempt(addr: SocketAddr, path: &str) -> Result<HttpResponse> {
    request(
        addr,
        "GET",
        path,
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await
}

/// Percent-encodes a query component (RFC 3986 unreserved characters pass through).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked() {
        let raw = b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"error\":\"x\"}xxxx";
        let r = try_parse(raw).unwrap().unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body.len(), 17);

        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = try_parse(raw).unwrap().unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(
            try_parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn encodes_query() {
        assert_eq!(url_encode("a b/c"), "a%20b%2Fc");
    }
}
