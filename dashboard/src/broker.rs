//! The embedded MQTT broker (rumqttd 0.20), kept behind this one module:
//! rumqttd brings its own older copies of some crates.

use std::collections::HashMap;
use std::net::SocketAddr;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Starts a broker listening on `addr` (MQTT 3.1.1) on its own thread.
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
    let mut v4 = HashMap::new();
    v4.insert(
        "v4".to_owned(),
        ServerSettings {
            name: "v4".to_owned(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: 1 << 20,
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
        v4: Some(v4),
        v5: None,
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

/// MQTT 3.1.1 CONNECT (clean session, client id `probe`), CONNACK, DISCONNECT.
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))?;
    s.set_read_timeout(Some(std::time::Duration::from_millis(500)))?;
    s.write_all(&[
        0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 5, b'p', b'r', b'o', b'b', b'e',
    ])?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)?;
    s.write_all(&[0xe0, 0])?;
    if ack[0] == 0x20 && ack[3] == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other("the broker refused the probe"))
    }
}
