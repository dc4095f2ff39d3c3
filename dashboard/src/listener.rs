//! The HTTP connections: each accepted connection is served by hyper's
//! HTTP/1.1 server with three limits that a browser never meets and a
//! hostile or broken client always does.
//!
//! - **Header timeout** (`[http] header_timeout`): a connection must send a
//!   whole request head within this time after it opens and after each
//!   response (a kept-alive connection that sends nothing more is closed
//!   after it too). Silent and half-sent requests are closed.
//! - **Idle timeout** (`[http] idle_timeout`): a connection on which no byte
//!   was read or written for this long is closed (a stalled upload, a
//!   client that stops reading its event stream). Event streams write a
//!   keep-alive comment every 15 s, so a live wall is never idle.
//! - **Connection cap** (`[http] max_connections`): beyond it a connection
//!   gets `503` with `Connection: close` and is closed at once, counted
//!   in [`Stats::refused`]; connections held open by a flood are closed by
//!   the timeouts above, after which new ones are served again.
//!
//! On stop, every connection is asked to finish its current exchange;
//! whatever still runs after [`GRACE`] (event streams) is dropped.

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

/// How long connections may finish after a stop.
pub const GRACE: Duration = Duration::from_secs(3);

/// The limits of every connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A whole request head within this time.
    pub header_timeout: Duration,
    /// Some byte read or written within this time.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// Counters of the connections, shown in `/api/health` (`http`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections refused because [`Limits::max_connections`] were open.
    pub refused: AtomicU64,
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: AtomicU64,
    /// Connections closed for being idle.
    pub idle_closed: AtomicU64,
}

impl Stats {
    /// The counters as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "open": self.open.load(Ordering::Relaxed),
            "accepted": self.accepted.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "header_timeouts": self.header_timeouts.load(Ordering::Relaxed),
            "idle_closed": self.idle_closed.load(Ordering::Relaxed),
        })
    }
}

/// Serves `router` on `listener` until `stop`, within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stats: Arc<Stats>,
    refusal: Arc<str>,
    stop: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little
                // rather than spin; the listener itself stays.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refuse(&stream, &refusal);
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (router, stats, stop) = (router.clone(), stats.clone(), stop.clone());
        tokio::spawn(async move {
            connection(stream, peer, router, limits, &stats, stop).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    // Every slot back: every connection has ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), slots.acquire_many(all)).await;
    Ok(())
}

/// The answer to a connection over the cap: written if the socket takes
/// it at once, never waited for.
pub fn refusal_text(security_headers: &str) -> String {
    let body = "{\"error\":\"too many connections; try again in a few seconds\"}";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\n{security_headers}\r\n{body}",
        body.len()
    )
}

fn refuse(stream: &TcpStream, text: &str) {
    let _ = stream.try_write(text.as_bytes());
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    stats: &Stats,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: stream,
        started,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut conn = pin!(
        hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, service)
    );
    let mut stopping = pin!(stop.cancelled());
    let mut grace_end: Option<tokio::time::Instant> = None;
    loop {
        let idle_at = {
            let last = Duration::from_millis(activity.load(Ordering::Relaxed));
            tokio::time::Instant::from_std(started + last + limits.idle_timeout)
        };
        let deadline = grace_end.map_or(idle_at, |g| g.min(idle_at));
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r
                    && e.is_timeout()
                {
                    stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            _ = &mut stopping, if grace_end.is_none() => {
                conn.as_mut().graceful_shutdown();
                grace_end = Some(tokio::time::Instant::now() + GRACE);
            }
            _ = tokio::time::sleep_until(deadline) => {
                if grace_end.is_some_and(|g| tokio::time::Instant::now() >= g) {
                    return;
                }
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                if started.elapsed() >= last + limits.idle_timeout {
                    stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// A socket that notes when it last moved a byte (ms since `started`).
struct Watched {
    inner: TcpStream,
    started: Instant,
    activity: Arc<AtomicU64>,
}

impl Watched {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn start(limits: Limits) -> (SocketAddr, Arc<Stats>, CancellationToken) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let router = Router::new().route("/", axum::routing::get(|| async { "hi" }));
        let text: Arc<str> = refusal_text("").into();
        tokio::spawn(serve(l, router, limits, stats.clone(), text, stop.clone()));
        (addr, stats, stop)
    }

    /// Reads until the peer closes; the time it took.
    async fn closed_after(s: &mut TcpStream) -> (Duration, String) {
        let t = Instant::now();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        (t.elapsed(), String::from_utf8_lossy(&out).into_owned())
    }

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
    };

    #[tokio::test]
    async fn a_silent_or_half_sent_request_is_closed_after_the_header_timeout() {
        let (addr, stats, stop) = start(LIMITS).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (a, _) = closed_after(&mut silent).await;
        let (b, _) = closed_after(&mut half).await;
        assert!(
            a < Duration::from_secs(2) && b < Duration::from_secs(2),
            "{a:?} {b:?}"
        );
        assert_eq!(stats.header_timeouts.load(Ordering::Relaxed), 2);
        stop.cancel();
    }

    #[tokio::test]
    async fn connections_over_the_cap_get_503_and_are_counted() {
        let (addr, stats, stop) = start(LIMITS).await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (t, text) = closed_after(&mut c).await;
        assert!(t < Duration::from_millis(300), "{t:?}");
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        // Once the silent ones are closed, a request is served again.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut d = TcpStream::connect(addr).await.unwrap();
        d.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (_, text) = closed_after(&mut d).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        stop.cancel();
    }

    #[tokio::test]
    async fn a_connection_that_moves_no_byte_is_closed_after_the_idle_timeout() {
        // A request whose body never comes: the head is in, so only the
        // idle timeout can end it.
        let limits = Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_millis(500),
            max_connections: 4,
        };
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let router =
            Router::new().route("/", axum::routing::post(|body: String| async move { body }));
        tokio::spawn(serve(
            l,
            router,
            limits,
            stats.clone(),
            "".into(),
            stop.clone(),
        ));
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        let (t, _) = closed_after(&mut s).await;
        assert!(t < Duration::from_secs(3), "{t:?}");
        assert_eq!(stats.idle_closed.load(Ordering::Relaxed), 1);
        stop.cancel();
    }
}
