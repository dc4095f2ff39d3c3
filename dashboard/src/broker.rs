//! The embedded MQTT broker (rumqttd 0.20), kept behind this one module:
//! rumqttd brings its own older copies of some crates.
//!
//! It speaks MQTT 5, as the gateway and the dashboard do. rumqttd does not
//! honour a client's Maximum Packet Size, so it refuses oversized publishes
//! itself: a publish over [`MAX_PACKET`] ends the publisher's connection and
//! is never stored or forwarded, so no retained message can exceed the
//! clients' limit (default 1 MiB).

use std::collections::HashMap;
use std::net::SocketAddr;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// The largest packet the embedded broker accepts (below the clients'
/// default limit of 1 MiB).
pub const MAX_PACKET: usize = 256 * 1024;

/// Starts a broker listening on `addr` (MQTT 5) on its own thread.
/// A busy or unusable address is an error here, not a panic later.
pub fn start(addr: SocketAddr) -> Result<(), String> {
    // rumqttd binds inside its own thread and only logs a failure there:
    // find out now whether the address can be had.
    match std::net::TcpListener::bind(addr) {
        Ok(l) => drop(l),
        Err(e) => {
            return Err(format!(
                "cannot listen on {addr} for the embedded MQTT broker: {e}; \
                 is another broker or dashboard running? Choose another address with --mqtt-listen \
                 (or [mqtt] embedded_listen)"
            ));
        }
    }
    let mut v5 = HashMap::new();
    v5.insert(
        "v5".to_owned(),
        ServerSettings {
            name: "v5".to_owned(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: MAX_PACKET,
                max_inflight_count: 200,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        },
    );
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1010,
            max_outgoing_packet_count: 2000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: None,
        v5: Some(v5),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|e| format!("cannot start the embedded broker's thread: {e}"))?;
    // Wait until it accepts connections: a proper MQTT connect and
    // disconnect, so that the broker logs no aborted connection.
    for _ in 0..100 {
        if probe(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(format!(
        "the embedded MQTT broker did not start listening on {addr}"
    ))
}

/// MQTT 5 CONNECT (clean start, client id `probe`), CONNACK, DISCONNECT.
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))?;
    s.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
    s.write_all(&[
        0x10, 18, // CONNECT, 18 bytes follow
        0, 4, b'M', b'Q', b'T', b'T', // protocol name
        5,    // protocol version 5
        0x02, // clean start
        0, 10, // keep-alive 10 s
        0,  // no properties
        0, 5, b'p', b'r', b'o', b'b', b'e', // client id
    ])?;
    // CONNACK: type, remaining length (one byte: it is short), then flags,
    // reason code and properties, read whole (unread bytes at close would
    // make the socket reset and the broker log an error).
    let mut head = [0u8; 2];
    s.read_exact(&mut head)?;
    let mut rest = vec![0u8; usize::from(head[1] & 0x7f)];
    s.read_exact(&mut rest)?;
    s.write_all(&[0xe0, 0])?;
    if head[0] == 0x20 && head[1] < 0x80 && rest.get(1) == Some(&0) {
        Ok(())
    } else {
        Err(std::io::Error::other("the broker refused the probe"))
    }
}
