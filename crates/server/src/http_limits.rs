//! Limits of the HTTP listener: a cap on open connections and the file-descriptor limit it must
//! fit in, and a deadline for each request. The header and idle timeouts are hyper's and
//! axum-server's own settings, applied in `serve.rs`.
//!
//! A connection is counted from the moment it is accepted (before any TLS handshake) until its
//! socket closes. The permit travels inside the stream, so a WebSocket, which hyper hands over
//! with the socket after the upgrade, stays counted for as long as it is open.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use kham_signal::ApiError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// File descriptors kept for everything that is not an HTTP connection: media sockets, webhook
/// connections, the runtime's own, standard streams.
const FD_RESERVE: u64 = 256;

/// How often, at most, a refusal or an accept failure is logged (each is counted anyway).
const LOG_EVERY_SECS: u64 = 10;

/// The connection cap and its counters, shared with `/metrics`.
#[derive(Debug)]
pub struct ConnLimit {
    permits: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
    /// Unix second of the last "limit reached" warning.
    warned_at: AtomicU64,
}

impl ConnLimit {
    pub fn new(max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refused: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
        })
    }

    /// The cap in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.permits.available_permits())
    }

    /// Connections closed at accept because the cap was reached, since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if due(&self.warned_at) {
            tracing::warn!(
                max = self.max,
                refused_total = n,
                "HTTP connection limit reached: closing new connections (http.max_connections)"
            );
        }
    }
}

/// True at most once per [`LOG_EVERY_SECS`] for one `last` stamp.
pub fn due(last: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let prev = last.load(Ordering::Relaxed);
    now >= prev.saturating_add(LOG_EVERY_SECS)
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// The error an over-the-cap connection gets (it is closed without a response).
#[derive(Debug, thiserror::Error)]
#[error("HTTP connection limit reached")]
pub struct LimitReached;

/// axum-server acceptor that takes a permit for each TCP connection or closes it at once. For
/// HTTPS it runs inside rustls' acceptor, so connections in the handshake count too.
#[derive(Debug, Clone)]
pub struct LimitAcceptor(pub Arc<ConnLimit>);

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Counted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let limit = &self.0;
        std::future::ready(match limit.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok((
                Counted {
                    io: stream,
                    _permit: permit,
                },
                service,
            )),
            Err(_) => {
                limit.refuse();
                // Dropping the stream closes it.
                Err(io::Error::other(LimitReached))
            }
        })
    }
}

/// A TCP stream holding its connection permit until it is dropped.
#[derive(Debug)]
pub struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Middleware: the request (its body included, which extractors read before the handler runs,
/// and before any token check) and the handler's answer within `limit`. Without it a client
/// could hold a connection by sending a declared body a byte at a time. A WebSocket or event
/// stream answers at once and goes on outside this deadline.
pub async fn request_deadline(
    State(limit): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut r = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request did not arrive in time",
            )
            .into_response();
            // The rest of the body is not wanted: end the connection with the answer.
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r
        }
    }
}

/// What to do about the file-descriptor limit for `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdPlan {
    /// A new soft limit to set, if the current one is too low and the hard limit allows more.
    pub raise_to: Option<u64>,
    /// The connection cap that fits once `raise_to` is applied.
    pub max_connections: usize,
}

/// Plans the soft limit (`soft`, `hard`: `None` is unlimited) for `max_connections` plus the
/// reserve; if even the hard limit is too low, the cap shrinks to fit it.
pub fn plan_fds(max_connections: usize, soft: Option<u64>, hard: Option<u64>) -> FdPlan {
    let need = max_connections as u64 + FD_RESERVE;
    let Some(soft) = soft else {
        return FdPlan {
            raise_to: None,
            max_connections,
        };
    };
    if soft >= need {
        return FdPlan {
            raise_to: None,
            max_connections,
        };
    }
    let target = hard.map_or(need, |h| h.min(need));
    let raise_to = (target > soft).then_some(target);
    let limit = raise_to.unwrap_or(soft);
    if limit >= need {
        return FdPlan {
            raise_to,
            max_connections,
        };
    }
    // Keep half of a tiny limit for the server's own descriptors rather than none for HTTP.
    let reserve = FD_RESERVE.min(limit / 2);
    FdPlan {
        raise_to,
        max_connections: usize::try_from(limit - reserve).unwrap_or(max_connections),
    }
}

/// Raises the soft `RLIMIT_NOFILE` as far as `max_connections` needs (and the hard limit
/// allows) and returns the cap that fits.
#[cfg(unix)]
pub fn fit_fd_limit(max_connections: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let now = getrlimit(Resource::Nofile);
    let plan = plan_fds(max_connections, now.current, now.maximum);
    let mut soft = now.current;
    if let Some(to) = plan.raise_to {
        let new = Rlimit {
            current: Some(to),
            maximum: now.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => {
                let from = now.current.unwrap_or_default();
                tracing::info!(from, to, "raised the open-file limit (ulimit -n)");
                soft = Some(to);
            }
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
    }
    // If raising failed, fit the cap to the limit as it is.
    let fitted = plan_fds(max_connections, soft, soft).max_connections;
    if fitted < max_connections {
        tracing::warn!(
            configured = max_connections,
            max_connections = fitted,
            open_file_limit = soft.unwrap_or_default(),
            "http.max_connections lowered to fit the open-file limit (ulimit -n)"
        );
    }
    fitted
}

#[cfg(not(unix))]
pub fn fit_fd_limit(max_connections: usize) -> usize {
    max_connections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_plan_raises_the_soft_limit_then_shrinks_the_cap() {
        // Enough already, or unlimited: nothing to do.
        let ok = plan_fds(10_000, Some(20_000), Some(20_000));
        assert_eq!(ok.raise_to, None);
        assert_eq!(ok.max_connections, 10_000);
        assert_eq!(plan_fds(10_000, None, None).max_connections, 10_000);
        // systemd's default (1024 soft, 524288 hard): raised to exactly what is needed.
        let raised = plan_fds(10_000, Some(1024), Some(524_288));
        assert_eq!(raised.raise_to, Some(10_000 + FD_RESERVE));
        assert_eq!(raised.max_connections, 10_000);
        // Hard limit too low: raised to it, cap shrunk to leave the reserve.
        let capped = plan_fds(10_000, Some(1024), Some(4096));
        assert_eq!(capped.raise_to, Some(4096));
        assert_eq!(capped.max_connections, 4096 - 256);
        // Cannot raise at all (soft == hard).
        let stuck = plan_fds(10_000, Some(1024), Some(1024));
        assert_eq!(stuck.raise_to, None);
        assert_eq!(stuck.max_connections, 1024 - 256);
        // A tiny limit keeps half for HTTP.
        assert_eq!(plan_fds(100, Some(64), Some(64)).max_connections, 32);
    }

    #[tokio::test]
    async fn the_cap_refuses_and_a_closed_connection_frees_its_slot() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = ConnLimit::new(1);
        let acceptor = LimitAcceptor(limit.clone());
        let connect = || async {
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = listener.accept().await.unwrap();
            (c, s)
        };
        let (_c1, s1) = connect().await;
        let first = acceptor.accept(s1, ()).await.unwrap();
        assert_eq!(limit.open(), 1);
        let (_c2, s2) = connect().await;
        let err = acceptor.accept(s2, ()).await.unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<LimitReached>()));
        assert_eq!(limit.refused(), 1);
        drop(first);
        assert_eq!(limit.open(), 0);
        let (_c3, s3) = connect().await;
        assert!(acceptor.accept(s3, ()).await.is_ok());
        assert_eq!(limit.refused(), 1);
    }
}
