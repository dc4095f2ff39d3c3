//! Modbus TCP server: MBAP framing, several connections, several requests
//! per connection, transaction ids echoed.
//!
//! Faults on TCP: `no_response` answers nothing (the master times out, the
//! connection stays open); `connection_reset` closes the connection when a
//! request arrives; `garbage` and `corrupt_crc` (TCP has no CRC) send random
//! bytes whose protocol-id field is never 0, so a master sees a framing
//! error at once rather than waiting for a length it will never get.
//! A header with a protocol id other than 0 or an impossible length closes
//! the connection, as most devices do.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::building::Answer;
use crate::bus::{BusCtx, lock};
use crate::faults::Mangle;
use crate::frame::{MBAP_LEN, Mbap, tcp_frame};

/// Accepts connections until cancelled; `serve` handles each one.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    ctx: Arc<BusCtx>,
    token: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, Arc<BusCtx>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(bus = %ctx.id, %peer, "connection accepted");
                    let fut = serve(stream, Arc::clone(&ctx));
                    let conn_token = token.clone();
                    let bus = ctx.id.clone();
                    conns.spawn(async move {
                        tokio::select! {
                            () = conn_token.cancelled() => {}
                            r = fut => if let Err(error) = r {
                                tracing::debug!(%bus, %peer, %error, "connection ended");
                            },
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(bus = %ctx.id, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Serves one Modbus TCP connection until the peer closes it or a fault resets it.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    ctx: Arc<BusCtx>,
) -> std::io::Result<()> {
    loop {
        let mut head = [0u8; MBAP_LEN];
        match stream.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let header = Mbap::parse(&head);
        let Some(len) = header.pdu_len() else {
            tracing::debug!(bus = %ctx.id, ?header, "not a Modbus TCP header, closing");
            return Ok(());
        };
        let mut pdu = vec![0u8; len];
        stream.read_exact(&mut pdu).await?;
        let answer = lock(&ctx.building).serve(ctx.index, header.unit, &pdu, Instant::now());
        match answer {
            Answer::Silent => {}
            Answer::Reset => return Ok(()),
            Answer::Reply { pdu, delay, mangle } => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let bytes = match mangle {
                    Mangle::None => tcp_frame(header.transaction, header.unit, &pdu),
                    Mangle::Garbage | Mangle::CorruptCrc => {
                        let mut g = lock(&ctx.building).garbage(12);
                        g[2] = 0xFF; // protocol id ≠ 0: never a valid MBAP header
                        g
                    }
                };
                stream.write_all(&bytes).await?;
            }
        }
    }
}
