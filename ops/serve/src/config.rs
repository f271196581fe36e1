//! `nsm serve`'s configuration: flags, then environment variables (`NSM_*`), then a TOML
//! file (`--config`), then defaults — the first that sets a value wins. Everything is
//! checked before anything starts; a bad value exits with a message naming it.
//!
//! The identity (an SVID's three files, or `--insecure`) is one setting: when flags or
//! environment give any part of it, the file's identity keys are not read, so a flag never
//! mixes with half an identity from the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use nsm_dataplane::vpp::AfPacketRxMode;
use nsm_domain::dataplane::DATAPLANE_STREAM_PREFIX;
use nsm_domain::vwire::MAX_LIFETIME;
use nsm_log::store::MAX_STREAM_ID_LEN;
use nsm_proto::transport::{IdentityArgs, IdentityChoice, PeerUrl};
use serde::Deserialize;

/// Where the node listens unless told otherwise (NSM's nsmgr socket is
/// `unix:///var/lib/networkservicemesh/nsm.io.sock`; nsm-rs keeps its own under /run).
pub(crate) const DEFAULT_LISTEN: &str = "unix:///run/nsm/nsm.sock";
/// Where the event log lives unless told otherwise.
pub(crate) use nsm_log::DEFAULT_DB;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to serve NSM's API on: unix:///path or tcp://host:port (repeatable).
    /// Default: unix:///run/nsm/nsm.sock.
    #[arg(long, env = "NSM_LISTEN", value_delimiter = ',')]
    listen: Vec<String>,
    /// The event log (SQLite; created if missing). Default: /var/lib/nsm/events.db.
    #[arg(long, env = "NSM_DB")]
    db: Option<PathBuf>,
    /// This node's name: the name of its path segments. Default: the host name.
    #[arg(long, env = "NSM_NODE")]
    node: Option<String>,
    /// Data plane: `kernel` (veth pairs through netlink; needs CAP_NET_ADMIN and
    /// CAP_SYS_ADMIN), `vpp` (fd.io VPP over its binary API, see --vpp-api-socket) or
    /// `dry-run` (records what it would plumb, plumbs nothing). Default: kernel when the
    /// process has the capabilities, else dry-run.
    #[arg(long, env = "NSM_DATAPLANE")]
    dataplane: Option<String>,
    /// VPP's binary-API socket (`socksvr { socket-name ... }` in VPP's startup.conf), for
    /// --dataplane vpp. Default: /run/vpp/api.sock.
    #[arg(long, env = "NSM_VPP_API_SOCKET")]
    vpp_api_socket: Option<PathBuf>,
    /// How VPP makes a KERNEL end: `tap` (VPP creates it in the workload's namespace; needs
    /// /dev/vhost-net), `af-packet` (a veth pair, VPP attaches to one end; works on every
    /// kernel; needs CAP_NET_ADMIN and CAP_SYS_ADMIN) or `auto` (tap where vhost-net exists).
    /// Default: auto.
    #[arg(long, env = "NSM_VPP_KERNEL_INTERFACE")]
    vpp_kernel_interface: Option<String>,
    /// Where VPP's memif sockets go when a MEMIF mechanism names none. Default: /run/vpp/nsm.
    #[arg(long, env = "NSM_VPP_MEMIF_DIR")]
    vpp_memif_dir: Option<PathBuf>,
    /// Bytes per frame of a veth + af_packet end's rings: the largest frame it carries
    /// whole, plus 64. A multiple of 16 from 2048 to 67584. Default: 10240 (jumbo frames).
    #[arg(long, env = "NSM_VPP_AF_PACKET_FRAME_SIZE")]
    vpp_af_packet_frame_size: Option<u32>,
    /// Frames in each ring of a veth + af_packet end (1-8192; frame size × frames a
    /// multiple of 4096). An end locks 2 × frame size × frames of kernel memory. Default: 32.
    #[arg(long, env = "NSM_VPP_AF_PACKET_FRAMES")]
    vpp_af_packet_frames: Option<u32>,
    /// How VPP reads a veth + af_packet end's rings: `polling`, `interrupt` or `adaptive`.
    /// VPP 26.06 stops answering its API once a few dozen af_packet rings hold frames in
    /// interrupt or adaptive mode (measured with `nsm bench vpp-capacity`); polling costs
    /// VPP's main thread a core while any af_packet end exists. Default: polling.
    #[arg(long, env = "NSM_VPP_AF_PACKET_RX_MODE")]
    vpp_af_packet_rx_mode: Option<String>,
    /// vWires one VPP holds at most; more Requests are refused. VPP aborts when its stats
    /// segment is full (about 6,000 interfaces with the default `statseg { size 32m }`):
    /// raise both together. Default: 2000.
    #[arg(long, env = "NSM_VPP_MAX_VWIRES")]
    vpp_max_vwires: Option<u32>,
    /// Probe every vWire's datapath this often (ICMP from the client's end); a dead one is
    /// re-plumbed. `off` disables. Default: off.
    #[arg(long, env = "NSM_LIVENESS_INTERVAL")]
    liveness_interval: Option<String>,
    /// How long a probe waits for a reply (4 echoes spread over it). Default: 1s.
    #[arg(long, env = "NSM_LIVENESS_TIMEOUT", value_parser = humantime::parse_duration)]
    liveness_timeout: Option<Duration>,
    /// Longest a vWire lives without a refresh (a client may ask for less). Default: 10m.
    #[arg(long, env = "NSM_LIFETIME", value_parser = humantime::parse_duration)]
    lifetime: Option<Duration>,
    /// An endpoint registration's lifetime when it asks for none. Default: 1m.
    #[arg(long, env = "NSM_ENDPOINT_LIFETIME", value_parser = humantime::parse_duration)]
    endpoint_lifetime: Option<Duration>,
    /// How long an endpoint has to answer a forwarded Request or Close. Default: 15s.
    #[arg(long, env = "NSM_REQUEST_TIMEOUT", value_parser = humantime::parse_duration)]
    request_timeout: Option<Duration>,
    /// Threads the vWire actors run on (0: on the main actor thread). Default: one per core.
    #[arg(long, env = "NSM_ACTOR_THREADS")]
    actor_threads: Option<usize>,
    /// Where to serve /metrics (Prometheus), /live and /ready over HTTP: tcp://host:port,
    /// or `off`. Default: off.
    #[arg(long, env = "NSM_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Export trace spans over OTLP/gRPC to this collector (http://host:4317), or `off`.
    /// Also read from OTEL_EXPORTER_OTLP_ENDPOINT. Default: off.
    #[arg(long, env = "NSM_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// A TOML file with any of the settings above (keys as the flags, with `_` for `-`).
    #[arg(long, env = "NSM_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    identity: IdentityArgs,
}

/// The `--config` file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<Vec<String>>,
    db: Option<PathBuf>,
    node: Option<String>,
    dataplane: Option<String>,
    vpp_api_socket: Option<PathBuf>,
    vpp_kernel_interface: Option<String>,
    vpp_memif_dir: Option<PathBuf>,
    vpp_af_packet_frame_size: Option<u32>,
    vpp_af_packet_frames: Option<u32>,
    vpp_af_packet_rx_mode: Option<String>,
    vpp_max_vwires: Option<u32>,
    liveness_interval: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    liveness_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    lifetime: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    endpoint_lifetime: Option<Duration>,
    #[serde(default, with = "humantime_serde_opt")]
    request_timeout: Option<Duration>,
    actor_threads: Option<usize>,
    admin_listen: Option<String>,
    otlp_endpoint: Option<String>,
    svid_cert: Option<PathBuf>,
    svid_key: Option<PathBuf>,
    trust_bundle: Option<PathBuf>,
    insecure: Option<bool>,
}

/// Durations in the file are written as in flags: `"10m"`, `"90s"`.
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Which data plane plumbs the vWires.
#[derive(Debug, Clone)]
pub(crate) enum DataplaneKind {
    DryRun,
    Kernel,
    Vpp(nsm_dataplane::vpp::VppConfig),
}

/// The node's settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) listen: Vec<PeerUrl>,
    pub(crate) db: PathBuf,
    pub(crate) node: String,
    pub(crate) dataplane: DataplaneKind,
    /// Why the data plane is what it is when nobody chose it (for the log).
    pub(crate) dataplane_defaulted: Option<String>,
    pub(crate) liveness: Option<nsm_runtime::LivenessConfig>,
    pub(crate) lifetime: Duration,
    pub(crate) endpoint_lifetime: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) actor_threads: usize,
    /// Where /metrics, /live and /ready are served; `None`: nowhere.
    pub(crate) admin_listen: Option<PeerUrl>,
    /// The OTLP/gRPC collector spans are exported to; `None`: no export.
    pub(crate) otlp_endpoint: Option<String>,
    /// Mutual TLS with an SVID from files, or `--insecure`.
    pub(crate) identity: IdentityChoice,
}

impl ServeArgs {
    /// Merges flags, environment, file and defaults, and checks the result.
    pub(crate) fn resolve(self) -> anyhow::Result<ServeConfig> {
        let mut file = match &self.config {
            Some(path) => read_file(path)?,
            None => ConfigFile::default(),
        };
        let identity_in_file = IdentityArgs {
            svid_cert: file.svid_cert.take(),
            svid_key: file.svid_key.take(),
            trust_bundle: file.trust_bundle.take(),
            insecure: file.insecure.take().unwrap_or(false),
        };
        let listen = if self.listen.is_empty() {
            file.listen
                .unwrap_or_else(|| vec![DEFAULT_LISTEN.to_owned()])
        } else {
            self.listen
        };
        let listen = listen
            .iter()
            .map(|url| url.parse::<PeerUrl>().with_context(|| "invalid --listen"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if listen.is_empty() {
            bail!("--listen: give at least one address");
        }
        let node = self.node.or(file.node).unwrap_or_else(host_name);
        check_node_name(&node)?;
        let (mut dataplane, dataplane_defaulted) =
            choose_dataplane(self.dataplane.or(file.dataplane))?;
        let vpp_settings = [
            self.vpp_api_socket.is_some() || file.vpp_api_socket.is_some(),
            self.vpp_kernel_interface.is_some() || file.vpp_kernel_interface.is_some(),
            self.vpp_memif_dir.is_some() || file.vpp_memif_dir.is_some(),
            self.vpp_af_packet_frame_size.is_some() || file.vpp_af_packet_frame_size.is_some(),
            self.vpp_af_packet_frames.is_some() || file.vpp_af_packet_frames.is_some(),
            self.vpp_af_packet_rx_mode.is_some() || file.vpp_af_packet_rx_mode.is_some(),
            self.vpp_max_vwires.is_some() || file.vpp_max_vwires.is_some(),
        ];
        if let DataplaneKind::Vpp(vpp) = &mut dataplane {
            if let Some(socket) = self.vpp_api_socket.or(file.vpp_api_socket) {
                vpp.socket = socket;
            }
            if let Some(mode) = self.vpp_kernel_interface.or(file.vpp_kernel_interface) {
                vpp.kernel_interface = kernel_interface(&mode)?;
            }
            if let Some(dir) = self.vpp_memif_dir.or(file.vpp_memif_dir) {
                vpp.memif_dir = dir;
            }
            let ring = &mut vpp.af_packet_ring;
            if let Some(size) = self
                .vpp_af_packet_frame_size
                .or(file.vpp_af_packet_frame_size)
            {
                ring.frame_size = size;
            }
            if let Some(frames) = self.vpp_af_packet_frames.or(file.vpp_af_packet_frames) {
                ring.frames = frames;
            }
            ring.check().map_err(|e| {
                anyhow::anyhow!("--vpp-af-packet-frame-size / --vpp-af-packet-frames: {e}")
            })?;
            if let Some(mode) = self.vpp_af_packet_rx_mode.or(file.vpp_af_packet_rx_mode) {
                vpp.af_packet_rx_mode = AfPacketRxMode::parse(&mode).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--vpp-af-packet-rx-mode {}: expected polling, interrupt or adaptive",
                        nsm_domain::quote::quote(&mode)
                    )
                })?;
            }
            if let Some(max) = self.vpp_max_vwires.or(file.vpp_max_vwires) {
                if max == 0 {
                    bail!("--vpp-max-vwires 0: must be at least 1");
                }
                vpp.max_vwires = max;
            }
        } else if vpp_settings.contains(&true) {
            bail!(
                "--vpp-api-socket, --vpp-kernel-interface, --vpp-memif-dir, --vpp-af-packet-frame-size, --vpp-af-packet-frames, --vpp-af-packet-rx-mode and --vpp-max-vwires need --dataplane vpp"
            );
        }
        let liveness = liveness(
            self.liveness_interval.or(file.liveness_interval),
            self.liveness_timeout.or(file.liveness_timeout),
        )?;
        let lifetime = self
            .lifetime
            .or(file.lifetime)
            .unwrap_or(Duration::from_secs(600));
        check_duration("--lifetime", lifetime, MAX_LIFETIME)?;
        let endpoint_lifetime = self
            .endpoint_lifetime
            .or(file.endpoint_lifetime)
            .unwrap_or(Duration::from_secs(60));
        check_duration("--endpoint-lifetime", endpoint_lifetime, MAX_LIFETIME)?;
        let request_timeout = self
            .request_timeout
            .or(file.request_timeout)
            .unwrap_or(nsm_runtime::DEFAULT_REQUEST_TIMEOUT);
        check_duration(
            "--request-timeout",
            request_timeout,
            Duration::from_secs(300),
        )?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let actor_threads = self.actor_threads.or(file.actor_threads).unwrap_or(cores);
        if actor_threads > 1024 {
            bail!("--actor-threads {actor_threads}: at most 1024");
        }
        let admin_listen = admin_listen(self.admin_listen.or(file.admin_listen))?;
        let otlp_endpoint = otlp_endpoint(
            self.otlp_endpoint
                .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
                .filter(|e| !e.is_empty())
                .or(file.otlp_endpoint),
        )?;
        let identity = identity(self.identity, identity_in_file)?;
        Ok(ServeConfig {
            identity,
            admin_listen,
            otlp_endpoint,
            actor_threads,
            listen,
            db: self.db.or(file.db).unwrap_or_else(|| DEFAULT_DB.into()),
            node,
            dataplane,
            dataplane_defaulted,
            liveness,
            lifetime,
            endpoint_lifetime,
            request_timeout,
        })
    }
}

/// The identity from flags and environment if they give any part of it, else from the file.
fn identity(given: IdentityArgs, in_file: IdentityArgs) -> anyhow::Result<IdentityChoice> {
    let from_flags = given.insecure
        || given.svid_cert.is_some()
        || given.svid_key.is_some()
        || given.trust_bundle.is_some();
    let args = if from_flags { given } else { in_file };
    args.choice().map_err(|e| {
        anyhow::anyhow!(
            "{e} (in a --config file: svid_cert, svid_key and trust_bundle, or insecure = true)"
        )
    })
}

/// The data plane asked for, checked; or, when none is, kernel if the capabilities are
/// there and dry-run (saying why) if not.
fn choose_dataplane(asked: Option<String>) -> anyhow::Result<(DataplaneKind, Option<String>)> {
    let missing = nsm_dataplane::kernel::missing_capabilities();
    let Some(asked) = asked else {
        if missing.is_empty() {
            return Ok((DataplaneKind::Kernel, None));
        }
        let why = format!(
            "no --dataplane given and this process lacks {} for the kernel data plane",
            missing.join(" and ")
        );
        return Ok((DataplaneKind::DryRun, Some(why)));
    };
    match asked.as_str() {
        "dry-run" => Ok((DataplaneKind::DryRun, None)),
        "kernel" if missing.is_empty() => Ok((DataplaneKind::Kernel, None)),
        "kernel" => bail!(
            "--dataplane kernel needs CAP_NET_ADMIN and CAP_SYS_ADMIN; this process lacks {} (run it as root, grant the capabilities, or use --dataplane dry-run)",
            missing.join(" and ")
        ),
        "vpp" => Ok((
            DataplaneKind::Vpp(nsm_dataplane::vpp::VppConfig::new(
                nsm_vpp::client::Config::DEFAULT_SOCKET,
            )),
            None,
        )),
        other => bail!("--dataplane {other:?}: unknown data plane; known: kernel, vpp, dry-run"),
    }
}

/// The admin listener's address: `tcp://host:port` (port 0 picks a free one), or off.
fn admin_listen(text: Option<String>) -> anyhow::Result<Option<PeerUrl>> {
    let text = match text.as_deref() {
        None | Some("off") => return Ok(None),
        Some(text) => text,
    };
    let url = text
        .parse::<PeerUrl>()
        .with_context(|| format!("invalid --admin-listen {text:?}: tcp://host:port or off"))?;
    match url {
        PeerUrl::Tcp { .. } => Ok(Some(url)),
        PeerUrl::Unix(_) => bail!(
            "--admin-listen {text:?}: must be tcp://host:port (Prometheus and probes speak TCP) or off"
        ),
    }
}

/// The OTLP collector's URL: `http://host:port` (the exporter has no TLS), or off.
fn otlp_endpoint(text: Option<String>) -> anyhow::Result<Option<String>> {
    let text = match text.as_deref() {
        None | Some("off") => return Ok(None),
        Some(text) => text,
    };
    let refuse = |why: &str| anyhow::anyhow!("--otlp-endpoint {text:?}: {why}");
    let uri: axum::http::Uri = text
        .parse()
        .map_err(|e| refuse(&format!("not a URL ({e}); e.g. http://127.0.0.1:4317")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(refuse(
                "https is not supported by this build (no TLS in its OTLP exporter); use http:// to a local collector",
            ));
        }
        _ => {
            return Err(refuse(
                "must be http://host:port, e.g. http://127.0.0.1:4317",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(refuse("names no host"));
    }
    if uri.port_u16().is_none() {
        return Err(refuse("names no port (OTLP/gRPC's is 4317)"));
    }
    Ok(Some(text.to_owned()))
}

fn kernel_interface(text: &str) -> anyhow::Result<nsm_dataplane::vpp::KernelInterface> {
    use nsm_dataplane::vpp::KernelInterface;
    Ok(match text {
        "auto" => KernelInterface::Auto,
        "tap" => KernelInterface::Tap,
        "af-packet" => KernelInterface::AfPacket,
        other => bail!("--vpp-kernel-interface {other:?}: one of auto, tap, af-packet"),
    })
}

/// The liveness probe's settings: off unless an interval is given.
fn liveness(
    interval: Option<String>,
    timeout: Option<Duration>,
) -> anyhow::Result<Option<nsm_runtime::LivenessConfig>> {
    let interval = match interval.as_deref() {
        None | Some("off") => return Ok(None),
        Some(text) => humantime::parse_duration(text).with_context(|| {
            format!("--liveness-interval {text:?}: a duration (1s, 500ms) or off")
        })?,
    };
    check_duration("--liveness-interval", interval, Duration::from_secs(3600))?;
    let timeout = timeout.unwrap_or(Duration::from_secs(1));
    check_duration("--liveness-timeout", timeout, Duration::from_secs(60))?;
    Ok(Some(nsm_runtime::LivenessConfig { interval, timeout }))
}

fn read_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid --config {}", path.display()))
}

fn check_duration(flag: &str, value: Duration, max: Duration) -> anyhow::Result<()> {
    if value.is_zero() || value > max {
        bail!(
            "{flag} {}: must be more than 0 and at most {}",
            humantime::format_duration(value),
            humantime::format_duration(max)
        );
    }
    Ok(())
}

/// A node name goes into every path segment and log line, and into the stream id of the
/// node's data-plane record (`dataplane-<node>`): keep it short enough for that, and printable.
fn check_node_name(node: &str) -> anyhow::Result<()> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let max = MAX_STREAM_ID_LEN - DATAPLANE_STREAM_PREFIX.len();
    if node.is_empty() || node.len() > max || !node.chars().all(ok) {
        bail!("--node {node:?}: must be 1-{max} characters of [A-Za-z0-9._-]");
    }
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "nsm-node".to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use nsm_identity::SvidFiles;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    /// Resolves `args` as given.
    fn resolve_exactly(args: &[&str]) -> anyhow::Result<ServeConfig> {
        let cli = Cli::try_parse_from([&["nsm"], args].concat()).map_err(anyhow::Error::from)?;
        cli.serve.resolve()
    }

    /// Resolves `args` with `--insecure` (these tests are not about the identity).
    fn resolve(args: &[&str]) -> anyhow::Result<ServeConfig> {
        resolve_exactly(&[args, &["--insecure"]].concat())
    }

    #[test]
    fn the_identity_comes_from_flags_or_else_from_the_file_and_is_required() {
        let svid = SvidFiles {
            cert: "/etc/nsm/svid.pem".into(),
            key: "/etc/nsm/svid.key".into(),
            bundle: "/etc/nsm/bundle.pem".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nsm.toml");
        std::fs::write(
            &file,
            "svid_cert = \"/etc/nsm/svid.pem\"\nsvid_key = \"/etc/nsm/svid.key\"\ntrust_bundle = \"/etc/nsm/bundle.pem\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let from_file = resolve_exactly(&["--config", path]).unwrap();
        assert_eq!(from_file.identity, IdentityChoice::Files(svid));
        // A flag replaces the file's identity as a whole rather than mixing with it.
        let flagged = resolve_exactly(&["--config", path, "--insecure"]).unwrap();
        assert_eq!(flagged.identity, IdentityChoice::Insecure);
        let insecure_file = dir.path().join("dev.toml");
        std::fs::write(&insecure_file, "insecure = true\n").unwrap();
        let dev = resolve_exactly(&["--config", insecure_file.to_str().unwrap()]).unwrap();
        assert_eq!(dev.identity, IdentityChoice::Insecure);

        let neither = format!("{:#}", resolve_exactly(&["--node", "n1"]).unwrap_err());
        for named in ["--svid-cert", "--insecure", "svid_cert", "insecure = true"] {
            assert!(neither.contains(named), "{named}: {neither}");
        }
        let both = format!(
            "{:#}",
            resolve_exactly(&[
                "--svid-cert",
                "c",
                "--svid-key",
                "k",
                "--trust-bundle",
                "b",
                "--insecure"
            ])
            .unwrap_err()
        );
        assert!(both.contains("both given"), "{both}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = resolve(&["--node", "n1"]).unwrap();
        assert_eq!(config.listen, vec![DEFAULT_LISTEN.parse().unwrap()]);
        assert_eq!(config.db, PathBuf::from(DEFAULT_DB));
        let kernel = nsm_dataplane::kernel::missing_capabilities().is_empty();
        match config.dataplane {
            DataplaneKind::Kernel => assert!(kernel),
            DataplaneKind::DryRun => assert!(!kernel),
            other => panic!("default data plane {other:?}"),
        }
        assert_eq!(config.liveness, None);
        assert_eq!(config.lifetime, Duration::from_secs(600));
        assert_eq!(config.endpoint_lifetime, Duration::from_secs(60));
        assert_eq!(config.admin_listen, None);
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
            assert_eq!(config.otlp_endpoint, None);
        }
    }

    #[test]
    fn admin_and_otlp_settings_are_taken_from_flags_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nsm.toml");
        std::fs::write(
            &file,
            "admin_listen = \"tcp://0.0.0.0:9464\"\notlp_endpoint = \"http://collector:4317\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let config = resolve(&["--config", path]).unwrap();
        assert_eq!(
            config.admin_listen,
            Some("tcp://0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://collector:4317")
        );
        let config = resolve(&["--config", path, "--admin-listen", "off"]).unwrap();
        assert_eq!(config.admin_listen, None);
        let config = resolve(&["--config", path, "--otlp-endpoint", "off"]).unwrap();
        assert_eq!(config.otlp_endpoint, None);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nsm.toml");
        std::fs::write(
            &file,
            "node = \"from-file\"\nlifetime = \"90s\"\nlisten = [\"tcp://127.0.0.1:5001\"]\n",
        )
        .unwrap();
        let config = resolve(&["--config", file.to_str().unwrap(), "--node", "from-flag"]).unwrap();
        assert_eq!(config.node, "from-flag");
        assert_eq!(config.lifetime, Duration::from_secs(90));
        assert_eq!(config.listen, vec!["tcp://127.0.0.1:5001".parse().unwrap()]);
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_named() {
        for (args, expected) in [
            (&["--dataplane", "ebpf"][..], "unknown data plane"),
            (&["--vpp-api-socket", "/x"][..], "need --dataplane vpp"),
            (
                &["--dataplane", "vpp", "--vpp-kernel-interface", "veth"][..],
                "--vpp-kernel-interface",
            ),
            (&["--liveness-interval", "often"][..], "--liveness-interval"),
            (
                &["--liveness-interval", "1s", "--liveness-timeout", "0s"][..],
                "--liveness-timeout",
            ),
            (&["--listen", "localhost:1"][..], "invalid --listen"),
            (&["--node", "a b"][..], "--node"),
            (&["--lifetime", "0s"][..], "--lifetime"),
            (&["--lifetime", "3days"][..], "--lifetime"),
            (&["--admin-listen", "9464"][..], "--admin-listen"),
            (
                &["--admin-listen", "unix:///tmp/a.sock"][..],
                "--admin-listen",
            ),
            (
                &["--otlp-endpoint", "collector:4317"][..],
                "--otlp-endpoint",
            ),
            (
                &["--otlp-endpoint", "https://c:4317"][..],
                "--otlp-endpoint",
            ),
        ] {
            let error = format!("{:#}", resolve(args).unwrap_err());
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn vpp_settings_are_taken_with_dataplane_vpp() {
        let config = resolve(&[
            "--dataplane",
            "vpp",
            "--vpp-api-socket",
            "/tmp/vpp.sock",
            "--vpp-kernel-interface",
            "af-packet",
        ])
        .unwrap();
        let DataplaneKind::Vpp(vpp) = config.dataplane else {
            panic!("{:?}", config.dataplane);
        };
        assert_eq!(vpp.socket, PathBuf::from("/tmp/vpp.sock"));
        assert_eq!(
            vpp.kernel_interface,
            nsm_dataplane::vpp::KernelInterface::AfPacket
        );
        let default = resolve(&["--dataplane", "vpp"]).unwrap();
        let DataplaneKind::Vpp(vpp) = default.dataplane else {
            panic!("{:?}", default.dataplane);
        };
        assert_eq!(vpp.socket, PathBuf::from("/run/vpp/api.sock"));
        assert_eq!(
            vpp.kernel_interface,
            nsm_dataplane::vpp::KernelInterface::Auto
        );
    }

    #[test]
    fn vpp_capacity_settings_come_from_flags_or_the_file_and_are_checked() {
        use nsm_dataplane::vpp::{AfPacketRing, DEFAULT_MAX_VWIRES};
        let vpp_of = |config: ServeConfig| match config.dataplane {
            DataplaneKind::Vpp(vpp) => vpp,
            other => panic!("{other:?}"),
        };
        let default = vpp_of(resolve(&["--dataplane", "vpp"]).unwrap());
        assert_eq!(default.af_packet_ring, AfPacketRing::default());
        assert_eq!(default.max_vwires, DEFAULT_MAX_VWIRES);
        assert_eq!(default.af_packet_rx_mode, AfPacketRxMode::Polling);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nsm.toml");
        std::fs::write(
            &file,
            "dataplane = \"vpp\"\nvpp_af_packet_frame_size = 2048\nvpp_af_packet_frames = 64\nvpp_max_vwires = 5000\nvpp_af_packet_rx_mode = \"adaptive\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let from_file = vpp_of(resolve(&["--config", path]).unwrap());
        let ring = AfPacketRing {
            frame_size: 2048,
            frames: 64,
        };
        assert_eq!(
            (from_file.af_packet_ring, from_file.max_vwires),
            (ring, 5000)
        );
        assert_eq!(from_file.af_packet_rx_mode, AfPacketRxMode::Adaptive);
        let flagged = resolve(&[
            "--config",
            path,
            "--vpp-af-packet-frames",
            "128",
            "--vpp-af-packet-rx-mode",
            "interrupt",
        ])
        .unwrap();
        let flagged = vpp_of(flagged);
        assert_eq!(flagged.af_packet_ring.frames, 128);
        assert_eq!(flagged.af_packet_rx_mode, AfPacketRxMode::Interrupt);

        for (args, expected) in [
            (
                &["--vpp-af-packet-frame-size", "2050"][..],
                "af_packet frame size 2050",
            ),
            (&["--vpp-af-packet-frames", "0"][..], "af_packet frames 0"),
            (&["--vpp-af-packet-frames", "3"][..], "multiple of 4096"),
            (&["--vpp-max-vwires", "0"][..], "--vpp-max-vwires 0"),
            (
                &["--vpp-af-packet-rx-mode", "poll"][..],
                "expected polling, interrupt or adaptive",
            ),
        ] {
            let args = [&["--dataplane", "vpp"][..], args].concat();
            let error = format!("{:#}", resolve(&args).unwrap_err());
            assert!(error.contains(expected), "{args:?}: {error}");
        }
        let error = format!("{:#}", resolve(&["--vpp-max-vwires", "10"]).unwrap_err());
        assert!(error.contains("need --dataplane vpp"), "{error}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nsm.toml");
        std::fs::write(&file, "lifetim = \"90s\"\n").unwrap();
        let error = format!(
            "{:#}",
            resolve(&["--config", file.to_str().unwrap()]).unwrap_err()
        );
        assert!(error.contains("lifetim"), "{error}");
    }
}
