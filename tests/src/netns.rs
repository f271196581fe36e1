//! Network namespaces for the data-plane tests, made and inspected with iproute2 and
//! iputils-ping — tools independent of the code under test, so a test's view of a namespace
//! is the kernel's, not nsm-rs's.
//!
//! Each test makes its own namespaces with unique names and removes them when the
//! [`TestNet`] is dropped. Without root the tests skip, saying so; with `CI=true` they fail.

use std::process::{Command, Output};

/// Whether the data-plane tests can run here; panics under CI if they cannot.
pub fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let tools = ["ip", "ping"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let why = if root {
        "iproute2 (ip) or iputils-ping (ping) is not installed"
    } else {
        "the data-plane tests need root (network namespaces)"
    };
    nsm_test_support::available_or_skip(root && tools, why)
}

/// A link as `ip -j -s link show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub alias: Option<String>,
    pub up: bool,
    pub rx_packets: u64,
    pub mtu: u64,
}

/// Namespaces of one test, removed on drop.
#[derive(Debug)]
pub struct TestNet {
    prefix: String,
    names: Vec<String>,
}

impl TestNet {
    /// Makes `<kind>-<random>-<short>` for each short name, with IPv6 off so that no
    /// router solicitation adds packets to the counters the isolation tests read.
    pub fn new(kind: &str, shorts: &[&str]) -> Self {
        let prefix = format!("{kind}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
        let mut net = Self {
            prefix,
            names: Vec::new(),
        };
        for short in shorts {
            net.add(short);
        }
        net
    }

    /// Makes one more namespace.
    pub fn add(&mut self, short: &str) {
        let name = self.name(short);
        run("ip", &["netns", "add", &name]);
        self.names.push(name.clone());
        self.exec(
            short,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
    }

    /// Removes one namespace now (its links go with it).
    pub fn remove(&mut self, short: &str) {
        let name = self.name(short);
        run("ip", &["netns", "del", &name]);
        self.names.retain(|n| *n != name);
    }

    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The namespace as NSM's kernel mechanism names it (`inodeURL`).
    pub fn url(&self, short: &str) -> String {
        format!("file:///var/run/netns/{}", self.name(short))
    }

    /// Runs a command inside the namespace; panics if it cannot be started.
    pub fn exec(&self, short: &str, command: &[&str]) -> Output {
        let name = self.name(short);
        let mut args = vec!["netns", "exec", &name];
        args.extend_from_slice(command);
        Command::new("ip")
            .args(&args)
            .output()
            .expect("run ip netns exec")
    }

    /// Its links (loopback left out).
    pub fn links(&self, short: &str) -> Vec<LinkInfo> {
        let output = Command::new("ip")
            .args(["-j", "-s", "-n", &self.name(short), "link", "show"])
            .output()
            .expect("run ip link show");
        assert!(output.status.success(), "{output:?}");
        let parsed: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("ip -j prints JSON");
        parsed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["ifname"] != "lo")
            .map(|l| LinkInfo {
                name: l["ifname"].as_str().unwrap_or_default().to_owned(),
                alias: l["ifalias"].as_str().map(str::to_owned),
                up: l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "UP")),
                rx_packets: l["stats64"]["rx"]["packets"].as_u64().unwrap_or(0),
                mtu: l["mtu"].as_u64().unwrap_or(0),
            })
            .collect()
    }

    /// The links tagged for vWire `vwire` (their alias names it).
    pub fn links_of(&self, short: &str, vwire: &str) -> Vec<LinkInfo> {
        self.links(short)
            .into_iter()
            .filter(|l| l.alias.as_deref().is_some_and(|a| a.contains(vwire)))
            .collect()
    }

    /// Whether `to` answers a ping sent out of `interface` (two tries of two echoes).
    pub fn ping(&self, short: &str, interface: &str, to: &str) -> bool {
        (0..2).any(|_| {
            self.exec(
                short,
                &[
                    "ping", "-c", "2", "-i", "0.2", "-W", "1", "-I", interface, to,
                ],
            )
            .status
            .success()
        })
    }

    /// Whether `to` answers a ping sent by the namespace's routing, whichever way it goes.
    pub fn ping_any(&self, short: &str, to: &str) -> bool {
        self.exec(short, &["ping", "-c", "2", "-i", "0.2", "-W", "1", to])
            .status
            .success()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Runs a command and panics with its output if it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The address of a prefix (`172.16.0.1/32` → `172.16.0.1`).
pub fn address(prefix: &str) -> String {
    prefix.split('/').next().unwrap_or(prefix).to_owned()
}
