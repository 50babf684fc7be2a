//! The browser client, embedded in the binary so `kham` serves it from anywhere.

use std::sync::LazyLock;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web-client/"]
#[exclude = "node_modules/*"]
#[exclude = "*.json"]
#[exclude = "*.txt"]
struct Assets;

/// `web-client/content-security-policy.txt`, one directive per line, `#` comments.
const CSP_FILE: &str = include_str!("../../../web-client/content-security-policy.txt");

/// The policy as one header value.
static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = CSP_FILE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("; ");
    // The file is ASCII, checked by a test; an empty policy would still leave the others.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(""))
});

/// Sent with every file and refusal. The join link carries the token in its query: no referrer
/// may leak it and no other site may frame the page (the CSP's `frame-ancestors 'none'`, and
/// `X-Frame-Options` for browsers without it).
fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_SECURITY_POLICY, CSP.clone()),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

/// Serves `web-client/`; `/` and `/join` (the join link) serve the call page, `/dashboard` the
/// operators' dashboard. Only GET and HEAD: these are files.
pub async fn static_handler(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            security_headers(),
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed",
        )
            .into_response();
    }
    let path = uri.path().trim_start_matches('/');
    let path = match path {
        // The station's queue page and the doctor's duty page are the call page too: a pairing
        // moves them into the call without a new link.
        "" | "join" | "queue" | "duty" => "index.html",
        "dashboard" => "dashboard.html",
        p => p,
    };
    match Assets::get(path) {
        Some(file) => (
            security_headers(),
            [
                (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
                // Small files, changed with each release: let browsers revalidate.
                (header::CACHE_CONTROL, "no-cache".to_owned()),
            ],
            file.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, security_headers(), "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_file_makes_a_valid_header_without_inline_allowances() {
        let csp = CSP.to_str().expect("ASCII");
        assert!(csp.starts_with("default-src 'none'; "), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains('#') && !csp.contains('\n'), "{csp}");
    }

    #[test]
    fn pages_have_no_inline_script_or_style() {
        for page in ["index.html", "dashboard.html"] {
            let html = Assets::get(page).expect(page).data;
            let html = String::from_utf8_lossy(&html);
            assert!(!html.contains("style="), "{page} has a style attribute");
            assert!(!html.contains("<style"), "{page} has a style element");
            for tag in html.split("<script").skip(1) {
                assert!(
                    tag.split('>').next().is_some_and(|t| t.contains("src=")),
                    "{page} has an inline script"
                );
            }
            let handler = html.match_indices(" on").any(|(i, _)| {
                let rest = &html[i + 3..];
                let name = rest.len()
                    - rest
                        .trim_start_matches(|c: char| c.is_ascii_lowercase())
                        .len();
                name > 0 && rest[name..].starts_with('=')
            });
            assert!(!handler, "{page} has an inline event handler");
        }
    }
}
