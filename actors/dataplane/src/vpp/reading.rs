//! What VPP holds, read back by its tags (`sw_interface_dump`), and the three questions asked
//! of it: is a vWire whole ([`Dataplane::verify`]), what of a vWire is there to remove
//! ([`Dataplane::unplumb`] of a vWire this session did not make: after a VPP or node
//! restart), and what does this node hold at all ([`Dataplane::inventory`], for the sweep).
//!
//! A reconcile pass asks the first two of every live vWire. Reading VPP for each would cost
//! one dump of every interface per vWire — for 1,000 vWires, 1,000 dumps of 2,000
//! interfaces — so a pass reads VPP once ([`Dataplane::begin_pass`]) and both answer from
//! that reading until the pass ends. The reading is trusted only while it can still be
//! true: taken in the current API session (a VPP restart voids every `sw_if_index`), and not
//! for a vWire plumbed or unplumbed since it was taken (the node serves while it reconciles
//! after a VPP restart, and heals run meanwhile): those are read afresh. The sweep's
//! inventory, after the checks, always reads afresh: the checks have just changed VPP.
//!
//! [`Dataplane::verify`]: crate::Dataplane::verify
//! [`Dataplane::unplumb`]: crate::Dataplane::unplumb
//! [`Dataplane::inventory`]: crate::Dataplane::inventory
//! [`Dataplane::begin_pass`]: crate::Dataplane::begin_pass

use std::collections::{HashMap, HashSet};

use nsm_domain::vwire::{DataplaneWork, Plumbing, VWireId};
use nsm_vpp::api::{IfStatusFlags, SwInterfaceDetails, SwInterfaceDump};
use nsm_vpp::client::Client;

use super::ends::{self, EndKind, EndPlan, Made, MadeKind};
use super::tag::{VppTag, node_digest};
use super::{Inner, Log, vpp_error};
use crate::contract::{Dataplane, DataplaneError, DataplaneObject, End, PlumbRequest};

/// One of this node's interfaces, as a dump showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) vwire: VWireId,
    pub(crate) made: Made,
    pub(crate) admin_up: bool,
    pub(crate) link_up: bool,
}

/// What the forwarder knows VPP holds: each vWire's interfaces as this session made them
/// (or found them whole), and the reading of the reconcile pass in progress.
#[derive(Debug, Default)]
pub(crate) struct Known {
    made: HashMap<VWireId, Vec<Made>>,
    pass: Option<Reading>,
}

/// One reading of VPP, taken when a reconcile pass began.
#[derive(Debug)]
struct Reading {
    /// The API session it was read in.
    session: u64,
    ours: HashMap<VWireId, Vec<Found>>,
    /// vWires plumbed or unplumbed since: the reading no longer tells their truth.
    touched: HashSet<VWireId>,
}

impl Known {
    /// This session made `made` for `vwire`.
    pub(crate) fn insert(&mut self, vwire: VWireId, made: Vec<Made>) {
        self.touch(vwire);
        self.made.insert(vwire, made);
    }

    /// vWires this session holds in VPP besides `vwire` (for the ceiling on vWires).
    pub(crate) fn held_besides(&self, vwire: VWireId) -> usize {
        self.made.len() - usize::from(self.made.contains_key(&vwire))
    }

    /// VPP restarted: nothing it held is there any more, and no reading is true.
    pub(crate) fn clear(&mut self) {
        self.made.clear();
        self.pass = None;
    }

    /// The ends of live vWires on interface `sw_if_index`, as this session knows them (more
    /// than one only while a deleted index is being reused).
    pub(crate) fn ends_on(&self, sw_if_index: u32) -> Vec<(VWireId, Made)> {
        self.ends_where(|made| made.sw_if_index == sw_if_index)
    }

    /// The veth + af_packet end whose host side is the kernel interface `host_name`.
    pub(crate) fn end_on_host_veth(&self, host_name: &str) -> Vec<(VWireId, Made)> {
        self.ends_where(
            |made| matches!(&made.kind, MadeKind::AfPacket { host_name: h } if h == host_name),
        )
    }

    /// The host sides of every veth + af_packet end.
    pub(crate) fn host_veths(&self) -> Vec<String> {
        self.made
            .values()
            .flatten()
            .filter_map(|made| match &made.kind {
                MadeKind::AfPacket { host_name } => Some(host_name.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every end of every live vWire this session knows.
    pub(crate) fn every_end(&self) -> Vec<(VWireId, Made)> {
        self.ends_where(|_| true)
    }

    fn ends_where(&self, wanted: impl Fn(&Made) -> bool) -> Vec<(VWireId, Made)> {
        self.made
            .iter()
            .flat_map(|(vwire, made)| made.iter().map(move |m| (*vwire, m)))
            .filter(|(_, made)| wanted(made))
            .map(|(vwire, made)| (vwire, made.clone()))
            .collect()
    }

    /// Remembers a vWire found whole: its reading stays true.
    fn remember(&mut self, vwire: VWireId, made: Vec<Made>) {
        self.made.insert(vwire, made);
    }

    fn take(&mut self, vwire: VWireId) -> Option<Vec<Made>> {
        self.made.remove(&vwire)
    }

    fn touch(&mut self, vwire: VWireId) {
        if let Some(reading) = &mut self.pass {
            reading.touched.insert(vwire);
        }
    }

    /// What the pass's reading says of `vwire`, if it holds for it in `session`.
    fn read(&self, vwire: VWireId, session: u64) -> Option<Vec<Found>> {
        let reading = self.pass.as_ref()?;
        if reading.session != session || reading.touched.contains(&vwire) {
            return None;
        }
        Some(reading.ours.get(&vwire).cloned().unwrap_or_default())
    }
}

impl Inner {
    pub(super) fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.made.lock().expect("made lock")
    }

    /// Every interface VPP has, as its dump gives them.
    pub(super) async fn interfaces(
        &self,
        client: &Client,
    ) -> Result<Vec<SwInterfaceDetails>, DataplaneError> {
        let dump = SwInterfaceDump {
            sw_if_index: u32::MAX,
            ..SwInterfaceDump::default()
        };
        client.dump(&dump).await.map_err(vpp_error)
    }

    /// This node's tagged interfaces in a dump, with what their tags say.
    pub(super) fn ours(&self, interfaces: &[SwInterfaceDetails]) -> Vec<Found> {
        let digest = node_digest(&self.node);
        let admin_up = IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0;
        let link_up = IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP.0;
        interfaces
            .iter()
            .filter_map(|i| {
                let tag = VppTag::parse(i.tag.as_str()).filter(|t| t.node == digest)?;
                let name = i.interface_name.as_str().to_owned();
                let kind = MadeKind::from_vpp_name(&name, None)?;
                Some(Found {
                    vwire: tag.vwire,
                    made: Made {
                        end: tag.end,
                        sw_if_index: i.sw_if_index,
                        name,
                        kind,
                    },
                    admin_up: i.flags.0 & admin_up != 0,
                    link_up: i.flags.0 & link_up != 0,
                })
            })
            .collect()
    }

    /// A reconcile pass begins: one dump, kept until [`Self::end_pass`].
    pub(super) async fn begin_pass(&self) -> Result<(), DataplaneError> {
        let session = self.connection.session();
        let client = self.client()?;
        let interfaces = self.interfaces(&client).await?;
        let mut ours: HashMap<VWireId, Vec<Found>> = HashMap::new();
        for found in self.ours(&interfaces) {
            ours.entry(found.vwire).or_default().push(found);
        }
        self.known().pass = Some(Reading {
            session,
            ours,
            touched: HashSet::new(),
        });
        Ok(())
    }

    pub(super) fn end_pass(&self) {
        self.known().pass = None;
    }

    /// A vWire's interfaces in VPP: from the pass's reading while it holds for the vWire,
    /// else read now.
    async fn found_of(
        &self,
        client: &Client,
        vwire: VWireId,
    ) -> Result<Vec<Found>, DataplaneError> {
        let session = self.connection.session();
        if let Some(found) = self.known().read(vwire, session) {
            return Ok(found);
        }
        let interfaces = self.interfaces(client).await?;
        Ok(self
            .ours(&interfaces)
            .into_iter()
            .filter(|found| found.vwire == vwire)
            .collect())
    }

    pub(super) async fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> Result<DataplaneWork, DataplaneError> {
        let client = self.client()?;
        let remembered = self.known().take(vwire);
        let made = match remembered {
            Some(made) => made,
            None => self
                .found_of(&client, vwire)
                .await?
                .into_iter()
                .map(|found| found.made)
                .collect(),
        };
        self.known().touch(vwire);
        self.faults.unplumbed(vwire);
        let mut log = Log::default();
        if made.is_empty() {
            log.push(format!("nothing of vWire {vwire} was in VPP"));
        }
        for end in [End::Client, End::Endpoint] {
            let mechanism = match end {
                End::Client => &plumbing.client_mechanism,
                End::Endpoint => &plumbing.endpoint_mechanism,
            };
            let plan = EndPlan::new(
                &self.node,
                vwire,
                end,
                mechanism,
                &Default::default(),
                self.kernel_interface,
            )
            .ok();
            let of_end = made.iter().filter(|m| m.end == end).collect::<Vec<_>>();
            for one in &of_end {
                ends::remove(
                    &client,
                    self.kernel.as_ref(),
                    vwire,
                    one,
                    plan.as_ref(),
                    &mut log,
                )
                .await;
            }
            // VPP lost the end (it restarted since): its memif socket file is still there.
            if let (true, Some(EndKind::Memif { socket_file })) =
                (of_end.is_empty(), plan.as_ref().map(|p| &p.kind))
            {
                ends::remove_socket_file(socket_file, &mut log);
            }
        }
        Ok(log.work())
    }

    pub(super) async fn verify(
        &self,
        request: PlumbRequest,
    ) -> Result<Vec<String>, DataplaneError> {
        let plans = self.plan(&request)?;
        let client = self.client()?;
        let found = self.found_of(&client, request.vwire).await?;
        let mut missing = Vec::new();
        for plan in &plans {
            let end = plan.end;
            match found.iter().find(|f| f.made.end == end) {
                None => missing.push(format!("the {end} end's VPP interface is missing")),
                Some(f) if !f.admin_up => missing.push(format!(
                    "the {end} end's VPP interface {} is down",
                    f.made.name
                )),
                Some(_) => {}
            }
            if let (
                EndKind::AfPacket {
                    host_name,
                    mechanism,
                    context,
                },
                Some(kernel),
            ) = (&plan.kind, self.kernel.as_ref())
            {
                missing.extend(
                    kernel
                        .verify_host_veth(request.vwire, end, mechanism, context, host_name)
                        .await,
                );
            }
            if let (EndKind::Tap { workload, .. }, Some(kernel)) =
                (&plan.kind, self.kernel.as_ref())
            {
                missing.extend(kernel.verify_workload_end(workload).await);
            }
        }
        if missing.is_empty() {
            let made = found.into_iter().map(|f| f.made).collect();
            self.known().remember(request.vwire, made);
        }
        Ok(missing)
    }

    pub(super) async fn inventory(&self) -> Result<Vec<DataplaneObject>, DataplaneError> {
        let client = self.client()?;
        let mut objects: Vec<DataplaneObject> = self
            .ours(&self.interfaces(&client).await?)
            .into_iter()
            .map(|Found { vwire, made, .. }| DataplaneObject {
                vwire: Some(vwire),
                description: format!("VPP interface {} ({} end)", made.name, made.end),
                locator: format!("vpp:{}:{}:{}", made.sw_if_index, made.end, made.name),
            })
            .collect();
        if let Some(kernel) = &self.kernel {
            objects.extend(kernel.inventory().await?);
        }
        Ok(objects)
    }
}
