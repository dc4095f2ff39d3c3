//! Time on an RS-485 line: what an RTU transaction really costs.
//!
//! A character is 1 start bit + data bits + a parity bit (if any) + stop
//! bits. A frame ends after a silence of 3.5 characters (fixed at 1.75 ms
//! above 19 200 baud, as the Modbus serial-line guide says). With
//! `wire_time` the simulator delays each answer by the time the request and
//! the answer take on the wire plus two such silences (the one that ends
//! the request and the one that ends the answer), so that a master on a pty
//! sees the throughput of a real line.

use std::time::Duration;

use gateway_core::config::{Parity, ResolvedBus};

/// Line settings that matter for timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// Bits per second.
    pub baud: u32,
    /// Bits on the wire per character.
    pub bits_per_char: u32,
}

impl Line {
    /// The line of a configured bus.
    pub fn of(bus: &ResolvedBus) -> Self {
        let parity = u32::from(bus.parity != Parity::None);
        Self {
            baud: bus.baud.max(1),
            bits_per_char: 1 + u32::from(bus.data_bits) + parity + u32::from(bus.stop_bits),
        }
    }

    /// Time to send one character.
    pub fn char_time(&self) -> Duration {
        Duration::from_nanos(u64::from(self.bits_per_char) * 1_000_000_000 / u64::from(self.baud))
    }

    /// The inter-frame silence: 3.5 characters, 1.75 ms above 19 200 baud.
    pub fn frame_gap(&self) -> Duration {
        if self.baud > 19_200 {
            Duration::from_micros(1750)
        } else {
            self.char_time() * 7 / 2
        }
    }

    /// Wire time of a transaction: both frames' characters plus two silences.
    pub fn transaction_time(&self, request_bytes: usize, answer_bytes: usize) -> Duration {
        let chars = u32::try_from(request_bytes + answer_bytes).unwrap_or(u32::MAX);
        self.char_time() * chars + self.frame_gap() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_of_ten_registers_at_9600_8e1_takes_about_46_ms() {
        // 8 data + even parity + 1 stop + 1 start = 11 bits; 9600 baud → 1.1458 ms per char.
        let line = Line {
            baud: 9600,
            bits_per_char: 11,
        };
        assert_eq!(line.char_time(), Duration::from_nanos(1_145_833));
        // request 8 bytes + answer 25 bytes = 33 chars + 2 × 3.5 chars = 40 chars ≈ 45.8 ms
        let t = line.transaction_time(8, 25);
        assert!(
            t > Duration::from_micros(45_800) && t < Duration::from_micros(45_900),
            "{t:?}"
        );
    }

    #[test]
    fn the_gap_is_fixed_above_19200_baud() {
        let line = Line {
            baud: 115_200,
            bits_per_char: 10,
        };
        assert_eq!(line.frame_gap(), Duration::from_micros(1750));
    }
}
