//! Step "pings": ICMP echoes across each vWire, from the client's interface in the client's
//! namespace to the endpoint's address, printed the way `ping` prints them.
//!
//! Each ping is one probe of the kernel data plane's liveness check
//! ([`nsm_dataplane::kernel::ping`]): up to four echo requests spread over [`PING_TIMEOUT`],
//! answered if one reply comes back. The size shown is that of the ICMP message the probe
//! sends (8 bytes of header, 16 of payload). A ping without a reply is printed as such and
//! counted; the demo fails at its end if any went unanswered.

use std::time::Duration;

use nsm_dataplane::kernel::netns::Netns;
use nsm_dataplane::kernel::{Echo, ping};

use super::clients::{INTERFACE, VWire};
use super::say;

/// How long one ping waits for its reply.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause between two pings of one vWire.
const SPACING: Duration = Duration::from_millis(250);
/// Bytes of the ICMP echo request the probe sends.
const ICMP_BYTES: usize = 24;

/// What the pings of all vWires came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) sent: u32,
    pub(super) answered: u32,
}

impl Tally {
    pub(super) fn all_answered(self) -> bool {
        self.sent > 0 && self.sent == self.answered
    }
}

/// `count` pings across each of `vwires`, printed as they come.
pub(super) async fn across(vwires: &[VWire], count: u32) -> Tally {
    let mut tally = Tally::default();
    for vwire in vwires {
        say::detail(
            1,
            format_args!(
                "{} ({}) -> {} over {INTERFACE}:",
                vwire.client, vwire.client_addr, vwire.endpoint_addr
            ),
        );
        let netns = match Netns::named(&vwire.netns) {
            Ok(netns) => netns,
            Err(e) => {
                say::detail(2, format_args!("cannot open its namespace: {e}"));
                tally.sent += count;
                continue;
            }
        };
        for seq in 1..=count {
            let echo = ping(
                &netns,
                INTERFACE,
                vwire.client_addr,
                vwire.endpoint_addr,
                PING_TIMEOUT,
            )
            .await;
            tally.sent += 1;
            let (text, answered) = describe(&echo, vwire, seq);
            tally.answered += u32::from(answered);
            say::detail(2, text);
            if seq < count {
                tokio::time::sleep(SPACING).await;
            }
        }
    }
    tally
}

/// One ping's line, and whether it was answered.
fn describe(
    echo: &Result<Echo, nsm_dataplane::kernel::netns::NetnsError>,
    vwire: &VWire,
    seq: u32,
) -> (String, bool) {
    match echo {
        Ok(Echo { rtt: Some(rtt), .. }) => (
            format!(
                "{ICMP_BYTES} bytes from {}: icmp_seq={seq} time={} ms",
                vwire.endpoint_addr,
                millis(*rtt)
            ),
            true,
        ),
        Ok(Echo {
            error: Some(error), ..
        }) => (format!("icmp_seq={seq}: could not send: {error}"), false),
        Ok(Echo { .. }) => (
            format!(
                "icmp_seq={seq}: no reply from {} within {}",
                vwire.endpoint_addr,
                humantime::format_duration(PING_TIMEOUT)
            ),
            false,
        ),
        Err(e) => (
            format!("icmp_seq={seq}: cannot enter the client's namespace: {e}"),
            false,
        ),
    }
}

/// A round-trip time in milliseconds, with three significant digits or so.
fn millis(rtt: Duration) -> String {
    let ms = rtt.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vwire() -> VWire {
        VWire {
            client: "demo-nsc-1".into(),
            netns: "ns".into(),
            id: nsm_domain::vwire::VWireId::new_random(),
            client_addr: "172.16.0.1".parse().unwrap(),
            endpoint_addr: "172.16.0.2".parse().unwrap(),
            endpoint: "demo-nse".into(),
            path: vec![],
        }
    }

    #[test]
    fn a_reply_reads_like_ping_and_silence_is_said_plainly() {
        let vwire = vwire();
        let echo = |rtt, error| {
            Ok(Echo {
                from: vwire.client_addr,
                to: vwire.endpoint_addr,
                rtt,
                error,
            })
        };
        let answered = describe(&echo(Some(Duration::from_micros(52)), None), &vwire, 1);
        assert_eq!(
            answered,
            (
                "24 bytes from 172.16.0.2: icmp_seq=1 time=0.052 ms".to_owned(),
                true
            )
        );
        let silent = describe(&echo(None, None), &vwire, 2);
        assert_eq!(
            silent,
            (
                "icmp_seq=2: no reply from 172.16.0.2 within 2s".to_owned(),
                false
            )
        );
        let failed = describe(&echo(None, Some("No such device".into())), &vwire, 3);
        assert!(!failed.1 && failed.0.contains("No such device"));
    }

    #[test]
    fn tallies_pass_only_when_every_ping_was_answered() {
        assert!(
            Tally {
                sent: 6,
                answered: 6
            }
            .all_answered()
        );
        assert!(
            !Tally {
                sent: 6,
                answered: 5
            }
            .all_answered()
        );
        assert!(!Tally::default().all_answered());
    }
}
