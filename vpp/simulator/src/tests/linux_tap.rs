//! `linux_taps`: a tap's Linux side made for real in its namespace, as VPP makes it, and
//! removed with the tap and on restart. Needs root (network namespaces): outside CI a test
//! that cannot make one says so and passes.

use std::process::Command;

use super::*;

/// A namespace made with `ip netns add`, deleted when dropped.
struct Namespace(String);

impl Namespace {
    /// `None` (skipped, or a failure under CI) when namespaces cannot be made here.
    fn make_or_skip(test: &str) -> Option<Self> {
        let n = SOCKETS.fetch_add(1, Ordering::Relaxed);
        let name = format!("nsm-sim-{}-{n}", std::process::id());
        let made = Command::new("ip").args(["netns", "add", &name]).output();
        let missing: Vec<String> = match made {
            Ok(out) if out.status.success() => Vec::new(),
            Ok(out) => vec![String::from_utf8_lossy(&out.stderr).trim().to_owned()],
            Err(e) => vec![format!("ip: {e}")],
        };
        nsm_test_support::capable_or_skip(test, &missing).then_some(Self(name))
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    /// `ip -n <it> -o <args>`'s output; `None` when it fails (no such device).
    fn ip(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["-n", &self.0, "-o"])
            .args(args)
            .output()
            .expect("ip runs");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn tap_in(namespace: &str, host: &str) -> TapCreateV3 {
    TapCreateV3 {
        host_namespace_set: true,
        host_namespace: text(namespace),
        host_if_name_set: true,
        host_if_name: text(host),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_taps_linux_side_is_made_in_its_namespace_as_asked_and_goes_with_the_tap() {
    let Some(ns) = Namespace::make_or_skip("the linux_taps test") else {
        return;
    };
    let sim = start_with(|config| config.linux_taps = true);
    let mut client = Raw::connect(&sim).await;
    // By name, as `ip netns` names it: VPP looks under /var/run/netns.
    let request = TapCreateV3 {
        host_mtu_set: true,
        host_mtu_size: 1400,
        host_mac_addr_set: true,
        host_mac_addr: [0x02, 0xaa, 0, 0, 0, 0x01],
        host_ip4_prefix_set: true,
        host_ip4_prefix: Ip4Prefix {
            address: [10, 70, 0, 1],
            len: 24,
        },
        host_ip6_prefix_set: true,
        host_ip6_prefix: Ip6Prefix {
            address: "fd00:70::1".parse::<std::net::Ipv6Addr>().unwrap().octets(),
            len: 64,
        },
        ..tap_in(&ns.0, "simtap0")
    };
    let made = client.call(&request).await;
    assert_eq!(made.retval, 0);
    let link = ns.ip(&["link", "show", "simtap0"]).expect("made");
    for wanted in ["mtu 1400", "02:aa:00:00:00:01", "LOWER_UP"] {
        assert!(link.contains(wanted), "{wanted} in {link}");
    }
    let addresses = ns.ip(&["addr", "show", "simtap0"]).unwrap();
    for wanted in ["10.70.0.1/24", "fd00:70::1/64"] {
        assert!(addresses.contains(wanted), "{wanted} in {addresses}");
    }

    // The same name in the same namespace, named by path this time: the device cannot be
    // made (TUNSETIFF fails in VPP).
    let again = client.call(&tap_in(&ns.path(), "simtap0")).await;
    assert_eq!((again.retval, again.sw_if_index), (-13, u32::MAX));
    let nowhere = client
        .call(&tap_in("/run/netns/nsm-sim-none", "simtap1"))
        .await;
    assert_eq!(nowhere.retval, -12);
    assert_eq!(sim.interfaces().len(), 2, "local0 and the one tap");

    let deleted = client
        .call(&TapDeleteV2 {
            sw_if_index: made.sw_if_index,
        })
        .await;
    assert_eq!(deleted.retval, 0);
    assert_eq!(ns.ip(&["link", "show", "simtap0"]), None);

    // A restart takes the Linux sides with it.
    let second = client.call(&tap_in(&ns.path(), "simtap2")).await;
    assert_eq!(second.retval, 0);
    assert!(ns.ip(&["link", "show", "simtap2"]).is_some());
    sim.restart();
    assert_eq!(ns.ip(&["link", "show", "simtap2"]), None);
}

#[tokio::test]
async fn without_linux_taps_a_tap_touches_no_namespace() {
    let Some(ns) = Namespace::make_or_skip("the linux_taps test") else {
        return;
    };
    let sim = start();
    let mut client = Raw::connect(&sim).await;
    assert_eq!(client.call(&tap_in(&ns.0, "simtap0")).await.retval, 0);
    assert_eq!(ns.ip(&["link", "show", "simtap0"]), None);
    // Nor does it look for the namespace.
    let made = client
        .call(&tap_in("/run/netns/nsm-sim-none", "simtap1"))
        .await;
    assert_eq!(made.retval, 0);
}
