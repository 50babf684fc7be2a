//! The browser client, embedded in the binary so `kham` serves it from anywhere.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web-client/"]
#[exclude = "node_modules/*"]
#[exclude = "*.json"]
struct Assets;

/// Serves `web-client/`; `/` and `/join` (the join link) serve the call page, `/dashboard` the
/// operators' dashboard.
pub async fn static_handler(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = match path {
        "" | "join" => "index.html",
        "dashboard" => "dashboard.html",
        p => p,
    };
    match Assets::get(path) {
        Some(file) => (
            [
                (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
                // Small files, changed with each release: let browsers revalidate.
                (header::CACHE_CONTROL, "no-cache".to_owned()),
            ],
            file.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
