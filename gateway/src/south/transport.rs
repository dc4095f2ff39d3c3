//! Modbus transports: TCP, RTU on a serial port, RTU over TCP.
//!
//! This is the only module that imports `tokio-modbus` and `tokio-serial`;
//! everything else speaks [`Area`], [`Data`] and [`FailureKind`]. Modbus TCP
//! uses our own framing (`mbtcp.rs`: no 8 KiB buffers per connection); the
//! table below holds for both, with "header mismatch" meaning another
//! transaction id, protocol id, unit or function in the answer.
//!
//! # Every call has a timeout
//!
//! tokio-modbus has none, so [`Transport::read`] wraps each call in
//! `tokio::time::timeout(bus.timeout)` and maps the two result layers:
//!
//! | result                           | outcome                         | connection |
//! |----------------------------------|---------------------------------|------------|
//! | `Ok(Ok(data))`, right length     | data                            | kept       |
//! | `Ok(Ok(data))`, wrong length     | [`FailureKind::Framing`]        | dropped    |
//! | `Ok(Err(exception))`             | [`FailureKind::Exception`]      | kept       |
//! | `Err(Protocol(..))` (header/function mismatch) | `Framing`         | dropped    |
//! | `Err(Transport(io))`, kind `InvalidData` | `Framing`               | dropped    |
//! | `Err(Transport(io))`, other kinds | [`FailureKind::Transport`]     | dropped    |
//! | timeout, no byte received        | [`FailureKind::Timeout`]        | dropped    |
//! | timeout, some bytes received     | `Framing`                       | dropped    |
//!
//! Errors are classified by variant and `io::ErrorKind`, never by message.
//!
//! The last two rows need a word. tokio-modbus's RTU decoder treats a frame
//! with a bad CRC as line noise: it drops a byte and keeps waiting for a valid
//! frame, so a corrupt answer usually ends in a timeout, not an error (it
//! gives up with `InvalidData` only after 20 resynchronisation attempts, i.e.
//! on long garbage). The stream is therefore wrapped in a byte counter: a
//! timeout after bytes did arrive means "an answer came but was malformed"
//! (bad CRC, wrong length, garbage) and is reported as `Framing`; a silent
//! line is a `Timeout`. An answer still arriving when the timeout expires
//! (e.g. a very slow serial line) also counts as `Framing`.
//!
//! # Reconnection
//!
//! After any failure other than an exception the tokio-modbus context is
//! dropped: a late answer would otherwise be taken for the answer to the
//! next request. The next read re-makes it — a new TCP connection, or the
//! serial port reopened with its input buffer flushed of stale bytes.
//!
//! - After a `Timeout` or `Framing` failure the connection is re-made at
//!   once: these usually concern one device on a shared line, and delaying
//!   would make its healthy neighbours pay. The bus scheduler degrades the
//!   failing device instead.
//! - After a `Transport` failure on a request (connection reset or closed
//!   while asking one unit) the next read reconnects at once: a TCP gateway
//!   that closes the connection when a bad unit is asked must not hold back
//!   the healthy units on it (the bus scheduler budgets the failing unit's
//!   polls instead). When connecting itself fails (refused, unreachable,
//!   port gone) the first retry is immediate (idle connections do get
//!   closed); each further consecutive one waits a jittered exponential
//!   backoff (100 ms doubling to 30 s, ±20 %). While waiting, reads fail at
//!   once with [`ReadError::LinkDown`] without touching the network.
//! - On RTU links (serial, or RTU over TCP) a `Framing` failure also starts
//!   a settling time before the next request: bytes were in flight, and the
//!   rest of them would otherwise land in the next transaction and make a
//!   healthy neighbour fail. It lasts the wire time of a maximal (256-byte)
//!   frame at the bus baud rate, at most one timeout; the bytes arrive in the
//!   input buffer meanwhile and are flushed when the port is reopened. A
//!   `Timeout` does not settle at first (a dead device, the common case,
//!   would cost twice), but once the link has seen a late answer (an answer
//!   from another unit than the one asked), every later timeout on that link
//!   settles for one bus timeout. Modbus TCP needs no settling: a new
//!   connection never carries the old one's answers.
//! - Any answer from a device (data or exception) proves the link works and
//!   resets the backoff.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use gateway_core::config::{BusKind, Parity, ResolvedBus};
use gateway_core::model::{Area, FailureKind};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::{Request, Response, Slave, SlaveContext};
use tokio_serial::{SerialPort, SerialPortBuilderExt};
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::link::{Data, Link, ReadError, WriteData};
use super::mbtcp::{self, TcpConn};

/// A connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TCP connect failed (refused, unreachable, name not resolved).
    #[error("cannot connect to {target}: {source}; check the address and that the device is on")]
    Connect {
        /// `host:port`.
        target: String,
        /// The underlying error.
        source: io::Error,
    },
    /// TCP connect did not complete within the bus timeout.
    #[error("connecting to {target} timed out after {timeout:?}")]
    ConnectTimeout {
        /// `host:port`.
        target: String,
        /// The bus timeout.
        timeout: Duration,
    },
    /// The serial port could not be opened or configured.
    #[error(
        "cannot open serial port {path}: {source}; check the path and that no other program holds it"
    )]
    Serial {
        /// Device path.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Connects eagerly to `bus`: returns an error when the first connection
/// cannot be made (what `gateway read` wants). Later failures reconnect as
/// described in the module documentation.
pub async fn connect(bus: &ResolvedBus) -> Result<Transport, TransportError> {
    let mut transport = Transport::new(bus);
    let ctx = open(bus, Arc::clone(&transport.rx_bytes)).await?;
    transport.ctx = Some(ctx);
    transport.connects = 1;
    Ok(transport)
}

/// An open connection: our own Modbus TCP framing, or a tokio-modbus RTU
/// client (serial port, or RTU over TCP).
enum Conn {
    Tcp(TcpConn),
    Rtu(Context),
}

/// One Modbus connection (or serial line) that re-makes itself.
pub struct Transport {
    bus: ResolvedBus,
    ctx: Option<Conn>,
    /// Bytes received since the current request was sent.
    rx_bytes: Arc<AtomicU64>,
    /// Consecutive transport-level failures (connect errors, broken links).
    link_failures: u32,
    backoff: Backoff,
    retry_at: Option<Instant>,
    /// RTU: no request before this instant (late answers settle).
    settle_until: Option<Instant>,
    /// RTU: a device on this link has answered after its timeout.
    late_answers: bool,
    connects: u64,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("bus", &self.bus.id)
            .field("target", &self.bus.target)
            .field("connected", &self.ctx.is_some())
            .field("link_failures", &self.link_failures)
            .field("retry_at", &self.retry_at)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport for `bus` that connects lazily on its first read (what
    /// the daemon wants: a device that is off at start-up is retried).
    pub fn new(bus: &ResolvedBus) -> Self {
        Self {
            bus: bus.clone(),
            ctx: None,
            rx_bytes: Arc::new(AtomicU64::new(0)),
            link_failures: 0,
            backoff: Backoff::LINK,
            retry_at: None,
            settle_until: None,
            late_answers: false,
            connects: 0,
        }
    }

    /// True while a connection (or open port) is held.
    pub fn is_connected(&self) -> bool {
        self.ctx.is_some()
    }

    /// Connections made so far (the first one included).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Reads `count` registers or bits of `area` from `start` on unit
    /// `unit`, within the bus timeout. See the module documentation for how
    /// results and errors are classified.
    pub async fn read(
        &mut self,
        unit: u8,
        area: Area,
        start: u16,
        count: u16,
    ) -> Result<Data, ReadError> {
        self.transact(unit, Op::Read { area, start, count }).await
    }

    /// Writes `data` at `start` on unit `unit` (function 5, 6 or 16),
    /// within the bus timeout; failures are classified as for a read (an
    /// exception answer is the device refusing, not a dead line).
    pub async fn write(&mut self, unit: u8, start: u16, data: &WriteData) -> Result<(), ReadError> {
        self.transact(unit, Op::Write { start, data })
            .await
            .map(|_| ())
    }

    /// One transaction, read or write, within the bus timeout.
    async fn transact(&mut self, unit: u8, op: Op<'_>) -> Result<Data, ReadError> {
        if self.ctx.is_none() {
            if let Some(until) = self.settle_until.take() {
                tokio::time::sleep_until(until).await;
            }
            self.reconnect().await?;
        }
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(ReadError::LinkDown);
        };
        self.rx_bytes.store(0, Ordering::Relaxed);
        let timeout = self.bus.timeout;
        let outcome = match ctx {
            Conn::Tcp(c) => {
                let answer = tokio::time::timeout(timeout, async {
                    match op {
                        Op::Read { area, start, count } => c.read(unit, area, start, count).await,
                        Op::Write { start, data } => c
                            .write(unit, start, data)
                            .await
                            .map(|()| Data::Words(Vec::new())),
                    }
                })
                .await;
                let received = self.rx_bytes.load(Ordering::Relaxed);
                match answer {
                    Ok(Ok(data)) => Ok(data),
                    Ok(Err(mbtcp::Failure::Exception(code))) => {
                        Err(FailureKind::Exception { code })
                    }
                    Ok(Err(mbtcp::Failure::Framing)) => Err(FailureKind::Framing),
                    Ok(Err(mbtcp::Failure::Io(e))) if e.kind() == io::ErrorKind::InvalidData => {
                        Err(FailureKind::Framing)
                    }
                    Ok(Err(mbtcp::Failure::Io(_))) => Err(FailureKind::Transport),
                    Err(_elapsed) if received > 0 => Err(FailureKind::Framing),
                    Err(_elapsed) => Err(FailureKind::Timeout),
                }
            }
            Conn::Rtu(ctx) => {
                ctx.set_slave(Slave(unit));
                let request = match op {
                    Op::Read { area, start, count } => match area {
                        Area::Coil => Request::ReadCoils(start, count),
                        Area::Discrete => Request::ReadDiscreteInputs(start, count),
                        Area::Holding => Request::ReadHoldingRegisters(start, count),
                        Area::Input => Request::ReadInputRegisters(start, count),
                    },
                    Op::Write { start, data } => match data {
                        WriteData::Coil(on) => Request::WriteSingleCoil(start, *on),
                        WriteData::Register(v) => Request::WriteSingleRegister(start, *v),
                        WriteData::Registers(words) => {
                            Request::WriteMultipleRegisters(start, words.clone().into())
                        }
                    },
                };
                let answer = tokio::time::timeout(timeout, ctx.call(request)).await;
                let received = self.rx_bytes.load(Ordering::Relaxed);
                match answer {
                    // Both layers of tokio-modbus's result: the outer one is
                    // the transport, the inner one the device's exception.
                    Ok(Ok(Ok(response))) => match op {
                        Op::Read { count, .. } => {
                            data_of(response, count).ok_or(FailureKind::Framing)
                        }
                        Op::Write { start, data } => write_confirmed(&response, start, data)
                            .then(|| Data::Words(Vec::new()))
                            .ok_or(FailureKind::Framing),
                    },
                    Ok(Ok(Err(code))) => Err(FailureKind::Exception {
                        code: u8::from(code),
                    }),
                    Ok(Err(error)) => {
                        if is_stale_answer(&error) && !self.late_answers {
                            warn!(bus = %self.bus.id, unit, "a late answer from another unit arrived; timeouts on this line now settle before the next request");
                            self.late_answers = true;
                        }
                        Err(classify(&error))
                    }
                    Err(_elapsed) if received > 0 => Err(FailureKind::Framing),
                    Err(_elapsed) => Err(FailureKind::Timeout),
                }
            }
        };
        let received = self.rx_bytes.load(Ordering::Relaxed);
        match outcome {
            Ok(data) => {
                self.on_answer();
                Ok(data)
            }
            Err(kind @ FailureKind::Exception { .. }) => {
                self.on_answer();
                Err(ReadError::Failed(kind))
            }
            Err(kind) => {
                debug!(
                    bus = %self.bus.id, unit, op = %op, received, kind = %kind,
                    "Modbus request failed; dropping the connection"
                );
                self.drop_connection(kind);
                Err(ReadError::Failed(kind))
            }
        }
    }

    fn on_answer(&mut self) {
        self.link_failures = 0;
        self.backoff.reset();
        self.retry_at = None;
    }

    fn drop_connection(&mut self, kind: FailureKind) {
        self.ctx = None;
        match kind {
            // The connection was made and then broke on this request: most
            // often one unit behind a TCP gateway that closes the connection
            // when asked for it. Reconnecting at once costs nothing, and
            // backing off would hold back every healthy unit on the link;
            // only failures to connect back off (see `reconnect`).
            FailureKind::Transport => self.retry_at = None,
            FailureKind::Framing if self.bus.kind != BusKind::Tcp => {
                let baud = u64::from(self.bus.baud.max(1));
                let frame = Duration::from_micros(256 * 11 * 1_000_000 / baud);
                self.settle_until = Some(Instant::now() + frame.min(self.bus.timeout));
            }
            FailureKind::Timeout if self.late_answers => {
                self.settle_until = Some(Instant::now() + self.bus.timeout);
            }
            _ => {}
        }
    }

    /// Counts a transport-level failure and schedules the next attempt:
    /// immediate after the first, then backing off.
    fn link_failed(&mut self) {
        self.link_failures = self.link_failures.saturating_add(1);
        if self.link_failures >= 2 {
            let delay = self.backoff.next_delay();
            self.retry_at = Some(Instant::now() + delay);
        } else {
            self.retry_at = None;
        }
    }

    async fn reconnect(&mut self) -> Result<(), ReadError> {
        if let Some(at) = self.retry_at
            && Instant::now() < at
        {
            return Err(ReadError::LinkDown);
        }
        match open(&self.bus, Arc::clone(&self.rx_bytes)).await {
            Ok(ctx) => {
                self.ctx = Some(ctx);
                self.connects += 1;
                // Back after failures to connect: worth a line. The routine
                // re-making after a failed request (a silent unit: every
                // absent unit of a `gateway scan`) is not.
                if self.connects > 1 && self.link_failures > 0 {
                    info!(bus = %self.bus.id, target = %self.bus.target, "reconnected");
                } else if self.connects > 1 {
                    debug!(bus = %self.bus.id, target = %self.bus.target, "reconnected");
                }
                Ok(())
            }
            Err(error) => {
                self.link_failed();
                warn!(
                    bus = %self.bus.id, %error, failures = self.link_failures,
                    retry_in_ms = self.retry_at.map(|at| at.saturating_duration_since(Instant::now()).as_millis() as u64),
                    "cannot connect"
                );
                Err(ReadError::Failed(FailureKind::Transport))
            }
        }
    }
}

impl Link for Transport {
    fn read(
        &mut self,
        unit: u8,
        area: Area,
        start: u16,
        count: u16,
    ) -> impl Future<Output = Result<Data, ReadError>> + Send {
        Transport::read(self, unit, area, start, count)
    }

    fn write(
        &mut self,
        unit: u8,
        start: u16,
        data: &WriteData,
    ) -> impl Future<Output = Result<(), ReadError>> + Send {
        Transport::write(self, unit, start, data)
    }
}

/// One transaction of [`Transport::transact`].
#[derive(Clone, Copy, Debug)]
enum Op<'a> {
    /// Read `count` items of `area` from `start`.
    Read { area: Area, start: u16, count: u16 },
    /// Write `data` at `start`.
    Write { start: u16, data: &'a WriteData },
}

impl std::fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Read { area, start, count } => write!(f, "read {area} {start}+{count}"),
            Op::Write { start, data } => write!(f, "write fc{} at {start}", data.function()),
        }
    }
}

/// Whether `response` confirms the write of `data` at `start`: functions 5
/// and 6 echo address and value, function 16 the address and the count.
fn write_confirmed(response: &Response, start: u16, data: &WriteData) -> bool {
    match (response, data) {
        (Response::WriteSingleCoil(a, v), WriteData::Coil(on)) => *a == start && v == on,
        (Response::WriteSingleRegister(a, v), WriteData::Register(w)) => *a == start && v == w,
        (Response::WriteMultipleRegisters(a, n), WriteData::Registers(words)) => {
            *a == start && usize::from(*n) == words.len()
        }
        _ => false,
    }
}

/// Maps a tokio-modbus error to a failure kind, by variant and I/O kind.
fn classify(error: &tokio_modbus::Error) -> FailureKind {
    match error {
        tokio_modbus::Error::Protocol(_) => FailureKind::Framing,
        tokio_modbus::Error::Transport(io) if io.kind() == io::ErrorKind::InvalidData => {
            FailureKind::Framing
        }
        tokio_modbus::Error::Transport(_) => FailureKind::Transport,
    }
}

/// True for an answer whose header does not match the request: on RTU, an
/// answer from another unit, i.e. a late answer to an earlier request.
fn is_stale_answer(error: &tokio_modbus::Error) -> bool {
    matches!(
        error,
        tokio_modbus::Error::Protocol(tokio_modbus::ProtocolError::HeaderMismatch { .. })
    )
}

/// The data of a read response, or `None` when it is not the answer to a
/// read of `count` items (wrong variant or length).
fn data_of(response: Response, count: u16) -> Option<Data> {
    let count = usize::from(count);
    match response {
        Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words) => {
            (words.len() == count).then_some(Data::Words(words))
        }
        // Bits come packed in bytes: the answer may carry up to 7 padding bits.
        Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits) => {
            if bits.len() < count {
                return None;
            }
            bits.truncate(count);
            Some(Data::Bits(bits))
        }
        _ => None,
    }
}

/// Opens the underlying stream: Modbus TCP with our own framing
/// (`mbtcp.rs`), RTU with a tokio-modbus client attached.
async fn open(bus: &ResolvedBus, rx_bytes: Arc<AtomicU64>) -> Result<Conn, TransportError> {
    match bus.kind {
        BusKind::Tcp => {
            let stream = tcp_connect(bus).await?;
            Ok(Conn::Tcp(TcpConn::new(stream, rx_bytes)))
        }
        BusKind::RtuOverTcp => {
            let stream = tcp_connect(bus).await?;
            Ok(Conn::Rtu(tokio_modbus::client::rtu::attach_slave(
                Counted::new(stream, rx_bytes),
                Slave(1),
            )))
        }
        BusKind::Rtu => {
            let port = serial_open(bus)?;
            Ok(Conn::Rtu(tokio_modbus::client::rtu::attach_slave(
                Counted::new(port, rx_bytes),
                Slave(1),
            )))
        }
    }
}

async fn tcp_connect(bus: &ResolvedBus) -> Result<TcpStream, TransportError> {
    let target = bus.target.as_str();
    let stream = tokio::time::timeout(bus.timeout, TcpStream::connect(target))
        .await
        .map_err(|_| TransportError::ConnectTimeout {
            target: target.to_owned(),
            timeout: bus.timeout,
        })?
        .map_err(|source| TransportError::Connect {
            target: target.to_owned(),
            source,
        })?;
    // Requests are small and latency matters more than packet count.
    if let Err(error) = stream.set_nodelay(true) {
        debug!(bus = %bus.id, %error, "cannot set TCP_NODELAY");
    }
    Ok(stream)
}

/// Opens and configures the serial port and discards stale input.
///
/// Opening a tty is a short, non-blocking system call sequence (the port is
/// opened `O_NONBLOCK`), so it is done inline rather than on a blocking thread.
fn serial_open(bus: &ResolvedBus) -> Result<tokio_serial::SerialStream, TransportError> {
    let err = |source: tokio_serial::Error| TransportError::Serial {
        path: bus.target.clone(),
        source: source.into(),
    };
    let parity = match bus.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = if bus.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    let data_bits = if bus.data_bits == 7 {
        tokio_serial::DataBits::Seven
    } else {
        tokio_serial::DataBits::Eight
    };
    let port = tokio_serial::new(bus.target.as_str(), bus.baud)
        .parity(parity)
        .stop_bits(stop_bits)
        .data_bits(data_bits)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(err)?;
    port.clear(tokio_serial::ClearBuffer::Input).map_err(err)?;
    Ok(port)
}

/// A stream that counts the bytes it reads into a shared counter, so that a
/// timeout can tell "silence" from "an answer we could not decode".
#[derive(Debug)]
struct Counted<S> {
    inner: S,
    rx_bytes: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    fn new(inner: S, rx_bytes: Arc<AtomicU64>) -> Self {
        Self { inner, rx_bytes }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.rx_bytes.fetch_add(read as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified_by_kind() {
        let invalid = tokio_modbus::Error::Transport(io::Error::from(io::ErrorKind::InvalidData));
        let reset = tokio_modbus::Error::Transport(io::Error::from(io::ErrorKind::ConnectionReset));
        let eof = tokio_modbus::Error::Transport(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(classify(&invalid), FailureKind::Framing);
        assert_eq!(classify(&reset), FailureKind::Transport);
        assert_eq!(classify(&eof), FailureKind::Transport);
    }

    #[test]
    fn answers_of_the_wrong_length_are_refused() {
        assert_eq!(
            data_of(Response::ReadHoldingRegisters(vec![1, 2]), 2),
            Some(Data::Words(vec![1, 2]))
        );
        assert_eq!(data_of(Response::ReadInputRegisters(vec![1]), 2), None);
        assert_eq!(
            data_of(
                Response::ReadCoils(vec![true, false, true, false, false, false, false, false]),
                3
            ),
            Some(Data::Bits(vec![true, false, true]))
        );
        assert_eq!(data_of(Response::ReadDiscreteInputs(vec![true]), 9), None);
        assert_eq!(data_of(Response::WriteSingleRegister(1, 2), 1), None);
    }
}
