//! Modbus RTU server over any byte stream: a pseudo-terminal, a real serial
//! port, or a TCP connection (RTU over TCP, as behind a serial device server).
//!
//! Framing, as a slave on RS-485 does it: a request ends when the length its
//! function code implies has arrived ([`rtu_request_len`]), or, for other
//! functions, after a silence of 3.5 characters. A frame whose length is
//! known but which stops short is dropped after a longer resync timeout
//! (ptys and USB adapters deliver bytes in bursts, so the strict 1.5-character
//! rule would drop good frames). A wrong CRC or another unit id gets no
//! answer, and after a CRC error the input is skipped until the line is
//! silent again, so that the next request starts clean.
//!
//! Faults: `corrupt_crc` inverts the answer's last CRC byte; `garbage` sends
//! random bytes (with a wrong CRC); `connection_reset` closes an RTU-over-TCP
//! connection and is silence on a serial line. With `wire_time`, the answer
//! is held back by the transaction's wire time (see [`crate::wire`]) while
//! the line is marked busy.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::building::Answer;
use crate::bus::{BusCtx, lock};
use crate::faults::Mangle;
use crate::frame::{crc16, rtu_frame, rtu_request_len, rtu_split};

/// How long a frame of known length may stall before it is dropped.
const RESYNC: Duration = Duration::from_millis(100);

/// What to do after a frame.
enum After {
    Continue,
    Close,
}

/// Serves RTU requests from `stream` until it ends (or, for RTU over TCP, a
/// `connection_reset` fault closes it).
pub(crate) async fn serve_stream<S>(mut stream: S, ctx: Arc<BusCtx>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let silence = ctx.line.frame_gap().max(Duration::from_millis(2));
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    let mut skipping = false;
    loop {
        if !skipping
            && let Some(n) = rtu_request_len(&buf)
            && buf.len() >= n
        {
            let frame: Vec<u8> = buf.drain(..n).collect();
            match handle(&mut stream, &ctx, &frame).await? {
                Some(After::Close) => return Ok(()),
                Some(After::Continue) => continue,
                None => {
                    // Bad CRC: whatever follows belongs to a broken frame.
                    buf.clear();
                    skipping = true;
                    continue;
                }
            }
        }
        let wait = if buf.is_empty() && !skipping {
            None
        } else if skipping || (buf.len() >= 2 && rtu_request_len(&buf[..2]).is_none()) {
            Some(silence)
        } else {
            Some(RESYNC)
        };
        let read = match wait {
            None => Some(stream.read(&mut chunk).await),
            Some(t) => tokio::time::timeout(t, stream.read(&mut chunk)).await.ok(),
        };
        match read {
            None => {
                // Silence: the frame (if any) is over.
                skipping = false;
                let frame = std::mem::take(&mut buf);
                if !frame.is_empty()
                    && let Some(After::Close) = handle(&mut stream, &ctx, &frame).await?
                {
                    return Ok(());
                }
            }
            Some(Ok(0)) => return Ok(()),
            Some(Ok(n)) => {
                if !skipping {
                    buf.extend_from_slice(&chunk[..n]);
                }
                if buf.len() > 512 {
                    buf.clear();
                    skipping = true;
                }
            }
            Some(Err(e)) => return Err(e),
        }
    }
}

/// Answers one frame. `None` = the CRC was wrong (nothing sent).
async fn handle<S>(stream: &mut S, ctx: &BusCtx, frame: &[u8]) -> std::io::Result<Option<After>>
where
    S: AsyncWrite + Unpin,
{
    let Some((unit, pdu)) = rtu_split(frame) else {
        tracing::debug!(bus = %ctx.id, len = frame.len(), "RTU frame with a bad CRC ignored");
        return Ok(None);
    };
    let answer = lock(&ctx.building).serve(ctx.index, unit, pdu, Instant::now());
    let (pdu, delay, mangle) = match answer {
        Answer::Silent => return Ok(Some(After::Continue)),
        Answer::Reset => {
            return Ok(Some(
                if ctx.kind == gateway_core::config::BusKind::RtuOverTcp {
                    After::Close
                } else {
                    After::Continue
                },
            ));
        }
        Answer::Reply { pdu, delay, mangle } => (pdu, delay, mangle),
    };
    let mut bytes = rtu_frame(unit, &pdu);
    match mangle {
        Mangle::None => {}
        Mangle::CorruptCrc => {
            if let Some(last) = bytes.last_mut() {
                *last ^= 0xFF;
            }
        }
        Mangle::Garbage => {
            bytes = lock(&ctx.building).garbage(bytes.len().max(5));
            let n = bytes.len();
            if crc16(&bytes) == 0 {
                bytes[n - 1] ^= 0xFF;
            }
        }
    }
    let _busy = ctx.line_busy.lock().await;
    let mut wait = delay;
    if ctx.wire_time {
        wait += ctx.line.transaction_time(frame.len(), bytes.len());
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    Ok(Some(After::Continue))
}
