//! ICMP echo from inside a namespace: the datapath liveness probe (NSM's sdk-kernel
//! liveness check) and the pings of `nsm demo`.
//!
//! A probe of one (source, destination) pair sends up to [`ECHOES`] echo requests spread
//! over its timeout, from the source address on the client's interface, and passes at the
//! first matching reply — as NSM's check does: four echoes per pair, alive if one answers.
//! The raw socket is made on a thread inside the client's namespace, bound to the vWire's
//! interface and connected to the destination, so only that interface's replies from that
//! address reach it.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::time::Instant;

use super::netns::{Netns, NetnsError};

/// Echo requests per pair and probe.
pub const ECHOES: u32 = 4;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: &[u8; 16] = b"nsm-rs liveness.";

/// Ids of successive probes, so that two probes of one namespace do not take each other's
/// replies.
static NEXT_ID: AtomicU16 = AtomicU16::new(1);

/// What one pair's probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo {
    pub from: IpAddr,
    pub to: IpAddr,
    /// Round-trip time of the first reply; `None` if none came within the timeout.
    pub rtt: Option<Duration>,
    /// Why no echo could be sent at all, if so (the interface is gone, say).
    pub error: Option<String>,
}

impl Echo {
    pub fn answered(&self) -> bool {
        self.rtt.is_some()
    }
}

/// Pings `to` from `from` on `interface` inside `ns`, for at most `timeout`.
pub async fn ping(
    ns: &Netns,
    interface: &str,
    from: IpAddr,
    to: IpAddr,
    timeout: Duration,
) -> Result<Echo, NetnsError> {
    let interface = interface.to_owned();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    ns.run(move || {
        let outcome = echo(&interface, from, to, timeout, id);
        let (rtt, error) = match outcome {
            Ok(rtt) => (rtt, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Echo {
            from,
            to,
            rtt,
            error,
        }
    })
    .await
}

/// Blocking: one pair's echoes. `Ok(None)` means nothing answered.
fn echo(
    interface: &str,
    from: IpAddr,
    to: IpAddr,
    timeout: Duration,
    id: u16,
) -> std::io::Result<Option<Duration>> {
    let (domain, protocol) = match to {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    socket.bind(&SockAddr::from(SocketAddr::new(from, 0)))?;
    socket.connect(&SockAddr::from(SocketAddr::new(to, 0)))?;
    let started = Instant::now();
    let spacing = timeout / ECHOES;
    let mut buffer = [0u8; 1500];
    for seq in 0..ECHOES as u16 {
        let sent_at = Instant::now();
        socket.send(&request(to, id, seq))?;
        let next_send = sent_at + spacing;
        let deadline = if u32::from(seq) + 1 == ECHOES {
            started + timeout
        } else {
            next_send
        };
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            let read = match (&socket).read(&mut buffer) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if is_reply(to, &buffer[..read], id) {
                return Ok(Some(started.elapsed()));
            }
        }
    }
    Ok(None)
}

/// An echo request: type, code, checksum, id, sequence, payload. IPv6's checksum is the
/// kernel's to fill in (raw ICMPv6 sockets always compute it).
fn request(to: IpAddr, id: u16, seq: u16) -> Vec<u8> {
    let kind = if to.is_ipv4() {
        ECHO_REQUEST_V4
    } else {
        ECHO_REQUEST_V6
    };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    if to.is_ipv4() {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// Whether `packet` (IPv4: with its IP header; IPv6: the ICMPv6 message alone) is a reply
/// to one of our echoes.
fn is_reply(to: IpAddr, packet: &[u8], id: u16) -> bool {
    let (icmp, reply) = if to.is_ipv4() {
        let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
        (packet.get(header..).unwrap_or_default(), ECHO_REPLY_V4)
    } else {
        (packet, ECHO_REPLY_V6)
    };
    icmp.len() >= 8 && icmp[0] == reply && icmp[1] == 0 && icmp[4..6] == id.to_be_bytes()
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_request_carries_a_valid_checksum() {
        let packet = request("10.0.0.1".parse().unwrap(), 0x1234, 7);
        assert_eq!(packet[0], ECHO_REQUEST_V4);
        // Summing a packet with its checksum in gives all ones.
        assert_eq!(checksum(&packet), 0);
        assert_eq!(&packet[4..8], &[0x12, 0x34, 0, 7]);
    }

    #[test]
    fn replies_are_matched_by_type_and_id() {
        let to: IpAddr = "10.0.0.1".parse().unwrap();
        let mut reply = vec![0x45u8; 20];
        reply.extend_from_slice(&[ECHO_REPLY_V4, 0, 0, 0, 0x12, 0x34, 0, 1]);
        assert!(is_reply(to, &reply, 0x1234));
        assert!(!is_reply(to, &reply, 0x1235));
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert!(is_reply(v6, &[ECHO_REPLY_V6, 0, 0, 0, 0, 9, 0, 0], 9));
        assert!(!is_reply(v6, &[ECHO_REQUEST_V6, 0, 0, 0, 0, 9, 0, 0], 9));
        assert!(!is_reply(to, &[0x45], 1));
    }
}
