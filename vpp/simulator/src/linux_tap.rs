//! The Linux side of a simulated tap, made for real when a test asks for it
//! ([`SimulatorConfig::linux_taps`](crate::SimulatorConfig::linux_taps)), so that what a
//! forwarder does to a tap's Linux side over netlink can be checked with `ip` as on a real
//! VPP, on a host without `/dev/vhost-net`.
//!
//! VPP makes the tap in `host_namespace` (a path, or a name under `/var/run/netns`), named
//! `host_if_name`, then sets its MAC, its one IPv4 and one IPv6 prefix, sets it up and sets
//! its MTU. Here the device is a veth instead of a tap (Linux makes no tap without a process
//! holding it): its peer stays in the simulator's namespace, up, so the tap side has
//! carrier as a VPP tap does. It is an Ethernet device even for a TUN request. Removing the
//! peer removes both, which happens when the tap is deleted, when VPP "restarts" and when
//! the simulator goes.
//!
//! Made with `ip` (and `nsenter` to reach into the namespace): a test helper, run inside
//! the request, never in the daemon.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nsm_vpp::api::TapCreateV3;

use super::dispatch::{NETLINK_ERROR, SYSCALL_ERROR_3};

/// Where VPP looks for a namespace given by name.
const NAMED_NETNS_DIR: &str = "/var/run/netns";

/// Peers made by this process so far, for peer names unique on the host.
static PEERS: AtomicU32 = AtomicU32::new(0);

/// A tap's Linux side; removed when dropped.
#[derive(Debug)]
pub(super) struct LinuxTap {
    /// The veth end in the simulator's namespace.
    peer: String,
}

impl LinuxTap {
    /// The Linux side `request` describes (its defaults resolved: `host_if_name` set, the
    /// MAC chosen) in the namespace at `namespace` ([`namespace_path`]), or the retval VPP
    /// answers when it cannot be made: -13 when the device cannot be made (the name is
    /// taken), -145 when configuring it fails.
    pub(super) fn create(request: &TapCreateV3, namespace: &Path) -> Result<Self, i32> {
        let name = request.host_if_name.as_str();
        let n = PEERS.fetch_add(1, Ordering::Relaxed);
        let peer = format!("vs{:x}t{n:x}", std::process::id());
        let mut add = vec![
            "link".to_owned(),
            "add".to_owned(),
            peer.clone(),
            "type".to_owned(),
            "veth".to_owned(),
            "peer".to_owned(),
            "name".to_owned(),
            name.to_owned(),
            "netns".to_owned(),
            namespace.to_string_lossy().into_owned(),
        ];
        if request.tap_flags.0 & nsm_vpp::api::TapFlags::TAP_API_FLAG_TUN.0 == 0 {
            add.extend(["address".to_owned(), format_mac(request.host_mac_addr)]);
        }
        if request.host_mtu_set {
            add.extend(["mtu".to_owned(), request.host_mtu_size.to_string()]);
        }
        run(Command::new("ip").args(&add), None).map_err(|why| {
            tracing::debug!("tap_create_if: TUNSETIFF {name}: {why}");
            SYSCALL_ERROR_3
        })?;
        // From here on, dropping it removes what was made.
        let made = Self { peer };
        let mut batch = String::new();
        // VPP adds a prefix that is set and has a length.
        let ip4 = &request.host_ip4_prefix;
        if request.host_ip4_prefix_set && ip4.len > 0 {
            let ip = Ipv4Addr::from(ip4.address);
            batch.push_str(&format!("address add {ip}/{} dev {name}\n", ip4.len));
        }
        let ip6 = &request.host_ip6_prefix;
        if request.host_ip6_prefix_set && ip6.len > 0 {
            let ip = Ipv6Addr::from(ip6.address);
            batch.push_str(&format!("address add {ip}/{} dev {name}\n", ip6.len));
        }
        batch.push_str(&format!("link set {name} up\n"));
        let configured = run(
            Command::new("nsenter")
                .arg(format!("--net={}", namespace.display()))
                .args(["ip", "-batch", "-"]),
            Some(&batch),
        )
        .and_then(|()| {
            run(
                Command::new("ip").args(["link", "set", &made.peer, "up"]),
                None,
            )
        });
        match configured {
            Ok(()) => Ok(made),
            Err(why) => {
                tracing::debug!("tap_create_if: netlink on {name}: {why}");
                Err(NETLINK_ERROR)
            }
        }
    }
}

/// Where the namespace VPP is given as `host_namespace` is (a path, or a name under
/// `/var/run/netns`), if it exists.
pub(super) fn namespace_path(namespace: &str) -> Option<PathBuf> {
    let path = if namespace.starts_with('/') {
        PathBuf::from(namespace)
    } else {
        Path::new(NAMED_NETNS_DIR).join(namespace)
    };
    if path.exists() {
        Some(path)
    } else {
        tracing::debug!("tap_create_if: clib_netns_open '{namespace}': No such file or directory");
        None
    }
}

impl Drop for LinuxTap {
    fn drop(&mut self) {
        // Gone already when its namespace went: nothing to do then.
        let _ = run(Command::new("ip").args(["link", "del", &self.peer]), None);
    }
}

/// Runs a command to its end, feeding it `input`; its stderr when it fails.
fn run(command: &mut Command, input: Option<&str>) -> Result<(), String> {
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{command:?}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}
