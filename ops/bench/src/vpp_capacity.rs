//! `nsm bench vpp-capacity`: how many vWires one VPP holds, for each kind of end, made by
//! the VPP data plane itself (`nsm_dataplane::vpp`, what `nsm serve --dataplane vpp` runs),
//! not by bare API calls, so that what is measured is what a node can hold.
//!
//! For each kind in `--kinds`, vWires are plumbed in batches of 100, `--in-flight` at a
//! time, until one is refused or `--max-vwires` are held:
//!
//! - `memif`: MEMIF to MEMIF, each end a master memif on its own socket file. With
//!   `--memif-workload-vpp-api-socket`, a second VPP plays every end's workload: after each
//!   plumb it connects a slave to both socket files (copying, not zero-copy, so that its own
//!   buffer pool is not what gets measured), and after each batch the bench waits until
//!   every end is up. An end that never comes up ends the count: VPP can make a memif it
//!   cannot then connect (out of file descriptors, `accept` fails in VPP's log only).
//!   Without a workload VPP, ends are measured unconnected (1 file descriptor each, not 5).
//! - `af-packet`: KERNEL to KERNEL by veth + af_packet, between two fresh namespaces, each
//!   end with its own interface and /32 address (10.128.0.0/9).
//!
//! `vwires_per_vpp` is how many vWires of the kind VPP held at once, connected ones for
//! memif with a workload VPP; `stopped_by` says why the count ended: the Request's error
//! as the data plane reports it, or `--max-vwires`. Then the bench checks that nothing of
//! a refused vWire was left (`half_made_left`, from the data plane's inventory), unplumbs
//! everything, and checks that nothing is left at all.
//!
//! The data plane's own ceiling (`--vpp-max-vwires`) is lifted for the bench: it measures
//! VPP. Beware: VPP aborts when its stats segment is full (about 6,000 interfaces with the
//! default `statseg { size 32m }`), so a `--max-vwires` above 3,000 may end the measured
//! VPP; run the bench against a VPP of its own. When VPP is gone or stops answering its
//! API, the count so far is reported with `vpp_answers: false` and nothing is torn down
//! (the bench's namespaces go, and the veth pairs in them with them). Needs
//! root (namespaces, veth pairs) and a real VPP: the simulator holds no resources.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use nsm_dataplane::kernel::{self, netns::Netns};
use nsm_dataplane::vpp::{
    AfPacketRing, AfPacketRxMode, KernelInterface, SOCKETFILE_PARAMETER, Vpp, VppConfig, open_files,
};
use nsm_dataplane::{Dataplane, End, PlumbRequest};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{ConnectionContext, Mechanism, MechanismClass, Plumbing, VWireId};
use nsm_vpp::api::{
    IfStatusFlags, MemifCreateV2, MemifDelete, MemifDump, MemifMode, MemifRole,
    MemifSocketFilenameAddDelV2, MemifSocketFilenameDump, SwInterfaceSetFlags,
};
use nsm_vpp::client::{Client, Config};
use nsm_vpp::codec::VarString;
use serde::Serialize;
use tokio::time::Instant;

use super::dataplane::{Namespaces, kernel_end, p2p};
use super::round3;
use nsm_inspect::output::print_report;

/// vWires plumbed between two looks at how things stand.
const BATCH: usize = 100;
/// How long the ends of a batch may take to come up once their workloads connected.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// The first af_packet end's address; each vWire takes the next two.
const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Memif,
    AfPacket,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Memif => "memif",
            Self::AfPacket => "af_packet",
        }
    }
}

#[derive(Debug, Args)]
pub struct VppCapacityArgs {
    /// The API socket of the VPP under test (a real one; best one of the bench's own).
    #[arg(long, value_name = "PATH")]
    vpp_api_socket: PathBuf,
    /// A second VPP's API socket: it connects a memif slave to every MEMIF end, so that
    /// ends are measured connected, as in use. Without it they are measured unconnected.
    #[arg(long, value_name = "PATH")]
    memif_workload_vpp_api_socket: Option<PathBuf>,
    /// Where the memif socket files go (a folder of the bench's own is made in it). Binding
    /// thousands of socket files costs VPP little on tmpfs (what /run is on production
    /// hosts) and a lot on ext4, where allocating their inodes dominates VPP's time. The
    /// default is /dev/shm (a tmpfs) when it exists.
    #[arg(long, value_name = "DIR")]
    memif_dir: Option<PathBuf>,
    /// Kinds of end to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Kind::Memif, Kind::AfPacket])]
    kinds: Vec<Kind>,
    /// Stop counting a kind at this many vWires.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_vwires: u32,
    /// Plumbs (and unplumbs) in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    in_flight: u32,
    /// Bytes per frame of an af_packet end's rings (as `nsm serve --vpp-af-packet-frame-size`).
    #[arg(long, default_value_t = AfPacketRing::default().frame_size)]
    af_packet_frame_size: u32,
    /// Frames per ring of an af_packet end (as `nsm serve --vpp-af-packet-frames`).
    #[arg(long, default_value_t = AfPacketRing::default().frames)]
    af_packet_frames: u32,
    /// How VPP reads af_packet rings (as `nsm serve --vpp-af-packet-rx-mode`): polling,
    /// interrupt or adaptive.
    #[arg(long, default_value = "polling", value_parser = parse_rx_mode)]
    af_packet_rx_mode: AfPacketRxMode,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct CapacityReport {
    /// vWires of each kind one VPP held at once.
    vwires_per_vpp: BTreeMap<&'static str, u32>,
    kinds: Vec<KindReport>,
    /// "connected" (a workload VPP connected every MEMIF end) or "none".
    memif_workloads: &'static str,
    /// The folder the memif socket files were made in.
    memif_dir: PathBuf,
    /// VPP's open-files limit, when it can be read (`/proc/<pid>/limits` of the socket's peer).
    vpp_open_files_limit: Option<u64>,
    af_packet_ring_bytes_per_end: u64,
    af_packet_rx_mode: String,
    max_vwires: u32,
    in_flight: u32,
}

#[derive(Debug, Serialize)]
struct KindReport {
    kind: &'static str,
    vwires: u32,
    /// Why the count ended: the refused Request's error, or the `--max-vwires` cap.
    stopped_by: String,
    /// Objects of refused vWires left in VPP or on the host (nothing half-made: 0); none
    /// when VPP no longer answers.
    half_made_left: Option<usize>,
    plumbed_per_s: f64,
    /// VPP's open file descriptors when the count ended, if they can be read.
    vpp_open_files: Option<u64>,
    /// Whether VPP still answered its API when the count ended (not: it aborted, or its
    /// main thread is stuck).
    vpp_answers: bool,
}

pub(crate) async fn run(args: VppCapacityArgs) -> anyhow::Result<()> {
    let missing = kernel::missing_capabilities();
    if !missing.is_empty() {
        bail!(
            "nsm bench vpp-capacity makes network namespaces and veth pairs, so it needs CAP_NET_ADMIN and CAP_SYS_ADMIN; this process lacks {}: run it as root",
            missing.join(" and ")
        );
    }
    let ring = AfPacketRing {
        frame_size: args.af_packet_frame_size,
        frames: args.af_packet_frames,
    }
    .check()?;
    let observer = connect(&args.vpp_api_socket, "nsm-bench-capacity").await?;
    let workload = match &args.memif_workload_vpp_api_socket {
        Some(socket) => Some(connect(socket, "nsm-bench-workload").await?),
        None => None,
    };
    let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let parent = args.memif_dir.clone().unwrap_or_else(default_memif_parent);
    let folder = tempfile::Builder::new()
        .prefix("nsm-bench-capacity-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "cannot make a folder for the memif sockets in {}",
                parent.display()
            )
        })?;
    let mut spaces = Namespaces::new(&tag);
    let mut kinds = Vec::new();
    for &kind in &args.kinds {
        let bench = KindBench {
            kind,
            node: format!("nsmbench-cap-{tag}-{}", kind.as_str()),
            args: &args,
            ring,
            memif_dir: folder.path().to_owned(),
            observer: &observer,
            workload: workload.as_ref(),
        };
        let measured = tokio::select! {
            report = bench.run(&mut spaces) => report?,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        };
        let answers = measured.vpp_answers;
        kinds.push(measured);
        if !answers {
            break;
        }
    }
    drop(spaces);
    let report = CapacityReport {
        vwires_per_vpp: kinds.iter().map(|k| (k.kind, k.vwires)).collect(),
        kinds,
        memif_workloads: match workload {
            Some(_) => "connected",
            None => "none",
        },
        memif_dir: folder.path().to_owned(),
        vpp_open_files_limit: observer.peer_pid().and_then(open_files).map(|f| f.limit),
        af_packet_ring_bytes_per_end: ring.bytes_per_end(),
        af_packet_rx_mode: format!("{:?}", args.af_packet_rx_mode).to_lowercase(),
        max_vwires: args.max_vwires,
        in_flight: args.in_flight,
    };
    print_report(&report, args.json)
}

fn parse_rx_mode(text: &str) -> Result<AfPacketRxMode, String> {
    AfPacketRxMode::parse(text).ok_or_else(|| "expected polling, interrupt or adaptive".into())
}

/// /dev/shm when there is one (a tmpfs, like /run on production hosts), else the temp folder.
fn default_memif_parent() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    match shm.is_dir() {
        true => shm,
        false => std::env::temp_dir(),
    }
}

async fn connect(socket: &std::path::Path, name: &str) -> anyhow::Result<Client> {
    let config = Config {
        name: name.to_owned(),
        ..Config::new(socket)
    };
    Client::connect(config)
        .await
        .with_context(|| format!("cannot open an API session on {}", socket.display()))
}

/// One kind's measurement.
struct KindBench<'a> {
    kind: Kind,
    /// This kind's own node name, so that its tags and host veths are its alone.
    node: String,
    args: &'a VppCapacityArgs,
    ring: AfPacketRing,
    memif_dir: PathBuf,
    /// The bench's own session with the VPP under test, for reading what it holds.
    observer: &'a Client,
    workload: Option<&'a Client>,
}

/// A vWire the data plane plumbed, and the workload slaves connected to its ends.
struct Plumbed {
    request: PlumbRequest,
    slaves: Vec<Slave>,
}

/// A memif slave in the workload VPP.
struct Slave {
    sw_if_index: u32,
    socket_id: u32,
}

impl KindBench<'_> {
    async fn run(&self, spaces: &mut Namespaces) -> anyhow::Result<KindReport> {
        let config = VppConfig {
            kernel_interface: KernelInterface::AfPacket,
            memif_dir: self.memif_dir.clone(),
            af_packet_ring: self.ring,
            af_packet_rx_mode: self.args.af_packet_rx_mode,
            max_vwires: u32::MAX,
            ..VppConfig::new(&self.args.vpp_api_socket)
        };
        let vpp = Vpp::start(&self.node, config).await.with_context(|| {
            format!("cannot start the VPP data plane for {}", self.kind.as_str())
        })?;
        let namespaces = match self.kind {
            Kind::AfPacket => Some(spaces.make_pair("a").await?),
            Kind::Memif => None,
        };
        let max = self.args.max_vwires as usize;
        let mut held: Vec<Plumbed> = Vec::new();
        let mut stopped_by = None;
        let mut plumbing = Duration::ZERO;
        while held.len() < max && stopped_by.is_none() {
            let batch = held.len()..(held.len() + BATCH).min(max);
            let began = Instant::now();
            let outcomes: Vec<anyhow::Result<Plumbed>> =
                futures::stream::iter(batch.map(|i| self.plumb_one(&vpp, namespaces.as_ref(), i)))
                    .buffer_unordered(self.args.in_flight as usize)
                    .collect()
                    .await;
            plumbing += began.elapsed();
            for outcome in outcomes {
                match outcome {
                    Ok(plumbed) => held.push(plumbed),
                    Err(error) => {
                        stopped_by.get_or_insert(format!("{error:#}"));
                    }
                }
            }
            if self.measures_connected() && !self.observer.is_closed() {
                let down = self.wait_connected(&held).await?;
                if down > 0 && stopped_by.is_none() {
                    stopped_by = Some(format!(
                        "{down} memif end(s) never came up after their workload connected \
                         (VPP's log says why; out of file descriptors, VPP logs \
                         `accept: Too many open files`)"
                    ));
                }
            }
        }
        let vpp_open_files = self
            .observer
            .peer_pid()
            .and_then(open_files)
            .map(|f| f.open);
        let mut stopped_by = stopped_by.unwrap_or_else(|| format!("--max-vwires {max}"));
        // Every reading below fails alike when VPP is gone or stuck: the first says so.
        let reading = async {
            let down = match self.measures_connected() {
                true => self.down_vwires(&held).await?.len(),
                false => 0,
            };
            anyhow::Ok((down, self.half_made(&vpp, &held).await?))
        };
        let (vwires, half_made_left, vpp_answers) = match reading.await {
            Ok((down, half_made)) => (held.len() - down, Some(half_made), true),
            Err(error) => {
                stopped_by = format!("{stopped_by}; then VPP did not answer: {error:#}");
                (held.len(), None, false)
            }
        };
        let report = KindReport {
            kind: self.kind.as_str(),
            vwires: vwires as u32,
            stopped_by,
            half_made_left,
            plumbed_per_s: round3(held.len() as f64 / plumbing.as_secs_f64().max(1e-9)),
            vpp_open_files,
            vpp_answers,
        };
        if vpp_answers {
            self.teardown(&vpp, held).await?;
        }
        Ok(report)
    }

    /// Whether ends count once connected: memif ends with a workload VPP.
    fn measures_connected(&self) -> bool {
        self.kind == Kind::Memif && self.workload.is_some()
    }

    /// Plumbs vWire `i` and, with a workload VPP, connects its ends' workloads.
    async fn plumb_one(
        &self,
        vpp: &Vpp,
        namespaces: Option<&[Netns; 2]>,
        i: usize,
    ) -> anyhow::Result<Plumbed> {
        let vwire = VWireId::new_random();
        let request = match namespaces {
            Some([client, endpoint]) => {
                let address = |n: usize| Ipv4Addr::from(u32::from(FIRST_ADDRESS) + n as u32);
                PlumbRequest {
                    vwire,
                    payload: Payload::Ethernet,
                    client: kernel_end(client, &format!("nsm-{i}")),
                    endpoint: kernel_end(endpoint, &format!("nse-{i}")),
                    context: p2p(address(2 * i), address(2 * i + 1)),
                }
            }
            None => {
                let memif = |end| {
                    let asked = Mechanism::new(MechanismClass::Local, "MEMIF");
                    vpp.complete(vwire, end, asked)
                };
                PlumbRequest {
                    vwire,
                    payload: Payload::Ethernet,
                    client: memif(End::Client),
                    endpoint: memif(End::Endpoint),
                    context: ConnectionContext::default(),
                }
            }
        };
        vpp.plumb(request.clone())
            .await
            .with_context(|| format!("plumbing {} vWire {}", self.kind.as_str(), i + 1))?;
        let mut plumbed = Plumbed {
            request,
            slaves: Vec::new(),
        };
        if let (Kind::Memif, Some(workload)) = (self.kind, self.workload) {
            for mechanism in [&plumbed.request.client, &plumbed.request.endpoint] {
                let file = &mechanism.parameters[SOCKETFILE_PARAMETER];
                let slave = connect_slave(workload, file).await.with_context(|| {
                    format!("the workload VPP cannot connect a memif slave to {file}")
                });
                match slave {
                    Ok(slave) => plumbed.slaves.push(slave),
                    Err(error) => {
                        remove_slaves(workload, &plumbed.slaves).await;
                        let _ = vpp.unplumb(vwire, &plumbing_of(&plumbed.request)).await;
                        return Err(error);
                    }
                }
            }
        }
        Ok(plumbed)
    }

    /// Waits until every end of `held` is up, or [`CONNECT_WAIT`] without progress; the
    /// number of vWires with an end still down.
    async fn wait_connected(&self, held: &[Plumbed]) -> anyhow::Result<usize> {
        let mut best = usize::MAX;
        let mut since = Instant::now();
        loop {
            let down = self.down_vwires(held).await?.len();
            if down == 0 {
                return Ok(0);
            }
            if down < best {
                best = down;
                since = Instant::now();
            } else if since.elapsed() > CONNECT_WAIT {
                return Ok(down);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The vWires of `held` with a memif end that is not link-up in the VPP under test.
    async fn down_vwires(&self, held: &[Plumbed]) -> anyhow::Result<HashSet<VWireId>> {
        let files: HashMap<String, u32> = self
            .observer
            .dump(&MemifSocketFilenameDump::default())
            .await
            .context("memif_socket_filename_dump")?
            .into_iter()
            .map(|s| (s.socket_filename.as_str().to_owned(), s.socket_id))
            .collect();
        let link_up = IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP.0;
        let up: HashSet<u32> = self
            .observer
            .dump(&MemifDump::default())
            .await
            .context("memif_dump")?
            .into_iter()
            .filter(|m| m.flags.0 & link_up != 0)
            .map(|m| m.socket_id)
            .collect();
        let end_up = |mechanism: &Mechanism| {
            let file = &mechanism.parameters[SOCKETFILE_PARAMETER];
            files.get(file).is_some_and(|id| up.contains(id))
        };
        Ok(held
            .iter()
            .filter(|p| !(end_up(&p.request.client) && end_up(&p.request.endpoint)))
            .map(|p| p.request.vwire)
            .collect())
    }

    /// Objects in VPP or on the host of vWires that are not held: what refused Requests left.
    async fn half_made(&self, vpp: &Vpp, held: &[Plumbed]) -> anyhow::Result<usize> {
        let ours: HashSet<VWireId> = held.iter().map(|p| p.request.vwire).collect();
        let inventory = vpp
            .inventory()
            .await
            .context("the data plane's inventory")?;
        Ok(inventory
            .iter()
            .filter(|o| o.vwire.is_none_or(|v| !ours.contains(&v)))
            .count())
    }

    /// Unplumbs everything, removes the workload slaves, and checks that nothing is left.
    async fn teardown(&self, vpp: &Vpp, held: Vec<Plumbed>) -> anyhow::Result<()> {
        let outcomes: Vec<_> = futures::stream::iter(held.iter().map(|p| {
            let plumbing = plumbing_of(&p.request);
            async move { vpp.unplumb(p.request.vwire, &plumbing).await }
        }))
        .buffer_unordered(self.args.in_flight as usize)
        .collect()
        .await;
        if let Some(workload) = self.workload {
            for plumbed in &held {
                remove_slaves(workload, &plumbed.slaves).await;
            }
        }
        let failed = outcomes.into_iter().filter_map(Result::err).next();
        if let Some(error) = failed {
            return Err(error).context("unplumbing after the count");
        }
        let left = vpp
            .inventory()
            .await
            .context("the data plane's inventory")?;
        if let Some(first) = left.first() {
            bail!(
                "unplumbing the {} vWires left {} objects behind, among them {}",
                self.kind.as_str(),
                left.len(),
                first.description
            );
        }
        Ok(())
    }
}

/// A copying memif slave in the workload VPP on `file`, admin up.
async fn connect_slave(workload: &Client, file: &str) -> anyhow::Result<Slave> {
    let socket = MemifSocketFilenameAddDelV2 {
        is_add: true,
        socket_id: u32::MAX,
        socket_filename: VarString(file.to_owned()),
    };
    let socket_id = workload.request(&socket).await?.socket_id;
    let create = MemifCreateV2 {
        role: MemifRole::MEMIF_ROLE_API_SLAVE,
        mode: MemifMode::MEMIF_MODE_API_ETHERNET,
        socket_id,
        no_zero_copy: true,
        ..MemifCreateV2::default()
    };
    let slave = match workload.request(&create).await {
        Ok(reply) => Slave {
            sw_if_index: reply.sw_if_index,
            socket_id,
        },
        Err(error) => {
            let _ = workload.request(&remove_socket(socket_id)).await;
            return Err(error.into());
        }
    };
    let up = SwInterfaceSetFlags {
        sw_if_index: slave.sw_if_index,
        flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
    };
    if let Err(error) = workload.request(&up).await {
        remove_slaves(workload, std::slice::from_ref(&slave)).await;
        return Err(error.into());
    }
    Ok(slave)
}

/// Best effort: a slave left in the workload VPP only retries its connection.
async fn remove_slaves(workload: &Client, slaves: &[Slave]) {
    for slave in slaves {
        let delete = MemifDelete {
            sw_if_index: slave.sw_if_index,
        };
        if let Err(error) = workload.request(&delete).await {
            tracing::warn!(%error, sw_if_index = slave.sw_if_index, "cannot delete a workload memif");
        }
        let _ = workload.request(&remove_socket(slave.socket_id)).await;
    }
}

fn remove_socket(socket_id: u32) -> MemifSocketFilenameAddDelV2 {
    MemifSocketFilenameAddDelV2 {
        is_add: false,
        socket_id,
        socket_filename: VarString::default(),
    }
}

/// What unplumbing needs to know of a plumbed vWire.
fn plumbing_of(request: &PlumbRequest) -> Plumbing {
    Plumbing {
        dataplane: Vpp::NAME.to_owned(),
        dry_run: false,
        client_mechanism: request.client.clone(),
        endpoint_mechanism: request.endpoint.clone(),
        plumbed_at: chrono::Utc::now(),
    }
}
