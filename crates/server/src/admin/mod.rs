//! The operator API: `/api/admin/*` (JSON, and a server-sent event stream for the dashboard),
//! `/metrics`, and its OpenAPI description at `/api/openapi.json`.
//!
//! Every admin route needs a token signed with the API secret that carries the `admin` grant
//! (`kham token create --admin`), as `Authorization: Bearer <token>`; the event stream also
//! takes `?token=` because browsers' `EventSource` cannot set headers. There is no way to turn
//! the check off. Refusals are typed JSON: 401 `missing_token`/`invalid_token`/`expired_token`,
//! 403 `forbidden` for a valid token without the grant.

mod api;
mod events;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodRouter, get, post};
use kham_signal::{ApiError, Claims, Rooms, TokenKeys, bearer_token, unix_now};
use tokio::sync::watch;

use crate::media_stats::MediaBoards;
use crate::metrics::Metrics;
use crate::monitor::{History, OpsView};

/// The OpenAPI 3.1 description of these routes, hand-written (no derive macros to compile, and
/// the document stays readable in review); a test checks it against the routes.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Shared state of the admin handlers.
#[derive(Clone)]
pub struct AdminState {
    pub keys: TokenKeys,
    pub rooms: Rooms,
    pub boards: MediaBoards,
    pub view: watch::Receiver<Arc<OpsView>>,
    pub history: Arc<Mutex<History>>,
    pub metrics: Arc<Metrics>,
    pub metrics_public: bool,
    pub queue: kham_signal::QueueService,
}

/// The routes with their methods, so the OpenAPI test sees exactly what is served.
struct Routes {
    router: Router<AdminState>,
    paths: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        r: MethodRouter<AdminState>,
    ) -> Self {
        self.paths.push((method, path));
        self.router = self.router.route(path, r);
        self
    }
}

fn routes() -> Routes {
    Routes {
        router: Router::new(),
        paths: Vec::new(),
    }
    .add("get", "/api/openapi.json", get(api::openapi))
    .add("get", "/metrics", get(api::metrics))
    .add("get", "/api/admin/node", get(api::node))
    .add("get", "/api/admin/rooms", get(api::rooms))
    .add("get", "/api/admin/rooms/{room}", get(api::room))
    .add(
        "post",
        "/api/admin/rooms/{room}/close",
        post(api::close_room),
    )
    .add(
        "post",
        "/api/admin/rooms/{room}/participants/{participant}/remove",
        post(api::remove_participant),
    )
    .add("get", "/api/admin/events", get(events::events))
    .add("get", "/api/admin/queue", get(api::queue))
}

/// The admin routes, ready to merge into the main router.
pub fn router(state: AdminState) -> Router {
    routes().router.with_state(state)
}

/// Checks an admin token from the `Authorization` header or, where allowed, the query.
pub(crate) fn authorize(
    keys: &TokenKeys,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Claims, ApiError> {
    let token = bearer_token(headers).or(query_token).unwrap_or("").trim();
    let claims = keys
        .verify(token, unix_now())
        .map_err(ApiError::unauthorized)?;
    if !claims.grants.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token lacks the admin grant",
        ));
    }
    Ok(claims)
}

/// Extractor: the request carries an admin token in its `Authorization` header.
pub(crate) struct Admin;

impl FromRequestParts<AdminState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        authorize(&state.keys, &parts.headers, None).map(|_| Admin)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn every_route_is_in_the_openapi_document_and_back() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let routed = routes().paths;
        for (method, path) in &routed {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is routed but not in openapi.json"
            );
        }
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    routed.iter().any(|(m, p)| m == method && p == path),
                    "{method} {path} is in openapi.json but not routed"
                );
            }
        }
        assert_eq!(doc["openapi"].as_str().unwrap().get(..2), Some("3."));
    }

    #[test]
    fn admin_grant_is_required() {
        let keys = TokenKeys::new("k", "secret-secret-secret-secret-secret");
        let mk = |admin: bool| {
            let mut c =
                crate::tokens::admin_claims(&keys, "ops", std::time::Duration::from_secs(60));
            c.grants.admin = admin;
            keys.sign(&c).unwrap()
        };
        let mut h = HeaderMap::new();
        let code = |r: Result<Claims, ApiError>| {
            use axum::response::IntoResponse;
            r.map(|_| 200)
                .unwrap_or_else(|e| e.into_response().status().as_u16())
        };
        assert_eq!(code(authorize(&keys, &h, None)), 401);
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {}", mk(false)).parse().unwrap(),
        );
        assert_eq!(code(authorize(&keys, &h, None)), 403);
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {}", mk(true)).parse().unwrap(),
        );
        assert_eq!(code(authorize(&keys, &h, None)), 200);
        // The scheme is case-insensitive (RFC 9110).
        h.insert(
            header::AUTHORIZATION,
            format!("bearer {}", mk(true)).parse().unwrap(),
        );
        assert_eq!(code(authorize(&keys, &h, None)), 200);
        let other = TokenKeys::new("k", "another-secret-another-secret-xx");
        assert_eq!(code(authorize(&other, &h, None)), 401);
        assert_eq!(
            code(authorize(&keys, &HeaderMap::new(), Some(&mk(true)))),
            200
        );
    }
}
